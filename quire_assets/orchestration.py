"""Running the asset jobs for many accession partitions: shared by the CLI and the sensors.

Dagster runs a partition *range* in one run. The partitions to run are rarely contiguous, so
they are covered by a few ranges over the instance's partition order, each at most ``batch``
partitions long: partitions inside a range that did not change are cataloged again, which is
idempotent and cheap (their headers are not read again).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import IO

from dagster import (
    DagsterExecutionInterruptedError,
    DagsterInstance,
    DagsterRunStatus,
    Definitions,
    RunRequest,
)

from quire_assets.catalog import Catalog
from quire_assets.instance import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
    InstanceRef,
    create_located_run,
    ephemeral_instance,
    execute_located_run,
)
from quire_assets.partitions import accession_partitions
from quire_assets.sources import SourceIndex
from quire_assets.sources.index import RefreshResult
from quire_assets.timing import spent

DEFAULT_BATCH = 2_500
# A run holds its partitions' records in memory: bounding the files per run keeps the peak memory
# of an ingest flat however large the archive is.
DEFAULT_FILES_PER_RUN = 5_000


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


@dataclass
class RunResult:
    run_id: str
    success: bool


def execute_run_requests(defs: Definitions, instance: DagsterInstance, run_requests: Sequence[RunRequest],
                         log_level: str = "ERROR") -> list[RunResult]:
    """Execute run requests (a sensor's, or ``run_partitions``') here, in the foreground, as runs of
    the ``quire`` code location (``instance.create_located_run``)."""
    results = []
    for request in run_requests:
        job = defs.resolve_job_def(request.job_name or "ingest_job")
        run = create_located_run(instance, job, request.tags,
                                 {"loggers": {"console": {"config": {"log_level": log_level}}}})
        status = execute_located_run(instance, job, run)
        results.append(RunResult(run.run_id, status == DagsterRunStatus.SUCCESS))
    return results


@dataclass
class RunOutcome:
    """One run as ``run_partitions`` saw it: its id (or why it has none), how long it took, and the
    time Quire's own code took in it (``timing.spent``), by function."""

    run_id: str
    success: bool
    seconds: float
    spent: dict[str, float]


@dataclass
class RunsReport:
    run_ids: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    seconds: float = 0.0
    busy_s: float = 0.0  # the runs' wall times added up: more than ``seconds`` when runs overlap
    workers: int = 1


def _execute_one(defs: Definitions, instance: DagsterInstance, request: RunRequest, log_level: str) -> RunOutcome:
    before = Counter(spent)
    start = time.perf_counter()
    [result] = execute_run_requests(defs, instance, [request], log_level)
    seconds = time.perf_counter() - start
    return RunOutcome(result.run_id, result.success, seconds, dict(Counter(spent) - before))


def _run_in_fork(defs: Definitions, instance_ref: InstanceRef | None, partitions: Sequence[str],
                 request: RunRequest, log_level: str, conn: Connection, output: int) -> None:
    """One run in a process forked for it alone (its arguments are inherited, not pickled). A
    persistent instance is opened again from its ref, so no connection of the parent is used; for
    an ephemeral one the process makes its own, with the same partitions. An exception ends the
    process with a traceback in its output and no outcome sent: the parent counts the run as failed.

    The run has a process group of its own, so a terminal's Ctrl-C reaches quire alone, which says
    it once and interrupts its runs (``_forked_runs``). Its output (stdout and stderr, those of
    Dagster's helper processes too) goes to ``output``, which the parent shows once the run is
    over, unless it was interrupted: then Dagster's report of the interruption and its helpers'
    tracebacks are dropped (the run's writes are transactions; Dagster's event log has the rest).
    """
    os.setpgrp()
    os.dup2(output, 1)
    os.dup2(output, 2)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # not the parent's (``_forked_runs``)
    try:
        if instance_ref is None:
            instance = ephemeral_instance()
            instance.add_dynamic_partitions(accession_partitions.name, partitions)
        else:
            instance = DagsterInstance.from_ref(instance_ref)
        conn.send(_execute_one(defs, instance, request, log_level))
    except (KeyboardInterrupt, DagsterExecutionInterruptedError):
        os._exit(130)


