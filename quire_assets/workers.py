"""Celery workers for ``ingest_job`` on Dagster's Celery executor (``QUIRE_EXECUTOR=celery``).

    celery -A quire_assets.workers worker --queues dagster --concurrency 1

The executor (``jobs.py``) and the workers read one configuration from the environment, so that
they agree: ``QUIRE_CELERY_BROKER`` and ``QUIRE_CELERY_BACKEND`` (Redis URLs) and
``QUIRE_CELERY_VISIBILITY_TIMEOUT``. A worker needs what a step needs: the Dagster instance
(``DAGSTER_HOME``, PostgreSQL), the catalog (``QUIRE_CATALOG``), the source (``QUIRE_SOURCE``,
mounted at the same path on every machine) and ``QUIRE_HOME`` (the source index and the
intermediate Parquet files) on storage every worker reaches.
"""

from __future__ import annotations

import os
from typing import Any

from dagster_celery.make_app import make_app
from dagster_celery.tasks import create_task

DEFAULT_BROKER = "redis://localhost:6379/0"
DEFAULT_BACKEND = "redis://localhost:6379/1"
# Seconds a step's message stays reserved by the worker that took it: a worker killed mid-step
# (machine lost, SIGKILL) has its step delivered to another worker after this. Longer than the
# longest step, or a slow step runs twice.
DEFAULT_VISIBILITY_TIMEOUT = 3600


def celery_settings() -> dict[str, Any]:
    """The Celery app's settings beyond broker and backend (dagster-celery's ``config_source``)."""
    timeout = int(os.environ.get("QUIRE_CELERY_VISIBILITY_TIMEOUT") or DEFAULT_VISIBILITY_TIMEOUT)
    return {
        # A step's message is acknowledged when the step ends, not when it starts: a worker lost
        # mid-step does not lose the step. A pool process that dies mid-step (OOM, SIGKILL) has its
        # step put back on the queue at once.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        # One step reserved at a time per process: a slow step does not hold others hostage.
        "worker_prefetch_multiplier": 1,
        # Workers look for such abandoned steps every few seconds (kombu's default: every 100 s).
        "broker_transport_options": {"visibility_timeout": timeout, "unacked_restore_interval": min(10, max(1, timeout // 5)),
                                     "unacked_restore_throttle": 1, "max_retries": 3, "interval_start": 0,
                                     "interval_step": 0.2, "interval_max": 0.5},
        "result_backend_transport_options": {"visibility_timeout": timeout},
        "broker_connection_retry_on_startup": True,
    }


def _url(variable: str, default: str) -> Any:
    """A set variable stays an env reference, read at run time (a Redis URL may hold a password);
    an unset one is the default, as the workers take it."""
    return {"env": variable} if os.environ.get(variable) else default


def executor_config() -> dict[str, Any]:
    """The celery executor's config: broker and backend as the workers read them."""
    return {
        "broker": _url("QUIRE_CELERY_BROKER", DEFAULT_BROKER),
        "backend": _url("QUIRE_CELERY_BACKEND", DEFAULT_BACKEND),
        "config_source": celery_settings(),
    }


def _app_args() -> dict[str, Any]:
    from dagster_celery.config import DEFAULT_CONFIG, dict_wrapper

    return {
        "broker": os.environ.get("QUIRE_CELERY_BROKER") or DEFAULT_BROKER,
        "backend": os.environ.get("QUIRE_CELERY_BACKEND") or DEFAULT_BACKEND,
        "include": [],
        # As dagster-celery's executor builds it, so the workers listen as the executor sends.
        "config_source": dict_wrapper({**DEFAULT_CONFIG, **celery_settings()}),
    }


app = make_app(_app_args())
execute_plan = create_task(app)
