// Draws a Quire report's charts: each figure is plotly JSON in the page (no inline code, so the
// dashboard's Content-Security-Policy holds when it serves a report).
"use strict";
for (const holder of document.querySelectorAll("section.chart > script.figure")) {
  const figure = JSON.parse(holder.textContent);
  Plotly.newPlot(holder.parentElement, figure.data, figure.layout, {displaylogo: false, responsive: true});
}
