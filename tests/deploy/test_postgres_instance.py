"""The deployment's Dagster instance config against a real PostgreSQL server on 127.0.0.1:
runs of `quire ingest` land in Postgres run and event storage (.ci/run installs postgresql)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from tests.cli.test_ingest_e2e import quire
from tests.deploy.conftest import postgres_env

ROOT = Path(__file__).resolve().parents[2]


def test_ingest_runs_land_in_postgres(postgres, sample_archive, tmp_path):
    dagster_home = tmp_path / "dagster"
    dagster_home.mkdir()
    shutil.copy(ROOT / "deploy" / "dagster.yaml", dagster_home / "dagster.yaml")
    env = {**os.environ, "DAGSTER_HOME": str(dagster_home), "QUIRE_HOME": str(tmp_path / "home"),
           **postgres_env(postgres)}
    out = quire("ingest", str(sample_archive), env=env, cwd=tmp_path)
    assert "79 instances" in out.stdout
    check = subprocess.run(
        [str(Path(os.sys.executable)), "-c",
         "from dagster import DagsterInstance; i = DagsterInstance.get(); "
         "print(type(i.run_storage).__name__, *sorted({r.status.value for r in i.get_runs()}), len(i.get_runs()))"],
        env=env, capture_output=True, text=True, check=True)
    storage, status, runs = check.stdout.split()
    # Runs from the forked workers (one per core) all landed in PostgreSQL, all succeeded.
    assert (storage, status) == ("PostgresRunStorage", "SUCCESS") and int(runs) >= min(2, os.cpu_count() or 1)
    assert not list(dagster_home.glob("history")), "runs must not fall back to SQLite files"