def _forked_runs(defs: Definitions, instance: DagsterInstance, partitions: Sequence[str],
                 requests: Sequence[RunRequest], workers: int, log_level: str) -> Iterator[RunOutcome]:
    """Each run in a fresh fork of this process, ``workers`` at a time; outcomes in request order.

    A fork per run, not a pool: a run's memory goes with its process, so a worker never grows
    from run to run, and this process starts no helper thread that a fork could catch holding a lock.
    """
    context = multiprocessing.get_context("fork")
    ref = None if instance.is_ephemeral else instance.get_ref()
    waiting = list(enumerate(requests))
    running: dict[Connection, tuple[int, BaseProcess, IO[bytes]]] = {}
    done: dict[int, RunOutcome] = {}
    # Ctrl-C is noted and acted on between forks: a KeyboardInterrupt raised inside a fork's
    # after-fork handlers is swallowed by Python ("Exception ignored"), and the runs went on.
    interrupted: list[int] = []
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, lambda signum, frame: interrupted.append(signum)) if main else None
    try:
        for i in range(len(requests)):
            while i not in done:
                while waiting and len(running) < workers:
                    j, request = waiting.pop(0)
                    reader, writer = context.Pipe(duplex=False)
                    output = tempfile.TemporaryFile()  # noqa: SIM115 (closed when its run is over)
                    process = context.Process(target=_run_in_fork, daemon=True, name=f"quire-run-{j}",
                                              args=(defs, ref, partitions, request, log_level, writer,
                                                    output.fileno()))
                    process.start()
                    writer.close()
                    running[reader] = (j, process, output)
                if interrupted:
                    raise KeyboardInterrupt
                for reader in wait(list(running), timeout=0.5):
                    j, process, output = running.pop(reader)
                    try:
                        outcome = reader.recv()
                    except EOFError:  # the process ended without an outcome
                        outcome = None
                    process.join()
                    reader.close()
                    with output:
                        output.seek(0)
                        shutil.copyfileobj(output, sys.stderr.buffer)
                    sys.stderr.flush()
                    tags = requests[j].tags
                    done[j] = outcome or RunOutcome(
                        f"{tags[ASSET_PARTITION_RANGE_START_TAG]}..{tags[ASSET_PARTITION_RANGE_END_TAG]} "
                        f"(its process exited with status {process.exitcode})", False, 0.0, {})
            yield done.pop(i)
    finally:
        if main:
            signal.signal(signal.SIGINT, previous)
        for _, process, _ in running.values():  # interrupted as Dagster expects: its run ends as failed
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGINT)
        for _, process, output in running.values():
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
            with contextlib.suppress(ProcessLookupError):  # its helpers (Dagster's log capture)
                os.killpg(process.pid, signal.SIGTERM)
            output.close()


def _can_fork() -> bool:
    # fork shares the imported Dagster and the definitions with the workers at no cost; where it is
    # not the safe default (macOS, Windows) runs stay in this process.
    return sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods()


