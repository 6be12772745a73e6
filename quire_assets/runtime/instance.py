"""The Dagster instance Quire's runs write to: ``$DAGSTER_HOME``'s (where the Dagster UI reads), or
an ephemeral one with the batched in-memory event storage (``runtime.storage``)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from dagster import DagsterInstance
from dagster._core.instance import InstanceType
from dagster._core.instance.config import dagster_instance_config
from dagster._core.instance.ref import InstanceRef
from dagster._core.launcher.sync_in_memory_run_launcher import SyncInMemoryRunLauncher
from dagster._core.run_coordinator import DefaultRunCoordinator
from dagster._core.storage.noop_compute_log_manager import NoOpComputeLogManager
from dagster._core.storage.root import TemporaryLocalArtifactStorage
from dagster._core.storage.runs import InMemoryRunStorage

from quire_assets.runtime.storage import BatchedInMemoryEventLogStorage

__all__ = ["InstanceRef", "LOCAL_INSTANCE_YAML", "checked_instance_config", "ephemeral_instance", "open_instance"]

# What ``quire`` writes into a DAGSTER_HOME that has no dagster.yaml yet: Dagster's default SQLite
# layout (the same files: ``history/runs.db``, ``history/runs/*.db``, ``schedules/schedules.db``, so
# an existing history is kept), with batched event writes. It names Quire's classes only.
LOCAL_INSTANCE_YAML = """\
# Written by quire: Dagster's default SQLite storage, with event batches stored in one transaction
# (quire_assets/runtime/storage.py). The webserver and daemon read this file too.
run_storage:
  module: quire_assets.runtime.storage
  class: SqliteRunStorage
  config:
    base_dir: {runs}
event_log_storage:
  module: quire_assets.runtime.storage
  class: BatchedSqliteEventLogStorage
  config:
    base_dir: {events}
schedule_storage:
  module: quire_assets.runtime.storage
  class: SqliteScheduleStorage
  config:
    base_dir: {schedules}
telemetry:
  enabled: false
"""


def ephemeral_instance() -> DagsterInstance:
    """``DagsterInstance.ephemeral()``, with the batched in-memory event log storage."""
    return DagsterInstance(
        instance_type=InstanceType.EPHEMERAL, local_artifact_storage=TemporaryLocalArtifactStorage(),
        run_storage=InMemoryRunStorage(), event_storage=BatchedInMemoryEventLogStorage(),
        compute_log_manager=NoOpComputeLogManager(), run_coordinator=DefaultRunCoordinator(),
        run_launcher=SyncInMemoryRunLauncher())


def open_instance(home: str | Path | None, announce: Callable[[Path], None] | None = None) -> DagsterInstance:
    """The instance of ``home`` (``DAGSTER_HOME``, where the Dagster UI reads), else an ephemeral one.

    A home with no ``dagster.yaml`` gets Quire's (``LOCAL_INSTANCE_YAML``): Dagster's default
    storage layout with batched event writes; ``announce`` is told the file's path.
    A ``dagster.yaml`` that exists is never changed.
    """
    if not home:
        return ephemeral_instance()
    path = Path(home)
    path.mkdir(parents=True, exist_ok=True)
    config = path / "dagster.yaml"
    if not config.exists():
        resolved = path.resolve()
        # JSON strings are YAML strings: a folder name with ': ' or '#' stays one value.
        config.write_text(LOCAL_INSTANCE_YAML.format(**{k: json.dumps((resolved / v).as_posix()) for k, v in (
            ("runs", "history"), ("events", "history/runs"), ("schedules", "schedules"))}))
        if announce:
            announce(config)
    return DagsterInstance.from_config(str(path.resolve()))


def checked_instance_config(home: str | Path) -> dict:
    """``home``'s ``dagster.yaml`` as Dagster reads it, checked against its instance schema without
    connecting to any storage (an error names what is wrong). For deployments' files."""
    config, _ = dagster_instance_config(str(home), "dagster.yaml")
    return config
