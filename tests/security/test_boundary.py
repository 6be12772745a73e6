"""Issue 27's findings 1 to 6 replayed by a researcher's key: channels that computed on raw values
before the policy was applied to the response. Each asserts that no hidden value reaches any
researcher-visible byte, and that oracles answer the same to a true and a false guess."""

from __future__ import annotations

import copy
import json

import pytest

from quire_assets.catalog.base import LEVELS
from tests.security.conftest import leaks

# 1. distinct on a parent of hidden keys ---------------------------------------------------------

def test_distinct_on_a_parent_and_refusals_hold_no_hidden_value(alice, hidden, raw):
    for level, field in [("studies", "metadata"), ("patients", "accession_numbers"), ("studies", "metadata.PatientID"),
                         ("series", "metadata"), ("instances", "metadata"), ("patients", "study_instance_uids")]:
        response = alice.get(f"/api/v1/{level}/distinct/{field}", params={"limit": 10_000})
        assert response.status_code == 200
        assert leaks(response, hidden) == [], (level, field)
    patient = raw["studies"][0]["patient_id"]
    for params in [{"where": json.dumps({"patient_name": patient})}, {"where": json.dumps({"nope": patient})},
                   {"sort": "patient_birth_date"}, {"fields": "metadata.PatientName"},
                   {"where": json.dumps({"metadata.PatientID": {"$gt": patient}})}]:
        assert leaks(alice.get("/api/v1/studies", params=params), hidden - {patient}) == [], params


def test_distinct_on_a_parent_under_a_strict_policy(strict_alice, strict_hidden):
    for level in ("studies", "patients", "series"):
        for field in ("metadata", "partition_key", "accession_number"):
            response = strict_alice.get(f"/api/v1/{level}/distinct/{field}", params={"limit": 10_000})
            assert leaks(response, strict_hidden) == [], (level, field)


# 2. whole-document comparisons -----------------------------------------------------------------

@pytest.mark.parametrize("operator", ["$in", "$eq", "$ne", "$nin"])
def test_a_whole_document_guess_is_no_oracle(alice, raw, operator):
    study = raw["studies"][0]
    right = study["metadata"]
    wrong = {**copy.deepcopy(right), "PatientID": right["PatientID"] + "x"}

    def count(guess: dict) -> int:
        value = [guess] if operator in ("$in", "$nin") else guess
        response = alice.get("/api/v1/studies/count", params={"where": json.dumps({"metadata": {operator: value}})})
        assert response.status_code == 200
        return response.json()["count"]

    assert count(right) == count(wrong)


# 3. ask's joins ---------------------------------------------------------------------------------

def _answer(client, question: str) -> tuple[int, object]:
    response = client.get("/api/v1/ask", params={"q": question})
    body = response.json()
    # Compare what the answer says, not the words asked.
    if isinstance(body, dict):
        body = {k: v for k, v in body.items() if k not in ("question", "detail")}
    return response.status_code, body


def test_ask_joins_on_hidden_values_are_no_oracle(alice, strict_alice, raw, hidden):
    patient = raw["patients"][0]["patient_id"]
    absent = patient[:-1] + ("9" if patient[-1] != "9" else "8")
    assert _answer(alice, f"studies with patient id {patient}") == _answer(alice, f"studies with patient id {absent}")
    assert leaks(alice.get("/api/v1/ask", params={"q": f"studies of patient {patient}"}), hidden - {patient}) == []
    ages = sorted({int(s["patient_age"][:3]) for s in raw["studies"] if s.get("patient_age")})
    oldest = ages[-1]
    assert _answer(strict_alice, f"series of patients older than {oldest - 1}") == \
        _answer(strict_alice, f"series of patients older than {oldest}")
    assert _answer(strict_alice, "series of female patients") == _answer(strict_alice, "series of male patients")
    assert _answer(strict_alice, "series of studies after 1999") == _answer(strict_alice, "series of studies after 2001")


# 4. paths carry identity; partition keys carry accession numbers ---------------------------------

