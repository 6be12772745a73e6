"""What can be checked of the deployment without a Docker engine."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from quire_assets.runtime.instance import checked_instance_config

ROOT = Path(__file__).resolve().parents[2]


def test_compose_services_and_readme_agree():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = set(compose["services"])
    assert {"mongodb", "postgres", "quire-code", "dagster-webserver", "dagster-daemon",
            "quire-api", "redis", "quire-worker"} <= services
    section = (ROOT / "docs" / "deployment.md").read_text()
    named = set(re.findall(r"`([a-z][a-z0-9-]+)`", section)) & (services | {"mongo", "dagster"})
    assert named and named <= services
    for name in services:
        assert f"`{name}`" in section, f"docs/deployment.md does not name {name}"


def test_no_secret_in_compose():
    text = (ROOT / "docker-compose.yml").read_text()
    for line in text.splitlines():
        if re.search(r"PASSWORD|SECRET", line) and ":" in line:
            value = line.split(":", 1)[1]
            assert "${" in value or not value.strip(), line  # every secret is a ${VARIABLE}
    compose = yaml.safe_load(text)
    assert compose["services"]["mongodb"]["environment"]["MONGO_INITDB_ROOT_PASSWORD"].startswith("${")


def test_dagster_yaml_validates_against_the_instance_schema():
    config = checked_instance_config(ROOT / "deploy")
    assert config["storage"]["postgres"]["postgres_db"]["password"] == {"env": "DAGSTER_POSTGRES_PASSWORD"}
    assert config["run_queue"]["max_concurrent_runs"] == 4
    assert config["storage"]["postgres"]["postgres_db"]["scheme"] == "postgresql+psycopg2"


def test_dockerfile_serves_the_code_location():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert ".[celery,deploy]" in dockerfile and "deploy/dagster.yaml" in dockerfile
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert "quire_assets.definitions" in compose["services"]["quire-code"]["command"]


def test_the_api_service_runs_quire_serve_behind_keys():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    api = compose["services"]["quire-api"]
    assert api["command"][:2] == ["quire", "serve"] and "--no-worker" in api["command"]
    assert api["environment"]["QUIRE_PHI_SALT"].startswith("${")
    assert api["environment"]["QUIRE_CATALOG"].startswith("mongodb://")  # the shared catalog, not a file
    assert all(port.startswith("127.0.0.1:") for port in api["ports"])


def test_celery_workers_share_what_a_step_needs():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    worker = services["quire-worker"]
    assert worker["command"][:4] == ["celery", "-A", "quire_assets.workers", "worker"]
    assert "healthcheck" in worker and "healthcheck" in services["redis"]
    env = worker["environment"]
    assert env["QUIRE_EXECUTOR"].startswith("${QUIRE_EXECUTOR:-celery")
    assert env["QUIRE_CELERY_BROKER"].startswith("redis://redis:")
    # The run's process (code location) and the workers see the archive, QUIRE_HOME and Dagster's
    # storage at the same paths: a step runs on any of them.
    for name in ("quire-code", "dagster-daemon", "quire-worker"):
        mounts = {v.removesuffix(":ro").rsplit(":", 1)[1] for v in services[name]["volumes"]}
        assert {"/archive", "/var/lib/quire", "/opt/dagster/home/storage"} <= mounts, name
    assert "dagster-celery" in (ROOT / "pyproject.toml").read_text() and ".[celery" in (ROOT / "Dockerfile").read_text()
