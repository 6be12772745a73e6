"""Running the asset jobs for many accession partitions: shared by the CLI and the sensors.

Dagster runs a partition *range* in one run. The partitions to run are rarely contiguous, so
they are covered by a few ranges over the instance's partition order, each at most ``batch``
partitions long: partitions inside a range that did not change are cataloged again, which is
idempotent and cheap (their headers are not read again).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from dagster import DagsterInstance, Definitions, ExecuteInProcessResult, RunRequest
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from quire_assets.partitions import accession_partitions

DEFAULT_BATCH = 500
# A run holds its partitions' records in memory: bounding the files per run keeps the peak memory
# of an ingest flat however large the archive is.
DEFAULT_FILES_PER_RUN = 10_000


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


def range_tags(first: str, last: str) -> dict[str, str]:
    return {ASSET_PARTITION_RANGE_START_TAG: first, ASSET_PARTITION_RANGE_END_TAG: last}


def register_partitions(instance: DagsterInstance, keys: Sequence[str]) -> list[str]:
    """Add the keys the instance does not know yet (CLI side; sensors return a request instead)."""
    existing = set(instance.get_dynamic_partitions(accession_partitions.name))
    new = [k for k in dict.fromkeys(keys) if k not in existing]
    if new:
        instance.add_dynamic_partitions(accession_partitions.name, new)
    return new


def execute_run_requests(defs: Definitions, instance: DagsterInstance, run_requests: Sequence[RunRequest],
                         log_level: str = "WARNING") -> list[ExecuteInProcessResult]:
    """Execute run requests (a sensor's, or ``run_partitions``') here, in the foreground."""
    results = []
    for request in run_requests:
        job = defs.resolve_job_def(request.job_name or "ingest_job")
        results.append(job.execute_in_process(
            run_config={"loggers": {"console": {"config": {"log_level": log_level}}}},
            instance=instance, tags=dict(request.tags), raise_on_error=False))
    return results


@dataclass
class RunsReport:
    run_ids: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    seconds: float = 0.0


def run_partitions(
    defs: Definitions,
    instance: DagsterInstance,
    keys: Sequence[str],
    tags: dict[str, str] | None = None,
    batch: int = DEFAULT_BATCH,
    on_run: Callable[[str, str, bool], None] | None = None,
    job_name: str = "ingest_job",
    log_level: str = "WARNING",
    weights: Mapping[str, int] | None = None,
    max_weight: int = DEFAULT_FILES_PER_RUN,
) -> RunsReport:
    """Execute ``job_name`` in-process over ``keys``, in as few runs as the batch size allows."""
    start = time.perf_counter()
    report = RunsReport()
    if not keys:
        return report
    register_partitions(instance, keys)
    ordered = instance.get_dynamic_partitions(accession_partitions.name)
    for first, last in partition_ranges(ordered, keys, batch, weights, max_weight):
        request = RunRequest(job_name=job_name, tags={**(tags or {}), **range_tags(first, last)})
        [result] = execute_run_requests(defs, instance, [request], log_level)
        report.run_ids.append(result.run_id)
        if not result.success:
            report.failed.append(result.run_id)
        if on_run:
            on_run(first, last, result.success)
    report.seconds = time.perf_counter() - start
    return report
