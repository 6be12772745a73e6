"""The summary statistics as an HTML report: a summary in words, the figures as tiles, charts,
cross-tabs, a quality section and, for a cohort, the cohort beside the whole catalog.

The charts are plotly figures kept as JSON in the page and drawn by ``web/static/report.js`` with
plotly.js: the dashboard serves both (one bundle, and no inline script for its Content-Security-
Policy to refuse); a report file links to them beside it, or inlines them (``self_contained``) to
be opened anywhere offline."""

from __future__ import annotations

import html
import json
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import plotly.graph_objects as go

from quire_assets.catalog import Catalog
from quire_assets.catalog.stats import summary_statistics

REPORT_NAME = "quire-report.html"
DRAWING_SCRIPT = Path(__file__).parent / "web" / "static" / "report.js"

SEX_WORDS = {"M": "male", "F": "female", "O": "other"}
# The Okabe-Ito palette: told apart with every common colour-vision deficiency, and in greys on paper.
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#56B4E9", "#CC79A7", "#F0E442", "#000000"]
ERROR_WORDS = {"not_dicom": "not DICOM", "skipped": "skipped (not a DICOM file type)",
               "unreadable": "unreadable DICOM", "missing_uid": "missing an identifying UID"}

# The number tiles at the top, in one row: (title, key in the statistics).
TILES = [("Total studies", "total_studies"), ("Total series", "total_series"), ("Total instances", "total_instances"),
         ("Total images (frames)", "total_images"), ("Total patients", "total_patients"),
         ("Average images per study", "average_images_per_study")]
CROSS_TABS = {"modality_by_manufacturer": ("Series by modality and manufacturer", "modality"),
              "thickness_by_scanner": ("Series by scanner and slice thickness", "scanner")}


def plotly_js() -> Path:
    """The plotly.js bundle of the installed plotly package (the dashboard serves the same file)."""
    import plotly

    return Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


def _numeric(keys: list[str]) -> bool:
    try:
        return bool([float(k) for k in keys])
    except ValueError:
        return False


def _bar(title: str, counts: dict[str, int], x_title: str, y_title: str, categories: bool = False) -> go.Figure:
    keys = list(counts)
    # Measures on a numeric axis (0.625 mm sits near 1 mm, far from 5 mm); anything else (years too) by category.
    numeric = not categories and _numeric(keys)
    fig = go.Figure(go.Bar(x=[float(k) for k in keys] if numeric else keys, y=list(counts.values()),
                           text=list(counts.values()), textposition="auto", marker={"color": PALETTE[0]}))
    # Counts are whole numbers: no 0.5 ticks, one tick per unit while the bars are short.
    small = max(counts.values(), default=0) <= 10
    fig.update_layout(title={"text": title}, xaxis={"title": {"text": x_title}, "type": "linear" if numeric else "category"},
                      yaxis={"title": {"text": y_title}, "tickformat": ",d", "rangemode": "tozero",
                             **({"dtick": 1} if small else {})})
    return fig


def figures(stats: dict[str, Any]) -> list[tuple[str, go.Figure]]:
    """(title, figure) pairs: the seed's charts first (its three numbers are the tiles), then the rest."""
    charts = [
        ("Slice thickness distribution", _bar("Slice thickness distribution",
                                              stats["slice_thickness_distribution"]["series"],
                                              "slice thickness (mm)", "series")),
    ]
    sex = {SEX_WORDS.get(k, k): v for k, v in stats["sex_distribution"].items()}
    pie = go.Figure(go.Pie(labels=list(sex), values=list(sex.values()), textinfo="label+value", sort=False))
    pie.update_layout(title={"text": "Sex distribution (patients)"})
    charts.append(("Sex distribution", pie))
    for key, title, x_title, y_title, *categories in (
        ("modality_distribution", "Modality distribution", "modality", "series"),
        ("manufacturer_distribution", "Manufacturer (family) distribution", "manufacturer", "series"),
        ("model_distribution", "Scanner model distribution", "manufacturer and model", "series"),
        ("body_part_distribution", "Body part distribution", "body part examined", "series"),
        ("study_year_distribution", "Study year distribution", "year", "studies", True),
        ("pixel_spacing_distribution", "Pixel spacing distribution", "row spacing (mm)", "series"),
        ("series_per_study_distribution", "Series per study", "series in the study", "studies"),
        ("patient_age_distribution", "Patient age distribution", "age (years)", "patients"),
        ("complete_volume_distribution", "Complete volumes", "what the headers say", "series"),
        ("quality_distribution", "Quality flags (a series may have several)", "flag", "series"),
    ):
        if stats[key]:  # a chart of nothing says nothing
            charts.append((title, _bar(title, stats[key], x_title, y_title, bool(categories))))
    for _, fig in charts:  # one look for every chart, legible in print
        fig.update_layout(template="simple_white", colorway=PALETTE, height=340, margin={"t": 48, "b": 64},
                          font={"family": "sans-serif", "size": 12})
    return charts


