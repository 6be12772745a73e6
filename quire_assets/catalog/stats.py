"""Summary statistics over the catalog (or the studies a filter selects).

The seed's five figures: total studies, total slices, average slices per study, slice thickness
distribution, sex distribution; and what researchers ask next: modality, manufacturer and
model, body part, study year, pixel spacing, series per study, patient age.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from quire_assets.catalog.base import Catalog
from quire_assets.dicom.vendors import manufacturer_family
from quire_assets.util import chunks

_AGE = re.compile(r"^(\d{1,3})([DWMY])$")


def age_in_years(text: Any) -> float | None:
    """``051Y`` → 51, ``006M`` → 0.5; ``None`` for anything else."""
    match = _AGE.match(str(text or "").strip())
    if not match:
        return None
    value, unit = int(match[1]), match[2]
    return value / {"D": 365.25, "W": 52.18, "M": 12, "Y": 1}[unit]


def _ordered(counter: Counter) -> dict[str, int]:
    def sort_key(item):
        number = re.match(r"^\d+(\.\d+)?", item[0])
        return (0, float(number[0]), item[0]) if number else (1, 0.0, item[0])

    return dict(sorted(counter.items(), key=sort_key))


def suppress_small_cells(counts: dict[str, int], k: int) -> dict[str, int]:
    """Counts under ``k`` merged into one cell whose label names no value (a count of one patient of
    a rare age or year would single them out)."""
    if k <= 1:
        return counts
    kept = {label: n for label, n in counts.items() if n >= k}
    small = sum(n for n in counts.values() if n < k)
    return {**kept, f"other (cells under {k})": small} if small else kept


# Slice thickness in the bands researchers select by (thin-slice work starts under 1.5 mm).
THICKNESS_BANDS = [(1.0, "< 1 mm"), (1.5, "1-1.5 mm"), (2.5, "1.5-2.5 mm"), (5.0, "2.5-5 mm"), (float("inf"), "≥ 5 mm")]


def thickness_band(value: Any) -> str:
    if not isinstance(value, int | float):
        return "not recorded"
    return next(label for upper, label in THICKNESS_BANDS if value < upper)


def _family(s: dict) -> str:
    """A series' manufacturer family (catalogs written before families were kept have the spelling only)."""
    return s.get("manufacturer_family") or manufacturer_family(s.get("manufacturer")) or "unknown"


def cross_tabs(series: list[dict]) -> dict[str, dict[str, dict[str, int]]]:
    """Series counted by two fields at once, row → column → count: modality by manufacturer, and
    slice thickness (in bands) by scanner model for the series that record one."""
    tables: dict[str, dict[str, Counter]] = {"modality_by_manufacturer": {}, "thickness_by_scanner": {}}
    for s in series:
        tables["modality_by_manufacturer"].setdefault(s.get("modality") or "unknown", Counter())[_family(s)] += 1
        if s.get("slice_thickness") is not None:
            scanner = f"{_family(s)} {s.get('manufacturer_model_name') or '?'}"
            tables["thickness_by_scanner"].setdefault(scanner, Counter())[thickness_band(s["slice_thickness"])] += 1
    return {name: {row: dict(counts) for row, counts in sorted(rows.items())} for name, rows in tables.items()}


def suppress_small_table(table: dict[str, dict[str, int]], k: int) -> dict[str, dict[str, int | None]]:
    """A cross-tab with its cells under ``k`` withheld (``None``), and then more cells withheld until
    no row or column has exactly one: the margins are the one-way distributions, printed beside, and a
    lone withheld cell would be their difference (secondary suppression, as statistical offices do)."""
    if k <= 1:
        return table
    cells: dict[tuple[str, str], int | None] = {(r, c): n for r, cols in table.items() for c, n in cols.items()}
    withheld = {key for key, n in cells.items() if n < k}
    changed = bool(withheld)
    while changed:
        changed = False
        for axis in (0, 1):
            lines: dict[str, list[tuple[str, str]]] = {}
            for key in cells:
                lines.setdefault(key[axis], []).append(key)
            for keys in lines.values():
                hidden = [key for key in keys if key in withheld]
                shown = [key for key in keys if key not in withheld]
                if len(hidden) == 1 and shown:
                    withheld.add(min(shown, key=lambda key: cells[key]))
                    changed = True
    result: dict[str, dict[str, int | None]] = {}
    for (row, column), n in cells.items():
        result.setdefault(row, {})[column] = None if (row, column) in withheld else n
    return result


