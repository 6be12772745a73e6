"""The deployment's Dagster instance config against a real PostgreSQL server on 127.0.0.1:
runs of `quire ingest` land in Postgres run and event storage (.ci/run installs postgresql)."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.cli.test_ingest_e2e import quire
from tests.s3.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]


def _as_postgres(args: list[str]) -> list[str]:
    # initdb refuses to run as root: CI runs as root, a developer usually not.
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


def _run(args: list[str]) -> None:
    proc = subprocess.run(args, capture_output=True, text=True)
    assert proc.returncode == 0, f"{args[-1]}: {proc.stdout[-2000:]}{proc.stderr[-2000:]}"


@pytest.fixture
def postgres():
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    assert found, "PostgreSQL is not installed (Debian package postgresql; .ci/run installs it)"
    bin_dir = Path(found[-1]).parent
    # Not under pytest's tmp_path: the postgres user must be able to reach it.
    top = Path(tempfile.mkdtemp(prefix="quire-pg-"))
    data = top / "data"
    data.mkdir()
    if os.geteuid() == 0:
        for path in (top, data):
            shutil.chown(path, "postgres")
    port = free_port()
    _run(_as_postgres([str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"]))
    _run(_as_postgres([str(bin_dir / "pg_ctl"), "-D", str(data), "-w", "-l", str(top / "server.log"),
                       "-o", f"-h 127.0.0.1 -p {port} -k {top}", "start"]))
    try:
        subprocess.run([str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "dagster"],
                       check=True, capture_output=True)
        yield port
    finally:
        subprocess.run(_as_postgres([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"]),
                       capture_output=True)
        shutil.rmtree(top, ignore_errors=True)


def test_ingest_runs_land_in_postgres(postgres, sample_archive, tmp_path):
    dagster_home = tmp_path / "dagster"
    dagster_home.mkdir()
    shutil.copy(ROOT / "deploy" / "dagster.yaml", dagster_home / "dagster.yaml")
    env = {**os.environ, "DAGSTER_HOME": str(dagster_home), "QUIRE_HOME": str(tmp_path / "home"),
           "DAGSTER_POSTGRES_HOST": "127.0.0.1", "DAGSTER_POSTGRES_PORT": str(postgres),
           "DAGSTER_POSTGRES_DB": "dagster", "DAGSTER_POSTGRES_USER": "postgres",
           "DAGSTER_POSTGRES_PASSWORD": "trust-auth-ignores-it"}
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
