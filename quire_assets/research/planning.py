"""Which runs to start, as plain data: for researcher requests, and for files that arrived.

Dagster runs a partition *range* in one run. The partitions to run are rarely contiguous, so they
are covered by a few ranges over the instance's partition order, each at most ``batch`` partitions
long and ``max_weight`` files: partitions inside a range that did not change are cataloged again,
which is idempotent and cheap (their headers are not read again). The sensors wrap a plan in
``RunRequest``s and a ``SensorResult``; ``quire jobs submit --wait`` and ``quire serve``'s worker
execute the same plan in the foreground.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from quire_assets.catalog import Catalog
from quire_assets.dicom.features import FeatureSets
from quire_assets.dicom.records import partition_key
from quire_assets.research.requests import (
    accessions_in_flight,
    pending_requests,
    requested_accessions,
    update_accessions,
)
from quire_assets.sources import SourceIndex
from quire_assets.sources.base import Selection
from quire_assets.sources.index import RefreshResult
from quire_assets.sources.pacs import exact_accession

DEFAULT_BATCH = 2_500
LOOKUP_SECONDS = 600  # how long a PACS's answer for an accession is taken as it stands
# A run holds its partitions' records in memory: bounding the files per run keeps the peak memory
# of an ingest flat however large the archive is.
DEFAULT_FILES_PER_RUN = 5_000
# Tags naming the researcher request (and its researcher) a run was started for.
REQUEST_TAG = "quire/job_id"
RESEARCHER_TAG = "quire/researcher_id"


def partition_ranges(
    ordered: Sequence[str],
    wanted: Sequence[str],
    batch: int = DEFAULT_BATCH,
    weights: Mapping[str, int] | None = None,
    max_weight: int = DEFAULT_FILES_PER_RUN,
) -> list[tuple[str, str]]:
    """Ranges (first, last) over ``ordered`` that cover every key in ``wanted``: each at most
    ``batch`` partitions long and, with ``weights`` (files per partition), at most ``max_weight``
    files (a single heavier partition gets a run of its own)."""
    position = {k: i for i, k in enumerate(ordered)}
    missing = [k for k in wanted if k not in position]
    if missing:
        raise ValueError(f"partitions not registered: {missing[:5]}")
    hits = sorted({position[k] for k in wanted})
    weights = weights or {}

    def weight(first: int, last: int) -> int:
        return sum(weights.get(ordered[j], 1) for j in range(first, last + 1)) if weights else 0

    ranges = []
    i = 0
    while i < len(hits):
        start = end = hits[i]
        i += 1
        while i < len(hits) and hits[i] < start + batch and (not weights or weight(start, hits[i]) <= max_weight):
            end = hits[i]
            i += 1
        ranges.append((ordered[start], ordered[end]))
    return ranges


@dataclass(frozen=True)
class PlannedRun:
    """A run of ``ingest_job`` over the partitions ``first`` to ``last``."""

    first: str
    last: str
    run_key: str
    tags: dict[str, str] = field(default_factory=dict)


@dataclass
class Plan:
    runs: list[PlannedRun] = field(default_factory=list)
    new_keys: list[str] = field(default_factory=list)
    updates: dict[str, dict[str, dict]] = field(default_factory=dict)  # request id → accession → change


def look_up_requests(catalog: Catalog, index: SourceIndex, features: FeatureSets,
                     request_ids: list[str] | None = None, now: float | None = None) -> RefreshResult | None:
    """A PACS is not listed whole: ask it for the accessions researchers are waiting for, so that the
    index holds what it has of them (an accession it cannot be asked for exactly stays not found).
    An accession asked in the last ``LOOKUP_SECONDS`` is answered from the index, not asked again
    (a list resubmitted with a few rows corrected asks the PACS for those rows only)."""
    wanted = [a for a in requested_accessions(catalog, index.source.uri, request_ids) if exact_accession(a)]
    if not index.source.queryable or not wanted:
        return None
    now = time.time() if now is None else now
    name = f"pacs-lookups:{index.source.key}"
    asked = {a: t for a, t in (catalog.get_meta(name) or {}).get("asked", {}).items() if now - t < LOOKUP_SECONDS}
    ask = [a for a in wanted if a not in asked]
    refresh = index.refresh(features, selection=Selection(tuple(ask))) if ask else RefreshResult()
    catalog.set_meta(name, {"asked": {**asked, **dict.fromkeys(ask, now)}})
    return refresh


def plan_requests(catalog: Catalog, index: SourceIndex, existing_keys: list[str],
                  batch: int = DEFAULT_BATCH, request_ids: list[str] | None = None) -> Plan:
    """Runs for the pending accessions of pending requests on this source; ``not_found`` for the rest."""
    plan = Plan()
    order = list(existing_keys)
    known = set(order)
    weights: dict[str, int] | None = None  # files per partition, read only when a request has runs to plan
    for request in pending_requests(catalog, index.source.uri, request_ids):
        wanted = [a for a, state in request["accessions"].items() if state["status"] == "pending"]
        found = index.keys_holding(wanted)
        absent = (f"the PACS {index.source.uri} has no study with this accession number" if index.source.queryable
                  else f"no file with this accession in {index.source.uri}")
        changes = {a: {"status": "not_found", "detail": absent} for a in wanted if a not in found}
        keys = sorted(set(found.values()), key=lambda k: (k not in known, k))
        for key in keys:
            if key not in known:
                known.add(key)
                order.append(key)
                plan.new_keys.append(key)
        if keys and weights is None:
            weights = index.file_counts()  # runs bounded in files too, as `quire ingest` does
        for first, last in partition_ranges(order, keys, batch, weights) if keys else []:
            plan.runs.append(PlannedRun(first, last, f"{request['job_id']}:{first}:{last}",
                                        {REQUEST_TAG: request["job_id"], RESEARCHER_TAG: request["researcher_id"]}))
        changes.update({a: {"status": "running", "detail": "run requested"} for a in found})
        plan.updates[request["job_id"]] = changes
    return plan


def request_partitions(catalog: Catalog, source_uri: str) -> set[str]:
    """The partitions of this source's researcher requests that are not over yet."""
    return {partition_key(a, None) for a in accessions_in_flight(catalog, source_uri)}


