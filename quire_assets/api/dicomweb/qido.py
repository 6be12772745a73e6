"""QIDO-RS over the catalog (PS3.18 10.6, 8.3.4): query parameters become a filter document at
the level asked, and matching documents become DICOM JSON.

Matching as the standard has it for the attributes Quire holds: single value (case-sensitive; a
person name without regard to case, as Orthanc does), wildcard (``*`` and ``?``), date, time and
date-time ranges, UID lists (comma or backslash separated) and universal matching (an empty value
or ``*``: the attribute is returned, nothing is filtered). A key the catalog does not hold at or
above the level is refused by name (400), never ignored: ignoring it would answer a wider
question than the one asked.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from pydicom.datadict import keyword_for_tag

from quire_assets.catalog import KEYS, Catalog
from quire_assets.dicom.dicomjson import NUMBER_VRS, dataset, element, tag_of, vr_of
from quire_assets.dicom.features import FeatureSets
from quire_assets.dicom.normalize import normalize_da, normalize_dt, normalize_tm
from quire_assets.dicom.records import PROMOTED, snake_case

LEVELS = ("studies", "series", "instances")
FEATURE_LEVEL = {"studies": "study", "series": "series", "instances": "instance"}
DEFAULT_LIMIT, MAX_LIMIT = 1000, 10_000
# The attributes a level's documents hold under a field of their own (the keys, and the copies
# of a parent's keys on its children), so that matching them needs no join.
KEY_FIELDS: dict[str, dict[str, str]] = {
    "studies": {"StudyInstanceUID": "study_instance_uid", "AccessionNumber": "accession_number",
                "PatientID": "patient_id"},
    "series": {"StudyInstanceUID": "study_instance_uid", "SeriesInstanceUID": "series_instance_uid",
               "AccessionNumber": "accession_number", "PatientID": "patient_id"},
    "instances": {"StudyInstanceUID": "study_instance_uid", "SeriesInstanceUID": "series_instance_uid",
                  "SOPInstanceUID": "sop_instance_uid", "AccessionNumber": "accession_number"},
}
# Attributes Quire computes from its rollups (PS3.18 Table 6.7.1-2, -2a).
COMPUTED = {"ModalitiesInStudy": ("studies", "modalities"), "NumberOfStudyRelatedSeries": ("studies", "num_series"),
            "NumberOfStudyRelatedInstances": ("studies", "num_instances"),
            "NumberOfSeriesRelatedInstances": ("series", "num_instances")}
# What each level answers with when no includefield says more (PS3.18 Tables 6.7.1-2 to 2b, the
# ones Quire can hold); a series or instance answer carries its study's (and series') too.
DEFAULT_FIELDS = {
    "studies": ("StudyDate", "StudyTime", "AccessionNumber", "ModalitiesInStudy", "ReferringPhysicianName",
                "PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyInstanceUID", "StudyID",
                "StudyDescription", "NumberOfStudyRelatedSeries", "NumberOfStudyRelatedInstances"),
    "series": ("Modality", "SeriesDescription", "SeriesInstanceUID", "SeriesNumber", "BodyPartExamined",
               "NumberOfSeriesRelatedInstances"),
    "instances": ("SOPClassUID", "SOPInstanceUID", "InstanceNumber", "Rows", "Columns", "BitsAllocated",
                  "NumberOfFrames"),
}
_WILDCARD = re.compile(r"[*?]")


class QueryError(ValueError):
    """A QIDO request Quire cannot answer as asked (400, with what and why)."""


@dataclass
class Query:
    level: str
    where: dict  # at the level's documents
    parent_wheres: dict[str, dict]  # parent level → filter its documents must match
    fields: set[str]  # keywords to return beyond the defaults
    all_fields: bool
    limit: int
    offset: int
    fuzzy: bool
    matched: dict[str, str] = field(default_factory=dict)  # keyword → the catalog field matched on


def owner_level(keyword: str, features: FeatureSets) -> str | None:
    """The level whose documents hold an attribute (the feature set it is read in)."""
    if keyword in COMPUTED:
        return COMPUTED[keyword][0]
    for level, name in FEATURE_LEVEL.items():
        if keyword in features.names(name):
            return level
    return None


def catalog_field(level: str, keyword: str) -> str:
    """The field a filter names: a key, a computed rollup, a promoted (indexed) copy, or metadata."""
    if keyword in COMPUTED:
        return COMPUTED[keyword][1]
    if keyword in KEY_FIELDS[level]:
        return KEY_FIELDS[level][keyword]
    if keyword in PROMOTED[FEATURE_LEVEL[level]]:
        return snake_case(keyword)
    return f"metadata.{keyword}"


def _text_condition(value: str, vr: str) -> Any:
    if vr == "PN" or _WILDCARD.search(value):
        pattern = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in value)
        condition: dict[str, Any] = {"$regex": f"^{pattern}$"}
        if vr == "PN":
            condition["$options"] = "i"
        return condition
    return value


def _range(keyword: str, value: str, normalize: Callable[[str], str]) -> Any:
    low, dash, high = value.partition("-")
    try:
        if not dash:
            return normalize(value)
        condition = {}
        if low:
            condition["$gte"] = normalize(low)
        if high:
            # A date range ends with its last day; a time range with its last second's fractions.
            condition["$lte"] = normalize(high) if normalize is normalize_da else normalize(high) + "\uffff"
        return condition
    except ValueError as exc:
        raise QueryError(f"{keyword}={value!r}: {exc}") from None


def condition(keyword: str, value: str) -> Any:
    """The filter condition of one query key's value, or None for universal matching."""
    if value in ("", "*"):
        return None
    vr = vr_of(tag_of(keyword))
    if vr == "UI":
        uids = [u.strip() for u in re.split(r"[,\\]", value) if u.strip()]
        return uids[0] if len(uids) == 1 else {"$in": uids}
    if vr == "DA":
        return _range(keyword, value, normalize_da)
    if vr == "TM":
        return _range(keyword, value, normalize_tm)
    if vr == "DT":
        return _range(keyword, value, normalize_dt)
    if vr in NUMBER_VRS:
        try:
            numbers = [float(v) if vr in ("DS", "FL", "FD") else int(v) for v in value.split("\\")]
        except ValueError:
            raise QueryError(f"{keyword}={value!r}: {vr} takes a number") from None
        return numbers[0] if len(numbers) == 1 else {"$in": numbers}
    if "\\" in value and vr == "CS":
        return {"$in": value.split("\\")}
    return _text_condition(value, vr)


