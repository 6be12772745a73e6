"""Roll instance records up into instances, series, studies and patients.

A value that is the same in every file of a series (or study) is kept as that value. A value
that varies is not lost to "first file wins": numbers keep ``{"min", "max"}``, anything else
``{"distinct": [...]}``, and the attribute is listed under ``varying``. Promoted fields take the
most common value, so that a filter on ``slice_thickness`` still sees a number.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable
from typing import Any

from quire_assets.dicom.features import FeatureSets
from quire_assets.dicom.quality import series_quality
from quire_assets.dicom.records import PROMOTED, snake_case
from quire_assets.dicom.series_types import annotated_series, load_rules, series_types
from quire_assets.dicom.vendors import manufacturer_family

MAX_DISTINCT = 50
# What Quire records of a file that two copies of one SOP Instance UID must agree on: a copy that
# differs (a re-export with other frames or bit depth, an anonymizer reusing UIDs) is said.
CONFLICT_ATTRIBUTES = ("SOPClassUID", "Modality", "TransferSyntaxUID", "NumberOfFrames", "Rows", "Columns",
                       "BitsAllocated", "BitsStored", "PhotometricInterpretation")


def _freeze(value: Any) -> Any:
    """A hashable, type-exact key for a value (1, 1.0 and True stay apart, as in the catalog)."""
    if value is None or isinstance(value, str | int | float):
        return (type(value).__name__, value)
    return ("json", json.dumps(value, sort_keys=True, ensure_ascii=False))


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _all_same(values: list[Any]) -> bool:
    """Every value the same scalar, type included: the common case, decided without hashing."""
    first = values[0]
    kind = type(first)
    return kind in (str, int, float) and all(type(v) is kind and v == first for v in values)


def combine(values: list[Any]) -> tuple[Any, bool]:
    """One value for many files: (value, varies)."""
    present = [v for v in values if v is not None]
    if not present:
        return None, False
    if len(present) == len(values) and _all_same(present):
        return present[0], False
    distinct: dict[str, Any] = {}
    for value in present:
        distinct.setdefault(_freeze(value), value)
    if len(distinct) == 1 and len(present) == len(values):
        return present[0], False
    if len(distinct) == 1:
        # Present in some files only: the value, still flagged, so a reader knows it is partial.
        return present[0], True
    if all(_is_number(v) for v in present):
        return {"min": min(present), "max": max(present)}, True
    ordered = sorted(distinct.values(), key=lambda v: json.dumps(v, sort_keys=True, ensure_ascii=False))
    result: dict[str, Any] = {"distinct": ordered[:MAX_DISTINCT]}
    if len(ordered) > MAX_DISTINCT:
        result["num_distinct"] = len(ordered)
    return result, True


def most_common(values: Iterable[Any]) -> Any:
    values = [v for v in values if v is not None]
    if not values:
        return None
    if _all_same(values):
        return values[0]
    counts: Counter = Counter()
    originals: dict[Any, Any] = {}
    for value in values:
        key = _freeze(value)
        counts[key] += 1
        originals.setdefault(key, value)
    # Ties go to the smallest serialized value, so the answer does not depend on file order.
    best = min(counts.items(), key=lambda item: (-item[1], json.dumps(originals[item[0]], sort_keys=True, ensure_ascii=False)))[0]
    return originals[best]


def _rollup_metadata(records: list[dict], names: list[str]) -> tuple[dict[str, Any], list[str]]:
    metadata: dict[str, Any] = {}
    varying: list[str] = []
    for name in names:
        value, varies = combine([r["metadata"].get(name) for r in records])
        if value is not None:
            metadata[name] = value
        if varies:
            varying.append(name)
    return metadata, varying


def _promoted(records: list[dict], level: str) -> dict[str, Any]:
    out = {}
    for keyword in PROMOTED[level]:
        value = most_common(r["metadata"].get(keyword) for r in records)
        if keyword == "PixelSpacing" and _is_number(value):
            value = [value, value]
        out[snake_case(keyword)] = value
    return out


def frames(value: Any) -> int:
    """Frames of one instance: its ``NumberOfFrames`` when that is a positive whole number, else one."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 1