def test_file_locations_are_hidden_by_default(alice, raw, hidden):
    folder = next(p for p in raw["patients"][0]["patient_id"].split("/"))
    for path, params in [("/api/v1/studies/files", {}), ("/api/v1/series/files", {"format": "json"}),
                         ("/api/v1/instances", {"limit": 10_000}), ("/api/v1/instances", {"format": "csv"}),
                         ("/api/v1/instances", {"format": "ndjson"})]:
        response = alice.get(path, params=params)
        assert response.status_code == 200 and leaks(response, hidden) == [], path
    for path, params in [("/api/v1/instances/distinct/uri", {}), ("/api/v1/instances/distinct/uris", {}),
                         ("/api/v1/instances", {"where": json.dumps({"uri": {"$regex": f"{folder}/"}})}),
                         ("/api/v1/instances", {"where": json.dumps({"sources": {"$exists": True}})}),
                         ("/api/v1/instances", {"where": json.dumps({"locations.uri": {"$regex": "/"}})}),
                         ("/api/v1/instances/distinct/locations.source", {}),
                         ("/api/v1/studies/files", {"format": "uris"})]:
        response = alice.get(path, params=params)
        assert response.status_code == 403 and leaks(response, hidden) == [], path


def test_a_hashed_accession_number_takes_the_partition_key_with_it(strict_alice, raw, strict_hidden):
    accessions = {s["accession_number"] for s in raw["studies"] if s.get("accession_number")}
    for level in LEVELS:
        response = strict_alice.get(f"/api/v1/{level}", params={"limit": 10_000})
        assert response.status_code == 200
        assert leaks(response, accessions) == [] and leaks(response, strict_hidden) == [], level
        for doc in response.json()["items"]:
            assert not set(doc) & {"patient_sex", "patient_age", "study_date", "study_description", "source"}


# 6. oddities, statistics, the order of patients, cursors, collections ----------------------------

def test_patients_come_in_pseudonym_order(alice, raw):
    from tests.api.conftest import pseudonym

    shown = [p["patient_id"] for p in alice.get("/api/v1/patients", params={"limit": 1000}).json()["items"]]
    assert shown == sorted(pseudonym(p["patient_id"]) for p in raw["patients"])
    assert shown != [pseudonym(p["patient_id"]) for p in sorted(raw["patients"], key=lambda p: p["patient_id"])]


def test_statistics_and_the_report_compute_on_the_view(strict_alice, raw, strict_hidden):
    for path in ("/api/v1/stats", "/api/v1/report"):
        response = strict_alice.get(path)
        assert response.status_code == 200 and leaks(response, strict_hidden) == [], path
    one = raw["studies"][0]
    narrowed = strict_alice.get("/api/v1/stats", params={
        "where": json.dumps({"study_instance_uid": one["study_instance_uid"]})}).json()
    assert leaks_in(narrowed, [one.get("patient_sex"), one.get("study_date")]) == []


def test_statistics_at_the_patients_level_select_on_the_view(alice, strict_alice, raw, hidden, strict_hidden):
    """``/stats?level=patients`` (the dashboard's Patients level): the patients' studies are found
    through pseudonyms in the view; a hidden patient field is refused by name."""
    women = alice.get("/api/v1/stats", params={"level": "patients", "where": json.dumps({"patient_sex": "F"})})
    assert women.status_code == 200 and leaks(women, hidden) == []
    assert women.json()["total_studies"] == sum(1 for s in raw["studies"] if s.get("patient_sex") == "F") > 0
    for client in (alice, strict_alice):
        refused = client.get("/api/v1/stats", params={"level": "patients",
                                                       "where": json.dumps({"patient_name": {"$exists": True}})})
        assert refused.status_code == 403 and "patient_name" in refused.json()["detail"]
    strict = strict_alice.get("/api/v1/stats", params={"level": "patients"})
    assert strict.status_code == 200 and leaks(strict, strict_hidden) == []


def leaks_in(doc: object, values: list) -> list:
    text = json.dumps(doc)
    return [v for v in values if v and f'"{v}"' in text]


