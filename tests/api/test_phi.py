"""The PHI policy: a researcher never sees a patient's name or birth date, at any level, nested in
``metadata`` or in a CSV; patient IDs come hashed with the deployment's salt; an admin sees raw
values. Filters on dropped fields are refused by name; hashed fields are filtered as pseudonyms."""

from __future__ import annotations

import csv
import io
import json

import pytest

from quire_assets.catalog import open_catalog
from quire_assets.catalog.policy import PhiPolicy, PolicyError
from tests.api.conftest import pseudonym
from tests.cli.test_ingest_e2e import quire

DROPPED = ("PatientName", "patient_name", "PatientBirthDate", "patient_birth_date")


def _keys(value, found=None) -> set:
    found = set() if found is None else found
    if isinstance(value, dict):
        for key, inner in value.items():
            found.add(key)
            _keys(inner, found)
    elif isinstance(value, list):
        for inner in value:
            _keys(inner, found)
    return found


@pytest.fixture(scope="module")
def raw(api_home):
    with open_catalog(f"sqlite:///{api_home['catalog']}") as catalog:
        return {level: catalog.find(level) for level in ("patients", "studies", "series", "instances", "errors")}


def test_errors_name_files_and_are_for_admins(alice, admin, raw):
    refused = alice.get("/api/v1/errors")
    assert refused.status_code == 403 and "admin" in refused.json()["detail"]
    assert len(admin.get("/api/v1/errors", params={"limit": 10_000}).json()["items"]) == len(raw["errors"]) > 0


@pytest.mark.parametrize("level", ["patients", "studies", "series", "instances"])
def test_every_level_hides_names_and_hashes_patient_ids(alice, admin, raw, level):
    seen = alice.get(f"/api/v1/{level}", params={"limit": 10_000}).json()["items"]
    assert len(seen) == len(raw[level])
    assert not _keys(seen) & set(DROPPED)
    raw_ids = {d.get("patient_id") for d in raw[level]} | {
        d.get("metadata", {}).get("PatientID") for d in raw[level]}
    raw_ids.discard(None)
    text = json.dumps(seen)
    for patient_id in raw_ids:
        assert f'"{patient_id}"' not in text
        assert pseudonym(patient_id) in text
    if level in ("patients", "studies"):
        assert raw_ids and _keys(raw[level]) & set(DROPPED)  # the catalog does hold what is hidden
        assert admin.get(f"/api/v1/{level}", params={"limit": 10_000}).json()["items"] == sorted(
            raw[level], key=lambda d: d["patient_id" if level == "patients" else "study_instance_uid"])


def test_nested_metadata_is_covered(alice, raw):
    study = next(s for s in raw["studies"] if "PatientName" in s.get("metadata", {}))
    seen = alice.get(f"/api/v1/studies/{study['study_instance_uid']}").json()
    assert "PatientName" not in seen["metadata"] and "PatientBirthDate" not in seen["metadata"]
    assert seen["metadata"]["PatientID"] == pseudonym(study["metadata"]["PatientID"])
    assert seen["metadata"]["StudyInstanceUID"] == study["metadata"]["StudyInstanceUID"]  # the rest is kept


def test_csv_exports_follow_the_policy(alice, admin, raw):
    rows = list(csv.DictReader(io.StringIO(alice.get("/api/v1/studies", params={
        "format": "csv", "fields": "patient_id,study_date", "limit": 100}).text)))
    assert rows and list(rows[0]) == ["study_instance_uid", "patient_id", "study_date"]
    assert alice.get("/api/v1/studies", params={"format": "csv", "fields": "patient_id,patient_name"}).status_code == 403
    default = list(csv.DictReader(io.StringIO(alice.get("/api/v1/studies", params={"format": "csv"}).text)))
    assert default and "patient_name" not in default[0]
    assert {r["patient_id"] for r in rows} == {pseudonym(s["patient_id"]) for s in raw["studies"]}
    files = list(csv.DictReader(io.StringIO(alice.get("/api/v1/studies/files").text)))
    assert {r["patient_id"] for r in files} == {pseudonym(s["patient_id"]) for s in raw["studies"]}
    admin_rows = list(csv.DictReader(io.StringIO(admin.get("/api/v1/studies", params={
        "format": "csv", "fields": "patient_id,patient_name", "limit": 100}).text)))
    assert {r["patient_name"] for r in admin_rows} == {s["patient_name"] for s in raw["studies"]}


