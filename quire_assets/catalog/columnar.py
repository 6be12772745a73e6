"""A columnar copy of a catalog's levels (DuckDB, in memory), for the questions a document store
answers slowly at a million series: how many documents match a filter, and the counts of a field's
values under a filter (the dashboard's facets).

The document store stays the record and the answer to everything else. The copy answers only what
it can answer exactly as the store would (``Unsupported`` otherwise, and the caller asks the store):
a filter of ``$eq $ne $in $nin $gt $gte $lt $lte $and $or $nor`` on fields that are columns, with
Mongo's rules (a condition on an array matches any element; values of another type never match;
``$ne`` and ``$nin`` match a missing field). A field is a column when every document holds it as one
type (text, a whole number, a number, a boolean, or an array of one of these); a field that mixes
types stays out, and questions about it go to the store.

The copy is built whole in the background and then follows the catalog's write log (the keys each
write touched, ``changes_after``), reading again from the store the documents of those keys; it
answers only while it holds what the store held at the position its owner asks for (``position``),
so a stale copy is never read. Hand-written because DuckDB has no reader of SQLite JSON documents or
of MongoDB that keeps to these rules; DuckDB does the columnar work.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import orjson

from quire_assets.catalog.base import KEYS, SCALAR_FIELDS, Catalog
from quire_assets.catalog.filters import validate_filter

# The fields copied per level beyond the level's single-valued ones: those the dashboard facets,
# ranges and statistics ask most (a field left out is answered by the store).
EXTRA_FIELDS = {
    "patients": ("modalities",),
    "studies": ("modalities", "body_parts", "series_types", "quality_flags", "collection_ids"),
    "series": ("series_types", "quality_flags", "complete_volume", "pixel_spacing", "kvp", "metadata.KVP",
               "rows", "columns", "num_frames", "magnetic_field_strength", "spacing_between_slices"),
}
PAGE = 20_000
CHANGE_BATCH = 20_000

_SCALARS = {'"VARCHAR"': "VARCHAR", '"BIGINT"': "BIGINT", '"UBIGINT"': "BIGINT", '"DOUBLE"': "DOUBLE",
            '"BOOLEAN"': "BOOLEAN", '"NULL"': "VARCHAR"}
_KINDS = {"VARCHAR": (str,), "BIGINT": (int, float), "DOUBLE": (int, float), "BOOLEAN": (bool,)}


class Unsupported(Exception):
    """A question the copy does not answer (the document store does)."""


class Column:
    def __init__(self, name: str, element: str, is_list: bool, exact_values: bool):
        self.name, self.element, self.is_list = name, element, is_list
        # False for a column of numbers that mixes whole numbers and decimals: DuckDB holds them all as
        # decimals, so it filters on them exactly but would not give back the whole numbers as such.
        self.exact_values = exact_values
        self.sql = '"' + name + '"'

    def takes(self, value: Any) -> bool:
        """Whether ``value`` is of this column's type (a value of another type never matches)."""
        if isinstance(value, bool):
            return self.element == "BOOLEAN"
        return isinstance(value, _KINDS[self.element]) and not isinstance(value, bool)

    def cast(self, value: Any) -> str:
        kind = self.element if not isinstance(value, float) or self.element == "BOOLEAN" else "DOUBLE"
        return f"CAST(? AS {kind})"


def _is_operators(value: Any) -> bool:
    return isinstance(value, dict) and bool(value) and all(str(k).startswith("$") for k in value)


