"""``deploy/helm/values.yaml`` for Dagster's Helm chart, checked against what Quire's processes read.

The chart itself cannot be rendered here: it is published only on its Helm repository, which this
machine cannot reach, and a fetched copy may not be committed. These checks hold the values file to
Quire's side of the contract: the variables are settings Quire reads, the mounts are where those
settings point, the probe and the image's user are the Dockerfile's, the Secrets are the ones the
deployment guide tells the operator to create."""

from __future__ import annotations

import importlib
import re
from dataclasses import fields

import dagster
import yaml
from pymongo.uri_parser import parse_uri

from quire_assets.settings import Settings
from tests.deploy.compose import ROOT

VALUES = yaml.safe_load((ROOT / "deploy" / "helm" / "values.yaml").read_text())
[CODE] = VALUES["dagster-user-deployments"]["deployments"]
ENV = {e["name"]: e["value"] for e in CODE["env"]}
VARIABLES = {f.metadata["variable"] for f in fields(Settings)}


def test_the_chart_release_is_that_of_quires_dagster():
    [pinned] = re.findall(r"--version (\d+\.\d+)\.\d+", (ROOT / "deploy" / "helm" / "values.yaml").read_text())
    assert dagster.__version__.startswith(pinned + ".")


def test_every_variable_is_a_setting_and_the_catalog_opens_with_the_secret():
    assert set(ENV) <= VARIABLES, set(ENV) - VARIABLES
    uri = Settings.from_environ({**ENV, "QUIRE_CATALOG_PASSWORD": "g3n:@/%"}).catalog_uri
    assert parse_uri(uri)["password"] == "g3n:@/%"
    assert ENV["QUIRE_EXECUTOR"] in ("in_process", "multiprocess")  # no Celery workers in this chart's setup


def test_the_code_location_and_its_mounts():
    args = CODE["codeServerArgs"]
    importlib.import_module(args[args.index("-m") + 1])
    probe = CODE["readinessProbe"]["exec"]["command"]
    assert probe[:3] == ["dagster", "api", "grpc-health-check"] and probe[probe.index("-p") + 1] == str(CODE["port"])
    mounts = {m["mountPath"]: m for m in CODE["volumeMounts"]}
    assert {m["name"] for m in CODE["volumeMounts"]} <= {v["name"] for v in CODE["volumes"]}
    assert ENV["QUIRE_HOME"] in mounts and mounts[ENV["QUIRE_SOURCE"]]["readOnly"] is True
    assert CODE["includeConfigInLaunchedRuns"]["enabled"] is True  # run pods get the same env and volumes
    assert not CODE["image"]["tag"].startswith("latest")


def test_the_pods_run_as_the_images_user():
    dockerfile = (ROOT / "Dockerfile").read_text()
    [uid] = re.findall(r"useradd .*--uid (\d+)", dockerfile)
    assert CODE["podSecurityContext"]["runAsUser"] == int(uid) and CODE["podSecurityContext"]["runAsNonRoot"]


def test_the_deployment_guide_creates_every_secret_the_values_name():
    guide = (ROOT / "docs" / "deployment.md").read_text()
    named = {s["name"] for s in CODE["envSecrets"]} | {
        s["name"] for s in VALUES["runLauncher"]["config"]["k8sRunLauncher"]["envSecrets"]}
    named.add("dagster-postgresql-secret")
    for secret in named:
        assert re.search(rf"kubectl (?:-n \S+ )?create secret generic {secret}\b", guide), secret
    assert re.search(r"kubectl (?:-n \S+ )?create secret generic quire-catalog[^\n]*QUIRE_CATALOG_PASSWORD", guide)
    assert re.search(r"kubectl (?:-n \S+ )?create secret generic dagster-postgresql-secret[^\n]*postgresql-password", guide)
