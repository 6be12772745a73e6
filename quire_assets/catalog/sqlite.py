"""The embedded catalog: one SQLite file, one table of JSON documents per collection.

WAL mode and a busy timeout let several processes write different accessions at once. Filters
compile to SQL over JSON1 (see ``filters.py``); indexes are expression indexes on the same
``json_extract`` expressions the compiler emits for promoted fields.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

import orjson
import regex

from quire_assets.catalog.base import (
    COLLECTIONS,
    INDEXES,
    KEYS,
    SCALAR_FIELDS,
    Catalog,
    CatalogError,
    apply_projection,
    check_collection,
    checked_projection,
    tie_direction,
)
from quire_assets.catalog.filters import (
    FilterError,
    SqlFilter,
    json_path,
    regex_flags,
    regex_timeout_error,
    validate_filter,
)
from quire_assets.util import BATCH
from quire_assets.util.sqlite import connect, immediate


@lru_cache(maxsize=256)
def _compiled(pattern: str, options: str) -> regex.Pattern:
    # The `regex` engine (a superset of `re`'s syntax, same flags) because it takes a timeout:
    # Python's `re` cannot be stopped once a pattern backtracks catastrophically.
    return regex.compile(pattern, regex_flags(options))


def _dumps(doc: dict) -> str:
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _selected_fields(projection: dict) -> list[str] | None:
    """The fields of an inclusion projection of top-level fields only; None for any other."""
    fields = [k for k in projection if k != "_id"]
    if not fields or not all(projection[f] for f in fields) or any("." in f for f in fields):
        return None
    return fields


def _picked(row: Sequence[Any], fields: list[str]) -> dict:
    """A projected document from (json_extract, json_type) pairs; a missing field stays missing."""
    doc = {}
    for i, field in enumerate(fields):
        kind = row[2 * i + 1]
        if kind is None:
            continue
        value = row[2 * i]
        if kind in ("array", "object"):
            value = orjson.loads(value)
        elif kind in ("true", "false"):  # json_extract gives 1 and 0
            value = kind == "true"
        doc[field] = value
    return doc


class SqliteCatalog(Catalog):
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.uri = f"sqlite:///{self.path}"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.conn = connect(self.path)
        except (OSError, sqlite3.Error) as exc:
            raise CatalogError(f"cannot open the catalog {self.path}: {exc}") from exc
        self.conn.create_function("quire_regexp", 3, self._regexp, deterministic=True)
        self._regex_deadline = 0.0
        self._read_deadline = 0.0  # while a read runs under ``read_seconds``
        self.conn.set_progress_handler(self._past_deadline, 20_000)
        self._regex_timed_out = False
        self._depth = 0
        self._create_schema()

    def _create_schema(self) -> None:
        with self.transaction():
            for name in COLLECTIONS:
                self.conn.execute(f'CREATE TABLE IF NOT EXISTS "{name}" (k TEXT PRIMARY KEY, doc TEXT NOT NULL)')
                for field in INDEXES[name]:
                    expr = f"json_extract(doc, '{json_path(field.split('.'))}')"
                    # (value, key): a page of a filter on the field, in key order or the field's, is a
                    # walk along the index from the cursor, with no sort of every match (50 ms → 1 ms
                    # for a page of 100 of 50,000 series, measured). Catalogs of earlier versions had
                    # the value alone.
                    self.conn.execute(f'DROP INDEX IF EXISTS "ix_{name}_{field}"')
                    self.conn.execute(f'CREATE INDEX IF NOT EXISTS "ixk_{name}_{field}" ON "{name}" ({expr}, k)')
            # The write log the research view follows, and the catalog's own small documents.
            self.conn.execute("CREATE TABLE IF NOT EXISTS changes (seq INTEGER PRIMARY KEY AUTOINCREMENT, "
                              "collection TEXT NOT NULL, k TEXT NOT NULL)")
            self.conn.execute("CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, doc TEXT NOT NULL)")

    @contextmanager
    def transaction(self) -> Iterator[None]:
        if self._depth:  # nested calls join the outer transaction
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        with immediate(self.conn):
            self._depth = 1
            try:
                yield
            finally:
                self._depth = 0

    def _upsert(self, collection: str, docs: Sequence[dict]) -> None:
        key = KEYS[collection]
        rows = [(str(d[key]), _dumps({k: v for k, v in d.items() if k != "_id"})) for d in docs]
        with self.transaction():
            self.conn.executemany(
                f'INSERT INTO "{collection}" (k, doc) VALUES (?, ?) ON CONFLICT(k) DO UPDATE SET doc = excluded.doc',
                rows,
            )

    def _where(self, collection: str, flt: dict | None) -> tuple[str, list]:
        compiler = SqlFilter(scalar_fields=frozenset(SCALAR_FIELDS[collection]), key_field=KEYS[collection])
        where = compiler.compile(validate_filter(flt or {}))
        # The query about to run gets the regex budget (all its $regex evaluations together).
        self._regex_deadline, self._regex_timed_out = time.monotonic() + self.regex_seconds, False
        return where, compiler.params

    def _regexp(self, pattern: str, options: str, value: Any) -> bool:
        if not isinstance(value, str):
            return False
        try:
            return _compiled(pattern, options).search(value, timeout=max(0.0, self._regex_deadline - time.monotonic())) \
                is not None
        except TimeoutError:
            self._regex_timed_out = True
            raise

    def _past_deadline(self) -> int:
        # SQLite's progress handler: a nonzero answer interrupts the statement.
        return int(bool(self._read_deadline) and time.monotonic() > self._read_deadline)

    def _rows(self, sql: str, params: list) -> list[tuple]:
        """A read's rows; a $regex over its time budget, or a read over ``read_seconds``, is a
        FilterError (SQLite only says that a function raised, or that it was interrupted)."""
        self._read_deadline = time.monotonic() + self.read_seconds if self.read_seconds else 0.0
        try:
            return self.conn.execute(sql, params).fetchall()
        except sqlite3.OperationalError as exc:
            if self._regex_timed_out:
                raise regex_timeout_error(self.regex_seconds) from None
            if str(exc) == "interrupted" and self._read_deadline:
                raise FilterError(f"the query ran for more than {self.read_seconds:g} s: narrow it (an indexed "
                                  "field, fewer $regex or $in values)") from None
            if "too large" in str(exc) or "too many" in str(exc):  # SQLite's limits on one statement
                raise FilterError(f"the filter is too large for the embedded catalog ({exc}): split its $in or "
                                  "$nin lists, or narrow it") from None
            raise
        finally:
            self._read_deadline = 0.0

    def _delete(self, collection: str, flt: dict) -> int:
        where, params = self._where(collection, flt)
        with self.transaction():
            return self.conn.execute(f'DELETE FROM "{collection}" WHERE {where}', params).rowcount

    def _log_changes(self, collection: str, keys: Sequence[Any]) -> None:
        self.conn.executemany("INSERT INTO changes (collection, k) VALUES (?, ?)", [(collection, str(k)) for k in keys])

    def changes_after(self, seq: int, limit: int) -> list[tuple[int, str, Any]]:
        return self.conn.execute("SELECT seq, collection, k FROM changes WHERE seq > ? ORDER BY seq LIMIT ?",
                                 (seq, limit)).fetchall()

    def last_change(self) -> int:
        # AUTOINCREMENT's counter: it never goes back, even once the log is pruned.
        row = self.conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'changes'").fetchone()
        return row[0] if row else 0

    def prune_changes(self, upto: int) -> None:
        with self.transaction():
            self.conn.execute("DELETE FROM changes WHERE seq <= ?", (upto,))

    def get_meta(self, name: str) -> dict | None:
        row = self.conn.execute("SELECT doc FROM meta WHERE name = ?", (name,)).fetchone()
        return orjson.loads(row[0]) if row else None

    def set_meta(self, name: str, doc: dict) -> None:
        with self.transaction():
            self.conn.execute("INSERT INTO meta VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET doc = excluded.doc",
                              (name, _dumps(doc)))

    def find(self, collection, flt=None, projection=None, sort=None, limit=0, skip=0) -> list[dict]:
        check_collection(collection)
        where, params = self._where(collection, flt)
        projection = checked_projection(projection)  # names checked: safe in a JSON path
        fields = _selected_fields(projection)
        # A few top-level fields are picked out by SQLite: the documents are not parsed whole.
        columns = ", ".join(f"json_extract(doc, '{p}'), json_type(doc, '{p}')"
                            for p in (json_path([f]) for f in fields)) if fields else "doc"
        order = []
        for field, direction in sort or []:
            validate_filter({field: 1})  # sort fields obey the same naming rules as filter fields
            order.append(f"json_extract(doc, '{json_path(field.split('.'))}') {'DESC' if direction < 0 else 'ASC'}")
        order.append(f"k {tie_direction(sort)}")
        sql = f'SELECT {columns} FROM "{collection}" WHERE {where} ORDER BY {", ".join(order)}'
        if limit or skip:
            sql += " LIMIT ? OFFSET ?"
            params = [*params, limit if limit else -1, skip]
        rows = self._rows(sql, params)
        if fields:
            return [_picked(row, fields) for row in rows]
        # orjson: reading 100 documents of 2 KB takes half the time of json.loads (measured)
        return [apply_projection(orjson.loads(row[0]), projection) for row in rows]

    def _stored_text(self, collection: str, after: Any, limit: int) -> list[str]:
        # The key column in its own order: find's sort on the key's JSON path sorts every document
        # after ``after`` for each page, which made a walk of five million instances quadratic.
        check_collection(collection)
        rows = self._rows(f'SELECT doc FROM "{collection}" WHERE k > ? ORDER BY k LIMIT ?',
                          [str(after) if after is not None else "", limit])
        return [row[0] for row in rows]

    def documents(self, collection: str, after: Any = None, limit: int = BATCH) -> list[dict]:
        return [orjson.loads(text) for text in self._stored_text(collection, after, limit)]

    def documents_json(self, collection: str, after: Any = None, limit: int = BATCH) -> list[bytes]:
        return [text.encode() for text in self._stored_text(collection, after, limit)]

    def keys(self, collection: str, flt: dict | None = None) -> list:
        # The key column itself: no document is parsed.
        check_collection(collection)
        where, params = self._where(collection, flt)
        return [row[0] for row in self._rows(f'SELECT k FROM "{collection}" WHERE {where} ORDER BY k', params)]

    def value_counts(self, collection: str, field: str, flt: dict | None = None) -> list[tuple[Any, int]]:
        if field not in SCALAR_FIELDS[check_collection(collection)]:
            return super().value_counts(collection, field, flt)
        # A single-valued field: grouped by SQLite on its index, no document parsed in Python.
        where, params = self._where(collection, flt)
        expr = f"json_extract(doc, '{json_path(field.split('.'))}')"
        rows = self._rows(f'SELECT {expr}, count(*) FROM "{collection}" WHERE {where} AND {expr} IS NOT NULL '
                          "GROUP BY 1", params)
        return sorted(((v, n) for v, n in rows), key=lambda vn: (-vn[1], repr(vn[0])))

    def count(self, collection: str, flt: dict | None = None) -> int:
        check_collection(collection)
        where, params = self._where(collection, flt)
        return self._rows(f'SELECT count(*) FROM "{collection}" WHERE {where}', params)[0][0]

    def explain(self, collection: str, flt: dict) -> str:
        """SQLite's query plan for a filter (to see an index at work)."""
        where, params = self._where(collection, flt)
        rows = self.conn.execute(f'EXPLAIN QUERY PLAN SELECT doc FROM "{collection}" WHERE {where}', params)
        return "\n".join(str(r[-1]) for r in rows)

    def _sibling_path(self, name: str) -> Path:
        return self.path.with_name(f"{self.path.stem}.{name}{self.path.suffix}")

    def sibling(self, name: str) -> SqliteCatalog:
        """A catalog beside this one (the research view): a file of its own in the same folder."""
        return SqliteCatalog(self._sibling_path(name))

    def drop_sibling(self, name: str) -> None:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{self._sibling_path(name)}{suffix}").unlink(missing_ok=True)

    def siblings(self, prefix: str) -> list[str]:
        start = f"{self.path.stem}.{prefix}"
        return [p.name.removeprefix(f"{self.path.stem}.").removesuffix(self.path.suffix)
                for p in self.path.parent.glob(f"{start}*{self.path.suffix}")]

    def close(self) -> None:
        self.conn.close()
