"""A real ``quire serve`` (uvicorn in a subprocess, on 127.0.0.1) over the ingested sample archive,
with three researchers' keys made by ``quire researchers add``."""

from __future__ import annotations

import hashlib
import hmac
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.cli.test_ingest_e2e import QUIRE, ingested_home, quire
from tests.s3.conftest import free_port

SALT = "a-test-deployment-salt"


def pseudonym(value: str) -> str:
    """What the default PHI policy shows a researcher of a hashed value, computed independently."""
    return hmac.new(SALT.encode(), value.encode(), hashlib.sha256).hexdigest()[:16]


class Server:
    """``quire serve`` on a free loopback port, up once /health answers."""

    def __init__(self, env: dict, home: Path, *args: str, port: int | None = None):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = home / f"serve-{self.port}.log"
        with self.log.open("w") as log:
            self.proc = subprocess.Popen([QUIRE, "serve", "--port", str(self.port), *args], env=env, cwd=home,
                                         stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"quire serve exited {self.proc.returncode}: {self.log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"quire serve did not answer: {self.log.read_text()[-3000:]}")
            time.sleep(0.2)

    def client(self, key: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def add_researcher(env: dict, home: Path, researcher_id: str, *flags: str) -> str:
    return quire("researchers", "add", researcher_id, *flags, env=env, cwd=home).stdout.strip()


@pytest.fixture(scope="session")
def api_home(sample_archive, tmp_path_factory) -> dict:
    """The sample archive ingested into a QUIRE_HOME of its own (a copy of the archive, so jobs and
    re-ingests here change no other test's files), with researchers boss (admin), alice and bob."""
    archive = tmp_path_factory.mktemp("api-archive") / "archive"
    shutil.copytree(sample_archive, archive)
    env, home = ingested_home(archive, tmp_path_factory)
    env = {**env, "QUIRE_PHI_SALT": SALT}
    keys = {name: add_researcher(env, home, name, *flags) for name, flags in (
        ("boss", ("--admin", "--name", "The Admin")), ("alice", ("--name", "Alice")), ("bob", ()))}
    return {"env": env, "home": home, "archive": archive, "keys": keys, "catalog": home / "catalog.db"}


@pytest.fixture(scope="session")
def server(api_home):
    srv = Server(api_home["env"], api_home["home"], "--source", str(api_home["archive"]))
    yield srv
    srv.stop()


@pytest.fixture
def admin(server, api_home):
    with server.client(api_home["keys"]["boss"]) as client:
        yield client


@pytest.fixture
def alice(server, api_home):
    with server.client(api_home["keys"]["alice"]) as client:
        yield client


@pytest.fixture
def bob(server, api_home):
    with server.client(api_home["keys"]["bob"]) as client:
        yield client
