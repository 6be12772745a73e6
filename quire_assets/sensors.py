"""Sensors: researcher requests, run status back to the jobs collection, folder arrival.

The planning and bookkeeping live in plain functions (``plan_requests``,
``record_run_outcome``, ``plan_arrivals``) so that ``quire jobs submit --wait`` runs the same
logic in the foreground, without a daemon.
"""

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from dagster import (
    AssetSelection,
    AutomationConditionSensorDefinition,
    DagsterRun,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunRequest,
    RunStatusSensorContext,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    run_status_sensor,
    sensor,
)

from quire_assets.assets import catalog_integrity
from quire_assets.catalog import Catalog
from quire_assets.catalog.requests import serves, update_accessions
from quire_assets.dicom.features import FeatureSets
from quire_assets.dicom.records import partition_key
from quire_assets.instance import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
    PARTITION_NAME_TAG,
)
from quire_assets.jobs import ingest_job
from quire_assets.orchestration import DEFAULT_BATCH, partition_ranges, range_tags
from quire_assets.partitions import accession_partitions
from quire_assets.resources import CatalogResource, DicomSource
from quire_assets.sources import SourceIndex
from quire_assets.sources.base import Selection
from quire_assets.sources.index import RefreshResult
from quire_assets.sources.pacs import exact_accession

REQUEST_TAG = "quire/job_id"
RESEARCHER_TAG = "quire/researcher_id"


@dataclass
class Plan:
    run_requests: list[RunRequest] = field(default_factory=list)
    new_keys: list[str] = field(default_factory=list)
    updates: dict[str, dict[str, dict]] = field(default_factory=dict)  # job id → accession → change


def pending_jobs(catalog: Catalog, source_uri: str, job_ids: list[str] | None = None) -> Iterator[dict]:
    """Pending jobs for this source, oldest first (another code location, or `quire jobs submit
    --wait`, serves the jobs of other sources)."""
    flt = {"status": "pending", **({"job_id": {"$in": job_ids}} if job_ids else {})}
    return (job for job in catalog.find("jobs", flt, sort=[("created_at", 1)]) if serves(job, source_uri))


def requested_accessions(catalog: Catalog, source_uri: str, job_ids: list[str] | None = None) -> list[str]:
    """The pending accessions of the pending jobs this source serves."""
    wanted: dict[str, None] = {}
    for job in pending_jobs(catalog, source_uri, job_ids):
        wanted.update((a, None) for a, state in job["accessions"].items() if state["status"] == "pending")
    return list(wanted)


def look_up_requests(catalog: Catalog, index: SourceIndex, features: FeatureSets,
                     job_ids: list[str] | None = None) -> RefreshResult | None:
    """A PACS is not listed whole: ask it for the accessions researchers are waiting for, so that the
    index holds what it has of them (an accession it cannot be asked for exactly stays not found)."""
    wanted = [a for a in requested_accessions(catalog, index.source.uri, job_ids) if exact_accession(a)]
    if not index.source.queryable or not wanted:
        return None
    return index.refresh(features, selection=Selection(tuple(wanted)))


def plan_requests(catalog: Catalog, index: SourceIndex, existing_keys: list[str],
                  batch: int = DEFAULT_BATCH, job_ids: list[str] | None = None) -> Plan:
    """Runs for the pending accessions of pending jobs on this source; ``not_found`` for the rest."""
    plan = Plan()
    order = list(existing_keys)
    known = set(order)
    weights: dict[str, int] | None = None  # files per partition, read only when a job has runs to plan
    for job in pending_jobs(catalog, index.source.uri, job_ids):
        wanted = [a for a, state in job["accessions"].items() if state["status"] == "pending"]
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
            plan.run_requests.append(RunRequest(
                job_name=ingest_job.name,
                run_key=f"{job['job_id']}:{first}:{last}",
                tags={REQUEST_TAG: job["job_id"], RESEARCHER_TAG: job["researcher_id"], **range_tags(first, last)},
            ))
        changes.update({a: {"status": "running", "detail": "run requested"} for a in found})
        plan.updates[job["job_id"]] = changes
    return plan


def apply_updates(catalog: Catalog, plan: Plan) -> None:
    for job_id, changes in plan.updates.items():
        update_accessions(catalog, job_id, changes)


