"""A researcher job from submission to per-accession statuses, through the real sensors."""

from __future__ import annotations

import json
import os

import pytest
from dagster import (
    DagsterEventType,
    DagsterInstance,
    SensorResult,
    build_run_status_sensor_context,
    build_sensor_context,
)

from quire_assets.catalog import open_catalog
from quire_assets.definitions import build_definitions
from quire_assets.dicom.features import load_feature_sets
from quire_assets.orchestration import execute_run_requests
from quire_assets.partitions import accession_partitions
from quire_assets.research.requests import parse_accessions, submit_request
from quire_assets.resources import CatalogResource, DicomSource
from quire_assets.sensors import researcher_request_done, researcher_requests
from quire_assets.settings import Settings, home_of
from quire_assets.sources import SourceIndex, source_from_uri
from tests.cli.test_ingest_e2e import quire


@pytest.fixture
def instance(tmp_path):
    (tmp_path / "dagster").mkdir()
    with DagsterInstance.local_temp(str(tmp_path / "dagster")) as inst:
        yield inst


def test_job_through_the_sensors(sample_archive, tmp_path, instance):
    catalog_uri = f"sqlite:///{tmp_path / 'catalog.db'}"
    catalog = open_catalog(catalog_uri)
    SourceIndex(source_from_uri(str(sample_archive)), home_of()).refresh(load_feature_sets())
    job = submit_request(catalog, "alice", ["LIDC0001A", "RAD/2019/0042", "NOT-THERE"], name="nodules",
                     collection="lung-cohort")
    resources = {"source": DicomSource(uri=str(sample_archive)), "catalog": CatalogResource(uri=catalog_uri)}

    result = researcher_requests(build_sensor_context(instance=instance, resources=resources))
    assert isinstance(result, SensorResult)
    [add] = result.dynamic_partitions_requests
    assert sorted(add.partition_keys) == ["LIDC0001A", "RAD/2019/0042"]
    assert len(result.run_requests) == 1
    request = result.run_requests[0]
    assert request.tags["quire/job_id"] == job["job_id"]
    assert request.tags["quire/researcher_id"] == "alice"
    now = catalog.get("jobs", job["job_id"])
    assert now["accessions"]["NOT-THERE"]["status"] == "not_found"  # at once, before any run
    assert now["accessions"]["LIDC0001A"]["status"] == "running"

    # A second tick finds nothing pending.
    again = researcher_requests(build_sensor_context(instance=instance, resources=resources))
    assert "no pending researcher requests" in again.skip_message

    # What the daemon does with the result: add the partitions, launch the runs.
    instance.add_dynamic_partitions(accession_partitions.name, list(add.partition_keys))
    defs = build_definitions(Settings.from_environ(), str(sample_archive), catalog_uri)
    [run_result] = execute_run_requests(defs, instance, result.run_requests)
    assert run_result.success
    run = instance.get_run_by_id(run_result.run_id)
    assert run.tags["quire/job_id"] == job["job_id"] and run.tags["quire/researcher_id"] == "alice"

    # The run's own RUN_SUCCESS event, as the daemon hands it to the sensor.
    [record] = instance.get_records_for_run(run.run_id, of_type=DagsterEventType.RUN_SUCCESS).records
    event = record.event_log_entry.dagster_event
    context = build_run_status_sensor_context(sensor_name="researcher_request_done", dagster_event=event,
                                              dagster_instance=instance, dagster_run=run, resources=resources)
    researcher_request_done(context)

    final = catalog.get("jobs", job["job_id"])
    assert {a: s["status"] for a, s in final["accessions"].items()} == {
        "LIDC0001A": "done", "RAD/2019/0042": "done", "NOT-THERE": "not_found"}
    assert final["accessions"]["LIDC0001A"]["run_id"] == run.run_id
    assert final["status"] == "partial"
    studies = catalog.find("studies", {"collection_ids": "lung-cohort"})
    assert sorted(s["accession_number"] for s in studies) == ["LIDC0001A", "RAD/2019/0042"]
    assert [c["accession_numbers"] for c in catalog.get("collections", "lung-cohort")["cases"]] == [
        ["LIDC0001A"], ["RAD/2019/0042"], ["NOT-THERE"]]
    assert catalog.get("researchers", "alice") is not None


def test_submit_wait_in_a_subprocess(sample_archive, tmp_path, monkeypatch):
    env = {**os.environ, "QUIRE_HOME": str(tmp_path / "home"), "DAGSTER_HOME": str(tmp_path / "dagster")}
    accessions = tmp_path / "cases.csv"
    accessions.write_text("PatientID,AccessionNumber\nLIDC-IDRI-0003,LIDC0003A\nLIDC-IDRI-0006,LIDC0006A\nX,ABSENT-1\n")
    out = quire("jobs", "submit", "--researcher", "bob", "--accessions-file", str(accessions), "--source",
                str(sample_archive), "--collection", "cohort-b", "--wait", "--format", "json", env=env, cwd=tmp_path)
    job = json.loads(out.stdout)
    assert {a: s["status"] for a, s in job["accessions"].items()} == {
        "LIDC0003A": "done", "LIDC0006A": "done", "ABSENT-1": "not_found"}
    run_id = job["accessions"]["LIDC0003A"]["run_id"]
    # The run executed in the foreground belongs to the code location like a daemon-launched one.
    monkeypatch.setenv("DAGSTER_HOME", env["DAGSTER_HOME"])
    run = DagsterInstance.get().get_run_by_id(run_id)
    assert run.job_name == "ingest_job" and run.remote_job_origin.location_name == "quire"
    assert run.tags["quire/job_id"] == job["job_id"]
    shown = json.loads(quire("jobs", "show", job["job_id"], "--format", "json", env=env, cwd=tmp_path).stdout)
    assert shown == job
    studies = json.loads(quire("query", "studies", "--where", '{"collection_ids": "cohort-b"}', "--format", "json",
                               env=env, cwd=tmp_path).stdout)
    assert sorted(s["accession_number"] for s in studies) == ["LIDC0003A", "LIDC0006A"]
    listed = quire("jobs", "list", env=env, cwd=tmp_path).stdout
    assert job["job_id"] in listed and "partial" in listed


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("AccessionNumber\nA1\nA2\n", ["A1", "A2"]),
        ("Patient,Accession Number\np,RAD/2019/0042\nq, A3 \n", ["RAD/2019/0042", "A3"]),
        ("A1\nA2\n\n# comment\nA1\n", ["A1", "A2"]),
        ("\ufeffAccessionNumber\r\nX\r\n", ["X"]),
    ],
)
def test_parse_accessions(text, expected):
    assert parse_accessions(text) == expected
