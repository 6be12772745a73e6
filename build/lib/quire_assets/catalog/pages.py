"""Keyset pages over a level: each page ends at a position (the last row's sort value and natural
key) and the next page is the rows after it, so rows written or removed while someone pages
(an ingest running) never shift what is left: no row of the pages is missed or repeated, as it
would be with an offset.

Sorts are on one single-valued (promoted) field, ties broken by the natural key in the sort's
direction, as both backends order them: null and missing first, then numbers, then text
(descending reverses it all).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from quire_assets.catalog.base import KEYS, SCALAR_FIELDS, Catalog, check_collection, checked_projection
from quire_assets.catalog.filters import FilterError

MAX_LIMIT = 10_000


@dataclass(frozen=True)
class Position:
    """Where a page ended: the sort (field and direction), the last row's value of it and its key."""

    sort: str
    direction: int
    value: Any
    key: str

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> Position:
        if not isinstance(data, dict) or set(data) != {"sort", "direction", "value", "key"}:
            raise FilterError("the cursor does not belong to this API")
        return cls(**data)


def checked_sort(level: str, sort: tuple[str, int] | None) -> tuple[str, int]:
    """The page order: a promoted field of the level (default: the natural key) and a direction."""
    key = KEYS[check_collection(level)]
    if sort is None:
        return key, 1
    field, direction = sort
    if field not in SCALAR_FIELDS[level]:
        raise FilterError(f"{level} sort on one of {', '.join(SCALAR_FIELDS[level])}, not {field!r} "
                          "(single-valued fields page stably)")
    return field, 1 if direction >= 0 else -1


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def rows_after(level: str, position: Position) -> dict:
    """A filter for the rows that come after ``position`` in its order."""
    key, field, v, k = KEYS[level], position.sort, position.value, position.key
    if field == key:
        return {key: {"$gt" if position.direction > 0 else "$lt": k}}
    tie = {field: v, key: {"$gt" if position.direction > 0 else "$lt": k}}  # ties follow the sort's direction
    if position.direction > 0:
        if v is None:
            return {"$or": [{field: None, key: {"$gt": k}}, {field: {"$ne": None}}]}
        later_types = [{field: {"$gte": ""}}] if _is_number(v) else []  # text sorts after numbers
        return {"$or": [{field: {"$gt": v}}, tie, *later_types]}
    if v is None:
        return {field: None, key: {"$lt": k}}
    numbers = [] if _is_number(v) else [{field: {"$gte": 0}}, {field: {"$lt": 0}}]
    return {"$or": [{field: {"$lt": v}}, tie, *numbers, {field: None}]}


def page(
    catalog: Catalog,
    level: str,
    where: dict | None = None,
    sort: tuple[str, int] | None = None,
    limit: int = 100,
    after: Position | None = None,
    projection: dict | list | None = None,
) -> tuple[list[dict], Position | None]:
    """Up to ``limit`` documents of ``level`` matching ``where`` after ``after``, and the position
    to continue from (None on the last page). The natural key is always in the documents."""
    if not 1 <= limit <= MAX_LIMIT:
        raise FilterError(f"limit is between 1 and {MAX_LIMIT:,}, not {limit}")
    field, direction = checked_sort(level, sort)
    key = KEYS[level]
    if after is not None and (after.sort, after.direction) != (field, direction):
        raise FilterError("the cursor was made for another sort: send the same sort with it")
    flt = dict(where or {})
    if after is not None:
        flt = {"$and": [flt, rows_after(level, after)]} if flt else rows_after(level, after)
    wanted = checked_projection(projection)
    fetch = wanted
    added: list[str] = []
    if wanted and any(wanted.values()):  # inclusion: the key and the sort field must come back
        added = [f for f in (key, field) if f not in wanted]
        fetch = {**wanted, **dict.fromkeys(added, 1)}
    elif wanted:  # exclusion: never of the key or the sort field
        fetch = {f: v for f, v in wanted.items() if f not in (key, field)}
    docs = catalog.find(level, flt, projection=fetch, sort=None if field == key and direction > 0 else
                        [(field, direction)], limit=limit + 1)
    more = len(docs) > limit
    docs = docs[:limit]
    position = None
    if more:
        last = docs[-1]
        position = Position(field, direction, last.get(field), last[key])
    for doc in docs:
        for f in added:
            if f != key:
                doc.pop(f, None)
    return docs, position
