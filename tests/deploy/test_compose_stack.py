"""``docker-compose.yml`` started the first time, without a Docker engine: every Quire service of
the file runs as a local process, resolved as compose resolves it (``tests/deploy/compose.py``),
against a real PostgreSQL (password authentication, with a password full of ``@:/%``) and a real
Redis on 127.0.0.1. The operator's shell holds what a developer's does after the README
(``QUIRE_SOURCE`` naming a host folder). One run goes through the whole stack: the webserver
launches ``index_job``, the daemon hands it to the code server, the researcher API (keyed by the
secret file alone) takes a job, the daemon's sensor turns it into an ``ingest_job`` run whose steps
a Celery worker takes, and the webserver shows that step's logs.

MongoDB cannot run here (no server can be installed): the Quire services use the embedded catalog
on the shared ``quire-home`` volume instead, or ``QUIRE_TEST_MONGO_URI``'s server when it is set;
the URI each service would open is checked with pymongo's own parser."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from pymongo.uri_parser import parse_uri

from quire_assets.settings import Settings
from tests.deploy.compose import ROOT, Container, Network, dockerignored, image_files, load
from tests.deploy.conftest import postgres_server, redis_server

PASSWORD = "p@ss:w/rd%40?#&x"  # every character a URI gives a meaning to
QUIRE_SERVICES = ("quire-code", "dagster-webserver", "dagster-daemon", "quire-worker", "quire-api")
SERVING = ("quire-code", "dagster-webserver", "quire-api")
PORTS = {"postgres": 5432, "redis": 6379, "mongodb": 27017, "quire-code": 4000, "dagster-webserver": 3000,
         "quire-api": 8000}


def operator_env(archive: Path) -> dict[str, str]:
    """The operator's environment: ``.env.example`` with its empty values filled in (the
    passwords generated, full of characters a URI gives a meaning to), and a shell after the
    README's Dagster section. Compose refuses a required variable left unset: the example names
    every one."""
    env = {"QUIRE_SOURCE": "/tmp/archive", "QUIRE_HOME": "/home/dev/.local/share/quire"}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            env[name] = value or (PASSWORD if "PASSWORD" in name else "s" * 64)
    env["QUIRE_ARCHIVE_DIR"] = str(archive)
    return env


def test_the_file_resolves_to_a_deployment_that_can_start(tmp_path):
    services, secrets = load(tmp_path, operator_env(tmp_path / "archive"))
    for name in QUIRE_SERVICES:
        service = services[name]
        env = service.environment
        # The archive is the containers' mount, never the operator's own QUIRE_SOURCE.
        assert env["QUIRE_SOURCE"] == "/archive", name
        assert any(m.target == "/archive" and m.read_only for m in service.mounts), name
        # Every service that runs or shows a step shares Dagster's storage (the runs' stdout/stderr).
        assert {m.target for m in service.mounts} >= {"/var/lib/quire", "/opt/dagster/home/storage"}, name
        # The catalog URI each service opens holds the generated password exactly (pymongo's parser).
        parsed = parse_uri(Settings.from_environ(env).catalog_uri)
        assert (parsed["username"], parsed["password"], parsed["nodelist"]) == ("quire", PASSWORD, [("mongodb", 27017)])
        assert PASSWORD not in env["QUIRE_CATALOG"]
    for name in SERVING:
        assert services[name].healthcheck, f"{name} has no healthcheck"
    for name in ("dagster-webserver", "dagster-daemon"):
        assert services[name].depends_on["quire-code"] == "service_healthy", name
    assert services["quire-api"].environment["QUIRE_ADMIN_KEY_FILE"] == "/run/secrets/quire_admin_key"
    assert services["quire-api"].secrets == ["quire_admin_key"] and secrets["quire_admin_key"].parent.name == "secrets"


def test_the_image_runs_as_a_user_with_pinned_parts_and_a_small_context():
    dockerfile = (ROOT / "Dockerfile").read_text()
    users = [line.split()[1] for line in dockerfile.splitlines() if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0"), "the image runs as root"
    base = next(line.split()[1] for line in dockerfile.splitlines() if line.startswith("FROM "))
    services, _ = load(Path("/"), operator_env(Path("/")))
    for image in [base] + [s.raw["image"] for s in services.values() if not s.raw["image"].startswith("quire:")]:
        tag = image.split(":", 1)[1] if ":" in image else "latest"
        assert tag[:1].isdigit() and "." in tag, f"{image} is not pinned to a release"
    assert "dagster-postgres" not in dockerfile  # from pyproject.toml's deploy extra, within Dagster's range
    assert '"dagster-postgres>=0.29,<0.30"' in (ROOT / "pyproject.toml").read_text()
    for path in (".venv/bin/python", ".git/HEAD", "tests/deploy/compose.py", ".env", "secrets/quire_admin_key",
                 "benchmarks/.cache/dx-1500/a.dcm", "test-artifacts/x.png", "quire_assets/__pycache__/x.pyc"):
        assert dockerignored(path), f"{path} would be sent to the Docker build"
    _, copies = image_files()
    for path in ["pyproject.toml", "README.md", "quire_assets/cli/__init__.py"] + [
            str(source.relative_to(ROOT)) for source, _ in copies]:
        assert not dockerignored(path), f"{path} is needed by the Dockerfile"


@pytest.fixture
def postgres_service(services):
    """The postgres service as its image starts it (POSTGRES_USER, POSTGRES_PASSWORD, POSTGRES_DB),
    on the network's port for it."""
    (services, _), network = services
    env = services["postgres"].environment
    with postgres_server(network.local("postgres"), env["POSTGRES_USER"], env["POSTGRES_PASSWORD"], env["POSTGRES_DB"]):
        yield