class ColumnarFilter:
    """Compiles a validated filter to a DuckDB WHERE clause that is never NULL (so NOT is exact)."""

    def __init__(self, columns: dict[str, Column]):
        self.columns = columns
        self.params: list[Any] = []

    def compile(self, flt: dict | None) -> str:
        return self._clauses(validate_filter(dict(flt or {})))

    def _clauses(self, flt: dict) -> str:
        parts = []
        for key, value in flt.items():
            if key in ("$and", "$or", "$nor"):
                joined = (" AND " if key == "$and" else " OR ").join(f"({self._clauses(c)})" for c in value)
                parts.append(joined or ("TRUE" if key == "$and" else "FALSE"))
                if key == "$nor":
                    parts[-1] = f"NOT ({parts[-1]})"
            else:
                parts.append(self._field(key, value))
        return " AND ".join(f"({p})" for p in parts) or "TRUE"

    def _field(self, key: str, value: Any) -> str:
        column = self.columns.get(key)
        if column is None:
            raise Unsupported(key)
        if not _is_operators(value):
            return self._eq(column, value)
        return " AND ".join(f"({self._op(column, op, operand)})" for op, operand in value.items())

    def _eq(self, column: Column, value: Any) -> str:
        if isinstance(value, list | dict) or (value is None and column.is_list):
            raise Unsupported("equality to an array, a document, or null in an array")
        if value is None:
            return f"{column.sql} IS NULL"
        if not column.takes(value):
            return "FALSE"
        self.params.append(value)
        if column.is_list:
            return f"coalesce(list_contains({column.sql}, {column.cast(value)}), FALSE)"
        return f"coalesce({column.sql} = {column.cast(value)}, FALSE)"

    def _op(self, column: Column, op: str, operand: Any) -> str:
        if op == "$eq":
            return self._eq(column, operand)
        if op == "$ne":
            return f"NOT ({self._eq(column, operand)})"
        if op in ("$in", "$nin"):
            clause = self._in(column, operand)
            return clause if op == "$in" else f"NOT ({clause})"
        if op in ("$gt", "$gte", "$lt", "$lte") and not column.is_list:
            if operand is None or isinstance(operand, bool | list | dict):
                raise Unsupported(f"{op} on {operand!r}")
            if not column.takes(operand) or column.element == "BOOLEAN":
                return "FALSE"
            self.params.append(operand)
            sign = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}[op]
            return f"coalesce({column.sql} {sign} {column.cast(operand)}, FALSE)"
        raise Unsupported(op)

    def _in(self, column: Column, values: Sequence[Any]) -> str:
        if any(isinstance(v, list | dict) for v in values) or (column.is_list and None in values):
            raise Unsupported("$in with an array, a document, or null for an array")
        taken = [v for v in values if v is not None and column.takes(v)]
        parts = [f"{column.sql} IS NULL"] if None in values else []
        if taken:
            numbers = column.element in ("BIGINT", "DOUBLE")
            kind = "DOUBLE" if numbers and any(isinstance(v, float) for v in taken) else column.element
            self.params.append(taken)
            if column.is_list:
                parts.append(f"coalesce(list_has_any({column.sql}, CAST(? AS {kind}[])), FALSE)")
            else:
                parts.append(f"coalesce(list_contains(CAST(? AS {kind}[]), {column.sql}), FALSE)")
        return " OR ".join(parts) or "FALSE"


def _structure_type(structure: str) -> tuple[str, bool] | None:
    """(element type, is a list) for a column's merged JSON structure; None for one DuckDB would
    have to mix (text and numbers, arrays and single values, documents)."""
    if structure in _SCALARS:
        return _SCALARS[structure], False
    if structure.startswith("[") and structure.endswith("]") and structure[1:-1] in _SCALARS:
        return _SCALARS[structure[1:-1]], True
    return None


