"""The summary statistics as a self-contained HTML report with plotly charts (works offline:
plotly.js is inlined from the installed package, no CDN)."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import plotly.graph_objects as go

REPORT_NAME = "quire-report.html"


def _indicator(title: str, value: float) -> go.Figure:
    fig = go.Figure(go.Indicator(mode="number", value=value, title={"text": title}))
    fig.update_layout(height=220, margin={"t": 40, "b": 10})
    return fig


def _bar(title: str, counts: dict[str, int], x_title: str, y_title: str) -> go.Figure:
    fig = go.Figure(go.Bar(x=list(counts), y=list(counts.values()), text=list(counts.values()),
                           textposition="auto"))
    fig.update_layout(title={"text": title}, xaxis={"title": {"text": x_title}, "type": "category"},
                      yaxis={"title": {"text": y_title}}, height=380)
    return fig


def figures(stats: dict[str, Any]) -> list[tuple[str, go.Figure]]:
    """(title, figure) pairs: the seed's five figures first, then the rest."""
    charts = [
        ("Total studies", _indicator("Total studies", stats["total_studies"])),
        ("Total slices", _indicator("Total slices", stats["total_slices"])),
        ("Average slices per study", _indicator("Average slices per study", stats["average_slices_per_study"])),
        ("Slice thickness distribution", _bar("Slice thickness distribution",
                                              stats["slice_thickness_distribution"]["series"],
                                              "slice thickness (mm)", "series")),
    ]
    sex = stats["sex_distribution"]
    pie = go.Figure(go.Pie(labels=list(sex), values=list(sex.values()), textinfo="label+value"))
    pie.update_layout(title={"text": "Sex distribution"}, height=380)
    charts.append(("Sex distribution", pie))
    for key, title, x_title, y_title in (
        ("modality_distribution", "Modality distribution", "modality", "series"),
        ("manufacturer_distribution", "Manufacturer distribution", "manufacturer", "series"),
        ("model_distribution", "Scanner model distribution", "manufacturer and model", "series"),
        ("body_part_distribution", "Body part distribution", "body part examined", "series"),
        ("study_year_distribution", "Study year distribution", "year", "studies"),
        ("pixel_spacing_distribution", "Pixel spacing distribution", "row spacing (mm)", "series"),
        ("series_per_study_distribution", "Series per study", "series in the study", "studies"),
        ("patient_age_distribution", "Patient age distribution", "age (years)", "patients"),
    ):
        charts.append((title, _bar(title, stats[key], x_title, y_title)))
    return charts


def write_report(stats: dict[str, Any], out_dir: str | Path, where: dict | None = None) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    parts = []
    for i, (title, fig) in enumerate(figures(stats)):
        body = fig.to_html(full_html=False, include_plotlyjs=(i == 0), config={"displaylogo": False})
        parts.append(f'<section class="chart" data-title="{html.escape(title)}">{body}</section>')
    scope = html.escape(json.dumps(where)) if where else "the whole catalog"
    page = (
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Quire summary statistics</title>"
        "<style>body{font-family:sans-serif;max-width:1100px;margin:auto}"
        "section.chart{border-bottom:1px solid #ddd;padding:8px 0}</style></head><body>"
        f"<h1>Quire summary statistics</h1><p>Studies: {scope}</p>"
        + "".join(parts)
        + f"<script type=\"application/json\" id=\"quire-stats\">{html.escape(json.dumps(stats))}</script>"
        + "</body></html>\n"
    )
    path = out / REPORT_NAME
    path.write_text(page, encoding="utf-8")
    return path
