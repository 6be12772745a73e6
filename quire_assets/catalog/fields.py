"""Which fields a level's documents have: so that a misspelled field in a filter, a sort or a
column list is reported instead of answering with nothing, and ``quire fields`` can list them."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from quire_assets.catalog.base import KEYS, QUERY_LEVELS, Catalog
from quire_assets.catalog.filters import FilterError

# The columns a table or a CSV shows when none are asked for (the command line, the API).
TABLE_COLUMNS = {
    "patients": ["patient_id", "patient_name", "patient_sex", "patient_birth_date", "num_studies", "num_instances"],
    "studies": ["accession_number", "patient_id", "study_date", "study_description", "modalities", "num_series",
                "num_instances"],
    "series": ["accession_number", "modality", "manufacturer", "manufacturer_model_name", "slice_thickness",
               "pixel_spacing", "num_instances", "series_description"],
    "instances": ["accession_number", "sop_instance_uid", "instance_number", "uri"],
    "errors": ["reason", "uri", "detail"],
    "jobs": ["job_id", "researcher_id", "name", "status", "num_accessions", "created_at"],
}


def value_at(doc: dict, path: str) -> Any:
    """The value at a dotted path (``metadata.KVP``), or None."""
    node: Any = doc
    for part in path.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cells(doc: dict, columns: Sequence[str], neutralize: bool = True) -> list:
    """A CSV row: lists and documents as JSON, a missing value as an empty cell. Text that a
    spreadsheet would run as a formula (it begins with = + - @, a tab or a carriage return: DICOM
    text and accession numbers are whoever wrote the file's) is prefixed with ``'`` (OWASP's advice
    on CSV injection), unless ``neutralize`` is off."""
    cells = []
    for value in (value_at(doc, c) for c in columns):
        if isinstance(value, list | dict):
            value = json.dumps(value, ensure_ascii=False)
        elif value is None:
            value = ""
        if neutralize and isinstance(value, str) and value.startswith(FORMULA_STARTS):
            value = "'" + value
        cells.append(value)
    return cells


def filter_fields(flt: dict) -> list[str]:
    """The field paths a MongoDB filter document names (inside ``$and``/``$or``/``$nor`` too)."""
    found: list[str] = []
    for key, value in flt.items():
        if key in ("$and", "$or", "$nor") and isinstance(value, list):
            for part in value:
                if isinstance(part, dict):
                    found.extend(filter_fields(part))
        elif not key.startswith("$"):
            found.append(key)
    return list(dict.fromkeys(found))


def has_field(catalog: Catalog, level: str, path: str) -> bool:
    return bool(catalog.find(level, {path: {"$exists": True}}, projection={KEYS[level]: 1}, limit=1))


HasField = Callable[[Catalog, str, str], bool]


class KnownFields:
    """``has_field``'s answers, kept until the catalog is written again (``generation`` changes):
    a field no document has costs one scan per level and write, not one per request that names it."""

    LIMIT = 10_000  # answers kept at most (names are the caller's to choose)

    def __init__(self) -> None:
        self.answers: dict[tuple[str, str], bool] = {}
        self.generation: object = None
        self.lock = threading.Lock()

    def has(self, generation: object) -> HasField:
        with self.lock:
            if generation != self.generation or len(self.answers) > self.LIMIT:
                self.answers, self.generation = {}, generation

        def known(catalog: Catalog, level: str, path: str) -> bool:
            found = self.answers.get((level, path))
            if found is None:
                found = self.answers[(level, path)] = has_field(catalog, level, path)
            return found

        return known


def unknown_fields(catalog: Catalog, level: str, paths: Iterable[str], has: HasField = has_field) -> dict[str, list[str]]:
    """The paths no document of ``level`` has, each with the other levels whose documents have it.
    A level with no documents knows every path (there is nothing to misread)."""
    if not catalog.find(level, projection={KEYS[level]: 1}, limit=1):
        return {}
    return {path: [other for other in QUERY_LEVELS if other != level and shown_has_field(catalog, other, path, has)]
            for path in dict.fromkeys(paths) if not has(catalog, level, path)}


def shown_has_field(catalog: Catalog, level: str, path: str, has: HasField = has_field) -> bool:
    """``has`` on a level the caller may read; False on one it may not (a researcher's errors): a
    hint never opens a level."""
    from quire_assets.catalog.view import PolicyRefusal

    try:
        return has(catalog, level, path)
    except PolicyRefusal:
        return False


def refuse_unknown_fields(catalog: Catalog, level: str, paths: Iterable[str], what: str,
                          hint: str = "", has: HasField = has_field) -> None:
    """Raise ``FilterError`` naming the first field no document of ``level`` has, and the levels
    that have it (``study_date`` is on studies, not series)."""
    unknown = unknown_fields(catalog, level, paths, has)
    if unknown:
        path, elsewhere = next(iter(unknown.items()))
        where = f" ({', '.join(elsewhere)} documents have it)" if elsewhere else ""
        more = f" and {len(unknown) - 1} more" if len(unknown) > 1 else ""
        raise FilterError(f"{what}: no {level} document has a field {path!r}{where}{more}"
                          + (f"; {hint.format(level=level)}" if hint else ""))


def level_fields(catalog: Catalog, level: str, sample: int = 1000) -> list[str]:
    """The field paths of the first ``sample`` documents of a level (``metadata.<Keyword>`` one by one)."""
    paths: set[str] = set()
    for doc in catalog.find(level, limit=sample):
        for key, value in doc.items():
            if key == "metadata" and isinstance(value, dict):
                paths.update(f"metadata.{k}" for k in value)
            elif key != "_id":
                paths.add(key)
    return sorted(paths)
