"""Running the asset jobs over many accession partitions, here, in the foreground: the ``quire``
command's runs and the researcher requests it (or ``quire serve``'s worker) executes.

The runs cover the partitions in ranges (``research.planning.partition_ranges``); each is created
as a run of the ``quire`` code location and executed in this process or a fork of it
(``runtime.runs``), so the Dagster UI lists it like any other.
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
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
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
from quire_assets.dicom.features import load_feature_sets
from quire_assets.jobs import INGEST_JOB, ingest_run_requests
from quire_assets.partitions import (
    accession_partitions,
    register_partitions,
    registered_keys,
    retire_partitions,
)
from quire_assets.research.planning import (
    DEFAULT_BATCH,
    DEFAULT_FILES_PER_RUN,
    apply_updates,
    look_up_requests,
    partition_ranges,
    partitions_in_use,
    plan_requests,
    record_run_outcome,
)
from quire_assets.runtime.instance import InstanceRef, ephemeral_instance
from quire_assets.runtime.runs import (
    create_located_run,
    execute_located_run,
    range_of,
    range_tags,
    run_partition_keys,
)
from quire_assets.settings import Settings, dagster_switches
from quire_assets.sources import SourceIndex
from quire_assets.sources.index import RefreshResult
from quire_assets.sources.registry import source_of
from quire_assets.timing import spent


@dataclass
class RunResult:
    run_id: str
    success: bool


def execute_run_requests(defs: Definitions, instance: DagsterInstance, run_requests: Sequence[RunRequest],
                         log_level: str = "ERROR") -> list[RunResult]:
    """Execute run requests (a sensor's, or ``run_partitions``') here, in the foreground, as runs of
    the ``quire`` code location (``instance.create_located_run``)."""
    # Dagster reads its two switches for runs over partition ranges where a run is created: an
    # explicit setting in the environment is kept (``settings.dagster_switches``).
    dagster_switches(Settings())
    results = []
    for request in run_requests:
        job = defs.resolve_job_def(request.job_name or INGEST_JOB)
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
    registered: int = 0  # accession partitions registered with Dagster
    retired: int = 0  # and retired from its store (the working set, ``partitions.py``)


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
                    first, last = range_of(requests[j].tags) or ("?", "?")
                    done[j] = outcome or RunOutcome(
                        f"{first}..{last} (its process exited with status {process.exitcode})", False, 0.0, {})
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
    job_name: str = INGEST_JOB,
    log_level: str = "ERROR",  # Dagster's warnings (data versions, previews) stay in its event log and UI
    weights: Mapping[str, int] | None = None,
    max_weight: int = DEFAULT_FILES_PER_RUN,
    workers: int = 1,
    keep: int = 0,
    in_use: Collection[str] = (),
) -> RunsReport:
    """Execute ``job_name`` over ``keys``, in as few runs as the batch size allows.

    With ``workers`` > 1 the runs execute side by side, that many at a time, each in a process
    forked for it (the work is split into at least as many runs). Runs then land in a persistent
    instance as usual; with an ephemeral instance each run has its own, so only the report keeps
    the runs' outcomes.

    With ``keep`` > 0 (the working set, ``partitions.py``) the keys are registered and run in
    waves of ``keep // 2``; before and after each wave the partitions beyond the ``keep`` newest
    are retired (not those of a failed run, those still to run, nor those ``in_use`` by researcher
    requests not over yet): Dagster's partition store never holds much more than ``keep`` and a
    wave, however many accessions one call catalogs.
    """
    start = time.perf_counter()
    report = RunsReport()
    # What must stay registered: the keys still to run, those of failed runs, and ``in_use`` (one
    # set kept up to date wave by wave, not rebuilt from the remaining keys before each).
    needed = {*keys, *in_use}
    wave = max(1, keep // 2) if keep > 0 else max(1, len(keys))
    for done in range(0, len(keys), wave):
        part = keys[done:done + wave]
        # Retired before a wave as well as after: an instance that kept every accession registered
        # (``keep`` was 0, or an earlier version) is brought to the working set before its first run.
        report.retired += len(retire_partitions(instance, keep, needed))
        report.registered += len(register_partitions(instance, part))
        ordered = registered_keys(instance)
        failed: list[str] = []
        for (first, last), success in _run_wave(defs, instance, ordered, part, tags, batch, job_name, log_level,
                                                weights, max_weight, workers, report):
            if not success:
                failed += run_partition_keys(range_tags(first, last), ordered)
            if on_run:
                on_run(first, last, success)
        needed.difference_update(part)
        needed.update(failed, in_use)
    report.retired += len(retire_partitions(instance, keep, needed))
    report.seconds = time.perf_counter() - start
    return report


def _run_wave(defs: Definitions, instance: DagsterInstance, ordered: Sequence[str], keys: Sequence[str],
              tags: dict[str, str] | None, batch: int, job_name: str, log_level: str,
              weights: Mapping[str, int] | None, max_weight: int, workers: int,
              report: RunsReport) -> Iterator[tuple[tuple[str, str], bool]]:
    """Run ``keys`` (registered, in ``ordered``); yields each range and whether its run succeeded."""
    workers = max(1, workers if _can_fork() else 1)
    if workers > 1:  # enough runs to keep every worker busy
        batch = min(batch, -(-len(keys) // workers))
        if weights:
            max_weight = min(max_weight, max(1, -(-sum(weights.get(k, 1) for k in keys) // workers)))
    ranges = partition_ranges(ordered, keys, batch, weights, max_weight)
    requests = [RunRequest(job_name=job_name, tags={**(tags or {}), **range_tags(first, last)})
                for first, last in ranges]
    workers = min(workers, len(requests))
    report.workers = max(report.workers, workers)
    if workers > 1:
        outcomes = _forked_runs(defs, instance, ordered, requests, workers, log_level)
    else:
        outcomes = (_execute_one(defs, instance, request, log_level) for request in requests)
    try:
        for run_range, outcome in zip(ranges, outcomes, strict=True):
            if workers > 1:
                spent.update(outcome.spent)  # the run's share of Quire's time, for --timings
            report.run_ids.append(outcome.run_id)
            report.busy_s += outcome.seconds
            if not outcome.success:
                report.failed.append(outcome.run_id)
            yield run_range, outcome.success
    except DagsterExecutionInterruptedError:  # Dagster's name for Ctrl-C inside a run
        raise KeyboardInterrupt from None


def report_index_refresh(instance: DagsterInstance, index: SourceIndex, refresh: RefreshResult,
                         new_partitions: int) -> None:
    """The index was refreshed here rather than by the ``source_index`` asset: tell Dagster, so the
    asset shows this refresh (with the metadata the asset reports) instead of "never materialized"."""
    from dagster import AssetMaterialization

    from quire_assets.assets.catalog_assets import source_index_metadata

    instance.report_runless_asset_event(AssetMaterialization(
        "source_index", metadata=source_index_metadata(index.summary(), refresh, new_partitions),
        description="The source index, refreshed by the quire command."))


def run_requests_here(settings: Settings, catalog: Catalog, request_ids: Sequence[str], instance: DagsterInstance,
                      progress: Callable[[int, int], None] | None = None) -> None:
    """Run researcher requests on ``settings.source`` in this process, without a daemon: the
    sensors' plan, the same runs (in the code location, so the UI lists them), their outcomes
    written back to the requests. ``quire jobs submit --wait`` and ``quire serve``'s job worker
    both come here."""
    from quire_assets.definitions import build_definitions

    features = load_feature_sets(settings.features or None)
    with SourceIndex(source_of(settings), settings.home_path, settings.fast_path) as index:
        if index.source.queryable:  # a PACS is asked for the requested accessions, not listed whole
            refresh = look_up_requests(catalog, index, features, list(request_ids))
        else:
            refresh = index.refresh(features, progress=progress)
        plan = plan_requests(catalog, index, registered_keys(instance), request_ids=list(request_ids))
        apply_updates(catalog, plan)
        new_keys = register_partitions(instance, plan.new_keys)
        if refresh is not None:
            report_index_refresh(instance, index, refresh, len(new_keys))
        requests = ingest_run_requests(plan)
        results = execute_run_requests(build_definitions(settings, settings.source, settings.catalog_uri), instance,
                                       requests)
        ordered = registered_keys(instance)
        for request, result in zip(requests, results, strict=True):
            record_run_outcome(catalog, result.run_id, request.tags, run_partition_keys(request.tags, ordered),
                               result.success, None if result.success else f"run {result.run_id} failed")
        retire_partitions(instance, settings.partitions_kept,
                          partitions_in_use(catalog, index.source.uri, index.pending(settings.catalog_uri)))
