"""Which fields a level's documents have: so that a misspelled field in a filter, a sort or a
column list is reported instead of answering with nothing, and ``quire fields`` can list them."""

from __future__ import annotations

from collections.abc import Iterable

from quire_assets.catalog.base import KEYS, Catalog

LEVELS = ("patients", "studies", "series", "instances", "errors")


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


def unknown_fields(catalog: Catalog, level: str, paths: Iterable[str]) -> dict[str, list[str]]:
    """The paths no document of ``level`` has, each with the other levels whose documents have it.
    A level with no documents knows every path (there is nothing to misread)."""
    if not catalog.find(level, projection={KEYS[level]: 1}, limit=1):
        return {}
    return {path: [other for other in LEVELS if other != level and has_field(catalog, other, path)]
            for path in dict.fromkeys(paths) if not has_field(catalog, level, path)}


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
