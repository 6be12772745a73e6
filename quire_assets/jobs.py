"""Asset jobs: refresh the source index, and catalog accession partitions.

``ingest_job`` runs its steps in one process wherever it is launched (the CLI, the UI, a sensor):
its steps hand DataFrames to each other and cost tenths of a second, where a process per step
costs seconds of start-up (a run of 2.4 s of step work took about 20 s on the multiprocess
executor). A deployment chooses another executor with ``QUIRE_EXECUTOR``: the definitions pass
it to ``asset_jobs`` when they are built, never at import.
"""

from typing import Any

from dagster import (
    AssetSelection,
    DagsterInvalidDefinitionError,
    ExecutorDefinition,
    RunRequest,
    define_asset_job,
    in_process_executor,
    multiprocess_executor,
)

from quire_assets.assets import catalog_integrity, ingest_assets, source_index, summary_statistics
from quire_assets.research.planning import Plan
from quire_assets.runtime.runs import range_tags
from quire_assets.settings import Settings

INDEX_JOB = "index_job"
INGEST_JOB = "ingest_job"
REPORT_JOB = "report_job"
EXECUTORS = ("in_process", "multiprocess", "celery")


def ingest_executor(settings: Settings) -> ExecutorDefinition:
    """The executor ``settings`` name (default ``in_process``). ``celery`` is dagster-celery's,
    configured as its workers are (``quire_assets/runtime/celery.py``)."""
    name = settings.executor
    if name == "in_process":
        return in_process_executor
    if name == "multiprocess":
        return multiprocess_executor
    if name == "celery":
        try:
            from quire_assets.runtime.celery import configured_executor
        except ImportError as exc:
            raise DagsterInvalidDefinitionError(
                f"QUIRE_EXECUTOR=celery needs dagster-celery: pip install 'quire[celery]' ({exc})") from exc
        return configured_executor(settings)
    raise DagsterInvalidDefinitionError(
        f"QUIRE_EXECUTOR={name!r} is not an executor Quire knows: use one of {', '.join(EXECUTORS)}")


def asset_jobs(settings: Settings) -> list[Any]:  # Dagster's asset jobs (their class is not exported)
    """The index, ingest and report jobs, ``ingest_job`` on the executor ``settings`` name."""
    return [
        define_asset_job(
            INDEX_JOB, selection=AssetSelection.assets(source_index),
            description="List the source, read new or changed headers, register accession partitions."),
        define_asset_job(
            INGEST_JOB,
            # The whole-catalog check reads every document: it runs after ingests (report_job, summary_refresh).
            selection=AssetSelection.assets(*ingest_assets) - AssetSelection.checks(catalog_integrity),
            executor_def=ingest_executor(settings),  # partitioned by its assets' accession partitions
            description="Catalog accession partitions (one run takes a range of many partitions)."),
        define_asset_job(
            REPORT_JOB, selection=AssetSelection.assets(summary_statistics) | AssetSelection.checks(catalog_integrity),
            description="Summary statistics over the catalog, the HTML report, and the whole-catalog checks."),
    ]


def ingest_run_requests(plan: Plan) -> list[RunRequest]:
    """A plan's runs as run requests of ``ingest_job`` (what the sensors return, and what the
    ``quire`` command executes itself)."""
    return [RunRequest(job_name=INGEST_JOB, run_key=run.run_key, tags={**run.tags, **range_tags(run.first, run.last)})
            for run in plan.runs]
