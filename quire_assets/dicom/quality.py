"""What a series' headers say of its quality, computed when it is rolled up: whether its images
make one regular 3D volume, slices missing, mixed geometry, duplicated or conflicting files,
damaged files, clocks that disagree with the study, values that broke their VR.

The volume test follows NCI IDC's ``volume_geometry_index`` for its own data: one orientation,
no two slices at one position, a constant spacing along the normal within a tolerance, positions
along the normal or sheared by the gantry tilt the files record (``gantry_tilt``: still regular);
an oblique volume is still a volume. Quire
does it from the headers it already holds, for any archive. Each problem is a short code in
``flags`` (what researchers filter and facet on), with its figures beside it.
"""

from __future__ import annotations

import math
from collections import Counter
from datetime import datetime
from typing import Any

# Positions within this many millimetres are one position; spacings within this fraction of the
# series' usual spacing (or 0.01 mm) are equal (IDC uses comparable tolerances).
POSITION_TOLERANCE = 1e-3
SPACING_TOLERANCE = 0.01
ORIENTATION_TOLERANCE = 1e-4
PARALLEL_TOLERANCE = 1e-3  # sine of the angle between the slices' axis and the normal
FAR_FROM_STUDY_SECONDS = 24 * 3600
MIN_VOLUME_SLICES = 3
# Every code a series' ``flags`` may hold, for the facet and the docs.
FLAGS = {
    "missing_slices": "positions (or instance numbers) with gaps: slices are missing",
    "irregular_spacing": "the spacing between slices varies beyond the tolerance",
    "duplicate_positions": "two or more slices at one position",
    "positions_off_normal": "slice positions move off the slices' normal, and no gantry tilt is recorded to say why",
    "mixed_orientation": "the slices have more than one orientation",
    "mixed_pixel_spacing": "the slices have more than one pixel spacing",
    "mixed_size": "the slices have more than one number of rows or columns",
    "duplicate_files": "an instance is held by more than one file",
    "conflicting_copies": "files of one instance disagree on what Quire records",
    "damaged_files": "files cut short or without their pixels (cataloged from the header)",
    "acquired_before_study": "an acquisition time before the study's date and time",
    "acquired_far_from_study": "an acquisition time more than a day after the study's",
    "vr_oddities": "values that broke their value representation (kept as text)",
}


def _vector(value: Any, size: int) -> list[float] | None:
    if isinstance(value, list) and len(value) == size and all(isinstance(v, int | float) for v in value):
        return [float(v) for v in value]
    return None


def _cross(a: list[float], b: list[float]) -> list[float]:
    return [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]