def summary_statistics(catalog: Catalog, study_filter: dict | None = None, min_cell: int = 0) -> dict[str, Any]:
    """The figures of the studies ``study_filter`` selects; with ``min_cell``, every distribution's
    cells under it are merged (``suppress_small_cells``)."""
    studies = catalog.find("studies", study_filter or {}, projection={
        "study_instance_uid": 1, "patient_id": 1, "patient_sex": 1, "patient_age": 1, "study_date": 1,
        "num_series": 1, "num_instances": 1, "num_frames": 1})
    uids = [s["study_instance_uid"] for s in studies]
    series: list[dict] = []
    for chunk in chunks(uids, 500):
        series.extend(catalog.find("series", {"study_instance_uid": {"$in": list(chunk)}}, projection={
            "modality": 1, "manufacturer": 1, "manufacturer_family": 1, "manufacturer_model_name": 1, "body_part_examined": 1,
            "slice_thickness": 1, "pixel_spacing": 1, "num_instances": 1, "quality_flags": 1, "complete_volume": 1}))
    total_instances = sum(s.get("num_instances") or 0 for s in studies)
    # Images are frames: a multi-frame instance (an ultrasound clip, a tomosynthesis) holds many.
    # Studies cataloged before frames were counted count an image per instance.
    total_images = sum(s.get("num_frames") or s.get("num_instances") or 0 for s in studies)
    sexes: dict[str, str] = {}
    ages: dict[str, float] = {}
    for s in studies:
        patient = s.get("patient_id") or s["study_instance_uid"]
        sexes.setdefault(patient, s.get("patient_sex") or "unknown")
        age = age_in_years(s.get("patient_age"))
        if age is not None:
            ages.setdefault(patient, age)
    thickness_series: Counter = Counter()
    thickness_slices: Counter = Counter()
    spacing: Counter = Counter()
    for s in series:
        if s.get("slice_thickness") is not None:
            key = f"{s['slice_thickness']:g}"
            thickness_series[key] += 1
            thickness_slices[key] += s.get("num_instances") or 0
        if isinstance(s.get("pixel_spacing"), list) and s["pixel_spacing"]:
            spacing[f"{s['pixel_spacing'][0]:.2f}"] += 1
    decade = Counter(f"{int(a // 10) * 10}-{int(a // 10) * 10 + 9}" for a in ages.values())
    distributions = {
        "sex_distribution": dict(Counter(sexes.values()).most_common()),
        "modality_distribution": dict(Counter(s.get("modality") or "unknown" for s in series).most_common()),
        # By family: GE MEDICAL SYSTEMS and GE Healthcare are one bar.
        "manufacturer_distribution": dict(Counter(_family(s) for s in series).most_common()),
        "model_distribution": dict(Counter(
            f"{s.get('manufacturer') or '?'} {s.get('manufacturer_model_name') or '?'}" for s in series).most_common()),
        "body_part_distribution": dict(Counter(s.get("body_part_examined") or "unknown" for s in series).most_common()),
        "study_year_distribution": _ordered(Counter((s.get("study_date") or "unknown")[:4] for s in studies)),
        "pixel_spacing_distribution": _ordered(spacing),
        "series_per_study_distribution": _ordered(Counter(str(s.get("num_series") or 0) for s in studies)),
        "patient_age_distribution": _ordered(decade),
        # Series by what their headers say of their quality (dicom/quality.py): each flag, and
        # the complete volumes (series cataloged before quality was kept are "not assessed").
        "quality_distribution": dict(Counter(
            flag for s in series for flag in (s.get("quality_flags") or ([] if "quality_flags" in s else
                                                                          ["not assessed"]))).most_common()),
        "complete_volume_distribution": dict(Counter(
            {True: "complete volume", False: "not a complete volume"}.get(s.get("complete_volume"), "not assessed")
            for s in series).most_common()),
    }
    return {
        "total_studies": len(studies),
        "cross_tabs": {name: suppress_small_table(table, min_cell) for name, table in cross_tabs(series).items()},
        "total_instances": total_instances,
        "total_images": total_images,
        "average_images_per_study": round(total_images / len(studies), 2) if studies else 0.0,
        # The names of earlier reports, for the readers that use them: slices are images.
        "total_slices": total_images,
        "average_slices_per_study": round(total_images / len(studies), 2) if studies else 0.0,
        "total_series": len(series),
        "total_patients": len(sexes),
        "slice_thickness_distribution": {"series": suppress_small_cells(_ordered(thickness_series), min_cell),
                                         "slices": suppress_small_cells(_ordered(thickness_slices), min_cell)},
        **{name: suppress_small_cells(counts, min_cell) for name, counts in distributions.items()},
    }