@pytest.fixture
def services(tmp_path, sample_archive):
    project = tmp_path / "project"
    (project / "secrets").mkdir(parents=True)
    services, secrets = load(project, operator_env(sample_archive))
    return (services, secrets), Network(PORTS)


@pytest.fixture
def redis_service(services, tmp_path):
    _, network = services
    with redis_server(network.local("redis"), tmp_path):
        yield


def catalog_stand_in(env: dict[str, str], volumes: dict[str, Path]) -> dict[str, str]:
    """The catalog the processes share in place of the mongodb service (see the module's note)."""
    env = {k: v for k, v in env.items() if k not in ("QUIRE_CATALOG_USER", "QUIRE_CATALOG_PASSWORD")}
    env["QUIRE_CATALOG"] = os.environ.get("QUIRE_TEST_MONGO_URI") or f"sqlite:///{volumes['quire-home']}/catalog.db"
    return env


GRAPHQL_LOCATIONS = """{ workspaceOrError { ... on Workspace { locationEntries { name
  locationOrLoadError { __typename ... on RepositoryLocation { repositories { name jobs { name } } } } } } } }"""
GRAPHQL_EVENTS = """query($runId: ID!) { logsForRun(runId: $runId) { ... on EventConnection { events {
  __typename ... on LogsCapturedEvent { fileKey stepKeys } } } } }"""
GRAPHQL_LOGS = """query($logKey: [String!]!) { capturedLogs(logKey: $logKey) { stdout stderr } }"""
GRAPHQL_TICKS = """query($selector: SensorSelector!) { sensorOrError(sensorSelector: $selector) {
  ... on Sensor { sensorState { status ticks(limit: 20) { status } } } } }"""


def graphql(port: int, query: str, **variables) -> dict:
    answer = httpx.post(f"http://127.0.0.1:{port}/graphql", json={"query": query, "variables": variables}, timeout=60)
    assert answer.status_code == 200 and "errors" not in answer.json(), answer.text[:2000]
    return answer.json()["data"]


def wait_for(what: str, check, timeout: float = 240, logs: list[Path] = ()):
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            tails = "\n".join(f"--- {p.name}\n{p.read_text()[-2500:]}" for p in logs if p.exists())
            raise AssertionError(f"{what}: not after {timeout:.0f} s\n{tails}")
        time.sleep(1)