def _dot(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def _norm(a: list[float]) -> float:
    return math.sqrt(_dot(a, a))


def _when(date: Any, time: Any) -> datetime | None:
    """A normalized DA and TM (``YYYY-MM-DD``, ``HH:MM:SS[.ffffff]``) as one moment."""
    if not isinstance(date, str):
        return None
    text = f"{date}T{time if isinstance(time, str) else '00:00:00'}"
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def orientation_label(iop: list[float]) -> str:
    """axial, coronal or sagittal when the normal is within a few degrees of an axis, else oblique."""
    normal = _cross(iop[:3], iop[3:])
    length = _norm(normal) or 1.0
    axis = max(range(3), key=lambda i: abs(normal[i]))
    if abs(normal[axis]) / length < math.cos(math.radians(5)):
        return "oblique"
    return ("sagittal", "coronal", "axial")[axis]


def volume_geometry(records: list[dict]) -> dict[str, Any]:
    """The 3D geometry of single-frame slices: ``volume`` (``regular``, ``irregular``, or
    ``not_a_volume`` with why), the orientation, spacing and the problems found."""
    metadata = [r["metadata"] for r in records]
    if any(isinstance(m.get("NumberOfFrames"), int) and m["NumberOfFrames"] > 1 for m in metadata):
        return {"volume": "not_a_volume", "why": "multi-frame instances (their positions are per frame)"}
    slices = [(_vector(m.get("ImagePositionPatient"), 3), _vector(m.get("ImageOrientationPatient"), 6))
              for m in metadata]
    slices = [(p, o) for p, o in slices if p and o]
    tilts = {float(m["GantryDetectorTilt"]) for m in metadata if isinstance(m.get("GantryDetectorTilt"), int | float)
             and m["GantryDetectorTilt"]}
    if len(slices) < MIN_VOLUME_SLICES:
        return {"volume": "not_a_volume", "why": f"{len(slices)} slice(s) with a position and an orientation"}
    problems: list[str] = []
    first = slices[0][1]
    if any(max(abs(a - b) for a, b in zip(o, first, strict=True)) > ORIENTATION_TOLERANCE for _, o in slices):
        return {"volume": "irregular", "flags": ["mixed_orientation"]}
    normal = _cross(first[:3], first[3:])
    length = _norm(normal)
    if length < 0.5:
        return {"volume": "not_a_volume", "why": "its orientation's row and column are not perpendicular"}
    normal = [n / length for n in normal]
    positions = sorted(slices, key=lambda s: _dot(s[0], normal))
    along = [_dot(p, normal) for p, _ in positions]
    steps = [b - a for a, b in zip(along, along[1:], strict=False)]
    duplicates = sum(1 for s in steps if s < POSITION_TOLERANCE)
    if duplicates:
        problems.append("duplicate_positions")
    distinct = [s for s in steps if s >= POSITION_TOLERANCE]
    spacing = sorted(distinct)[len(distinct) // 2] if distinct else 0.0
    missing = 0
    if spacing:
        tolerance = max(SPACING_TOLERANCE * spacing, 0.01)
        for step in distinct:
            if abs(step - spacing) <= tolerance:
                continue
            multiple = round(step / spacing)
            if multiple >= 2 and abs(step - multiple * spacing) <= tolerance * multiple:
                missing += multiple - 1
            else:
                problems.append("irregular_spacing")
        if missing:
            problems.append("missing_slices")
    axis = [b - a for a, b in zip(positions[0][0], positions[-1][0], strict=True)]
    span = _norm(axis)
    shear = 0.0
    if span > POSITION_TOLERANCE:
        sine = _norm(_cross(axis, normal)) / span
        if sine > PARALLEL_TOLERANCE:
            shear = math.degrees(math.asin(min(sine, 1.0)))
            # A gantry tilt shears the stack by the recorded angle: still a regular volume (as IDC has
            # it), resampled to be square. A shear no tilt explains is not.
            if not any(abs(shear - abs(t)) < 1.0 for t in tilts):
                problems.append("positions_off_normal")
    flags = sorted(set(problems))
    return {"volume": "irregular" if flags else "regular", "orientation": orientation_label(first),
            "slices": len(slices), "spacing": round(spacing, 6), "missing_positions": missing,
            "duplicate_positions": duplicates, **({"gantry_tilt": round(shear, 3)} if shear else {}),
            **({"flags": flags} if flags else {})}


def series_quality(records: list[dict], copies: dict[str, int], conflicting: int) -> dict[str, Any]:
    """The quality document of one series: ``flags`` (codes of ``FLAGS``), ``complete_volume``
    (a regular 3D volume with nothing missing), and the figures behind them. ``records`` holds one
    record per instance; ``copies`` the number of files of each SOP Instance UID."""
    geometry = volume_geometry(records)
    flags = set(geometry.get("flags", []))
    numbers = sorted({r["metadata"].get("InstanceNumber") for r in records
                      if isinstance(r["metadata"].get("InstanceNumber"), int)})
    numbering_gaps = (numbers[-1] - numbers[0] + 1 - len(numbers)) if len(numbers) >= 2 else 0
    if numbering_gaps and len(numbers) == len(records):
        flags.add("missing_slices")
    for name, flag in (("PixelSpacing", "mixed_pixel_spacing"), ("Rows", "mixed_size"), ("Columns", "mixed_size")):
        values = {repr(r["metadata"].get(name)) for r in records if r["metadata"].get(name) is not None}
        if len(values) > 1:
            flags.add(flag)
    duplicated = sum(1 for n in copies.values() if n > 1)
    if duplicated:
        flags.add("duplicate_files")
    if conflicting:
        flags.add("conflicting_copies")
    damaged = sum(bool(r.get("damage")) for r in records)
    if damaged:
        flags.add("damaged_files")
    clock: Counter = Counter()
    for r in records:
        m = r["metadata"]
        study, acquired = _when(m.get("StudyDate"), m.get("StudyTime")), _when(m.get("AcquisitionDate"),
                                                                              m.get("AcquisitionTime"))
        if study and acquired:
            seconds = (acquired - study).total_seconds()
            if seconds < 0 and (m.get("StudyTime") or acquired.date() < study.date()):
                clock["acquired_before_study"] += 1
            elif seconds > FAR_FROM_STUDY_SECONDS:
                clock["acquired_far_from_study"] += 1
    flags.update(clock)
    oddities = sum(len(r.get("oddities") or []) for r in records)
    if oddities:
        flags.add("vr_oddities")
    complete = geometry["volume"] == "regular" and not flags & {"missing_slices", "damaged_files",
                                                                  "conflicting_copies"}
    return {
        "flags": sorted(flags), "complete_volume": complete, "volume": geometry["volume"],
        **{k: v for k, v in geometry.items() if k not in ("flags", "volume")},
        "instance_number_gaps": numbering_gaps, "duplicated_instances": duplicated,
        "conflicting_instances": conflicting, "damaged_instances": damaged, **dict(clock),
        "vr_oddities": oddities,
    }
