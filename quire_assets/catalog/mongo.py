"""The MongoDB catalog (pymongo).

Patients, researchers, collections and jobs are stored with ``_id`` = their natural key. The
documents of accession partitions (instances, series, studies, errors) are versioned, so that a
reader sees a partition either as it was or as it is after a ``replace_partitions``, never half
replaced, on any server:

1. the writer takes the catalog's write lease (one writer at a time, as SQLite's write lock:
   writes of one partition group take a second; readers never wait);
2. in one single-document update of the write state (``catalog_locks``, ``_id: "versions"``) it
   numbers its write ``v`` and lists it as ``writing``: readers hide ``_pv == v`` and every
   version above the last one they saw numbered;
3. it inserts the new documents with ``_pv = v`` (``_id`` = ``"{v}/{key}"``) and marks what they
   replace (the partitions' older documents and older documents of the same keys) with
   ``_superseded_by: [v]``;
4. it switches: one update of the write state moves v from ``writing`` to ``switched``, and
   readers who start after it hide what is marked ``_superseded_by`` v instead;
5. what v superseded is deleted by a writer once ``GRACE_SECONDS`` have passed since the switch,
   so a reader that started before the switch still finds the old documents it was shown.

A reader takes the write state (one document, so one consistent view) and filters with it; a
read that took longer than the grace period while writes went on is asked again. On a replica
set or sharded cluster, steps 2 to 4 run in one transaction as well. A writer killed midway leaves
its version listed as ``writing``: the next writer, once the lease has run out, rolls it back.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import ASCENDING, DESCENDING, InsertOne, ReplaceOne, UpdateMany
from pymongo.errors import (
    BulkWriteError,
    ConfigurationError,
    DuplicateKeyError,
    ExecutionTimeout,
    OperationFailure,
    PyMongoError,
)
from pymongo.uri_parser import parse_uri

from quire_assets.catalog.base import (
    COLLECTIONS,
    INDEXES,
    KEYS,
    LEVELS,
    SCALAR_FIELDS,
    Catalog,
    CatalogError,
    check_collection,
    checked_projection,
    chunks,
    partition_filters,
    tie_direction,
)
from quire_assets.catalog.filters import has_regex, regex_timeout_error, validate_filter

DEFAULT_DATABASE = "quire"
VERSIONED = ("instances", "series", "studies", "errors")
INTERNAL_FIELDS = ("_pv", "_superseded_by")
LOCKS = "catalog_locks"  # the lease (``_id: "partitions"``) and the write state (``_id: "versions"``)
CHANGES = "catalog_changes"  # the write log the research view follows (``_id``: its sequence number)
META = "catalog_meta"
LEASE = timedelta(seconds=120)  # a writer renews it with every batch; a dead one's runs out
LOCK_WAIT_SECONDS = 600
GRACE_SECONDS = 60.0  # how long superseded documents stay for the readers that began before a switch
READ_ATTEMPTS = 3


class MongoCatalog(Catalog):
    """``client`` is a pymongo ``MongoClient`` (or a mongomock stand-in in tests)."""

    def __init__(self, client: Any, database: str = DEFAULT_DATABASE, uri: str = "mongodb://",
                 owns_client: bool = True):
        self.client = client
        self.owns_client = owns_client
        self.db = client[database]
        self.uri = uri
        self._writer = threading.local()  # a shared catalog's lease and session are its thread's
        for name in COLLECTIONS:
            collection = self.db[name]
            for field in INDEXES[name]:
                collection.create_index([(field, ASCENDING)], name=f"ix_{field}")
            if name in VERSIONED:
                # Two versions of a document live side by side while a partition is replaced.
                if f"ux_{KEYS[name]}" in collection.index_information():  # a catalog of an earlier version
                    collection.drop_index(f"ux_{KEYS[name]}")
                collection.create_index([(KEYS[name], ASCENDING), ("_pv", ASCENDING)], name=f"ux_{KEYS[name]}_pv",
                                        unique=True)
                collection.create_index([("_superseded_by", ASCENDING)], name="ix_superseded_by", sparse=True)
            else:
                # ``_id`` is already unique; the natural key gets its own unique index for lookups by name.
                collection.create_index([(KEYS[name], ASCENDING)], name=f"ux_{KEYS[name]}", unique=True)
        self._transactions = _supports_transactions(client)

    @property
    def _session(self) -> Any:
        return getattr(self._writer, "session", None)

    @property
    def _held(self) -> int:
        return getattr(self._writer, "held", 0)

    @classmethod
    def from_uri(cls, uri: str) -> MongoCatalog:
        from pymongo import MongoClient

        try:
            parsed = parse_uri(uri)
            database = parsed.get("database") or DEFAULT_DATABASE
            # Ten seconds to find the server, unless the URI says otherwise.
            waits = {} if "serverSelectionTimeoutMS" in parsed["options"] else {"serverSelectionTimeoutMS": 10_000}
            client = MongoClient(uri, appname="quire", **waits)
        except (ConfigurationError, PyMongoError, ValueError) as exc:
            raise CatalogError(f"cannot open the MongoDB catalog: {exc}") from exc
        try:
            return cls(client, database, uri=_redact(uri))
        except PyMongoError as exc:  # the first call (the indexes) finds no server, or is refused
            client.close()
            reason = str(exc).split(", Timeout:")[0].split(", full error:")[0]
            raise CatalogError(f"cannot reach the MongoDB catalog at {_redact(uri)}: {reason[:300]}") from None

    # ---- reading: what a reader may see -------------------------------------------------------

    def _state(self) -> dict:
        """The write state: the last version numbered, versions ``writing``, versions ``switched``."""
        return self.db[LOCKS].find_one({"_id": "versions"}, session=self._session) or {}

    def _visible(self, collection: str, flt: dict, state: dict) -> dict:
        if collection not in VERSIONED or not state:
            return flt
        clauses = [{"_pv": {"$not": {"$gt": state.get("version", 0)}}}]  # writes numbered after the state
        if state.get("writing"):
            clauses.append({"_pv": {"$nin": state["writing"]}})
        if state.get("switched"):
            clauses.append({"_superseded_by": {"$nin": [w["v"] for w in state["switched"]]}})
        return {"$and": [flt, *clauses]}

    def _read(self, collection: str, query: Any) -> Any:
        """``query(visible)`` against one write state. A read longer than the grace period may have
        lost documents a writer deleted meanwhile: unless nothing was written, it is asked again."""
        if collection not in VERSIONED:
            return query(lambda flt: flt)
        for _ in range(READ_ATTEMPTS):
            start, state = time.monotonic(), self._state()
            answer = query(lambda flt, s=state: self._visible(collection, flt, s))
            if time.monotonic() - start < GRACE_SECONDS or self._state() == state:
                return answer
        raise CatalogError(f"reading {collection} took longer than {GRACE_SECONDS:.0f} s while the catalog was "
                           "being written, three times: ask again once the writes are done")

    def find(self, collection, flt=None, projection=None, sort=None, limit=0, skip=0) -> list[dict]:
        check_collection(collection)
        projection = {**checked_projection(projection), "_id": 0}
        if collection in VERSIONED and not any(v for k, v in projection.items() if k != "_id"):
            projection.update(dict.fromkeys(INTERNAL_FIELDS, 0))
        flt = validate_filter(flt or {})
        order = [(f, DESCENDING if d < 0 else ASCENDING) for f, d in sort or []]
        # The natural key breaks ties (``_id`` is the version too, for partition documents).
        order.append((KEYS[collection], DESCENDING if tie_direction(sort) == "DESC" else ASCENDING))

        def query(visible) -> list[dict]:
            cursor = self.db[collection].find(visible(flt), projection, session=self._session)
            if limit_ms := self._time_limit_ms(flt):  # the server stops a pattern that backtracks
                cursor = cursor.max_time_ms(limit_ms)
            cursor = cursor.sort(order)
            if skip:
                cursor = cursor.skip(skip)
            if limit:
                cursor = cursor.limit(limit)
            return list(cursor)

        try:
            return self._read(collection, query)
        except ExecutionTimeout:
            raise regex_timeout_error(self.regex_seconds) from None

    def _time_limit_ms(self, flt: dict) -> int | None:
        """maxTimeMS for a read: the regex budget where it has a $regex, ``read_seconds`` where set."""
        limits = [s for s in (self.regex_seconds if has_regex(flt) else None, self.read_seconds) if s]
        return int(min(limits) * 1000) if limits else None

    def value_counts(self, collection: str, field: str, flt: dict | None = None) -> list[tuple[Any, int]]:
        if field not in SCALAR_FIELDS[check_collection(collection)]:
            return super().value_counts(collection, field, flt)
        # A single-valued field: grouped by the server, not by reading every document here.
        flt = validate_filter(flt or {})

        def query(visible) -> list[tuple[Any, int]]:
            pipeline = [{"$match": {"$and": [visible(flt), {field: {"$ne": None}}]}},
                        {"$group": {"_id": f"${field}", "n": {"$sum": 1}}}]
            bound = {"maxTimeMS": limit_ms} if (limit_ms := self._time_limit_ms(flt)) else {}
            return [(d["_id"], d["n"]) for d in self.db[collection].aggregate(pipeline, session=self._session, **bound)]

        return sorted(self._read(collection, query), key=lambda vn: (-vn[1], repr(vn[0])))

    def count(self, collection: str, flt: dict | None = None) -> int:
        flt = validate_filter(flt or {})
        bound = {"maxTimeMS": limit_ms} if (limit_ms := self._time_limit_ms(flt)) else {}
        collection = check_collection(collection)
        try:
            return self._read(collection, lambda visible: self.db[collection].count_documents(
                visible(flt), session=self._session, **bound))
        except ExecutionTimeout:
            raise regex_timeout_error(self.regex_seconds) from None

    # ---- writing ------------------------------------------------------------------------------

    @contextmanager
    def _lease(self) -> Iterator[None]:
        """The catalog's write lease (re-entrant): one writer of partition documents at a time."""
        if self._held:
            self._writer.held += 1
            try:
                yield
            finally:
                self._writer.held -= 1
            return
        holder = uuid.uuid4().hex
        locks = self.db[LOCKS]
        deadline = time.monotonic() + LOCK_WAIT_SECONDS
        while True:
            now = datetime.now(UTC)
            try:
                locks.find_one_and_update(
                    {"_id": "partitions", "$or": [{"holder": None}, {"expires": {"$lt": now}}]},
                    {"$set": {"holder": holder, "expires": now + LEASE}}, upsert=True)
                break
            except DuplicateKeyError:  # held by a live writer
                if time.monotonic() > deadline:
                    raise CatalogError("another process has been writing the catalog for "
                                       f"{LOCK_WAIT_SECONDS} s; try again later") from None
                time.sleep(0.05)
        self._writer.holder, self._writer.held = holder, 1
        try:
            self._collect()
            yield
        finally:
            self._writer.held, self._writer.holder = 0, None
            locks.update_one({"_id": "partitions", "holder": holder}, {"$set": {"holder": None}})

    def _renew(self) -> None:
        """Extend the lease; a writer that lost it (it stalled past the lease) must stop."""
        renewed = self.db[LOCKS].update_one({"_id": "partitions", "holder": self._writer.holder},
                                            {"$set": {"expires": datetime.now(UTC) + LEASE}})
        if not renewed.matched_count:
            raise CatalogError("this process lost the catalog's write lease (it stalled for "
                               f"{int(LEASE.total_seconds())} s); run it again")

    def _collect(self) -> None:
        """Roll back the versions of writers that died (only the lease holder writes, so every
        version still ``writing`` is a dead writer's), and delete what switched versions
        superseded once the grace period has passed."""
        state = self._state()
        for v in state.get("writing", []):
            for collection in VERSIONED:
                self.db[collection].delete_many({"_pv": v})
                self.db[collection].update_many({"_superseded_by": v}, {"$pull": {"_superseded_by": v}})
            self.db[LOCKS].update_one({"_id": "versions"}, {"$pull": {"writing": v}})
        due = datetime.now(UTC) - timedelta(seconds=GRACE_SECONDS)
        for write in state.get("switched", []):
            if _aware(write["at"]) <= due:
                for collection in VERSIONED:
                    self.db[collection].delete_many({"_superseded_by": write["v"]})
                self.db[LOCKS].update_one({"_id": "versions"}, {"$pull": {"switched": {"v": write["v"]}}})

    def _begin_version(self) -> int:
        """Number this write and list it as ``writing``, in one update (step 2)."""
        version = self._state().get("version", 0) + 1  # only the lease holder numbers versions
        self.db[LOCKS].update_one({"_id": "versions"}, {"$set": {"version": version}, "$push": {"writing": version}},
                                  upsert=True, session=self._session)
        return version

    def _upsert(self, collection: str, docs: Sequence[dict]) -> None:
        key = KEYS[collection]
        if collection not in VERSIONED:
            requests = [ReplaceOne({"_id": d[key]}, {**d, "_id": d[key]}, upsert=True) for d in docs]
            self._bulk(collection, requests)
            return
        # A document edited in place (a collection tag, a recount) keeps its version.
        with self._lease():
            current = {d[key]: d for d in self.db[collection].find(
                self._visible(collection, {key: {"$in": [d[key] for d in docs]}}, self._state()),
                {key: 1, "_pv": 1, "_superseded_by": 1})}
            requests = []
            for doc in docs:
                old = current.get(doc[key])
                kept = {f: old[f] for f in ("_id", *INTERNAL_FIELDS) if old and f in old}
                new_id = kept.get("_id", f"0/{doc[key]}")
                requests.append(ReplaceOne({"_id": new_id}, {**doc, "_pv": 0, **kept, "_id": new_id}, upsert=True))
            self._bulk(collection, requests)

    def _bulk(self, collection: str, requests: list) -> None:
        try:
            self.db[collection].bulk_write(requests, ordered=False, session=self._session)
        except BulkWriteError as exc:
            raise CatalogError(f"writing {collection}: {exc.details.get('writeErrors', [])[:3]}") from exc

    def _delete(self, collection: str, flt: dict) -> int:
        return self.db[check_collection(collection)].delete_many(validate_filter(flt),
                                                                 session=self._session).deleted_count

    def _log_changes(self, collection: str, keys: Sequence[Any]) -> None:
        keys = list(keys)
        if not keys:
            return
        # Writers of these levels hold the lease, so sequence numbers are taken in write order.
        last = self.db[LOCKS].find_one_and_update({"_id": "changes"}, {"$inc": {"seq": len(keys)}}, upsert=True,
                                                  return_document=True, session=self._session)["seq"]
        first = last - len(keys) + 1
        self.db[CHANGES].insert_many([{"_id": first + i, "collection": collection, "k": k} for i, k in enumerate(keys)],
                                     session=self._session)

    def changes_after(self, seq: int, limit: int) -> list[tuple[int, str, Any]]:
        return [(d["_id"], d["collection"], d["k"]) for d in
                self.db[CHANGES].find({"_id": {"$gt": seq}}).sort("_id", ASCENDING).limit(limit)]

    def last_change(self) -> int:
        counter = self.db[LOCKS].find_one({"_id": "changes"})  # it never goes back, even once the log is pruned
        return counter["seq"] if counter else 0

    def prune_changes(self, upto: int) -> None:
        self.db[CHANGES].delete_many({"_id": {"$lte": upto}})

    def get_meta(self, name: str) -> dict | None:
        found = self.db[META].find_one({"_id": name})
        return found["doc"] if found else None

    def set_meta(self, name: str, doc: dict) -> None:
        self.db[META].replace_one({"_id": name}, {"_id": name, "doc": doc}, upsert=True)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """The write lease: a replace (and a recount) reads and writes with no other writer between."""
        with self._lease():
            yield

    def _replace_documents(self, partition_keys: Sequence[str], new: dict[str, Sequence[dict]],
                           source: str | None) -> int:
        """The versioned write (steps 2 to 4 of the module's docstring), then what is due collected."""
        filters = partition_filters(partition_keys, source)
        removed, touched = self._in_transaction(lambda: self._write_version(new, filters))
        if self.logs_changes:  # after the switch: a view that reads the log then finds the new documents
            for collection, keys in touched.items():
                self._log_changes(collection, sorted(keys))
        self._collect()
        return removed

    def _in_transaction(self, write: Any) -> Any:
        """``write()`` in one transaction where the server has them (replica set, sharded
        cluster); elsewhere the versioned write alone keeps readers from a mix."""
        if not self._transactions:
            return write()
        with self.client.start_session() as session:
            self._writer.session = session
            try:
                return session.with_transaction(lambda _: write())
            finally:
                self._writer.session = None

    def _write_version(self, new: dict[str, Sequence[dict]], partitions: list[dict]) -> tuple[int, dict[str, set]]:
        """Steps 2 to 4 of the module's docstring; returns how many documents the write removes,
        and the keys it wrote or removed per collection."""
        v = self._begin_version()
        older = {"_pv": {"$not": {"$gte": v}}}  # documents of catalogs before versions have none
        superseded = 0
        touched: dict[str, set] = {}
        for collection, docs in new.items():
            key = KEYS[collection]
            for batch in chunks(list(docs)):
                self._renew()
                self._bulk(collection, [InsertOne({**d, "_pv": v, "_id": f"{v}/{d[key]}"}) for d in batch])
                self._bulk(collection, [UpdateMany({key: {"$in": [d[key] for d in batch]}, **older},
                                                   {"$addToSet": {"_superseded_by": v}})])
            for flt in partitions:  # what the partitions held and hold no longer
                self._renew()
                self.db[collection].update_many({**flt, **older}, {"$addToSet": {"_superseded_by": v}},
                                                session=self._session)
            # Documents of keys no longer held (files that disappeared), not older versions of new ones.
            gone = set(self.db[collection].distinct(key, {"_superseded_by": v}, session=self._session))
            superseded += len(gone - {d[key] for d in docs})
            if collection in LEVELS:
                touched[collection] = gone | {d[key] for d in docs}
        self.db[LOCKS].update_one({"_id": "versions"}, {"$pull": {"writing": v},
                                                        "$push": {"switched": {"v": v, "at": datetime.now(UTC)}}},
                                  session=self._session)
        return superseded, touched

    def sibling(self, name: str) -> MongoCatalog:
        """A catalog beside this one (the research view): a database of its own on the same server."""
        return MongoCatalog(self.client, f"{self.db.name}_{name}", uri=self.uri, owns_client=False)

    def drop_sibling(self, name: str) -> None:
        self.client.drop_database(f"{self.db.name}_{name}")

    def siblings(self, prefix: str) -> list[str]:
        start = f"{self.db.name}_{prefix}"
        return [n.removeprefix(f"{self.db.name}_") for n in self.client.list_database_names() if n.startswith(start)]

    def close(self) -> None:
        if self.owns_client:
            self.client.close()


def _aware(moment: datetime) -> datetime:
    """A time read back from MongoDB (naive, UTC unless the client is told otherwise) as aware."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _supports_transactions(client: Any) -> bool:
    """A replica set member or a mongos: multi-document transactions are there."""
    try:
        hello = client.admin.command("hello")
    except (NotImplementedError, OperationFailure, PyMongoError):  # mongomock; an old server
        return False
    return bool(hello.get("setName") or hello.get("msg") == "isdbgrid")


def _redact(uri: str) -> str:
    """Never show a password: ``mongodb://user:***@host``."""
    scheme, _, rest = uri.partition("://")
    if "@" in rest:
        creds, _, host = rest.rpartition("@")
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}"
    return uri