def _number(value: float) -> str:
    return f"{value:,}" if isinstance(value, int) else f"{value:,.2f}".rstrip("0").rstrip(".")


def _counted(counts: dict[str, int], unit: str, top: int = 4) -> str:
    """``CT (5 series), MR (2) and 1 other``: the largest first."""
    ranked = sorted(counts.items(), key=lambda kv: -kv[1])
    said = [f"{label} ({n:,}{' ' + unit if i == 0 else ''})" for i, (label, n) in enumerate(ranked[:top])]
    if len(ranked) > top:
        said.append(f"{len(ranked) - top} other{'s' if len(ranked) - top > 1 else ''}")
    return ", ".join(said[:-1]) + f" and {said[-1]}" if len(said) > 1 else "".join(said)


def summary_text(stats: dict[str, Any], errors: dict[str, int] | None) -> str:
    """The report's first paragraph: what the statistics say, in words."""
    if not stats["total_studies"]:
        return "There are no studies to summarize."
    said = [f"{stats['total_patients']:,} patients, {stats['total_studies']:,} studies, {stats['total_series']:,} "
            f"series and {stats['total_images']:,} images (frames, in {stats['total_instances']:,} instances)."]
    years = sorted(y for y in stats["study_year_distribution"] if y.isdigit())
    if years:
        said.append(f"Studies from {years[0]}." if years[0] == years[-1] else f"Studies from {years[0]} to {years[-1]}.")
    if stats["modality_distribution"]:
        said.append(f"Modalities: {_counted(stats['modality_distribution'], 'series')}.")
    if stats["manufacturer_distribution"]:
        said.append(f"Manufacturers: {_counted(stats['manufacturer_distribution'], 'series')}.")
    complete = stats["complete_volume_distribution"].get("complete volume", 0)
    flagged = {k: v for k, v in stats["quality_distribution"].items() if k != "not assessed"}
    said.append(f"{complete:,} of {stats['total_series']:,} series are complete volumes"
                + (f"; quality flags: {_counted(flagged, 'series')}." if flagged else "; no series carries a quality flag."))
    if errors is None:
        said.append("Files that could not be cataloged are not shown to research keys.")
    elif errors:
        reasons = [f"{n:,} {ERROR_WORDS.get(reason, reason)}" for reason, n in errors.items()]
        said.append(f"{sum(errors.values()):,} files were not cataloged: "
                    + (", ".join(reasons[:-1]) + f" and {reasons[-1]}" if len(reasons) > 1 else reasons[0]) + ".")
    else:
        said.append("Every file read was cataloged.")
    return " ".join(said)


def _cell(value: int | None, k: int) -> str:
    return f"&lt; {k}" if value is None else f"{value:,}"


def cross_tab_html(name: str, table: dict[str, dict[str, int | None]], min_cell: int) -> str:
    title, row_title = CROSS_TABS[name]
    columns = sorted({c for cols in table.values() for c in cols})
    if name == "thickness_by_scanner":
        from quire_assets.catalog.stats import THICKNESS_BANDS

        order = [label for _, label in THICKNESS_BANDS]
        columns = sorted(columns, key=lambda c: order.index(c) if c in order else len(order))
    head = "".join(f'<th scope="col">{html.escape(c)}</th>' for c in columns)
    rows = "".join(f'<tr><th scope="row">{html.escape(row)}</th>'
                   + "".join(f'<td>{_cell(cols[c], min_cell) if c in cols else ""}</td>' for c in columns) + "</tr>"
                   for row, cols in table.items())
    return (f'<section class="cross-tab" data-name="{name}"><h3>{html.escape(title)}</h3>'
            f'<table><thead><tr><th scope="col">{row_title}</th>{head}</tr></thead><tbody>{rows}</tbody></table></section>')


def _share(counts: dict[str, int], label: str) -> str:
    total = sum(counts.values())
    n = counts.get(label, 0)
    return f"{n:,} ({100 * n / total:.0f}%)" if total else "0"