def test_a_researcher_finds_a_patient_by_the_id_they_see(alice, raw):
    study = raw["studies"][0]
    shown = pseudonym(study["patient_id"])
    studies = alice.get(f"/api/v1/patients/{shown}/studies").json()["items"]
    assert study["study_instance_uid"] in {s["study_instance_uid"] for s in studies}
    assert alice.get(f"/api/v1/patients/{shown}").json()["patient_id"] == shown
    assert alice.get(f"/api/v1/patients/{study['patient_id']}").status_code == 404  # the raw ID is not a way in


@pytest.mark.parametrize(("path", "params"), [
    ("/api/v1/studies", {"where": json.dumps({"patient_name": {"$regex": "^L"}})}),
    ("/api/v1/studies", {"where": json.dumps({"metadata.PatientBirthDate": {"$lt": "1950"}})}),
    ("/api/v1/studies", {"sort": "patient_name"}),
    ("/api/v1/studies/distinct/patient_name", {}),
    ("/api/v1/instances", {"fields": "uri"}),
])
def test_filters_on_hidden_fields_are_refused(alice, admin, path, params):
    refused = alice.get(path, params=params)
    assert refused.status_code == 403 and "PHI policy" in refused.json()["detail"]
    assert admin.get(path, params=params).status_code == 200


@pytest.mark.parametrize("where", [
    {"metadata.ReferencedImageSequence.ReferencedImageSequence.PatientName": {"$exists": True}},
    {"metadata.OtherPatientIDsSequence.PatientID": {"$in": list(range(20))}},  # past SHORT_IN: the json_each join
    {"$or": [{"metadata.ReferencedImageSequence.ReferencedImageSequence.PatientBirthDate": {"$lt": "1950"}}] * 3},
])
def test_a_hidden_attribute_inside_sequences_is_refused(alice, where):
    """Filters reach through sequences inside sequences now; a hidden attribute at the end of such a
    path is refused by its name, before any query runs (the sample holds no such sequences, so an
    admin's answer here is "unknown field")."""
    refused = alice.get("/api/v1/series", params={"where": json.dumps(where)})
    assert refused.status_code == 403 and "PHI policy" in refused.json()["detail"], refused.text


def test_a_hashed_field_is_filtered_and_sorted_as_its_pseudonyms(alice, raw):
    study = raw["studies"][0]
    by_raw = alice.get("/api/v1/studies/count", params={"where": json.dumps({"patient_id": study["patient_id"]})})
    by_pseudonym = alice.get("/api/v1/studies/count", params={
        "where": json.dumps({"patient_id": pseudonym(study["patient_id"])})})
    assert by_raw.json()["count"] == 0 and by_pseudonym.json()["count"] >= 1
    ordered = [s["patient_id"] for s in alice.get("/api/v1/studies", params={"sort": "patient_id"}).json()["items"]]
    assert ordered == sorted(pseudonym(s["patient_id"]) for s in raw["studies"])


def test_facets_of_a_hashed_field_show_pseudonyms(alice, raw):
    values = alice.get("/api/v1/studies/distinct/patient_id").json()["values"]
    assert {v["value"] for v in values} == {pseudonym(s["patient_id"]) for s in raw["studies"]}


def test_a_policy_file_of_ones_own(tmp_path):
    path = tmp_path / "policy.toml"
    path.write_text('[fields]\nPatientID = "drop"\nuri = "hash"\nStudyDate = "keep"\n')
    policy = PhiPolicy.load(path, b"salt")
    doc = {"patient_id": "P", "uri": "/a/P/1.dcm", "uris": ["x"], "metadata": {"PatientID": "P", "StudyDate": "2020"}}
    assert policy.apply(doc) == {"uri": policy.pseudonym("/a/P/1.dcm"), "uris": ["x"],
                                 "metadata": {"StudyDate": "2020"}}
    nested = {"metadata": {"Seq": [{"PatientID": "P", "Other": [{"PatientID": None}]}]}}
    assert policy.apply(nested) == {"metadata": {"Seq": [{"Other": [{}]}]}}
    path.write_text('[fields]\nPatientID = "mask"\n')
    with pytest.raises(PolicyError, match="keep, hash, drop"):
        PhiPolicy.load(path, b"")


def test_serve_refuses_a_bad_policy_file(api_home, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("fields = [")
    proc = quire("serve", "--phi-policy", str(bad), "--port", "1", env=api_home["env"], cwd=api_home["home"],
                 check=False)
    assert proc.returncode == 2 and "not TOML" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_a_hint_about_other_levels_never_reads_errors(alice):
    # The refusal names the levels that have the field; a researcher's errors are not one to look in.
    response = alice.get("/api/v1/series", params={"where": json.dumps({"metadata.ImageType": {"$nin": ["x"]}})})
    assert response.status_code == 400 and "instances documents have it" in response.json()["detail"]