class ColumnarCopy:
    """The copy of one catalog (a research view), in memory; thread-safe."""

    def __init__(self, levels: Iterable[str] = ("patients", "studies", "series")):
        import duckdb  # only where a copy is made: the Dagster side never loads it

        self._duckdb = duckdb
        self.levels = tuple(levels)
        self.lock = threading.Lock()  # one writer: a build or a catch-up
        self.db: Any = None
        self.columns: dict[str, dict[str, Column]] = {}
        self.position = -1  # the catalog's write log position the copy holds; -1: none yet
        self.building = False
        self.local = threading.local()

    # ---- reading ----------------------------------------------------------------------------

    def _cursor(self) -> Any:
        db = self.db
        if getattr(self.local, "db", None) is not db:
            self.local.db, self.local.cursor = db, db.cursor()
        return self.local.cursor

    def _where(self, level: str, flt: dict | None) -> tuple[str, list[Any]]:
        if level not in self.columns:
            raise Unsupported(level)
        compiler = ColumnarFilter(self.columns[level])
        return compiler.compile(flt), compiler.params

    def count(self, level: str, flt: dict | None = None) -> int:
        where, params = self._where(level, flt)
        return self._cursor().execute(f'SELECT count(*) FROM "{level}" WHERE {where}', params).fetchone()[0]

    def value_counts(self, level: str, field: str, flt: dict | None = None) -> list[tuple[Any, int]]:
        """As ``Catalog.value_counts``: each value with its count of documents, most frequent first."""
        where, params = self._where(level, flt)
        column = self.columns[level].get(field)
        if column is None or not column.exact_values:
            raise Unsupported(field)
        if column.is_list:
            sql = (f'SELECT v, count(*) FROM (SELECT unnest(list_distinct({column.sql})) AS v FROM "{level}" '
                   f"WHERE {where}) WHERE v IS NOT NULL GROUP BY v")
        else:
            sql = f'SELECT {column.sql}, count(*) FROM "{level}" WHERE ({where}) AND {column.sql} IS NOT NULL GROUP BY 1'
        rows = self._cursor().execute(sql, params).fetchall()
        return sorted(rows, key=lambda vn: (-vn[1], repr(vn[0])))

    def ordered_keys(self, level: str, flt: dict | None, sort: Sequence[tuple[str, int]] | None, limit: int,
                     skip: int = 0) -> list[Any]:
        """The keys of a page of ``find(level, flt, sort=sort, limit=limit, skip=skip)``, in its order:
        the sort field's nulls first, ties by the key in the sort's direction (``catalog.pages``)."""
        where, params = self._where(level, flt)
        key = KEYS[level]
        columns = self.columns[level]
        if len(sort or []) > 1 or not limit:
            raise Unsupported("a sort on more than one field, or no limit")
        field, direction = (sort or [(key, 1)])[0]
        column = columns.get(field)
        if column is None or column.is_list:
            raise Unsupported(f"a sort on {field}")
        way = "ASC NULLS FIRST" if direction >= 0 else "DESC NULLS LAST"
        sql = (f'SELECT "{key}" FROM "{level}" WHERE {where} ORDER BY {column.sql} {way}, "{key}" '
               f'{"ASC" if direction >= 0 else "DESC"} LIMIT ? OFFSET ?')
        return [row[0] for row in self._cursor().execute(sql, [*params, limit, skip]).fetchall()]

    # ---- writing ----------------------------------------------------------------------------

    def build(self, catalog: Catalog, position: int) -> None:
        """Copy ``catalog`` whole (it holds what the write log held at ``position``) into a new
        database, then switch to it."""
        db = self._duckdb.connect()
        columns: dict[str, dict[str, Column]] = {}
        with tempfile.TemporaryDirectory(prefix="quire-columnar-") as folder:
            for level in self.levels:
                fields = _fields(level)
                db.execute(f'CREATE TABLE "raw" ({_raw_columns(fields)})')
                key, last = KEYS[level], None
                while docs := catalog.documents_json(level, last, PAGE):
                    _load_raw(db, Path(folder), fields, docs)
                    last = orjson.loads(docs[-1])[key]
                columns[level] = _typed_table(db, level, fields)
                db.execute('DROP TABLE "raw"')
        with self.lock:
            self.db, self.columns, self.position = db, columns, position

    def catch_up(self, catalog: Catalog, position: int, changes: Sequence[tuple[int, str, Any]],
                 key_in_copy: Callable[[str, Any], Any]) -> bool:
        """Copy again the documents of the keys these logged writes name (the catalog's keys; the
        copy's own for each, by ``key_in_copy``). False when a document no longer fits its column's
        type: the copy must then be built again."""
        by_level: dict[str, set] = {}
        for _, level, key in changes:
            if level in self.columns:
                by_level.setdefault(level, set()).add(key_in_copy(level, key))
        with self.lock:
            db = self.db
            cursor = db.cursor()
            cursor.execute("BEGIN TRANSACTION")
            try:
                with tempfile.TemporaryDirectory(prefix="quire-columnar-") as folder:
                    for level, keys in by_level.items():
                        key, fields, ordered = KEYS[level], _fields(level), sorted(keys, key=repr)
                        for start in range(0, len(ordered), PAGE):
                            chunk = ordered[start:start + PAGE]
                            cursor.execute(f'DELETE FROM "{level}" WHERE list_contains(?, "{key}")', [chunk])
                            docs = [orjson.dumps(d) for d in catalog.find(level, {key: {"$in": chunk}})]
                            if docs:
                                cursor.execute(f'CREATE OR REPLACE TEMP TABLE "raw" ({_raw_columns(fields)})')
                                _load_raw(cursor, Path(folder), fields, docs)
                                if not _append(cursor, level, self.columns[level]):
                                    cursor.execute("ROLLBACK")
                                    return False
                cursor.execute("COMMIT")
            except Exception:
                cursor.execute("ROLLBACK")
                raise
            self.position = position
        return True