def parse(level: str, params: Iterable[tuple[str, str]], features: FeatureSets, fixed: dict[str, str]) -> Query:
    """A QIDO request's parameters at ``level``; ``fixed`` are the UIDs of the path (the study of
    ``/studies/{uid}/series``)."""
    query = Query(level, {}, {}, set(), False, DEFAULT_LIMIT, 0, False)
    conditions: dict[str, list[dict]] = {}
    keys = [*fixed.items()]
    for name, value in params:
        if name == "limit" or name == "offset":
            if not value.isdigit():
                raise QueryError(f"{name} takes a whole number, not {value!r}")
            setattr(query, name, min(int(value), MAX_LIMIT) if name == "limit" else int(value))
        elif name == "includefield":
            for item in value.split(","):
                if item.strip() == "all":
                    query.all_fields = True
                elif item.strip():
                    tag = tag_of(item)
                    if tag is None:
                        raise QueryError(f"includefield={item!r}: not a DICOM keyword or tag")
                    query.fields.add(keyword_for_tag(tag))
        elif name == "fuzzymatching":
            query.fuzzy = value.lower() == "true"
        else:
            keys.append((name, value))
    for name, value in keys:
        tag = tag_of(name)
        if tag is None:
            raise QueryError(f"{name!r} is not a QIDO-RS parameter, DICOM keyword or tag")
        keyword = keyword_for_tag(tag)
        owner = owner_level(keyword, features)
        if keyword in KEY_FIELDS[level]:
            owner = level
        if owner is None:
            raise QueryError(f"{keyword} ({tag:08X}) is not an attribute this catalog holds: it cannot be matched")
        if LEVELS.index(owner) > LEVELS.index(level):
            raise QueryError(f"{keyword} is an attribute of {owner}: query /{owner} to match it")
        query.fields.add(keyword)
        found = condition(keyword, value)
        if found is None:
            continue
        path = catalog_field(owner, keyword)
        query.matched[keyword] = path
        conditions.setdefault(owner, []).append({path: found})
    for owner, parts in conditions.items():
        where = parts[0] if len(parts) == 1 else {"$and": parts}
        if owner == level:
            query.where = where
        else:
            query.parent_wheres[owner] = where
    return query


def resolve(catalog: Catalog, query: Query, scope: dict | None) -> dict:
    """The filter at the query's level: its own conditions, its parents' as key lists, the scope."""
    parts = [p for p in (query.where, scope) if p]
    for parent, where in query.parent_wheres.items():
        parent_key = KEYS[parent]
        keys = catalog.keys(parent, {"$and": [where, scope]} if scope else where)
        parts.append({parent_key: {"$in": keys}})
    return parts[0] if len(parts) == 1 else {"$and": parts} if parts else {}


def attributes(level: str, doc: dict) -> dict[str, Any]:
    """Every attribute a document holds, by keyword (its metadata, its keys, what Quire computes)."""
    values = dict(doc.get("metadata") or {})
    for keyword, name in KEY_FIELDS[level].items():
        if doc.get(name) is not None:
            values[keyword] = doc[name]
    for keyword, (owner, name) in COMPUTED.items():
        if owner == level and doc.get(name) is not None:
            values[keyword] = doc[name]
    return values


def answer(level: str, docs: list[dict], parents: dict[str, dict[str, dict]], query: Query,
           retrieve_url: str) -> list[dict]:
    """DICOM JSON for the matching documents; ``parents``: level → key → document."""
    wanted = set(DEFAULT_FIELDS[level]) | query.fields
    for parent in ("studies", "series")[: LEVELS.index(level)]:
        wanted |= set(DEFAULT_FIELDS[parent])
    out = []
    for doc in docs:
        values: dict[str, Any] = {}
        for parent in ("studies", "series")[: LEVELS.index(level)]:
            parent_doc = parents.get(parent, {}).get(doc.get(KEYS[parent]))
            if parent_doc:
                values.update(attributes(parent, parent_doc))
        values.update(attributes(level, doc))
        if not query.all_fields:
            values = {k: v for k, v in values.items() if k in wanted}
        item = dataset(values)
        path = "/studies/" + doc["study_instance_uid"]
        if level != "studies":
            path += "/series/" + doc["series_instance_uid"]
        if level == "instances":
            path += "/instances/" + doc["sop_instance_uid"]
        tag, url = element("RetrieveURL", retrieve_url + path)
        item[tag] = url
        out.append(dict(sorted(item.items())))
    return out
