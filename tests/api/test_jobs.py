"""Jobs through the API: accession numbers as JSON, as a CSV body or an uploaded CSV file, run by
``quire serve``'s own worker (no daemon) to ``done`` / ``not_found``, with the runs in Dagster."""

from __future__ import annotations

import time

import pytest


def _finished(client, job_id: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/api/v1/jobs/{job_id}").json()
        if job["status"] not in ("pending", "running"):
            return job
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} still {job['status']}: {job}")


@pytest.mark.parametrize("how", ["json", "csv-body", "csv-upload"])
def test_a_job_runs_in_the_background_to_done_and_not_found(alice, how):
    accessions = ["LIDC0001A", "RAD/2019/0042", "MISSING-1"]
    if how == "json":
        response = alice.post("/api/v1/jobs", json={"accessions": accessions, "name": f"by {how}"})
    elif how == "csv-body":
        text = "AccessionNumber,Note\n" + "".join(f"{a},x\n" for a in accessions)
        response = alice.post("/api/v1/jobs", content=text.encode(), headers={"content-type": "text/csv"},
                              params={"name": f"by {how}"})
    else:
        text = "\ufeff" + "\n".join(accessions) + "\n"
        response = alice.post("/api/v1/jobs", files={"file": ("cases.csv", text.encode(), "text/csv")},
                              data={"name": f"by {how}"})
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["status"] == "pending" and list(job["accessions"]) == accessions and job["name"] == f"by {how}"
    final = _finished(alice, job["job_id"])
    assert {a: s["status"] for a, s in final["accessions"].items()} == {
        "LIDC0001A": "done", "RAD/2019/0042": "done", "MISSING-1": "not_found"}
    assert final["status"] == "partial" and final["accessions"]["LIDC0001A"]["run_id"]
    studies = alice.get(f"/api/v1/collections/{final['collection_id']}/studies").json()["items"]
    assert sorted(s["accession_number"] for s in studies) == ["LIDC0001A", "RAD/2019/0042"]
    listed = alice.get("/api/v1/jobs").json()
    assert job["job_id"] in {j["job_id"] for j in listed}


def test_collections_by_hand(alice):
    made = alice.post("/api/v1/collections", json={
        "collection_id": "by-hand", "name": "Lung cases", "cases": [
            {"case_id": "c1", "patient_id": "P-1", "accession_numbers": ["LIDC0001A"]}]})
    assert made.status_code == 201 and made.json()["cases"][0]["accession_numbers"] == ["LIDC0001A"]
    assert alice.post("/api/v1/collections", json={"collection_id": "by-hand"}).status_code == 409
    added = alice.post("/api/v1/collections/by-hand/cases", json={"cases": [
        {"case_id": "c2", "accession_numbers": ["RAD/2019/0042"]}]}).json()
    assert [c["case_id"] for c in added["cases"]] == ["c1", "c2"]
    studies = alice.get("/api/v1/collections/by-hand/studies").json()["items"]
    assert sorted(s["accession_number"] for s in studies) == ["LIDC0001A", "RAD/2019/0042"]
    series = alice.get("/api/v1/series", params={"collection": "by-hand", "limit": 100}).json()["items"]
    assert {s["accession_number"] for s in series} == {"LIDC0001A", "RAD/2019/0042"}
    assert alice.delete("/api/v1/collections/by-hand/cases/c1").json()["cases"][0]["case_id"] == "c2"
    assert alice.delete("/api/v1/collections/by-hand/cases/c1").status_code == 404
    assert [s["accession_number"] for s in alice.get("/api/v1/collections/by-hand/studies").json()["items"]] == [
        "RAD/2019/0042"]
    assert "by-hand" in {c["collection_id"] for c in alice.get("/api/v1/collections").json()}


def test_sigterm_to_quire_serve_leaves_no_worker_behind(api_home):
    """Issue 28: systemd and `docker stop` send SIGTERM; uvicorn re-raises it before the command's
    cleanup, so the job worker must notice that its server is gone."""
    import os
    import signal
    import time
    from pathlib import Path

    from tests.api.conftest import Server

    server = Server(api_home["env"], api_home["home"], "--source", str(api_home["archive"]))

    def children(pid: int) -> set[int]:
        found = set()
        for status in Path("/proc").glob("[0-9]*/status"):
            try:
                fields = dict(line.split(":\t", 1) for line in status.read_text().splitlines() if ":\t" in line)
            except OSError:
                continue
            if fields.get("PPid", "").strip() == str(pid):
                found.add(int(status.parent.name))
        return found

    deadline = time.monotonic() + 30
    while not (workers := children(server.proc.pid)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert workers, "quire serve started no job worker"
    os.kill(server.proc.pid, signal.SIGTERM)
    server.proc.wait(timeout=30)
    deadline = time.monotonic() + 20
    while any(Path(f"/proc/{pid}").exists() and "zombie" not in _state(pid) for pid in workers) \
            and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [pid for pid in workers if Path(f"/proc/{pid}").exists() and "zombie" not in _state(pid)]


def _state(pid: int) -> str:
    try:
        return next(line for line in open(f"/proc/{pid}/status") if line.startswith("State:")).lower()
    except (OSError, StopIteration):
        return "zombie"