def run_partitions(
    defs: Definitions,
    instance: DagsterInstance,
    keys: Sequence[str],
    tags: dict[str, str] | None = None,
    batch: int = DEFAULT_BATCH,
    on_run: Callable[[str, str, bool], None] | None = None,
    job_name: str = "ingest_job",
    log_level: str = "ERROR",  # Dagster's warnings (data versions, previews) stay in its event log and UI
    weights: Mapping[str, int] | None = None,
    max_weight: int = DEFAULT_FILES_PER_RUN,
    workers: int = 1,
) -> RunsReport:
    """Execute ``job_name`` over ``keys``, in as few runs as the batch size allows.

    With ``workers`` > 1 the runs execute side by side, that many at a time, each in a process
    forked for it (the work is split into at least as many runs). Runs then land in a persistent
    instance as usual; with an ephemeral instance each run has its own, so only the report keeps
    the runs' outcomes.
    """
    start = time.perf_counter()
    report = RunsReport()
    if not keys:
        return report
    register_partitions(instance, keys)
    ordered = instance.get_dynamic_partitions(accession_partitions.name)
    workers = max(1, workers if _can_fork() else 1)
    if workers > 1:  # enough runs to keep every worker busy
        batch = min(batch, -(-len(keys) // workers))
        if weights:
            max_weight = min(max_weight, max(1, -(-sum(weights.get(k, 1) for k in keys) // workers)))
    ranges = partition_ranges(ordered, keys, batch, weights, max_weight)
    requests = [RunRequest(job_name=job_name, tags={**(tags or {}), **range_tags(first, last)})
                for first, last in ranges]
    workers = min(workers, len(requests))
    report.workers = workers
    if workers > 1:
        outcomes = _forked_runs(defs, instance, ordered, requests, workers, log_level)
    else:
        outcomes = (_execute_one(defs, instance, request, log_level) for request in requests)
    try:
        for (first, last), outcome in zip(ranges, outcomes, strict=True):
            if workers > 1:
                spent.update(outcome.spent)  # the run's share of Quire's time, for --timings
            report.run_ids.append(outcome.run_id)
            report.busy_s += outcome.seconds
            if not outcome.success:
                report.failed.append(outcome.run_id)
            if on_run:
                on_run(first, last, outcome.success)
    except DagsterExecutionInterruptedError:  # Dagster's name for Ctrl-C inside a run
        raise KeyboardInterrupt from None
    report.seconds = time.perf_counter() - start
    return report


def report_index_refresh(instance: DagsterInstance, index: SourceIndex, refresh: RefreshResult,
                         new_partitions: Sequence[str]) -> None:
    """The index was refreshed here rather than by the ``source_index`` asset: tell Dagster, so the
    asset shows this refresh (with the metadata the asset reports) instead of "never materialized"."""
    from dagster import AssetMaterialization

    from quire_assets.assets.catalog_assets import source_index_metadata

    instance.report_runless_asset_event(AssetMaterialization(
        "source_index", metadata=source_index_metadata(index.summary(), refresh, len(new_partitions)),
        description="The source index, refreshed by the quire command."))


def run_requests_here(catalog: Catalog, job_ids: Sequence[str], source: str, catalog_uri: str,
                      instance: DagsterInstance, progress: Callable[[int, int], None] | None = None) -> None:
    """Run researcher requests in this process, without a daemon: the sensors' plan, the same
    runs (in the code location, so the UI lists them), their outcomes written back to the jobs.
    ``quire jobs submit --wait`` and ``quire serve``'s job worker both come here."""
    from quire_assets.definitions import build_definitions
    from quire_assets.dicom.features import load_feature_sets
    from quire_assets.sensors import apply_updates, look_up_requests, plan_requests, record_run_outcome
    from quire_assets.sources import source_from_uri

    with SourceIndex(source_from_uri(source)) as index:
        if index.source.queryable:  # a PACS is asked for the requested accessions, not listed whole
            refresh = look_up_requests(catalog, index, load_feature_sets(), list(job_ids))
        else:
            refresh = index.refresh(load_feature_sets(), progress=progress)
        existing = list(instance.get_dynamic_partitions(accession_partitions.name))
        plan = plan_requests(catalog, index, existing, job_ids=list(job_ids))
        apply_updates(catalog, plan)
        new_keys = register_partitions(instance, plan.new_keys)
        if refresh is not None:
            report_index_refresh(instance, index, refresh, new_keys)
    results = execute_run_requests(build_definitions(source, catalog_uri), instance, plan.run_requests)
    ordered = list(instance.get_dynamic_partitions(accession_partitions.name))
    for result in results:
        run = instance.get_run_by_id(result.run_id)
        record_run_outcome(catalog, run, ordered, result.success,
                           None if result.success else f"run {result.run_id} failed")
