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