def _fields(level: str) -> list[str]:
    return list(dict.fromkeys([KEYS[level], *SCALAR_FIELDS[level], *EXTRA_FIELDS.get(level, ())]))


def _raw_columns(fields: list[str]) -> str:
    """Every field as JSON text first; a dotted field (``metadata.KVP``) as its parent's member."""
    return ", ".join(f'"{f}" JSON' for f in fields)


def _read_json_columns(fields: list[str]) -> str:
    tops: dict[str, list[str]] = {}
    for field in fields:
        top, _, rest = field.partition(".")
        tops.setdefault(top, [])
        if rest:
            tops[top].append(rest)
    kinds = {top: "STRUCT(" + ", ".join(f'"{m}" JSON' for m in members) + ")" if members else "JSON"
             for top, members in tops.items()}
    return "{" + ", ".join(f"'{top}': '{kind}'" for top, kind in kinds.items()) + "}"


def _selected(fields: list[str]) -> str:
    return ", ".join(f'"{f.split(".")[0]}"' + "".join(f'."{p}"' for p in f.split(".")[1:]) for f in fields)


def _load_raw(db: Any, folder: Path, fields: list[str], docs: list[bytes]) -> None:
    """Documents (JSON text) into the ``raw`` table through DuckDB's JSON reader, which reads files."""
    path = folder / f"{os.getpid()}-{threading.get_ident()}.json"
    path.write_bytes(b"\n".join(docs))
    db.execute(f'INSERT INTO "raw" SELECT {_selected(fields)} FROM read_json(?, format = \'newline_delimited\', '
               f"columns = {_read_json_columns(fields)})", [str(path)])


def _structures(db: Any, fields: list[str]) -> tuple:
    """Each field's JSON structure merged over ``raw``'s rows (``"VARCHAR"``, ``["DOUBLE"]``, ``"JSON"``
    for one that mixes types; None for no value)."""
    return db.execute("SELECT " + ", ".join(f'CAST(json_group_structure("{f}") AS VARCHAR)' for f in fields)
                      + ' FROM "raw"').fetchone()


def _typed_table(db: Any, level: str, fields: list[str]) -> dict[str, Column]:
    """The level's table of typed columns from ``raw``; the fields whose values mix types left out."""
    structures = _structures(db, fields)
    columns: dict[str, Column] = {}
    for field, structure in zip(fields, structures, strict=True):
        typed = _structure_type(structure or '"NULL"')
        if typed is None:
            continue
        element, is_list = typed
        column = columns[field] = Column(field, element, is_list, True)
        column.exact_values = element != "DOUBLE" or not _holds_whole_numbers(db, column)
    db.execute(f'CREATE TABLE "{level}" AS SELECT {_casts(columns)} FROM "raw"')
    return columns


def _holds_whole_numbers(db: Any, column: Column) -> bool:
    """Whether ``raw`` holds a whole number (JSON ``5``, not ``5.0``) in this column of numbers."""
    types = f"json_type({column.sql}, '$[*]')" if column.is_list else f"[json_type({column.sql})]"
    return bool(db.execute(f"""SELECT count(*) FROM "raw" WHERE list_has_any({types}, ['BIGINT', 'UBIGINT'])"""
                           ).fetchone()[0])


def _casts(columns: dict[str, Column]) -> str:
    """Each column from its JSON text (a cast of JSON to VARCHAR would keep the quotes)."""
    return ", ".join((f"json_extract_string({c.sql}, '$')" if c.element == "VARCHAR" and not c.is_list else
                      f'CAST({c.sql} AS {c.element}{"[]" if c.is_list else ""})') + f" AS {c.sql}"
                     for c in columns.values())


