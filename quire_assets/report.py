"""The summary statistics as a self-contained HTML report with plotly charts (works offline:
plotly.js is inlined from the installed package, no CDN)."""

from __future__ import annotations

import html
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import plotly.graph_objects as go

from quire_assets.catalog import Catalog
from quire_assets.catalog.stats import summary_statistics

REPORT_NAME = "quire-report.html"


SEX_WORDS = {"M": "male", "F": "female", "O": "other"}

# The number tiles at the top, in one row: (title, key in the statistics).
TILES = [("Total studies", "total_studies"), ("Total series", "total_series"), ("Total instances", "total_instances"),
         ("Total images (frames)", "total_images"), ("Total patients", "total_patients"),
         ("Average images per study", "average_images_per_study")]


def _bar(title: str, counts: dict[str, int], x_title: str, y_title: str) -> go.Figure:
    fig = go.Figure(go.Bar(x=list(counts), y=list(counts.values()), text=list(counts.values()),
                           textposition="auto"))
    # Counts are whole numbers: no 0.5 ticks, one tick per unit while the bars are short.
    small = max(counts.values(), default=0) <= 10
    fig.update_layout(title={"text": title}, xaxis={"title": {"text": x_title}, "type": "category"},
                      yaxis={"title": {"text": y_title}, "tickformat": ",d", "rangemode": "tozero",
                             **({"dtick": 1} if small else {})}, height=380)
    return fig


def figures(stats: dict[str, Any]) -> list[tuple[str, go.Figure]]:
    """(title, figure) pairs: the seed's charts first (its three numbers are the tiles), then the rest."""
    charts = [
        ("Slice thickness distribution", _bar("Slice thickness distribution",
                                              stats["slice_thickness_distribution"]["series"],
                                              "slice thickness (mm)", "series")),
    ]
    sex = {SEX_WORDS.get(k, k): v for k, v in stats["sex_distribution"].items()}
    pie = go.Figure(go.Pie(labels=list(sex), values=list(sex.values()), textinfo="label+value"))
    pie.update_layout(title={"text": "Sex distribution (patients)"}, height=380)
    charts.append(("Sex distribution", pie))
    for key, title, x_title, y_title in (
        ("modality_distribution", "Modality distribution", "modality", "series"),
        ("manufacturer_distribution", "Manufacturer (family) distribution", "manufacturer", "series"),
        ("model_distribution", "Scanner model distribution", "manufacturer and model", "series"),
        ("body_part_distribution", "Body part distribution", "body part examined", "series"),
        ("study_year_distribution", "Study year distribution", "year", "studies"),
        ("pixel_spacing_distribution", "Pixel spacing distribution", "row spacing (mm)", "series"),
        ("series_per_study_distribution", "Series per study", "series in the study", "studies"),
        ("patient_age_distribution", "Patient age distribution", "age (years)", "patients"),
        ("complete_volume_distribution", "Complete volumes", "what the headers say", "series"),
        ("quality_distribution", "Quality flags (a series may have several)", "flag", "series"),
    ):
        charts.append((title, _bar(title, stats[key], x_title, y_title)))
    return charts


def _number(value: float) -> str:
    return f"{value:,}" if isinstance(value, int) else f"{value:,.2f}".rstrip("0").rstrip(".")


STYLE = (
    "body{font-family:sans-serif;max-width:1100px;margin:auto;color:#222}"
    "header dl{display:grid;grid-template-columns:max-content auto;gap:2px 12px;margin:0 0 16px}"
    "header dt{color:#666}header dd{margin:0;font-family:monospace;word-break:break-all}"
    ".tiles{display:flex;gap:12px;flex-wrap:nowrap;margin:8px 0 16px}"
    ".tile{flex:1;border:1px solid #ddd;border-radius:6px;padding:12px;text-align:center}"
    ".tile .value{display:block;font-size:2em;font-weight:bold}.tile .label{color:#666}"
    ".empty{padding:24px;border:1px dashed #bbb;border-radius:6px;text-align:center;font-size:1.2em}"
    "section.chart{border-bottom:1px solid #ddd;padding:8px 0}"
)


def render_report(stats: dict[str, Any], where: dict | None = None, about: dict[str, str] | None = None) -> str:
    """The report page: ``about`` goes in the header (catalog, sources); the filter is stated with
    the level it applies to."""
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    rows = {**(about or {}), "filter": f"on studies: {json.dumps(where, ensure_ascii=False)}" if where
            else "none (the whole catalog)", "generated": generated}
    header = "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>" for k, v in rows.items())
    tiles = "".join(f'<div class="tile" data-title="{html.escape(t)}"><span class="value">{_number(stats[k])}</span>'
                    f'<span class="label">{html.escape(t)}</span></div>' for t, k in TILES)
    if stats["total_studies"]:
        parts = []
        for i, (title, fig) in enumerate(figures(stats)):
            body = fig.to_html(full_html=False, include_plotlyjs=(i == 0), config={"displaylogo": False})
            parts.append(f'<section class="chart" data-title="{html.escape(title)}">{body}</section>')
        content = "".join(parts)
    else:
        content = ('<p class="empty">No studies ' + ("match this filter" if where else "in this catalog yet")
                   + ": there is nothing to chart.</p>")
    page = (
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Quire summary statistics</title>"
        f"<style>{STYLE}</style></head><body>"
        f"<header><h1>Quire summary statistics</h1><dl>{header}</dl></header>"
        f'<div class="tiles">{tiles}</div>{content}'
        + f"<script type=\"application/json\" id=\"quire-stats\">{html.escape(json.dumps(stats))}</script>"
        + "</body></html>\n"
    )
    return page


def catalog_report(catalog: Catalog, where: dict | None = None, min_cell: int = 0) -> tuple[dict[str, Any], str]:
    """The summary statistics of the studies ``where`` selects (small cells merged under
    ``min_cell``), and their report page."""
    stats = summary_statistics(catalog, where, min_cell)
    sources = {*catalog.distinct("studies", "sources", where), *catalog.distinct("studies", "source", where)}
    about = {"catalog": catalog.uri, "source": ", ".join(sorted(map(str, sources))) or "(none)"}
    return stats, render_report(stats, where or None, about)


def write_report(page: str, out_dir: str | Path) -> Path:
    """Write the page as ``quire-report.html`` into ``out_dir``; returns its absolute path."""
    out = Path(out_dir).expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    path = out / REPORT_NAME
    path.write_text(page, encoding="utf-8")
    return path