def recorded(record: dict) -> dict[str, Any]:
    """The attributes of a file its copies must agree on (``CONFLICT_ATTRIBUTES``), as read."""
    metadata = record["metadata"]
    found = {k: metadata[k] for k in CONFLICT_ATTRIBUTES if metadata.get(k) is not None}
    found["NumberOfFrames"] = frames(metadata.get("NumberOfFrames"))  # a single-frame file may leave it out
    return found


def conflicts_between(locations: list[dict]) -> dict[str, list]:
    """Attribute → the distinct values the files of one instance hold, for the attributes where
    they differ (an attribute one copy lacks is not a difference)."""
    values: dict[str, dict[Any, Any]] = {}
    for location in locations:
        for name, value in (location.get("recorded") or {}).items():
            values.setdefault(name, {}).setdefault(_freeze(value), value)
    return {name: sorted(found.values(), key=lambda v: json.dumps(v, sort_keys=True))
            for name, found in sorted(values.items()) if len(found) > 1}


def instance_documents(records: Iterable[dict], features: FeatureSets) -> list[dict]:
    """One document per SOP Instance UID; copies of a file are one instance with every file in
    ``locations`` (and ``uris``), and ``conflicts`` when the copies differ in what is recorded."""
    by_sop: dict[str, list[dict]] = defaultdict(list)
    for record in records:
        by_sop[record["sop_instance_uid"]].append(record)
    names = set(features.names("instance"))
    documents = []
    for sop_uid, copies in by_sop.items():
        copies.sort(key=lambda r: r["uri"])
        first = copies[0]
        documents.append(
            {
                **{snake_case(k): first["metadata"].get(k) for k in PROMOTED["instance"]},
                "sop_instance_uid": sop_uid,
                "series_instance_uid": first["series_instance_uid"],
                "study_instance_uid": first["study_instance_uid"],
                "accession_number": first["accession_number"],
                "partition_key": first["partition_key"],
                "uri": first["uri"],
                "uris": [r["uri"] for r in copies],
                "locations": (locations := [{"uri": r["uri"], "recorded": recorded(r)} for r in copies]),
                "size": first.get("size"),
                "metadata": {k: v for k, v in first["metadata"].items() if k in names},
                "oddities": first.get("oddities", []),
                **({"damage": first["damage"]} if first.get("damage") else {}),
                **({"conflicts": conflict} if len(copies) > 1 and (conflict := conflicts_between(locations)) else {}),
            }
        )
    return documents


def series_documents(records: Iterable[dict], features: FeatureSets) -> list[dict]:
    """Series rollups from instance records (duplicated SOP UIDs counted once)."""
    by_series: dict[str, dict[str, dict]] = defaultdict(dict)
    copies: dict[str, list[dict]] = defaultdict(list)
    for record in records:
        by_series[record["series_instance_uid"]].setdefault(record["sop_instance_uid"], record)
        copies[record["sop_instance_uid"]].append(record)
    names = features.names("series")
    numeric_instance = features.names("instance")
    rules = load_rules(None if features.source == "builtin" else features.source)
    documents = []
    for series_uid, by_sop in by_series.items():
        members = list(by_sop.values())
        first = members[0]
        metadata, varying = _rollup_metadata(members, names)
        ranges = {}
        for name in numeric_instance:
            numbers = [r["metadata"].get(name) for r in members]
            numbers = [v for v in numbers if _is_number(v)]
            if numbers:
                ranges[name] = {"min": min(numbers), "max": max(numbers)}
        promoted = _promoted(members, "series")
        conflicting = sum(1 for sop in by_sop if len(copies[sop]) > 1 and conflicts_between(
            [{"recorded": recorded(r)} for r in copies[sop]]))
        quality = series_quality(members, {sop: len(copies[sop]) for sop in by_sop}, conflicting)
        types, evidence = series_types(members, rules)
        documents.append(
            {
                **promoted,
                "manufacturer_family": manufacturer_family(promoted.get("manufacturer")),
                "series_instance_uid": series_uid,
                "study_instance_uid": first["study_instance_uid"],
                "accession_number": most_common(r["accession_number"] for r in members),
                "patient_id": most_common(r["patient_id"] for r in members),
                "partition_key": first["partition_key"],
                "num_instances": len(members),
                "num_frames": sum(frames(r["metadata"].get("NumberOfFrames")) for r in members),
                "metadata": metadata,
                "instance_ranges": ranges,
                "varying": varying,
                # A series with files cut short says how many, so a series-level cohort sees it.
                **({"damaged_instances": damaged} if (damaged := sum(bool(r.get("damage")) for r in members))
                   else {}),
                **({"conflicting_instances": conflicting} if conflicting else {}),
                # What the headers say of the series' quality (``quality.py``): its codes and whether it
                # is a complete regular volume are fields of their own, for filters and facets.
                "quality_flags": quality["flags"],
                "complete_volume": quality["complete_volume"],
                "quality": quality,
                # What kind of series it is (``series_types.py``), and what decided each label.
                "series_types": types,
                "series_type_evidence": evidence,
                **({"annotates": annotates} if (annotates := annotated_series(members, series_uid)) else {}),
            }
        )
    # An annotation's series (SEG, SR, RTSTRUCT, presentation state) is named on the series it is
    # about, when that series is cataloged with it (an accession's series are rolled up together).
    by_uid = {d["series_instance_uid"]: d for d in documents}
    for doc in documents:
        for target in doc.get("annotates", []):
            if target in by_uid:
                by_uid[target].setdefault("annotated_by", []).append(doc["series_instance_uid"])
    return documents