def _append(db: Any, level: str, columns: dict[str, Column]) -> bool:
    """Add ``raw``'s rows to the level's table; False when one does not fit its column's type."""
    names = list(columns)
    structures = _structures(db, names)
    for name, structure in zip(names, structures, strict=True):
        column, typed = columns[name], _structure_type(structure or '"NULL"')
        if structure in (None, '"NULL"') or (structure == '["NULL"]' and column.is_list):
            continue  # nothing but nulls (or empty arrays)
        if typed is None or typed[1] != column.is_list:
            return False
        if typed[0] != column.element:
            if not (column.element == "DOUBLE" and typed[0] == "BIGINT"):
                return False
            column.exact_values = False
        elif column.element == "DOUBLE" and column.exact_values and _holds_whole_numbers(db, column):
            column.exact_values = False
    db.execute(f'INSERT INTO "{level}" SELECT {_casts(columns)} FROM "raw"')
    return True


class FollowedCopy:
    """A ``ColumnarCopy`` of a research view kept up by a thread of its own: built whole at first,
    then by the catalog's write log. It answers only at the position its owner has synced the view
    to (``answers_at``), so no answer ever comes from a copy behind the store.

    ``catalog`` and ``view`` give the calling thread's connections; ``key_in_copy`` maps a catalog key
    to the view's (its pseudonym where the policy hashes it)."""

    def __init__(self, catalog: Callable[[], Catalog], view: Callable[[], Catalog], levels: Iterable[str],
                 key_in_copy: Callable[[str, Any], Any]):
        self.catalog, self.view, self.key_in_copy = catalog, view, key_in_copy
        self.copy = ColumnarCopy(levels)
        self.target = -1  # the view's position in the catalog's log, as its owner last synced it
        self.error = ""
        self.wake = threading.Event()
        self.stopping = False
        self.thread = threading.Thread(target=self._run, name="quire-columnar", daemon=True)

    @property
    def ready(self) -> bool:
        return self.copy.position >= 0 and self.copy.position == self.target

    def follow(self, position: int) -> None:
        """The view now holds what the catalog's log held at ``position``: bring the copy there."""
        self.target = position
        if self.copy.position != position:
            if not self.thread.is_alive() and not self.stopping:
                self.thread.start()
            self.wake.set()

    def count(self, level: str, flt: dict | None = None) -> int:
        self._check()
        return self.copy.count(level, flt)

    def value_counts(self, level: str, field: str, flt: dict | None = None) -> list[tuple[Any, int]]:
        self._check()
        return self.copy.value_counts(level, field, flt)

    def ordered_keys(self, level: str, flt: dict | None, sort: Sequence[tuple[str, int]] | None, limit: int,
                     skip: int = 0) -> list[Any]:
        self._check()
        return self.copy.ordered_keys(level, flt, sort, limit, skip)

    def _check(self) -> None:
        if not self.ready:
            raise Unsupported("the copy is not at the view's position yet")

    def _run(self) -> None:
        while not self.stopping:
            self.wake.wait()
            self.wake.clear()
            while not self.stopping and (target := self.target) != self.copy.position:
                try:
                    self._step(target)
                except Exception as exc:  # noqa: BLE001 - the store answers meanwhile; the next write retries
                    self.error = f"{type(exc).__name__}: {exc}"[:500]
                    break

    def _step(self, target: int) -> None:
        """One step towards ``target``: the next batch of logged writes, or the whole copy again when
        it was never built, when the log was pruned past it, or when a document no longer fits."""
        position = self.copy.position
        changes = self.catalog().changes_after(position, CHANGE_BATCH) if position >= 0 else []
        changes = [c for c in changes if c[0] <= target]
        if (not changes or changes[0][0] != position + 1
                or not self.copy.catch_up(self.view(), changes[-1][0], changes, self.key_in_copy)):
            self.copy.build(self.view(), target)
        self.error = ""

    def close(self) -> None:
        self.stopping = True
        self.wake.set()
        if self.thread.is_alive():
            self.thread.join(timeout=30)
