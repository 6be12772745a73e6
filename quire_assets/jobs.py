"""Asset jobs: refresh the source index, and catalog accession partitions.

``ingest_job`` runs its steps in one process wherever it is launched (the CLI, the UI, a sensor):
its steps hand DataFrames to each other and cost tenths of a second, where a process per step
costs seconds of start-up (a run of 2.4 s of step work took about 20 s on the multiprocess
executor). A deployment chooses another executor with ``QUIRE_EXECUTOR``, not in code.
"""

import os

from dagster import (
    AssetSelection,
    DagsterInvalidDefinitionError,
    ExecutorDefinition,
    define_asset_job,
    in_process_executor,
    multiprocess_executor,
)

from quire_assets.assets import catalog_integrity, ingest_assets, source_index, summary_statistics
from quire_assets.partitions import accession_partitions

index_job = define_asset_job(
    "index_job",
    selection=AssetSelection.assets(source_index),
    description="List the source, read new or changed headers, register accession partitions.",
)

EXECUTORS = ("in_process", "multiprocess", "celery")


def ingest_executor() -> ExecutorDefinition:
    """The executor named by ``QUIRE_EXECUTOR`` (default ``in_process``). ``celery`` is dagster-celery's,
    configured from the environment as its workers are (``quire_assets/workers.py``)."""
    name = os.environ.get("QUIRE_EXECUTOR") or "in_process"
    if name == "in_process":
        return in_process_executor
    if name == "multiprocess":
        return multiprocess_executor
    if name == "celery":
        try:
            from dagster_celery import celery_executor

            from quire_assets.workers import executor_config
        except ImportError as exc:
            raise DagsterInvalidDefinitionError(
                f"QUIRE_EXECUTOR=celery needs dagster-celery: pip install 'quire[celery]' ({exc})") from exc

        return celery_executor.configured(executor_config())
    raise DagsterInvalidDefinitionError(
        f"QUIRE_EXECUTOR={name!r} is not an executor Quire knows: use one of {', '.join(EXECUTORS)}")


ingest_job = define_asset_job(
    "ingest_job",
    # The whole-catalog check reads every document: it runs after ingests (report_job, summary_refresh).
    selection=AssetSelection.assets(*ingest_assets) - AssetSelection.checks(catalog_integrity),
    partitions_def=accession_partitions,
    executor_def=ingest_executor(),
    description="Catalog accession partitions (one run takes a range of many partitions).",
)

report_job = define_asset_job(
    "report_job",
    selection=AssetSelection.assets(summary_statistics) | AssetSelection.checks(catalog_integrity),
    description="Summary statistics over the catalog, the HTML report, and the whole-catalog checks.",
)

all_jobs = [index_job, ingest_job, report_job]