def run_partition_keys(run: DagsterRun, ordered: list[str]) -> list[str]:
    """The partitions a run covered: its single partition, or its range in the instance's order."""
    if run.tags.get(PARTITION_NAME_TAG):
        return [run.tags[PARTITION_NAME_TAG]]
    first, last = run.tags.get(ASSET_PARTITION_RANGE_START_TAG), run.tags.get(ASSET_PARTITION_RANGE_END_TAG)
    if first not in ordered or last not in ordered:
        return []
    return ordered[ordered.index(first) : ordered.index(last) + 1]


def record_run_outcome(catalog: Catalog, run: DagsterRun, ordered: list[str], success: bool,
                       detail: str | None = None) -> dict | None:
    """Write a researcher run's outcome to its job: done (and the job's collection on the studies) or failed."""
    job_id = run.tags.get(REQUEST_TAG)
    job = catalog.get("jobs", job_id) if job_id else None
    if job is None:
        return None
    covered = set(run_partition_keys(run, ordered))
    mine = [a for a, state in job["accessions"].items()
            if state["status"] in ("running", "pending") and partition_key(a, None) in covered]
    if success and mine:
        catalog.add_to_collection(job["collection_id"], [partition_key(a, None) for a in mine])
    status = "done" if success else "failed"
    return update_accessions(catalog, job_id, {a: {"status": status, "run_id": run.run_id, "detail": detail}
                                               for a in mine})


@sensor(job=ingest_job, minimum_interval_seconds=30, default_status=DefaultSensorStatus.RUNNING,
        description="Turns pending researcher requests (`quire jobs submit`) into partitioned runs; marks absent "
                    "accessions not_found.")
def researcher_requests(context: SensorEvaluationContext, source: DicomSource, catalog: CatalogResource):
    with source.index() as index, catalog.open() as cat:
        if look_up_requests(cat, index, source.features()) is None and not index.partition_keys():
            return SkipReason(f"the source {index.source.uri} is not indexed yet: run index_job or `quire ingest`")
        plan = plan_requests(cat, index, list(context.instance.get_dynamic_partitions(accession_partitions.name)))
        if not plan.updates:
            return SkipReason("no pending researcher requests")
        apply_updates(cat, plan)
    return SensorResult(
        run_requests=plan.run_requests,
        dynamic_partitions_requests=[accession_partitions.build_add_request(plan.new_keys)] if plan.new_keys else [],
    )


def _outcome(context: RunStatusSensorContext, catalog: CatalogResource, success: bool, detail: str | None) -> None:
    ordered = list(context.instance.get_dynamic_partitions(accession_partitions.name))
    with catalog.open() as cat:
        record_run_outcome(cat, context.dagster_run, ordered, success, detail)


@run_status_sensor(run_status=DagsterRunStatus.SUCCESS, monitored_jobs=[ingest_job], name="researcher_request_done",
                   default_status=DefaultSensorStatus.RUNNING,
                   description="Marks a researcher request's accessions done when their run succeeds.")
def researcher_request_done(context: RunStatusSensorContext, catalog: CatalogResource):
    _outcome(context, catalog, True, None)


@run_status_sensor(run_status=DagsterRunStatus.FAILURE, monitored_jobs=[ingest_job], name="researcher_request_failed",
                   default_status=DefaultSensorStatus.RUNNING,
                   description="Marks a researcher request's accessions failed when their run fails.")
def researcher_request_failed(context: RunStatusSensorContext, catalog: CatalogResource):
    _outcome(context, catalog, False, f"run {context.dagster_run.run_id} failed")


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
        plan.run_requests.append(RunRequest(job_name=ingest_job.name, run_key=f"arrival:{newest}:{first}:{last}",
                                            tags=range_tags(first, last)))
    return plan, newest


@sensor(job=ingest_job, minimum_interval_seconds=60, default_status=DefaultSensorStatus.STOPPED,
        description="Watches a local source: new or changed files update the index and catalog their accessions.")
def folder_arrival(context: SensorEvaluationContext, source: DicomSource, catalog: CatalogResource):
    state = json.loads(context.cursor) if context.cursor else {}
    with source.index() as index:
        refresh = index.refresh(source.features(), workers=source.workers or None,
                                first_bytes=source.first_bytes or None)
        plan, newest = plan_arrivals(index, int(state.get("changed", 0)),
                                     list(context.instance.get_dynamic_partitions(accession_partitions.name)),
                                     catalog.resolved_uri())
    context.log.info(f"{refresh.read} new or changed files; {len(plan.new_keys)} new accessions")
    return _arrival_result(plan, json.dumps({"changed": newest, "files": refresh.listed}),
                           f"no new or changed files among {refresh.listed:,}")


