"""Real servers for deployment tests, on 127.0.0.1: PostgreSQL (Dagster's instance) and Redis
(Celery's broker and result backend), from Debian's packages (.ci/run installs them)."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.s3.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]


def _as_postgres(args: list[str]) -> list[str]:
    # initdb refuses to run as root: CI runs as root, a developer usually not.
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


def _run(args: list[str]) -> None:
    proc = subprocess.run(args, capture_output=True, text=True)
    assert proc.returncode == 0, f"{args[-1]}: {proc.stdout[-2000:]}{proc.stderr[-2000:]}"


@contextmanager
def postgres_server(port: int, user: str = "postgres", password: str | None = None,
                    database: str = "dagster") -> Iterator[None]:
    """A PostgreSQL server on 127.0.0.1:``port`` with ``database``, ``user`` its superuser: with
    ``password``, TCP connections authenticate with it (scram), as the postgres image sets up a
    server; without, they are trusted."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    assert found, "PostgreSQL is not installed (Debian package postgresql; .ci/run installs it)"
    bin_dir = Path(found[-1]).parent
    # Not under pytest's tmp_path: the postgres user must be able to reach it.
    top = Path(tempfile.mkdtemp(prefix="quire-pg-"))
    data, pwfile = top / "data", top / "pw"
    data.mkdir()
    auth = ["-A", "trust"]
    if password is not None:
        pwfile.write_text(password)
        auth = [f"--pwfile={pwfile}", "--auth-local=trust", "--auth-host=scram-sha-256"]
    if os.geteuid() == 0:
        for path in (top, data, *([pwfile] if password is not None else [])):
            shutil.chown(path, "postgres")
    _run(_as_postgres([str(bin_dir / "initdb"), "-D", str(data), "-U", user, *auth]))
    _run(_as_postgres([str(bin_dir / "pg_ctl"), "-D", str(data), "-w", "-l", str(top / "server.log"),
                       "-o", f"-h 127.0.0.1 -p {port} -k {top}", "start"]))
    try:
        _run(_as_postgres([str(bin_dir / "createdb"), "-h", str(top), "-p", str(port), "-U", user, database]))
        yield
    finally:
        subprocess.run(_as_postgres([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"]),
                       capture_output=True)
        shutil.rmtree(top, ignore_errors=True)


@pytest.fixture
def postgres():
    port = free_port()
    with postgres_server(port):
        yield port


def postgres_env(port: int) -> dict[str, str]:
    """The environment deploy/dagster.yaml reads, for the server of the ``postgres`` fixture."""
    return {"DAGSTER_POSTGRES_HOST": "127.0.0.1", "DAGSTER_POSTGRES_PORT": str(port), "DAGSTER_POSTGRES_DB": "dagster",
            "DAGSTER_POSTGRES_USER": "postgres", "DAGSTER_POSTGRES_PASSWORD": "trust-auth-ignores-it"}


@contextmanager
def redis_server(port: int, folder: Path) -> Iterator[str]:
    """redis-server on 127.0.0.1:``port``, answering; yields its URL."""
    server = shutil.which("redis-server")
    assert server, "redis-server is not installed (Debian package redis-server; .ci/run installs it)"
    process = subprocess.Popen([server, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
                                "--dir", str(folder)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import redis

    client = redis.Redis(host="127.0.0.1", port=port)
    deadline = time.monotonic() + 20
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start") from None
            time.sleep(0.05)
    try:
        yield f"redis://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=20)


@pytest.fixture
def redis_url(tmp_path):
    with redis_server(free_port(), tmp_path) as url:
        yield url
