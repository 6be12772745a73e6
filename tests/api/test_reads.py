"""Every catalog read route of a running ``quire serve``, checked against the catalog file itself."""

from __future__ import annotations

import csv
import io
import json

import pytest

from quire_assets.catalog import open_catalog


@pytest.fixture(scope="module")
def truth(api_home):
    with open_catalog(f"sqlite:///{api_home['catalog']}") as catalog:
        return {level: catalog.find(level) for level in ("patients", "studies", "series", "instances", "errors")}


@pytest.mark.parametrize("level", ["patients", "studies", "series", "instances", "errors"])
def test_every_level_lists_pages_and_counts(admin, truth, level):
    key = {"patients": "patient_id", "studies": "study_instance_uid", "series": "series_instance_uid",
           "instances": "sop_instance_uid", "errors": "uri"}[level]
    seen, cursor = [], None
    for _ in range(50):
        body = admin.get(f"/api/v1/{level}", params={"limit": 4, **({"cursor": cursor} if cursor else {})}).json()
        assert body["count"] == len(body["items"]) <= 4
        seen += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(truth[level], key=lambda d: d[key])
    assert admin.get(f"/api/v1/{level}/count").json() == {"count": len(truth[level])}


def test_a_filter_selects_what_the_catalog_selects(admin, truth):
    where = {"modality": "CT", "slice_thickness": {"$lt": 1.5}}
    got = admin.get("/api/v1/series", params={"where": json.dumps(where), "limit": 100}).json()["items"]
    expected = [s for s in truth["series"] if s.get("modality") == "CT" and (s.get("slice_thickness") or 99) < 1.5]
    assert expected and {s["series_instance_uid"] for s in got} == {s["series_instance_uid"] for s in expected}
    posted = admin.post("/api/v1/series/search", json={"where": where, "fields": ["modality"], "limit": 100}).json()
    assert [s["series_instance_uid"] for s in posted["items"]] == [s["series_instance_uid"] for s in got]
    assert all(set(s) == {"series_instance_uid", "modality"} for s in posted["items"])
    assert admin.get("/api/v1/series/count", params={"where": json.dumps(where)}).json()["count"] == len(expected)


def test_sorted_pages_follow_the_sort(admin, truth):
    order, cursor = [], None
    while True:
        body = admin.get("/api/v1/series", params={"sort": "slice_thickness:desc", "limit": 3,
                                                    **({"cursor": cursor} if cursor else {})}).json()
        order += [s["series_instance_uid"] for s in body["items"]]
        cursor = body["next_cursor"]
        if not cursor:
            break
    # Descending: the values high to low, ties in key order high to low too, missing values last.
    expected = sorted(truth["series"], key=lambda s: (s.get("slice_thickness") is not None,
                                                      s.get("slice_thickness") or 0, s["series_instance_uid"]),
                      reverse=True)
    assert order == [s["series_instance_uid"] for s in expected]


def test_csv_and_ndjson_stream_the_page_with_its_cursor(admin, truth):
    response = admin.get("/api/v1/series", params={"format": "csv", "limit": 4, "fields": "modality,slice_thickness"})
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    first = sorted(truth["series"], key=lambda s: s["series_instance_uid"])
    assert [r["series_instance_uid"] for r in rows] == [s["series_instance_uid"] for s in first[:4]]
    assert list(rows[0]) == ["series_instance_uid", "modality", "slice_thickness"]
    cursor = response.headers["x-next-cursor"]
    nd = admin.get("/api/v1/series", params={"format": "ndjson", "limit": 100, "cursor": cursor})
    assert nd.headers["content-type"].startswith("application/x-ndjson") and nd.headers["x-next-cursor"] == ""
    assert [json.loads(line) for line in nd.text.splitlines()] == first[4:]


def test_distinct_values_come_with_their_counts(admin, truth):
    body = admin.get("/api/v1/series/distinct/modality").json()
    counts = {}
    for s in truth["series"]:
        counts[s["modality"]] = counts.get(s["modality"], 0) + 1
    assert body["field"] == "modality" and {v["value"]: v["count"] for v in body["values"]} == counts
    manufacturers = admin.get("/api/v1/studies/distinct/accession_number",
                              params={"where": json.dumps({"accession_number": {"$regex": "^LIDC"}})}).json()
    assert {v["value"] for v in manufacturers["values"]} == {
        s["accession_number"] for s in truth["studies"] if (s.get("accession_number") or "").startswith("LIDC")}


