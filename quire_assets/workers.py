"""Celery workers for ``ingest_job`` on Dagster's Celery executor (``QUIRE_EXECUTOR=celery``).

    celery -A quire_assets.workers worker --queues dagster --concurrency 1

The workers and the executor read one configuration (``QUIRE_CELERY_BROKER``,
``QUIRE_CELERY_BACKEND``, ``QUIRE_CELERY_VISIBILITY_TIMEOUT``; ``docs/configuration.md``). A worker
needs what a step needs: the Dagster instance (``DAGSTER_HOME``, PostgreSQL), the catalog
(``QUIRE_CATALOG``), the source (``QUIRE_SOURCE``, mounted at the same path on every machine) and
``QUIRE_HOME`` (the source index and the intermediate Parquet files) on storage every worker reaches.
"""

from quire_assets.runtime.celery import worker_app
from quire_assets.settings import Settings

# ``celery -A`` imports this module: the worker process's edge, where its settings are read.
app, execute_plan = worker_app(Settings.from_environ())
