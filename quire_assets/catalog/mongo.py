"""The MongoDB catalog (pymongo). Documents are stored with ``_id`` = their natural key."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pymongo import ASCENDING, DESCENDING, ReplaceOne
from pymongo.errors import BulkWriteError, ConfigurationError, ExecutionTimeout, PyMongoError
from pymongo.uri_parser import parse_uri

from quire_assets.catalog.base import (
    COLLECTIONS,
    INDEXES,
    KEYS,
    SCALAR_FIELDS,
    Catalog,
    CatalogError,
    check_collection,
    checked_projection,
    tie_direction,
)
from quire_assets.catalog.filters import has_regex, regex_seconds, regex_timeout_error, validate_filter

DEFAULT_DATABASE = "quire"


class MongoCatalog(Catalog):
    """``client`` is a pymongo ``MongoClient`` (or a mongomock stand-in in tests)."""

    def __init__(self, client: Any, database: str = DEFAULT_DATABASE, uri: str = "mongodb://"):
        self.client = client
        self.db = client[database]
        self.uri = uri
        for name in COLLECTIONS:
            collection = self.db[name]
            for field in INDEXES[name]:
                collection.create_index([(field, ASCENDING)], name=f"ix_{field}")
            # ``_id`` is already unique; the natural key gets its own unique index for lookups by name.
            collection.create_index([(KEYS[name], ASCENDING)], name=f"ux_{KEYS[name]}", unique=True)

    @classmethod
    def from_uri(cls, uri: str) -> MongoCatalog:
        from pymongo import MongoClient

        try:
            database = parse_uri(uri).get("database") or DEFAULT_DATABASE
            client = MongoClient(uri, serverSelectionTimeoutMS=10_000, appname="quire")
        except (ConfigurationError, PyMongoError, ValueError) as exc:
            raise CatalogError(f"cannot open the MongoDB catalog: {exc}") from exc
        return cls(client, database, uri=_redact(uri))

    def _upsert(self, collection: str, docs: Sequence[dict]) -> None:
        key = KEYS[collection]
        requests = [ReplaceOne({"_id": d[key]}, {**d, "_id": d[key]}, upsert=True) for d in docs]
        try:
            self.db[collection].bulk_write(requests, ordered=False)
        except BulkWriteError as exc:
            raise CatalogError(f"writing {collection}: {exc.details.get('writeErrors', [])[:3]}") from exc

    def delete(self, collection: str, flt: dict) -> int:
        return self.db[check_collection(collection)].delete_many(validate_filter(flt)).deleted_count

    def find(self, collection, flt=None, projection=None, sort=None, limit=0, skip=0) -> list[dict]:
        check_collection(collection)
        projection = {**checked_projection(projection), "_id": 0}
        flt = validate_filter(flt or {})
        cursor = self.db[collection].find(flt, projection)
        if has_regex(flt):  # the server stops a pattern that backtracks (maxTimeMS)
            cursor = cursor.max_time_ms(int(regex_seconds() * 1000))
        order = [(f, DESCENDING if d < 0 else ASCENDING) for f, d in sort or []]
        cursor = cursor.sort([*order, ("_id", DESCENDING if tie_direction(sort) == "DESC" else ASCENDING)])
        if skip:
            cursor = cursor.skip(skip)
        if limit:
            cursor = cursor.limit(limit)
        try:
            return list(cursor)
        except ExecutionTimeout:
            raise regex_timeout_error() from None

    def value_counts(self, collection: str, field: str, flt: dict | None = None) -> list[tuple[Any, int]]:
        if field not in SCALAR_FIELDS[check_collection(collection)]:
            return super().value_counts(collection, field, flt)
        # A single-valued field: grouped by the server, not by reading every document here.
        pipeline = [{"$match": {"$and": [validate_filter(flt or {}), {field: {"$ne": None}}]}},
                    {"$group": {"_id": f"${field}", "n": {"$sum": 1}}}]
        rows = [(d["_id"], d["n"]) for d in self.db[collection].aggregate(pipeline)]
        return sorted(rows, key=lambda vn: (-vn[1], repr(vn[0])))

    def count(self, collection: str, flt: dict | None = None) -> int:
        flt = validate_filter(flt or {})
        bound = {"maxTimeMS": int(regex_seconds() * 1000)} if has_regex(flt) else {}
        try:
            return self.db[check_collection(collection)].count_documents(flt, **bound)
        except ExecutionTimeout:
            raise regex_timeout_error() from None

    def close(self) -> None:
        self.client.close()


def _redact(uri: str) -> str:
    """Never show a password: ``mongodb://user:***@host``."""
    scheme, _, rest = uri.partition("://")
    if "@" in rest:
        creds, _, host = rest.rpartition("@")
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}"
    return uri
