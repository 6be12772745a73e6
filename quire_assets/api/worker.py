"""The job worker of ``quire serve``: runs pending researcher jobs without a Dagster daemon.

A process of its own (started with ``spawn``), not a thread of the server: it runs Dagster runs,
which fork, and a forked copy of a threaded server can hang on a lock another thread held.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import traceback
from multiprocessing.process import BaseProcess
from multiprocessing.synchronize import Event

POLL_SECONDS = 2.0


def pending_jobs(catalog, source: str) -> list[str]:
    """Pending jobs this worker serves: those of its source, or of none named."""
    from quire_assets.catalog.requests import serves

    return [j["job_id"] for j in catalog.find("jobs", {"status": "pending"}, projection={"job_id": 1, "source": 1},
                                              sort=[("created_at", 1)]) if serves(j, source)]


def serve_jobs(catalog_uri: str, source: str, stop: Event, server: int, poll: float = POLL_SECONDS) -> None:
    """Until ``stop`` is set, or the server that started it is gone: run the pending jobs (the
    same plan and outcome functions as ``quire jobs submit --wait``), then look again every
    ``poll`` seconds. (uvicorn ends on SIGTERM by raising the signal again, before ``quire serve``
    can set ``stop``: a worker whose parent is no longer ``server``, the process that started it,
    has been handed to another and stops itself.)"""
    from quire_assets.catalog import open_catalog
    from quire_assets.catalog.requests import update_accessions
    from quire_assets.instance import open_instance
    from quire_assets.orchestration import run_requests_here

    instance = open_instance()
    while not stop.is_set() and os.getppid() == server:
        with open_catalog(catalog_uri) as catalog:
            jobs = pending_jobs(catalog, source)
            if jobs:
                try:
                    run_requests_here(catalog, jobs, source, catalog_uri, instance)
                except Exception as exc:  # a job that cannot run says why; the worker goes on
                    traceback.print_exc(file=sys.stderr)
                    for job_id in jobs:
                        job = catalog.get("jobs", job_id) or {"accessions": {}}
                        update_accessions(catalog, job_id, {
                            a: {"status": "failed", "detail": f"{type(exc).__name__}: {exc}"[:500]}
                            for a, state in job["accessions"].items() if state["status"] in ("pending", "running")})
        stop.wait(poll)


def start_worker(catalog_uri: str, source: str) -> tuple[BaseProcess, Event]:
    context = multiprocessing.get_context("spawn")
    stop = context.Event()
    process = context.Process(target=serve_jobs, args=(catalog_uri, source, stop, os.getpid()), name="quire-job-worker",
                              daemon=True)
    process.start()
    return process, stop