def test_every_quire_service_starts_and_works_together(services, postgres_service, redis_service, tmp_path,
                                                        sample_archive):
    from dagster_graphql import DagsterGraphQLClient

    (services, secrets), network = services
    key = subprocess.run([str(Path(sys.executable).parent / "quire"), "researchers", "new-key"], capture_output=True,
                         text=True, check=True).stdout.strip()
    secrets["quire_admin_key"].write_text(key + "\n")
    volumes = {name: tmp_path / "volumes" / name for name in ("quire-home", "dagster-storage")}
    for path in volumes.values():
        path.mkdir(parents=True)
    containers = {name: Container(services[name], tmp_path, network, volumes, secrets,
                                  catalog_stand_in(services[name].environment, volumes)) for name in QUIRE_SERVICES}
    logs = [c.log for c in containers.values()]
    try:
        # In compose's order: the code server first, the rest once it is healthy.
        containers["quire-code"].start()
        containers["quire-code"].wait_healthy()
        for name in ("dagster-webserver", "dagster-daemon", "quire-worker", "quire-api"):
            containers[name].start()
        for name in ("dagster-webserver", "quire-api", "quire-worker"):
            containers[name].wait_healthy()
        web = network.local("dagster-webserver")

        # The webserver lists the code location, loaded over gRPC from the code server.
        [entry] = graphql(web, GRAPHQL_LOCATIONS)["workspaceOrError"]["locationEntries"]
        assert entry["name"] == "quire" and entry["locationOrLoadError"]["__typename"] == "RepositoryLocation"
        [repository] = entry["locationOrLoadError"]["repositories"]
        assert {"index_job", "ingest_job"} <= {j["name"] for j in repository["jobs"]}

        # The first key of a new deployment is the secret file's: the API started keyed.
        api = httpx.Client(base_url=f"http://127.0.0.1:{network.local('quire-api')}",
                           headers={"Authorization": f"Bearer {key}"}, timeout=60)
        assert api.get("/health").status_code == 200
        me = api.get("/api/v1/researchers/me").json()
        assert me["researcher_id"] == "admin" and me["admin"] is True

        # A run launched from the webserver: queued, dequeued by the daemon, run by the code server.
        client = DagsterGraphQLClient("127.0.0.1", port_number=web)
        index_run = client.submit_job_execution("index_job", repository_location_name="quire",
                                                repository_name=repository["name"])
        wait_for("index_job succeeded", lambda: client.get_run_status(index_run).value == "SUCCESS", logs=logs)

        # A researcher's job: the daemon's sensor turns it into an ingest_job run; a worker takes its steps.
        accession = "LIDC0001A"  # in the sample archive
        job = api.post("/api/v1/jobs", json={"accessions": [accession, "MISSING-1"], "name": "compose"})
        assert job.status_code == 202, job.text
        job_id = job.json()["job_id"]

        def finished():
            answer = api.get(f"/api/v1/jobs/{job_id}").json()
            return answer if answer["status"] not in ("pending", "running") else None

        final = wait_for("the researcher's job finished", finished, timeout=300, logs=logs)
        assert {a: s["status"] for a, s in final["accessions"].items()} == {accession: "done", "MISSING-1": "not_found"}
        run_id = final["accessions"][accession]["run_id"]
        worker_log = containers["quire-worker"].log.read_text()
        assert "succeeded in" in worker_log, worker_log[-3000:]

        # The daemon's sensors tick.
        selector = {"repositoryLocationName": "quire", "repositoryName": repository["name"],
                    "sensorName": "researcher_requests"}
        ticks = graphql(web, GRAPHQL_TICKS, selector=selector)["sensorOrError"]["sensorState"]["ticks"]
        assert {t["status"] for t in ticks} & {"SUCCESS", "SKIPPED"}, ticks
        assert containers["dagster-daemon"].health().returncode == 0

        # The webserver shows the logs of the runs: index_job's (run by the code server's run
        # process) and ingest_job's steps (run by a worker), written to the shared storage.
        for run, step in ((index_run, "source_index"), (run_id, "dicom_files")):
            events = graphql(web, GRAPHQL_EVENTS, runId=run)["logsForRun"]["events"]
            [file_key] = {e["fileKey"] for e in events if e["__typename"] == "LogsCapturedEvent"
                          and step in (e["stepKeys"] or [])}
            shown = graphql(web, GRAPHQL_LOGS, logKey=[run, "compute_logs", file_key])["capturedLogs"]
            assert f'Started execution of step "{step}"' in (shown["stderr"] or ""), (run, step, shown)
    finally:
        for container in reversed(list(containers.values())):
            container.stop()

