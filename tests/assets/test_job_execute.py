"""``dagster job execute`` from the shell, as CI runs it: source and catalog from the environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from quire_assets.catalog import open_catalog

DAGSTER = str(Path(sys.executable).with_name("dagster"))


def _run(args, env, cwd):
    proc = subprocess.run([DAGSTER, "job", "execute", "-m", "quire_assets.definitions", *args],
                          env=env, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def test_dagster_job_execute(sample_archive, tmp_path, monkeypatch):
    from dagster import DagsterEventType, DagsterInstance

    env = {**os.environ, "QUIRE_SOURCE": str(sample_archive), "QUIRE_HOME": str(tmp_path / "home"),
           "QUIRE_CATALOG": f"sqlite:///{tmp_path / 'catalog.db'}", "DAGSTER_HOME": str(tmp_path / "dagster")}
    env.pop("DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS", None)  # the definitions module sets it
    (tmp_path / "dagster").mkdir()
    _run(["-j", "index_job"], env, tmp_path)
    tags = {"dagster/asset_partition_range_start": "LIDC0001A", "dagster/asset_partition_range_end": "LIDC0004A"}
    _run(["-j", "ingest_job", "--tags", json.dumps(tags)], env, tmp_path)
    catalog = open_catalog(env["QUIRE_CATALOG"])
    # The range holds the accessions registered between its ends, in the index's order.
    assert catalog.distinct("studies", "accession_number") == ["LIDC0001A", "LIDC0003A", "LIDC0003X", "LIDC0004A"]
    assert catalog.integrity()["ok"]
    # One planned event per asset for the range, as the definitions module asks of Dagster.
    monkeypatch.setenv("DAGSTER_HOME", env["DAGSTER_HOME"])
    instance = DagsterInstance.get()
    [ingest_run] = [r for r in instance.get_runs() if r.job_name == "ingest_job"]
    planned = instance.get_records_for_run(ingest_run.run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION_PLANNED)
    assert len(planned.records) == 5
    # Every step ran in the run's own process (the in-process executor), not one process per step.
    starts = instance.get_records_for_run(ingest_run.run_id, of_type=DagsterEventType.STEP_START).records
    assert len(starts) == 5 and len({r.event_log_entry.dagster_event.pid for r in starts}) == 1