def comparison_html(cohort: dict[str, Any], whole: dict[str, Any]) -> str:
    """The cohort's figures beside the whole catalog's: totals, then each value's share."""
    rows = [(title, _number(cohort[key]), _number(whole[key])) for title, key in TILES]
    for key, what in (("modality_distribution", "modality"), ("manufacturer_distribution", "manufacturer"),
                      ("sex_distribution", "sex"), ("complete_volume_distribution", "series")):
        for label in dict.fromkeys([*whole[key], *cohort[key]]):
            rows.append((f"{what}: {SEX_WORDS.get(label, label) if key == 'sex_distribution' else label}",
                         _share(cohort[key], label), _share(whole[key], label)))
    body = "".join(f'<tr><th scope="row">{html.escape(t)}</th><td>{a}</td><td>{b}</td></tr>' for t, a, b in rows)
    return ('<section class="comparison"><h2>The cohort beside the whole catalog</h2><table><thead><tr>'
            '<th scope="col"></th><th scope="col">cohort</th><th scope="col">whole catalog</th></tr></thead>'
            f'<tbody>{body}</tbody></table></section>')


def quality_html(stats: dict[str, Any], errors: dict[str, int] | None) -> str:
    from quire_assets.dicom.quality import FLAGS

    flags = "".join(f'<tr><th scope="row" title="{html.escape(FLAGS.get(k, ""))}">{html.escape(k)}</th><td>{v:,}</td></tr>'
                    for k, v in stats["quality_distribution"].items())
    if errors is None:
        unread = "<p>Files that could not be cataloged are not shown to research keys.</p>"
    elif errors:
        unread = ('<table class="errors"><thead><tr><th scope="col">reason</th><th scope="col">files</th></tr></thead><tbody>'
                  + "".join(f'<tr><th scope="row">{html.escape(ERROR_WORDS.get(k, k))}</th><td>{v:,}</td></tr>'
                            for k, v in errors.items()) + "</tbody></table>")
    else:
        unread = "<p>Every file read was cataloged.</p>"
    complete = stats["complete_volume_distribution"]
    return ('<section class="quality"><h2>Quality and unreadable files</h2>'
            f'<p>Complete volumes: {_share(complete, "complete volume")} of the series.</p>'
            '<h3>Quality flags (series; a series may have several)</h3>'
            f'<table class="flags"><thead><tr><th scope="col">flag</th><th scope="col">series</th></tr></thead>'
            f'<tbody>{flags}</tbody></table>'
            f'<h3>Files not cataloged, by reason</h3>{unread}</section>')


STYLE = (
    "body{font-family:sans-serif;max-width:1200px;margin:auto;padding:0 16px;color:#222}"
    "header dl{display:grid;grid-template-columns:max-content auto;gap:2px 12px;margin:0 0 16px}"
    "header dt{color:#666}header dd{margin:0;font-family:monospace;word-break:break-all}"
    "#summary{font-size:1.1em;line-height:1.5}"
    ".tiles{display:flex;gap:12px;flex-wrap:nowrap;margin:8px 0 16px}"
    ".tile{flex:1;border:1px solid #ddd;border-radius:6px;padding:12px;text-align:center}"
    ".tile .value{display:block;font-size:2em;font-weight:bold}.tile .label{color:#666}"
    ".empty{padding:24px;border:1px dashed #bbb;border-radius:6px;text-align:center;font-size:1.2em}"
    ".charts{display:grid;grid-template-columns:repeat(2,minmax(0,1fr));gap:8px}"
    "section.chart{border:1px solid #eee;border-radius:6px;min-height:340px;break-inside:avoid}"
    "table{border-collapse:collapse;margin:8px 0 16px}th,td{border:1px solid #ddd;padding:3px 8px;text-align:right}"
    "th[scope=row],thead th:first-child{text-align:left}thead th{background:#f4f4f4}"
    ".cross-tabs{display:flex;flex-wrap:wrap;gap:24px}"
    "@media print{.charts{grid-template-columns:1fr 1fr}section{break-inside:avoid}}"
)


def _script_safe(text: str) -> str:
    """JSON inside a <script> element: a ``</`` in a value (a description) cannot close it."""
    return text.replace("</", "<\\/")


def _scripts(plotly: str) -> tuple[str, str]:
    """The head's plotly.js and the body's drawing script: inline, or links (``plotly`` is the
    folder or URL prefix both are found under)."""
    if plotly == "inline":
        return (f"<script>{plotly_js().read_text(encoding='utf-8')}</script>",
                f"<script>{DRAWING_SCRIPT.read_text(encoding='utf-8')}</script>")
    return (f'<script src="{html.escape(plotly)}plotly.min.js"></script>',
            f'<script src="{html.escape(plotly)}report.js"></script>')