def study_documents(records: Iterable[dict], series: Iterable[dict], features: FeatureSets) -> list[dict]:
    """Study rollups: study-level attributes over the study's instances, counts over its series."""
    by_study: dict[str, dict[str, dict]] = defaultdict(dict)
    for record in records:
        by_study[record["study_instance_uid"]].setdefault(record["sop_instance_uid"], record)
    series_by_study: dict[str, list[dict]] = defaultdict(list)
    for doc in series:
        series_by_study[doc["study_instance_uid"]].append(doc)
    names = features.names("study")
    documents = []
    for study_uid, by_sop in by_study.items():
        members = list(by_sop.values())
        metadata, varying = _rollup_metadata(members, names)
        its_series = series_by_study.get(study_uid, [])
        documents.append(
            {
                **_promoted(members, "study"),
                "study_instance_uid": study_uid,
                "partition_key": members[0]["partition_key"],
                "modalities": sorted({s["modality"] for s in its_series if s.get("modality")}),
                # What a study list shows of its series (as PACS viewers show body part and modality).
                "body_parts": sorted({s["body_part_examined"] for s in its_series if s.get("body_part_examined")}),
                "series_types": sorted({t for s in its_series for t in s.get("series_types") or []}),
                "quality_flags": sorted({f for s in its_series for f in s.get("quality_flags") or []}),
                "num_series": len(its_series),
                "num_instances": len(members),
                "num_frames": sum(frames(r["metadata"].get("NumberOfFrames")) for r in members),
                "collection_ids": [],
                "metadata": metadata,
                "varying": varying,
            }
        )
    return documents


def patient_documents(studies: Iterable[dict]) -> list[dict]:
    """Patients from their studies (a patient's studies may come from many accessions)."""
    by_patient: dict[str, list[dict]] = defaultdict(list)
    for study in studies:
        if study.get("patient_id"):
            by_patient[study["patient_id"]].append(study)
    documents = []
    for patient_id, its_studies in sorted(by_patient.items()):
        its_studies.sort(key=lambda s: (s.get("study_date") or "", s["study_instance_uid"]))
        fields = {}
        varying = []
        for field in ("patient_name", "patient_sex", "patient_birth_date"):
            value, varies = combine([s.get(field) for s in its_studies])
            fields[field] = most_common(s.get(field) for s in its_studies) if varies else value
            if varies:
                varying.append(field)
        documents.append(
            {
                "patient_id": patient_id,
                **fields,
                "study_instance_uids": [s["study_instance_uid"] for s in its_studies],
                "accession_numbers": sorted({s["accession_number"] for s in its_studies if s.get("accession_number")}),
                "modalities": sorted({m for s in its_studies for m in s.get("modalities", [])}),
                "num_studies": len(its_studies),
                "num_series": sum(s.get("num_series", 0) for s in its_studies),
                "num_instances": sum(s.get("num_instances", 0) for s in its_studies),
                "num_frames": sum(s.get("num_frames", 0) for s in its_studies),
                "varying": varying,
            }
        )
    return documents