def _arrival_result(plan: Plan, cursor: str, nothing_new: str) -> SensorResult:
    """Runs and new partitions for an arrival plan, or the reason there are none; the cursor moves on."""
    if not plan.run_requests:
        return SensorResult(skip_reason=SkipReason(nothing_new), cursor=cursor)
    return SensorResult(
        run_requests=plan.run_requests,
        dynamic_partitions_requests=[accession_partitions.build_add_request(plan.new_keys)] if plan.new_keys else [],
        cursor=cursor,
    )


@sensor(job=ingest_job, minimum_interval_seconds=60, default_status=DefaultSensorStatus.STOPPED,
        description="New S3 objects under the source prefix: read their headers, catalog their accessions.")
def s3_arrival(context: SensorEvaluationContext, source: DicomSource, catalog: CatalogResource):
    from dagster_aws.s3.sensor import get_objects

    from quire_assets.sources.s3 import S3Files

    files = source.files()
    if not isinstance(files, S3Files):
        return SkipReason(f"the source {files.uri} is not an S3 bucket (folder_arrival watches folders)")
    state = json.loads(context.cursor) if context.cursor else {}
    # S3's LastModified has one-second resolution: look one second back, the index drops repeats.
    since = datetime.fromisoformat(state["last_modified"]) - timedelta(seconds=1) if state.get("last_modified") else None
    objects = get_objects(files.bucket, files.prefix, since_last_modified=since, client=files.client)
    objects = [o for o in objects if not (o["Key"].endswith("/") and o["Size"] == 0)]
    if not objects:
        return SensorResult(skip_reason=SkipReason("no new objects"), cursor=context.cursor)
    with SourceIndex(files) as index:
        update = index.update([files.entry(o) for o in objects], source.features(),
                              first_bytes=source.first_bytes or None)
        plan, changed = plan_arrivals(index, int(state.get("changed", 0)),
                                      list(context.instance.get_dynamic_partitions(accession_partitions.name)),
                                      catalog.resolved_uri())
    newest = max(o["LastModified"] for o in objects)
    context.log.info(f"{update.read} new or changed objects; {len(plan.new_keys)} new accessions")
    return _arrival_result(plan, json.dumps({"last_modified": newest.isoformat(), "changed": changed}),
                           f"{len(objects)} object(s) listed, none new or changed")


@sensor(job=ingest_job, minimum_interval_seconds=300, default_status=DefaultSensorStatus.STOPPED,
        description="Asks the PACS (QIDO-RS or C-FIND) for studies dated from the last poll's day on; catalogs the "
                    "new and changed ones.")
def pacs_poll(context: SensorEvaluationContext, source: DicomSource, catalog: CatalogResource):
    files = source.files()
    if not files.queryable:
        return SkipReason(f"the source {files.uri} is not a PACS (folder_arrival and s3_arrival watch those)")
    state = json.loads(context.cursor) if context.cursor else {}
    # A PACS is asked by study date (its receive time cannot be queried): each poll asks from the
    # previous poll's day on, the first from today; the instance counts make repeated studies cheap.
    since = state.get("since") or date.today().strftime("%Y%m%d")
    with SourceIndex(files) as index:
        refresh = index.refresh(source.features(), workers=source.workers or None, selection=Selection(since=since))
        plan, changed = plan_arrivals(index, int(state.get("changed", 0)),
                                      list(context.instance.get_dynamic_partitions(accession_partitions.name)),
                                      catalog.resolved_uri())
    context.log.info(f"{refresh.listed} instances of studies since {since}; {refresh.read} new")
    return _arrival_result(plan, json.dumps({"since": date.today().strftime("%Y%m%d"), "changed": changed}),
                           f"no new or changed studies since {since}")


# Evaluates summary_statistics' automation condition (refresh after catalog writes), on by default.
summary_refresh = AutomationConditionSensorDefinition(
    "summary_refresh", target=AssetSelection.assets("summary_statistics") | AssetSelection.checks(catalog_integrity),
    default_status=DefaultSensorStatus.RUNNING, minimum_interval_seconds=60,
    description="Refreshes summary_statistics and the whole-catalog checks once catalog writes have finished.")

all_sensors = [researcher_requests, researcher_request_done, researcher_request_failed, folder_arrival, s3_arrival, pacs_poll,
               summary_refresh]
