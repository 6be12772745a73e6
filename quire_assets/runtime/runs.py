"""Runs created with the ``quire`` code location's origin, executed in this process.

The ``quire`` command executes runs itself (a fork per run, no daemon needed), but creates them as
the webserver and the daemon do, with the ``quire`` code location's origin, so they are listed
under their job, on the timeline and on the assets' partitions like any run launched from the UI.
Dagster's public ``execute_in_process`` and ``execute_job`` create runs without that origin, and
its run launcher starts a Python process per run (1.7 s of imports each, measured) where a fork
costs milliseconds: ``create_located_run`` and ``execute_located_run`` are the two steps of a
launch, as the launcher's process would take them. A run over a partition range is tagged as
Dagster's backfills tag one (``range_tags``).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from typing import Any

from dagster import DagsterInstance, DagsterRun, DagsterRunStatus, JobDefinition, in_process_executor
from dagster._core.definitions.job_base import InMemoryJob
from dagster._core.definitions.reconstruct import ReconstructableRepository
from dagster._core.execution.api import execute_run
from dagster._core.remote_origin import InProcessCodeLocationOrigin, RemoteRepositoryOrigin
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
    PARTITION_NAME_TAG,
)
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin

# The code location that serves quire_assets: [tool.dagster] in pyproject.toml, workspace.yaml and
# deploy/workspace.yaml name it so; the UI lists a run under a job by this name.
CODE_LOCATION = "quire"
DEFINITIONS_MODULE = "quire_assets.definitions"
DEFINITIONS_ATTRIBUTE = "defs"


def create_located_run(instance: DagsterInstance, job: JobDefinition, tags: Mapping[str, str],
                       run_config: Mapping[str, Any] | None = None) -> DagsterRun:
    """A run of ``job`` created as the webserver creates one: with the ``quire`` code location's
    origin (the UI lists runs under a job by its ``__repository__@quire`` label), the job's
    snapshot, and its planned materializations."""
    location = InProcessCodeLocationOrigin(
        LoadableTargetOrigin(executable_path=sys.executable, module_name=DEFINITIONS_MODULE,
                             attribute=DEFINITIONS_ATTRIBUTE),
        location_name=CODE_LOCATION)
    return instance.create_run_for_job(
        job, run_config=run_config, tags={**job.run_tags, **tags},
        remote_job_origin=RemoteRepositoryOrigin(location, "__repository__").get_job_origin(job.name),
        job_code_origin=ReconstructableRepository.for_module(
            DEFINITIONS_MODULE, DEFINITIONS_ATTRIBUTE).get_reconstructable_job(job.name).get_python_origin())


def execute_located_run(instance: DagsterInstance, job: JobDefinition, run: DagsterRun) -> DagsterRunStatus:
    """Execute a run made by ``create_located_run`` in this process, as a launched run's process
    does, with the in-process executor whatever the deployment's (this process is the worker)."""
    execute_run(InMemoryJob(job.with_executor_def(in_process_executor)), run, instance)
    return instance.get_run_by_id(run.run_id).status


def range_tags(first: str, last: str) -> dict[str, str]:
    """The tags of a run over the partitions from ``first`` to ``last``."""
    return {ASSET_PARTITION_RANGE_START_TAG: first, ASSET_PARTITION_RANGE_END_TAG: last}


def range_of(tags: Mapping[str, str]) -> tuple[str, str] | None:
    """The (first, last) partitions a run's tags name: its range, or its single partition."""
    if tags.get(PARTITION_NAME_TAG):
        return tags[PARTITION_NAME_TAG], tags[PARTITION_NAME_TAG]
    first, last = tags.get(ASSET_PARTITION_RANGE_START_TAG), tags.get(ASSET_PARTITION_RANGE_END_TAG)
    return (first, last) if first is not None and last is not None else None


def run_partition_keys(tags: Mapping[str, str], ordered: Sequence[str]) -> list[str]:
    """The partitions a run covered: its single partition, or its range in the instance's order."""
    span = range_of(tags)
    if span is None or span[0] not in ordered or span[1] not in ordered:
        return []
    return list(ordered[ordered.index(span[0]) : ordered.index(span[1]) + 1])