def test_a_cursor_serves_only_its_caller_and_its_query(alice, bob):
    first = alice.get("/api/v1/series", params={"limit": 2, "where": json.dumps({"modality": "CT"})}).json()
    cursor = first["next_cursor"]
    assert cursor
    assert alice.get("/api/v1/series", params={"limit": 2, "cursor": cursor,
                                               "where": json.dumps({"modality": "CT"})}).status_code == 200
    stolen = bob.get("/api/v1/series", params={"limit": 2, "cursor": cursor, "where": json.dumps({"modality": "CT"})})
    assert stolen.status_code == 400 and "another query" in stolen.json()["detail"]
    other = alice.get("/api/v1/series", params={"limit": 2, "cursor": cursor})
    assert other.status_code == 400


def test_other_researchers_collections_are_not_readable(alice, bob, raw):
    study = raw["studies"][0]
    made = bob.post("/api/v1/collections", json={"collection_id": "bobs-secret-cohort", "cases": [
        {"accession_numbers": [study["accession_number"]]}]})
    assert made.status_code == 201
    for path, params in [("/api/v1/studies", {"where": json.dumps({"collection_ids": "bobs-secret-cohort"})}),
                         ("/api/v1/studies/distinct/collection_ids", {})]:
        response = alice.get(path, params=params)
        assert response.status_code == 403 and "bobs-secret-cohort" not in response.text, path
    assert "collection_ids" not in json.dumps(alice.get("/api/v1/studies", params={"limit": 1000}).json())
    assert alice.get("/api/v1/studies", params={"collection": "bobs-secret-cohort"}).status_code == 404
    assert alice.get("/api/v1/collections/bobs-secret-cohort").status_code == 404
    assert bob.get("/api/v1/studies/count", params={"collection": "bobs-secret-cohort"}).json()["count"] >= 1
    # Naming a collection tells nothing of another researcher's names: each researcher's are their own.
    mine = alice.post("/api/v1/collections", json={"collection_id": "bobs-secret-cohort", "cases": []})
    assert mine.status_code == 201 and mine.json()["collection_id"] == "bobs-secret-cohort"
    assert alice.get("/api/v1/studies/count", params={"collection": "bobs-secret-cohort"}).json()["count"] == 0
    assert bob.get("/api/v1/collections/bobs-secret-cohort").json()["cases"] != []
    again = alice.post("/api/v1/collections", json={"collection_id": "bobs-secret-cohort", "cases": []})
    assert again.status_code == 409 and "you have" in again.json()["detail"]


# The columnar copy (counts, facets and sorted pages' keys) -----------------------------------------


def test_the_columnar_copy_answers_only_from_the_view(strict_server, strict_alice, raw, strict_hidden):
    """The copy is built from the research view, so its answers hold what the view holds: facets,
    counts and pages carry no hidden value, a count on a raw accession number (hashed in the view)
    is 0 like a count on an invented one, and a field the policy drops is refused by name."""
    import time

    deadline = time.monotonic() + 60
    while strict_alice.get("/health").json()["columnar"] != "ready":
        strict_alice.get("/api/v1/series/count")
        assert time.monotonic() < deadline
        time.sleep(0.1)
    from quire_assets.web.pages import FILTERS

    for level in ("series", "studies", "patients"):
        for field in FILTERS[level]["facets"]:
            response = strict_alice.get(f"/api/v1/{level}/distinct/{field}")
            assert response.status_code in (200, 403) and leaks(response, strict_hidden) == [], (level, field)
    page = strict_alice.get("/api/v1/series", params={"sort": "series_description:asc", "limit": 50})
    assert page.status_code == 200 and page.json()["items"] and leaks(page, strict_hidden) == []
    accession = raw["series"][0]["accession_number"]
    for guess in (accession, "NOT-AN-ACCESSION"):
        counted = strict_alice.get("/api/v1/series/count", params={"where": json.dumps({"accession_number": guess})})
        assert counted.status_code == 200 and counted.json()["count"] == 0
    for field in ("study_date", "patient_sex"):
        refused = strict_alice.get("/api/v1/studies/count", params={"where": json.dumps({field: {"$ne": None}})})
        assert refused.status_code == 403 and field in refused.json()["detail"]