def test_navigation_from_patient_to_instances(admin, truth):
    study = truth["studies"][0]
    assert admin.get(f"/api/v1/studies/{study['study_instance_uid']}").json() == study
    series = admin.get(f"/api/v1/studies/{study['study_instance_uid']}/series").json()["items"]
    assert {s["series_instance_uid"] for s in series} == {
        s["series_instance_uid"] for s in truth["series"] if s["study_instance_uid"] == study["study_instance_uid"]}
    one = series[0]["series_instance_uid"]
    assert admin.get(f"/api/v1/series/{one}").json()["series_instance_uid"] == one
    instances = admin.get(f"/api/v1/series/{one}/instances", params={"limit": 1000}).json()["items"]
    assert len(instances) == series[0]["num_instances"]
    patient = study["patient_id"]
    studies = admin.get(f"/api/v1/patients/{patient}/studies").json()["items"]
    assert {s["study_instance_uid"] for s in studies} == {
        s["study_instance_uid"] for s in truth["studies"] if s.get("patient_id") == patient}
    assert admin.get(f"/api/v1/instances/{instances[0]['sop_instance_uid']}").json() == instances[0]
    assert admin.get("/api/v1/studies/1.2.3.nope").status_code == 404


def test_statistics_and_the_report(admin, truth):
    stats = admin.get("/api/v1/stats").json()
    assert stats["total_studies"] == len(truth["studies"]) and stats["total_series"] == len(truth["series"])
    where = json.dumps({"accession_number": "LIDC0001A"})
    narrowed = admin.get("/api/v1/stats", params={"where": where}).json()
    assert narrowed["total_studies"] == 1
    page = admin.get("/api/v1/report", params={"where": where})
    assert page.headers["content-type"].startswith("text/html")
    assert "Quire summary statistics" in page.text and "LIDC0001A" in page.text
    assert '"total_studies": 1' in page.text.replace("&quot;", '"')


def test_files_export_lists_every_file(admin, truth):
    rows = list(csv.DictReader(io.StringIO(admin.get("/api/v1/studies/files").text)))
    expected = sorted(u for i in truth["instances"] for u in i["uris"])
    assert sorted(r["uri"] for r in rows) == expected
    as_json = admin.get("/api/v1/series/files", params={"format": "json"}).json()
    assert sorted(r["uri"] for r in as_json) == expected


def test_file_manifests(admin, truth):
    uris = admin.get("/api/v1/series/files", params={"format": "uris"}).text.splitlines()
    assert sorted(uris) == sorted(u for i in truth["instances"] for u in i["uris"])
    assert admin.get("/api/v1/series/files", params={"format": "s5cmd"}).text == ""  # no s3:// file here


def test_a_report_over_a_collection_is_named_after_the_callers_own(admin, alice, truth):
    """An admin's collection and a researcher's may share a name: the researcher's report is named
    after theirs (what ``collection=`` resolved to), never after the admin's."""
    from bs4 import BeautifulSoup

    accession = truth["studies"][0]["accession_number"]
    cases = [{"accession_numbers": [accession]}]
    made = admin.post("/api/v1/collections", json={"collection_id": "same-name", "name": "The admin's own title",
                                                   "cases": cases})
    assert made.status_code == 201, made.text
    made = alice.post("/api/v1/collections", json={"collection_id": "same-name", "name": "Alice's cohort",
                                                   "cases": cases})
    assert made.status_code == 201, made.text
    page = alice.get("/api/v1/report", params={"collection": "same-name"})
    assert page.status_code == 200
    soup = BeautifulSoup(page.text, "html.parser")
    assert soup.h1.text == "Quire report: Alice's cohort" and "admin's own title" not in page.text
    assert BeautifulSoup(admin.get("/api/v1/report", params={"collection": "same-name"}).text,
                         "html.parser").h1.text == "Quire report: The admin's own title"
