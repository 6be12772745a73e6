"""Sensors: researcher requests, run status back to the requests, arrivals of files.

The planning and bookkeeping are plain functions of ``quire_assets.research.planning`` (``quire
jobs submit --wait`` and ``quire serve``'s worker execute the same plans in the foreground); a
sensor wraps a plan in ``RunRequest``s and a ``SensorResult``.
"""

import json
from datetime import date, datetime, timedelta

from dagster import (
    AssetSelection,
    AutomationConditionSensorDefinition,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunStatusSensorContext,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    run_status_sensor,
    sensor,
)

from quire_assets.assets import catalog_integrity
from quire_assets.jobs import INGEST_JOB, ingest_run_requests
from quire_assets.partitions import registered_keys, registration_requests, retirement_requests
from quire_assets.research.planning import (
    REQUEST_TAG,
    Plan,
    apply_updates,
    look_up_requests,
    partitions_in_use,
    plan_arrivals,
    plan_requests,
    record_run_outcome,
)
from quire_assets.resources import CatalogResource, DicomSource
from quire_assets.runtime.runs import run_partition_keys
from quire_assets.sources import SourceIndex
from quire_assets.sources.base import Selection


@sensor(job_name=INGEST_JOB, minimum_interval_seconds=30, default_status=DefaultSensorStatus.RUNNING,
        description="Turns pending researcher requests (`quire jobs submit`) into partitioned runs; marks absent "
                    "accessions not_found.")
def researcher_requests(context: SensorEvaluationContext, source: DicomSource, catalog: CatalogResource):
    with source.index() as index, catalog.open() as cat:
        if look_up_requests(cat, index, source.features()) is None and not index.partition_keys():
            return SkipReason(f"the source {index.source.uri} is not indexed yet: run index_job or `quire ingest`")
        registered = registered_keys(context.instance)
        plan = plan_requests(cat, index, registered)
        if not plan.updates:
            return SkipReason("no pending researcher requests")
        apply_updates(cat, plan)
        partition_requests = _partition_requests(source, index, catalog, plan, registered)
    return SensorResult(run_requests=ingest_run_requests(plan), dynamic_partitions_requests=partition_requests)


def _partition_requests(source: DicomSource, index: SourceIndex, catalog: CatalogResource, plan: Plan,
                        registered: list[str]) -> list:
    """Register the plan's new accessions; retire old cataloged ones beyond the working set, never
    one that is still in use (``partitions_in_use``)."""
    with catalog.open() as cat:
        used = partitions_in_use(cat, index.source.uri, index.pending(catalog.resolved_uri()), plan, registered)
    return registration_requests(plan.new_keys) + retirement_requests(registered, source.partitions_kept, used)


def _outcome(context: RunStatusSensorContext, catalog: CatalogResource, success: bool, detail: str | None) -> None:
    if REQUEST_TAG not in context.dagster_run.tags:  # not a researcher's run (another job's, an ingest's)
        return
    ordered = registered_keys(context.instance)
    run = context.dagster_run
    with catalog.open() as cat:
        record_run_outcome(cat, run.run_id, run.tags, run_partition_keys(run.tags, ordered), success, detail)


@run_status_sensor(run_status=DagsterRunStatus.SUCCESS, name="researcher_request_done",
                   default_status=DefaultSensorStatus.RUNNING,
                   description="Marks a researcher request's accessions done when their run succeeds.")
def researcher_request_done(context: RunStatusSensorContext, catalog: CatalogResource):
    _outcome(context, catalog, True, None)


@run_status_sensor(run_status=DagsterRunStatus.FAILURE, name="researcher_request_failed",
                   default_status=DefaultSensorStatus.RUNNING,
                   description="Marks a researcher request's accessions failed when their run fails.")
def researcher_request_failed(context: RunStatusSensorContext, catalog: CatalogResource):
    _outcome(context, catalog, False, f"run {context.dagster_run.run_id} failed")


@sensor(job_name=INGEST_JOB, minimum_interval_seconds=60, default_status=DefaultSensorStatus.STOPPED,
        description="Watches a local source: new or changed files update the index and catalog their accessions.")
def folder_arrival(context: SensorEvaluationContext, source: DicomSource, catalog: CatalogResource):
    state = json.loads(context.cursor) if context.cursor else {}
    with source.index() as index:
        refresh = source.refresh(index)
        registered = registered_keys(context.instance)
        plan, newest = plan_arrivals(index, int(state.get("changed", 0)), registered, catalog.resolved_uri())
        partition_requests = _partition_requests(source, index, catalog, plan, registered)
    context.log.info(f"{refresh.read} new or changed files; {len(plan.new_keys)} new accessions")
    return _arrival_result(plan, partition_requests, json.dumps({"changed": newest, "files": refresh.listed}),
                           f"no new or changed files among {refresh.listed:,}")


def _arrival_result(plan: Plan, partition_requests: list, cursor: str, nothing_new: str) -> SensorResult:
    """Runs and partition changes for an arrival plan, or the reason there are none; the cursor moves on."""
    if not plan.runs:
        return SensorResult(skip_reason=SkipReason(nothing_new), cursor=cursor)
    return SensorResult(run_requests=ingest_run_requests(plan), dynamic_partitions_requests=partition_requests,
                        cursor=cursor)


@sensor(job_name=INGEST_JOB, minimum_interval_seconds=60, default_status=DefaultSensorStatus.STOPPED,
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
    with source.index(files) as index:
        update = index.update([files.entry(o) for o in objects], source.features(),
                              first_bytes=source.first_bytes or None)
        registered = registered_keys(context.instance)
        plan, changed = plan_arrivals(index, int(state.get("changed", 0)), registered, catalog.resolved_uri())
        partition_requests = _partition_requests(source, index, catalog, plan, registered)
    newest = max(o["LastModified"] for o in objects)
    context.log.info(f"{update.read} new or changed objects; {len(plan.new_keys)} new accessions")
    return _arrival_result(plan, partition_requests, json.dumps({"last_modified": newest.isoformat(), "changed": changed}),
                           f"{len(objects)} object(s) listed, none new or changed")


@sensor(job_name=INGEST_JOB, minimum_interval_seconds=300, default_status=DefaultSensorStatus.STOPPED,
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
    with source.index(files) as index:
        refresh = source.refresh(index, selection=Selection(since=since))
        registered = registered_keys(context.instance)
        plan, changed = plan_arrivals(index, int(state.get("changed", 0)), registered, catalog.resolved_uri())
        partition_requests = _partition_requests(source, index, catalog, plan, registered)
    context.log.info(f"{refresh.listed} instances of studies since {since}; {refresh.read} new")
    return _arrival_result(plan, partition_requests, json.dumps({"since": date.today().strftime("%Y%m%d"), "changed": changed}),
                           f"no new or changed studies since {since}")


# Evaluates summary_statistics' automation condition (refresh after catalog writes), on by default.
summary_refresh = AutomationConditionSensorDefinition(
    "summary_refresh", target=AssetSelection.assets("summary_statistics") | AssetSelection.checks(catalog_integrity),
    default_status=DefaultSensorStatus.RUNNING, minimum_interval_seconds=60,
    description="Refreshes summary_statistics and the whole-catalog checks once catalog writes have finished.")

all_sensors = [researcher_requests, researcher_request_done, researcher_request_failed, folder_arrival, s3_arrival, pacs_poll,
               summary_refresh]
