"""Dagster's Celery executor and its workers, configured from one ``Settings`` so that they agree.

The workers' app is built here as dagster-celery's executor builds its own (its ``make_app`` and
``create_task``, with its default config merged): the executor sends a step where these workers
listen. ``quire_assets.workers`` is the module ``celery -A`` names.
"""

from __future__ import annotations

from typing import Any

from dagster import ExecutorDefinition
from dagster_celery import celery_executor
from dagster_celery.config import DEFAULT_CONFIG, dict_wrapper
from dagster_celery.make_app import make_app
from dagster_celery.tasks import create_task

from quire_assets.settings import Settings


def celery_settings(settings: Settings) -> dict[str, Any]:
    """The Celery app's settings beyond broker and backend (dagster-celery's ``config_source``)."""
    timeout = settings.celery_visibility_timeout
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
        # A step's own output goes to the file Dagster captures it in (the webserver's stdout and
        # stderr panes, through the shared storage), not into the worker's log as WARNING lines.
        "worker_redirect_stdouts": False,
    }


def _url(settings: Settings, name: str) -> Any:
    """A set URL stays an env reference, read at run time (a Redis URL may hold a password); an
    unset one is the default, as the workers take it."""
    return {"env": settings.variable(name)} if settings.is_set(name) else getattr(settings, name)


def executor_config(settings: Settings) -> dict[str, Any]:
    """The celery executor's config: broker and backend as the workers read them."""
    return {"broker": _url(settings, "celery_broker"), "backend": _url(settings, "celery_backend"),
            "config_source": celery_settings(settings)}


def configured_executor(settings: Settings) -> ExecutorDefinition:
    return celery_executor.configured(executor_config(settings))


def worker_app(settings: Settings) -> tuple[Any, Any]:
    """The workers' Celery app and the task that executes a step, as the executor sends it."""
    app = make_app({
        "broker": settings.celery_broker, "backend": settings.celery_backend, "include": [],
        "config_source": dict_wrapper({**DEFAULT_CONFIG, **celery_settings(settings)}),
    })
    return app, create_task(app)
