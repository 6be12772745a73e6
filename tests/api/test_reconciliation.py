"""How each row of an accession list ends, through the API (its worker runs the job) and the command
line: done, ambiguous (the accession number matches two studies, listed), partial (a file of the
accession could not be read), not found, excluded by the PHI policy; and the rows that delivered
nothing resubmitted, corrected."""

from __future__ import annotations

import json
import shutil
import time

import pydicom
import pytest
from pydicom.uid import generate_uid

from tests.api.conftest import SALT, Server, add_researcher
from tests.cli.test_ingest_e2e import quire

ROWS = ["LIDC0003A", "LIDC0001A", "RAD/2019/0042", "NOPE-1"]
EXPECTED = {"LIDC0003A": "done", "LIDC0001A": "ambiguous", "RAD/2019/0042": "partial", "NOPE-1": "not_found"}


@pytest.fixture(scope="module")
def archive(sample_archive, tmp_path_factory):
    """The sample archive, with a second study under LIDC0001A's accession number and a file of
    RAD/2019/0042 cut in its header."""
    root = tmp_path_factory.mktemp("reconcile") / "archive"
    shutil.copytree(sample_archive, root)
    by_accession: dict[str, list] = {}
    for path in sorted(root.rglob("*.dcm")):
        by_accession.setdefault(pydicom.dcmread(path, stop_before_pixels=True).AccessionNumber, []).append(path)
    ds = pydicom.dcmread(by_accession["LIDC0001A"][0])
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.save_as(root / "twin-study.dcm")
    source = by_accession["RAD/2019/0042"][0]
    (source.parent / "cut.dcm").write_bytes(source.read_bytes()[:1000])
    return root


def _home(tmp_path_factory, name: str, **extra: str) -> tuple[dict, object]:
    import os

    home = tmp_path_factory.mktemp(name)
    env = {**os.environ, "QUIRE_HOME": str(home), "QUIRE_PHI_SALT": SALT, **extra}
    env.pop("QUIRE_CATALOG", None)
    return env, home


def _finished(client, job_id: str) -> dict:
    deadline = time.monotonic() + 180
    while True:
        job = client.get(f"/api/v1/jobs/{job_id}").json()
        if job["status"] not in ("pending", "running"):
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.5)


def _statuses(job: dict) -> dict:
    return {a: s["status"] for a, s in job["accessions"].items()}


def _check_details(job: dict) -> None:
    rows = job["accessions"]
    assert "2 studies carry this accession number" in rows["LIDC0001A"]["detail"]
    assert len(rows["LIDC0001A"]["studies"]) == 2
    assert rows["RAD/2019/0042"]["detail"].startswith("1 of its files could not be read (1 truncated)")
    assert "no file with this accession" in rows["NOPE-1"]["detail"]
    assert job["status"] == "partial"


def test_each_row_through_the_api(archive, tmp_path_factory):
    env, home = _home(tmp_path_factory, "api-reconcile")
    key = add_researcher(env, home, "alice")
    server = Server(env, home, "--source", str(archive))
    try:
        with server.client(key) as alice:
            submitted = alice.post("/api/v1/jobs", json={"accessions": ROWS, "name": "cohort"})
            assert submitted.status_code == 202, submitted.text
            job = _finished(alice, submitted.json()["job_id"])
            assert _statuses(job) == EXPECTED
            _check_details(job)
            wrong = alice.post(f"/api/v1/jobs/{job['job_id']}/retry", json={"corrections": {"LIDC0003A": "X"}})
            assert wrong.status_code == 400 and "LIDC0003A" in wrong.text
            retried = alice.post(f"/api/v1/jobs/{job['job_id']}/retry", json={"corrections": {"NOPE-1": "LIDC0004A"}})
            assert retried.status_code == 202, retried.text
            again = _finished(alice, retried.json()["job_id"])
            assert _statuses(again) == {"LIDC0004A": "done"}  # only the row that delivered nothing, corrected
            assert again["collection_id"] == job["collection_id"]
            members = alice.get("/api/v1/studies/count", params={"collection": job["collection_id"]}).json()
            assert members["count"] == 5  # LIDC0003A, LIDC0001A's two studies, RAD/2019/0042, LIDC0004A
    finally:
        server.stop()


def test_a_policy_hiding_accession_numbers_excludes_every_row(archive, tmp_path_factory):
    policy = tmp_path_factory.mktemp("policy") / "policy.toml"
    policy.write_text('[policy]\ndefault = "drop"\n[fields]\nAccessionNumber = "hash"\nStudyInstanceUID = "keep"\n'
                      'SeriesInstanceUID = "keep"\nSOPInstanceUID = "keep"\n')
    env, home = _home(tmp_path_factory, "excluded", QUIRE_PHI_POLICY=str(policy))
    key = add_researcher(env, home, "alice")
    server = Server(env, home, "--source", str(archive))
    try:
        with server.client(key) as alice:
            job = alice.post("/api/v1/jobs", json={"accessions": ROWS}).json()
            assert job["status"] == "failed" and set(_statuses(job).values()) == {"excluded"}
            assert "hides accession numbers" in job["accessions"]["LIDC0003A"]["detail"]
            assert alice.post(f"/api/v1/jobs/{job['job_id']}/retry", json={}).status_code == 400
    finally:
        server.stop()


def test_each_row_through_the_command_line(archive, tmp_path_factory):
    env, home = _home(tmp_path_factory, "cli-reconcile")
    job = json.loads(quire("jobs", "submit", "--researcher", "bob", "--source", str(archive), "--accessions",
                           ",".join(ROWS), "--wait", "--format", "json", env=env, cwd=home).stdout)
    assert _statuses(job) == EXPECTED
    _check_details(job)
    table = quire("jobs", "show", job["job_id"], env=env, cwd=home).stdout
    assert "ambiguous" in table and "partial" in table
    again = json.loads(quire("jobs", "retry", job["job_id"], "--fix", "NOPE-1=LIDC0004A", "--wait", "--format",
                             "json", env=env, cwd=home).stdout)
    assert _statuses(again) == {"LIDC0004A": "done"} and again["retry_of"] == job["job_id"]
    refused = quire("jobs", "retry", job["job_id"], "--fix", "LIDC0003A=X", env=env, cwd=home, check=False)
    assert refused.returncode == 2 and "not found or failed" in refused.stderr