def render_report(stats: dict[str, Any], where: dict | None = None, about: dict[str, str] | None = None, *,
                  asked: str | None = None, cohort: str | None = None, whole: dict[str, Any] | None = None,
                  errors: dict[str, int] | None = None, min_cell: int = 0, plotly: str = "inline") -> str:
    """The report page: ``about`` goes in the header (catalog, sources); the filter is stated with
    the level it applies to (``asked``: the question as the reader put it, when ``where`` is what it
    came to); ``cohort`` names what was selected and ``whole`` is the whole catalog's
    statistics to set beside it; ``errors`` counts the files not cataloged by reason (None: not
    shown to this reader); ``plotly`` is "inline" or where plotly.min.js and report.js are linked from."""
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    rows = {**({"cohort": cohort} if cohort else {}), **(about or {}),
            "filter": asked or (f"on studies: {json.dumps(where, ensure_ascii=False)}" if where
                                else "none (the whole catalog)"),
            "generated": generated}
    header = "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>" for k, v in rows.items())
    tiles = "".join(f'<div class="tile" data-title="{html.escape(t)}"><span class="value">{_number(stats[k])}</span>'
                    f'<span class="label">{html.escape(t)}</span></div>' for t, k in TILES)
    head_script, drawing = _scripts(plotly)
    if stats["total_studies"]:
        charts = "".join(
            f'<section class="chart" data-title="{html.escape(title)}"><script type="application/json" class="figure">'
            f'{_script_safe(fig.to_json())}</script></section>' for title, fig in figures(stats))
        tabs = "".join(cross_tab_html(name, table, min_cell) for name, table in stats["cross_tabs"].items() if table)
        content = (f'<h2>Charts</h2><div class="charts">{charts}</div>'
                   f'<h2>Cross-tabs</h2><div class="cross-tabs">{tabs}</div>{quality_html(stats, errors)}')
    else:
        head_script = drawing = ""
        content = ('<p class="empty">No studies ' + ("match this filter" if where else "in this catalog yet")
                   + ": there is nothing to chart.</p>")
    title = f"Quire report: {cohort}" if cohort else "Quire summary statistics"
    return (
        f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
        f"<style>{STYLE}</style>{head_script}</head><body>"
        f"<header><h1>{html.escape(title)}</h1><dl>{header}</dl></header>"
        f'<p id="summary">{html.escape(summary_text(stats, errors))}</p>'
        f'<div class="tiles">{tiles}</div>'
        + (comparison_html(stats, whole) if whole is not None else "") + content
        + f"<script type=\"application/json\" id=\"quire-stats\">{html.escape(json.dumps(stats))}</script>"
        + drawing + "</body></html>\n"
    )


def error_counts(catalog: Catalog, where: dict | None) -> dict[str, int] | None:
    """Files not cataloged by reason, of the selected studies' accessions (all of them without a
    filter); None when the catalog does not show errors to this reader (a research view)."""
    from quire_assets.catalog.view import PolicyRefusal

    try:
        flt = {"partition_key": {"$in": catalog.distinct("studies", "partition_key", where)}} if where else None
        return dict(catalog.value_counts("errors", "reason", flt))  # most frequent first
    except PolicyRefusal:
        return None


def cohort_name(catalog: Catalog, where: dict | None, collection: str | None = None) -> str | None:
    """The name of a collection (the API's ``collection=``, or a filter that is one collection),
    else None: any other filter is stated as it is in the header."""
    if collection is None and where and list(where) == ["collection_ids"] and isinstance(where["collection_ids"], str):
        collection = where["collection_ids"]
    if collection is None:
        return None
    return (catalog.get("collections", collection) or {}).get("name") or collection


def catalog_report(catalog: Catalog, where: dict | None = None, min_cell: int = 0, *, collection: str | None = None,
                   asked: str | None = None, plotly: str = "inline") -> tuple[dict[str, Any], str]:
    """The summary statistics of the studies ``where`` selects (small cells merged under
    ``min_cell``), and their report page: with a filter, beside the whole catalog's."""
    stats = summary_statistics(catalog, where, min_cell)
    whole = summary_statistics(catalog, None, min_cell) if where else None
    sources = {*catalog.distinct("studies", "sources", where), *catalog.distinct("studies", "source", where)}
    about = {"catalog": catalog.uri, "source": ", ".join(sorted(map(str, sources))) or "(none)"}
    return stats, render_report(stats, where or None, about, asked=asked, cohort=cohort_name(catalog, where, collection),
                                whole=whole,
                                errors=error_counts(catalog, where), min_cell=min_cell, plotly=plotly)


def write_report(page: str, out_dir: str | Path, *, linked: bool = False) -> Path:
    """Write the page as ``quire-report.html`` into ``out_dir``, with the scripts it links to
    beside it when ``linked``; returns its absolute path."""
    out = Path(out_dir).expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    path = out / REPORT_NAME
    path.write_text(page, encoding="utf-8")
    if linked:
        shutil.copyfile(plotly_js(), out / "plotly.min.js")
        shutil.copyfile(DRAWING_SCRIPT, out / "report.js")
    return path
