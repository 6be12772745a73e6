"""The job worker of ``quire serve``: runs pending researcher requests without a Dagster daemon.

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

from quire_assets.settings import Settings

POLL_SECONDS = 2.0


def serve_requests(settings: Settings, stop: Event, server: int, poll: float = POLL_SECONDS) -> None:
    """Until ``stop`` is set, or the server that started it is gone: run the pending requests of
    ``settings.source`` (the same plan and outcome functions as ``quire jobs submit --wait``), then
    look again every ``poll`` seconds. (uvicorn ends on SIGTERM by raising the signal again, before
    ``quire serve`` can set ``stop``: a worker whose parent is no longer ``server``, the process
    that started it, has been handed to another and stops itself.)"""
    from quire_assets.catalog import open_catalog
    from quire_assets.orchestration import run_requests_here
    from quire_assets.research.requests import fail_unfinished, pending_requests
    from quire_assets.runtime.instance import open_instance

    instance = open_instance(settings.dagster_home)
    while not stop.is_set() and os.getppid() == server:
        with open_catalog(settings.catalog_uri) as catalog:
            request_ids = [r["job_id"] for r in pending_requests(catalog, settings.source)]
            if request_ids:
                try:
                    run_requests_here(settings, catalog, request_ids, instance)
                except Exception as exc:  # a request that cannot run says why; the worker goes on
                    traceback.print_exc(file=sys.stderr)
                    for request_id in request_ids:
                        fail_unfinished(catalog, request_id, f"{type(exc).__name__}: {exc}")
        stop.wait(poll)


def start_worker(settings: Settings) -> tuple[BaseProcess, Event]:
    context = multiprocessing.get_context("spawn")
    stop = context.Event()
    # Not a daemon: reading an archive's new files takes a pool of processes, which a daemonic
    # process may not start. It still ends with the server: ``quire serve`` stops and joins it,
    # and one whose server is gone stops itself (``serve_requests``).
    process = context.Process(target=serve_requests, args=(settings, stop, os.getpid()), name="quire-job-worker",
                              daemon=False)
    process.start()
    return process, stop