def partitions_in_use(catalog: Catalog, source_uri: str, pending: Iterable[str],
                      planned: Plan | None = None, order: Sequence[str] = ()) -> set[str]:
    """The accessions whose partitions must stay registered in Dagster: the ``pending`` ones (the
    catalog does not hold them at their current version: ``SourceIndex.pending``, which a caller
    may already have read), those of researcher requests on ``source_uri`` not over yet, and every
    partition the ``planned`` runs cover in ``order`` (the registered keys, the plan's new ones
    after them)."""
    used = set(pending) | request_partitions(catalog, source_uri)
    if planned is not None:
        keys = [*order, *planned.new_keys]
        position = {k: i for i, k in enumerate(keys)}
        for run in planned.runs:
            used.update(keys[position[run.first]:position[run.last] + 1])
    return used


def apply_updates(catalog: Catalog, plan: Plan) -> None:
    for request_id, changes in plan.updates.items():
        update_accessions(catalog, request_id, changes)


def record_run_outcome(catalog: Catalog, run_id: str, tags: Mapping[str, str], covered: Sequence[str],
                       success: bool, detail: str | None = None) -> dict | None:
    """Write a researcher run's outcome to its request (the run's ``tags`` name it; ``covered`` are
    the partitions the run covered): done (and the request's collection on the studies) or failed."""
    request_id = tags.get(REQUEST_TAG)
    request = catalog.get("jobs", request_id) if request_id else None
    if request is None:
        return None
    covered = set(covered)
    mine = [a for a, state in request["accessions"].items()
            if state["status"] in ("running", "pending") and partition_key(a, None) in covered]
    if success and mine:
        catalog.add_to_collection(request["collection_id"], [partition_key(a, None) for a in mine])
    changes = {a: ({"status": "failed", "detail": detail} if not success else reconciled(catalog, a))
               for a in mine}
    return update_accessions(catalog, request_id, {a: {**c, "run_id": run_id} for a, c in changes.items()})


def reconciled(catalog: Catalog, accession: str) -> dict:
    """How a cataloged accession ends: ``done``; ``ambiguous`` when its number matches several
    studies (listed); ``partial`` when some of its files could not be read (how many, and why)."""
    key = partition_key(accession, None)
    studies = sorted(d["study_instance_uid"] for d in catalog.find("studies", {"partition_key": key},
                                                                   projection=["study_instance_uid"]))
    errors = Counter(d.get("reason") for d in catalog.find("errors", {"partition_key": key}, projection=["reason"]))
    instances = catalog.count("instances", {"partition_key": key})
    unread = (f"{sum(errors.values())} of its files could not be read ("
              + ", ".join(f"{n} {reason}" for reason, n in sorted(errors.items())) + f"); {instances} instances "
              "cataloged") if errors else ""
    if len(studies) > 1:
        return {"status": "ambiguous", "studies": studies,
                "detail": f"{len(studies)} studies carry this accession number: all are in the collection"
                          + (f"; {unread}" if unread else "")}
    if errors:
        return {"status": "partial", "detail": unread}
    return {"status": "done", "detail": None}


def plan_arrivals(index: SourceIndex, cursor: int, existing_keys: list[str], catalog_uri: str,
                  batch: int = DEFAULT_BATCH) -> tuple[Plan, int]:
    """Runs for partitions changed since ``cursor`` (the index's change counter) that the catalog
    does not hold yet at their current version."""
    changed, newest = index.changes_since(cursor)
    pending = set(index.pending(catalog_uri))
    changed = [k for k in changed if k in pending]
    plan = Plan()
    order = list(existing_keys)
    for key in changed:
        if key not in order:
            order.append(key)
            plan.new_keys.append(key)
    for first, last in partition_ranges(order, changed, batch, index.file_counts()) if changed else []:
        plan.runs.append(PlannedRun(first, last, f"arrival:{newest}:{first}:{last}"))
    return plan, newest
