"""The ``Catalog`` interface shared by the SQLite and MongoDB backends.

Collections are keyed by natural keys, so every write is an idempotent upsert. Queries are
MongoDB filter documents on both backends. The partition-level write (``replace_partitions``)
and the integrity report are written once, here, on top of the backend primitives.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import orjson

from quire_assets.catalog.filters import REGEX_SECONDS, validate_filter
from quire_assets.catalog.locations import held_by, locations_of, recount, reduced, sources_of, with_locations
from quire_assets.dicom.rollup import patient_documents
from quire_assets.util import BATCH, chunks

KEYS = {
    "patients": "patient_id",
    "studies": "study_instance_uid",
    "series": "series_instance_uid",
    "instances": "sop_instance_uid",
    "errors": "uri",
    "researchers": "researcher_id",
    "collections": "collection_id",
    "jobs": "job_id",
    "sessions": "session_id",
}
COLLECTIONS = tuple(KEYS)

# Indexed fields per collection (besides the unique key).
INDEXES = {
    "patients": ("patient_name",),
    "studies": ("accession_number", "patient_id", "study_date", "partition_key", "collection_ids"),
    "series": ("study_instance_uid", "accession_number", "patient_id", "modality", "slice_thickness",
               "manufacturer", "manufacturer_family", "body_part_examined", "partition_key"),
    "instances": ("series_instance_uid", "study_instance_uid", "accession_number", "partition_key"),
    "errors": ("partition_key", "reason"),
    "researchers": (),
    "collections": ("researcher_id",),
    "jobs": ("researcher_id", "status"),
    "sessions": ("researcher_id",),
}

# Fields that never hold an array: the SQLite backend compiles filters on them to the indexed
# expressions directly. ``upsert`` refuses documents that break this.
SCALAR_FIELDS = {
    "patients": ("patient_id", "patient_name", "patient_sex", "patient_birth_date", "num_studies"),
    "studies": ("study_instance_uid", "accession_number", "patient_id", "patient_name", "patient_sex",
                "study_date", "study_description", "num_series", "num_instances", "partition_key"),
    "series": ("series_instance_uid", "study_instance_uid", "accession_number", "patient_id", "modality",
               "manufacturer", "manufacturer_family", "manufacturer_model_name", "body_part_examined", "slice_thickness",
               "series_number", "series_description", "num_instances", "partition_key", "convolution_kernel"),
    "instances": ("sop_instance_uid", "series_instance_uid", "study_instance_uid", "accession_number",
                  "uri", "partition_key", "instance_number"),
    "errors": ("uri", "reason", "partition_key"),
    "researchers": ("researcher_id",),
    "collections": ("collection_id", "researcher_id"),
    "jobs": ("job_id", "researcher_id", "status"),
    "sessions": ("session_id", "researcher_id"),
}

# The levels the research view mirrors: their writes are logged (``changes_after``) so that the view
# follows the catalog by the keys that changed, not by reading it whole.
# The levels of the hierarchy, top down (``QUERY_LEVELS`` adds the errors).
LEVELS = ("patients", "studies", "series", "instances")
QUERY_LEVELS = (*LEVELS, "errors")


class CatalogError(Exception):
    """A catalog that cannot be opened or a write it refuses."""


def check_collection(name: str) -> str:
    if name not in KEYS:
        raise CatalogError(f"unknown collection {name!r} (one of {', '.join(COLLECTIONS)})")
    return name


def check_document(collection: str, doc: dict) -> None:
    """What every written document must be: its key set, its single-valued fields single values."""
    key = KEYS[collection]
    if doc.get(key) in (None, ""):
        raise CatalogError(f"a {collection} document needs its key {key!r}")
    for field in SCALAR_FIELDS[collection]:
        if isinstance(doc.get(field), list | dict | bool):
            raise CatalogError(f"{collection}.{field} must be one text or number, got {doc[field]!r}"[:300])


def partition_filters(partition_keys: Sequence[str], source: str | None) -> list[dict]:
    """Filters, a chunk of keys each, for the documents these partitions (of ``source``) hold."""
    return [{"partition_key": {"$in": list(chunk)}, **(held_by(source) if source else {})}
            for chunk in chunks(list(partition_keys))]


def checked_projection(projection: dict | list | None) -> dict:
    """A projection as ``{field: 1 or 0}``, its field names held to the filters' naming rules
    (they may come from a user's ``--fields``)."""
    if isinstance(projection, list):
        projection = dict.fromkeys(projection, 1)
    projection = dict(projection or {})
    validate_filter(dict.fromkeys(projection, 1))
    return projection


def apply_projection(doc: dict, projection: dict) -> dict:
    """Mongo-style inclusion or exclusion projection (a ``checked_projection``) on top-level and dotted fields."""
    if not projection:
        return doc
    include = [k for k, v in projection.items() if v and k != "_id"]
    exclude = [k for k, v in projection.items() if not v and k != "_id"]
    if include:
        out: dict = {}
        for path in include:
            node, target, parts = doc, out, path.split(".")
            for i, part in enumerate(parts):
                if not isinstance(node, dict) or part not in node:
                    break
                if i == len(parts) - 1:
                    target[part] = node[part]
                else:
                    node = node[part]
                    target = target.setdefault(part, {})
        return out
    out = dict(doc)
    for path in exclude:
        *parents, last = path.split(".")
        node = out
        for part in parents:  # copy the path, so the caller's document is untouched
            if not isinstance(node.get(part), dict):
                break
            node[part] = dict(node[part])
            node = node[part]
        else:
            node.pop(last, None)
    return out


def tie_direction(sort: Sequence[tuple[str, int]] | None) -> str:
    """Documents that sort equal come in key order, in the direction of the first sort field: an
    index of (value, key) then serves a descending sort too."""
    return "DESC" if sort and sort[0][1] < 0 else "ASC"


class Catalog(ABC):
    """Hierarchical DICOM metadata: patients, studies, series, instances, errors, and jobs."""

    uri: str
    # A research view logs nothing: nothing follows it.
    logs_changes: bool = True
    # How long one read may run (the API sets it for researchers' reads); None: no limit.
    read_seconds: float | None = None
    # How long the $regex conditions of one query may run in all (QUIRE_REGEX_SECONDS).
    regex_seconds: float = REGEX_SECONDS

    # ---- backend primitives -------------------------------------------------------------------

    @abstractmethod
    def _upsert(self, collection: str, docs: Sequence[dict]) -> None: ...

    @abstractmethod
    def _delete(self, collection: str, flt: dict) -> int: ...

    @abstractmethod
    def _log_changes(self, collection: str, keys: Sequence[Any]) -> None:
        """Note that the documents of these keys were written or removed (inside the write's
        transaction where the backend has one)."""

    @abstractmethod
    def changes_after(self, seq: int, limit: int) -> list[tuple[int, str, Any]]:
        """The (sequence number, collection, key) of logged writes after ``seq``, oldest first."""

    @abstractmethod
    def last_change(self) -> int:
        """The sequence number of the newest logged write (0 for none); it never goes back, so it
        also tells whether anything was written since it was last read."""

    @abstractmethod
    def prune_changes(self, upto: int) -> None:
        """Forget the logged writes up to ``upto`` (a research view has taken them)."""

    @abstractmethod
    def get_meta(self, name: str) -> dict | None:
        """A small named document of the catalog's own (the research view's state, key issuance)."""

    @abstractmethod
    def set_meta(self, name: str, doc: dict) -> None: ...

    @abstractmethod
    def sibling(self, name: str) -> Catalog:
        """Another catalog of the same backend beside this one (the research view)."""

    @abstractmethod
    def drop_sibling(self, name: str) -> None: ...

    @abstractmethod
    def siblings(self, prefix: str) -> list[str]:
        """The names of the siblings whose names start with ``prefix``."""

    @abstractmethod
    def find(
        self,
        collection: str,
        flt: dict | None = None,
        projection: dict | list | None = None,
        sort: Sequence[tuple[str, int]] | None = None,
        limit: int = 0,
        skip: int = 0,
    ) -> list[dict]: ...

    @abstractmethod
    def count(self, collection: str, flt: dict | None = None) -> int: ...

    @abstractmethod
    def close(self) -> None: ...

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Group writes (one SQLite transaction; on MongoDB, the catalog's write lease)."""
        yield

    # ---- shared logic -------------------------------------------------------------------------

    def upsert(self, collection: str, docs: Iterable[dict]) -> int:
        """Insert or replace documents by their natural key; returns how many were written."""
        check_collection(collection)
        written = 0
        batch: list[dict] = []
        key = KEYS[collection]
        logged = self.logs_changes and collection in LEVELS

        def write() -> None:
            if logged:
                with self.transaction():  # the log and the write commit together
                    self._upsert(collection, batch)
                    self._log_changes(collection, [d[key] for d in batch])
            else:
                self._upsert(collection, batch)

        for doc in docs:
            check_document(collection, doc)
            batch.append(doc)
            if len(batch) >= BATCH:
                write()
                written += len(batch)
                batch = []
        if batch:
            write()
            written += len(batch)
        return written

    def delete(self, collection: str, flt: dict) -> int:
        """Delete the matching documents; returns how many."""
        if not (self.logs_changes and collection in LEVELS):
            return self._delete(collection, flt)
        with self.transaction():
            keys = self.keys(collection, flt)
            self._log_changes(collection, keys)
            return self._delete(collection, flt)

    def get(self, collection: str, key: Any) -> dict | None:
        found = self.find(collection, {KEYS[check_collection(collection)]: key}, limit=1)
        return found[0] if found else None

    def value_counts(self, collection: str, field: str, flt: dict | None = None) -> list[tuple[Any, int]]:
        """Each distinct value of ``field`` with how many documents hold it (array elements counted
        one by one, as Mongo's ``distinct`` takes them), most frequent first."""
        seen: dict[str, list] = {}
        for doc in self.find(collection, flt, projection={field: 1}):
            node: Any = doc
            for part in field.split("."):
                node = node.get(part) if isinstance(node, dict) else None
            values = node if isinstance(node, list) else [node]
            for key, value in {repr((type(v).__name__, v)): v for v in values if v is not None}.items():
                seen.setdefault(key, [value, 0])[1] += 1
        return sorted(((v, n) for v, n in seen.values()), key=lambda vn: (-vn[1], repr(vn[0])))

    def distinct(self, collection: str, field: str, flt: dict | None = None) -> list:
        """Distinct values of ``field`` (array elements counted one by one, as in Mongo), sorted."""
        values = [v for v, _ in self.value_counts(collection, field, flt)]
        return sorted(values, key=lambda v: (str(type(v)), v) if not isinstance(v, dict) else (str(type(v)), 0))

    def documents(self, collection: str, after: Any = None, limit: int = BATCH) -> list[dict]:
        """A page of whole documents in key order, after the key ``after``: a walk of a level page by
        page that reads one range of the key's index a page."""
        key = KEYS[check_collection(collection)]
        return self.find(collection, {key: {"$gt": after}} if after is not None else {}, sort=[(key, 1)], limit=limit)

    def documents_json(self, collection: str, after: Any = None, limit: int = BATCH) -> list[bytes]:
        """``documents`` as JSON text (for a copy that parses them itself: the SQLite backend hands
        over the stored text unparsed)."""
        return [orjson.dumps(d) for d in self.documents(collection, after, limit)]

    def keys(self, collection: str, flt: dict | None = None) -> list:
        """The natural keys of the matching documents."""
        key = KEYS[check_collection(collection)]
        return [d[key] for d in self.find(collection, flt, projection={key: 1})]

    def keys_in_partitions(self, collection: str, partition_keys: Sequence[str], source: str | None = None) -> set:
        found: set = set()
        for chunk in chunks(list(partition_keys)):
            found.update(self.keys(collection, {"partition_key": {"$in": list(chunk)},
                                                **(held_by(source) if source else {})}))
        return found

    def replace_partitions(
        self,
        partition_keys: Sequence[str],
        instances: Sequence[dict],
        series: Sequence[dict],
        studies: Sequence[dict],
        errors: Sequence[dict],
        source: str | None = None,
    ) -> dict[str, int]:
        """Make the catalog hold exactly these documents for these accession partitions (of one
        source); each document names its partition in ``partition_key``.

        Upserts by natural key, deletes what the partitions held before and hold no longer
        (files that disappeared), keeps the ``collection_ids`` researchers gave their studies, and
        re-rolls the patients they touch. Running it twice changes nothing. With ``source``, the
        write is that source's part only (``catalog/locations.py``): documents list the sources
        that hold them, instances every source's files, and a document another source still holds
        loses only this source's part, so archives that share files, or hold different files of one
        accession, never erase each other. Many partitions go in one call, so a run of radiographs
        (one or two files per accession) costs a few statements per collection, not a few per accession.
        """
        keys = list(dict.fromkeys(partition_keys))
        new = {"instances": instances, "series": series, "studies": studies, "errors": errors}
        for collection, docs in new.items():  # refused before anything is written
            for doc in docs:
                check_document(collection, doc)
        with self.transaction():
            filters = partition_filters(keys, source)
            old_patients = {p for flt in filters for p in self.distinct("studies", "patient_id", flt)}
            if source:
                new = self._merge_sources(filters, new, source)
            kept = self._collection_ids([s["study_instance_uid"] for s in new["studies"]])
            new["studies"] = [
                {**s, "collection_ids": sorted(set(s.get("collection_ids", [])) | kept.get(s["study_instance_uid"], set()))}
                for s in new["studies"]
            ]
            removed = self._replace_documents(keys, new, source)
            touched = old_patients | {s["patient_id"] for s in new["studies"] if s.get("patient_id")}
            self.refresh_patients(touched)
        counts = {"instances": len(instances), "series": len(series), "studies": len(studies), "errors": len(errors)}
        return {**counts, "removed": removed}

    def _merge_sources(self, filters: list[dict], new: dict[str, Sequence[dict]],
                       source: str) -> dict[str, list[dict]]:
        """The documents to write so that ``source``'s part of these partitions is ``new`` and every
        other source's part stays: ``new`` with the other sources' files added, and what this source
        held and holds no longer but others still hold, without this source's part. What only this
        source held and holds no longer is left out (the write deletes it)."""
        out: dict[str, list[dict]] = {}
        gone: dict[str, set] = {}
        owners = {"sources": 1, "source": 1, "locations": 1, "uris": 1}  # all a merge reads of most documents
        for collection, docs in new.items():
            key = KEYS[collection]
            incoming = {d[key]: d for d in docs}
            existing: dict[Any, dict] = {}
            for chunk in chunks(list(incoming)):
                existing.update((d[key], d) for d in self.find(collection, {key: {"$in": list(chunk)}},
                                                                projection={key: 1, **owners}))
            for flt in filters:
                existing.update((d[key], d) for d in self.find(collection, flt, projection={key: 1, **owners})
                                if d[key] not in existing)
            merged = []
            for k, doc in incoming.items():
                others = [s for s in sources_of(existing.get(k)) if s != source]
                doc = {**{f: v for f, v in doc.items() if f != "source"}, "sources": sorted({*others, source})}
                if collection == "instances":
                    doc = with_locations(doc, [
                        *(loc for loc in locations_of(existing.get(k)) if loc.get("source") != source),
                        *({**loc, "source": source} for loc in doc.get("locations", []))])
                merged.append(doc)
            kept = [k for k, old in existing.items() if k not in incoming and source in sources_of(old)
                    and any(s != source for s in sources_of(old))]
            gone[collection] = {k for k, old in existing.items() if k not in incoming and sources_of(old) == [source]}
            for chunk in chunks(kept):  # held by another source too: loses this source's part only
                merged.extend(reduced(collection, d, source) for d in self.find(collection, {key: {"$in": list(chunk)}}))
            out[collection] = merged
        recount(self.find, out, gone, source)
        return out

    def _replace_documents(self, partition_keys: Sequence[str], new: dict[str, Sequence[dict]],
                           source: str | None) -> int:
        """Make the partitions hold exactly ``new`` (collection → documents), inside the caller's
        transaction: upserts, then what they held and hold no longer is deleted; returns how many
        documents were deleted."""
        removed = 0
        for collection, docs in new.items():
            key = KEYS[collection]
            stale = self.keys_in_partitions(collection, partition_keys, source) - {d[key] for d in docs}
            self.upsert(collection, docs)
            for chunk in chunks(sorted(stale)):
                self.delete(collection, {key: {"$in": list(chunk)}})
            removed += len(stale)
        return removed

    def _collection_ids(self, study_uids: Sequence[str]) -> dict[str, set]:
        kept: dict[str, set] = {}
        for chunk in chunks(list(study_uids)):
            for doc in self.find("studies", {"study_instance_uid": {"$in": list(chunk)}},
                                 projection={"study_instance_uid": 1, "collection_ids": 1}):
                if doc.get("collection_ids"):
                    kept[doc["study_instance_uid"]] = set(doc["collection_ids"])
        return kept

    def refresh_patients(self, patient_ids: Iterable[str]) -> None:
        """Re-roll the given patients from their studies; drop patients left with none."""
        ids = sorted(p for p in patient_ids if p)
        for chunk in chunks(ids):
            studies = self.find("studies", {"patient_id": {"$in": list(chunk)}})
            docs = patient_documents(studies)
            self.upsert("patients", docs)
            gone = set(chunk) - {d["patient_id"] for d in docs}
            if gone:
                self.delete("patients", {"patient_id": {"$in": sorted(gone)}})

    def add_to_collection(self, collection_id: str, partition_keys: Sequence[str]) -> int:
        """Tag the studies of these partitions with a researcher collection."""
        studies = []
        for chunk in chunks(list(partition_keys)):
            studies.extend(self.find("studies", {"partition_key": {"$in": list(chunk)}}))
        for study in studies:
            study["collection_ids"] = sorted(set(study.get("collection_ids") or []) | {collection_id})
        return self.upsert("studies", studies)

    def tagged_studies(self, collection_id: str) -> list[str]:
        """The study UIDs tagged with a collection (a researcher job's studies)."""
        return self.keys("studies", {"collection_ids": collection_id})

    def _find_in(self, collection: str, partition_keys: Sequence[str] | None, projection: dict) -> list[dict]:
        if partition_keys is None:
            return self.find(collection, projection=projection)
        found = []
        for chunk in chunks(list(partition_keys), 500):
            found.extend(self.find(collection, {"partition_key": {"$in": list(chunk)}}, projection=projection))
        return found

    def integrity(self, partition_keys: Sequence[str] | None = None) -> dict[str, Any]:
        """Orphans and count mismatches (meta_db's ``/link`` check), over the whole catalog or the
        documents of some partitions (a study's series and instances share its partition), how
        many documents of each level were checked, and the same per partition (``partitions``:
        key → documents checked per level and ``problems`` found)."""
        per: dict[str, Counter] = {}

        def note(doc: dict, what: str) -> None:
            per.setdefault(doc.get("partition_key"), Counter())[what] += 1

        studies = {d["study_instance_uid"]: d for d in self._find_in("studies", partition_keys, {
            "study_instance_uid": 1, "num_series": 1, "num_instances": 1, "partition_key": 1})}
        series = {d["series_instance_uid"]: d for d in self._find_in("series", partition_keys, {
            "series_instance_uid": 1, "study_instance_uid": 1, "num_instances": 1, "partition_key": 1})}
        instance_counts: dict[str, int] = {}
        study_instance_counts: dict[str, int] = {}
        orphan_instances = []
        for doc in self._find_in("instances", partition_keys, {"sop_instance_uid": 1, "series_instance_uid": 1,
                                                                 "study_instance_uid": 1, "partition_key": 1}):
            note(doc, "instances")
            s = doc.get("series_instance_uid")
            instance_counts[s] = instance_counts.get(s, 0) + 1
            st = doc.get("study_instance_uid")
            study_instance_counts[st] = study_instance_counts.get(st, 0) + 1
            if s not in series:
                orphan_instances.append(doc["sop_instance_uid"])
                note(doc, "problems")
        series_per_study: dict[str, int] = {}
        orphan_series = []
        for uid, doc in series.items():
            note(doc, "series")
            st = doc.get("study_instance_uid")
            series_per_study[st] = series_per_study.get(st, 0) + 1
            if st not in studies:
                orphan_series.append(uid)
                note(doc, "problems")
        mismatches = []
        for uid, doc in series.items():
            if doc.get("num_instances") != instance_counts.get(uid, 0):
                mismatches.append({"series_instance_uid": uid, "num_instances": doc.get("num_instances"),
                                   "present": instance_counts.get(uid, 0)})
                note(doc, "problems")
        for uid, doc in studies.items():
            note(doc, "studies")
            if doc.get("num_series") != series_per_study.get(uid, 0):
                mismatches.append({"study_instance_uid": uid, "num_series": doc.get("num_series"),
                                   "present": series_per_study.get(uid, 0)})
                note(doc, "problems")
            if doc.get("num_instances") != study_instance_counts.get(uid, 0):
                mismatches.append({"study_instance_uid": uid, "num_instances": doc.get("num_instances"),
                                   "present": study_instance_counts.get(uid, 0)})
                note(doc, "problems")
        return {
            "orphan_series": sorted(orphan_series),
            "orphan_instances": sorted(orphan_instances),
            "count_mismatches": mismatches,
            "ok": not (orphan_series or orphan_instances or mismatches),
            "checked": {"studies": len(studies), "series": len(series), "instances": sum(instance_counts.values())},
            "partitions": {k: {level: c[level] for level in ("studies", "series", "instances", "problems")}
                           for k, c in per.items()},
        }

    def recount(self, report: dict[str, Any] | None = None) -> dict[str, int]:
        """Re-roll the counts an integrity report found wrong (``num_instances`` of series,
        ``num_series`` and ``num_instances`` of studies) from the documents present, and the
        patients of those studies; returns how many series and studies changed. Orphans are not
        touched: their parents can only come back from the source (ingest their accessions again)."""
        report = report or self.integrity()
        fixes: dict[str, dict[str, dict[str, int]]] = {"series": {}, "studies": {}}
        for mismatch in report["count_mismatches"]:
            level = "series" if "series_instance_uid" in mismatch else "studies"
            field = "num_series" if "num_series" in mismatch else "num_instances"
            fixes[level].setdefault(mismatch[KEYS[level]], {})[field] = mismatch["present"]
        with self.transaction():
            patients: set[str] = set()
            for level, changes in fixes.items():
                for chunk in chunks(sorted(changes)):
                    docs = self.find(level, {KEYS[level]: {"$in": list(chunk)}})
                    self.upsert(level, [{**d, **changes[d[KEYS[level]]]} for d in docs])
                    patients.update(d["patient_id"] for d in docs if level == "studies" and d.get("patient_id"))
            self.refresh_patients(patients)
        return {level: len(changes) for level, changes in fixes.items()}

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
