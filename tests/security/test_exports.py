"""Issue 27's findings 5, 6 and 11 at the core: MongoDB ``_id`` in the research view, the oddities
of hidden attributes, and CSV cells a spreadsheet would run as formulas."""

from __future__ import annotations

import csv
import io
import json
import os

import mongomock_ng
import pytest

from quire_assets.catalog.fields import csv_cells
from quire_assets.catalog.mongo import MongoCatalog
from quire_assets.catalog.policy import PhiPolicy
from quire_assets.catalog.sqlite import SqliteCatalog
from quire_assets.catalog.view import ResearchCatalog, open_view, sync
from quire_assets.dicom.rollup import patient_documents
from tests.cli.test_ingest_e2e import quire

POLICY = PhiPolicy.load(None, b"test-secret")


def _study(patient: str, uid: str, accession: str, **extra) -> dict:
    return {"study_instance_uid": uid, "accession_number": accession, "patient_id": patient,
            "patient_name": f"NAME^{patient}", "patient_birth_date": "1961-01-01", "partition_key": accession,
            "num_series": 0, "num_instances": 0, "collection_ids": [],
            "metadata": {"PatientID": patient, "PatientName": f"NAME^{patient}", "StudyInstanceUID": uid}, **extra}


@pytest.fixture(params=["sqlite", "mongodb"])
def catalog(request, tmp_path):
    if request.param == "sqlite":
        cat = SqliteCatalog(tmp_path / "catalog.db")
    else:
        cat = MongoCatalog(mongomock_ng.MongoClient(), "quire_test")
    studies = [_study("MRN0001", "1.2.1", "A1", oddities=[
        {"attribute": "PatientBirthDate", "problem": "not a DA date: '1961'"},
        {"attribute": "StudyDate", "problem": "not a DA date: '20x0'"}]), _study("MRN0002", "1.2.2", "A2")]
    cat.replace_partitions(["A1", "A2"], [], [], studies, [])
    cat.upsert("patients", patient_documents(studies))
    yield cat
    cat.close()


def test_the_view_keys_patients_by_pseudonym_on_both_backends(catalog):
    view = open_view(catalog, POLICY)
    sync(catalog, view, POLICY)
    researcher = ResearchCatalog(catalog, view, POLICY)
    for flt in ({"patient_id": {"$regex": "^MRN"}}, {"patient_id": {"$gt": "MRN0001"}}, {"patient_id": "MRN0001"},
                {"_id": {"$regex": "^MRN"}}, {"_id": "MRN0001"}):
        assert researcher.count("patients", flt) == 0, flt
        assert researcher.count("studies", flt) == 0, flt
    assert researcher.count("patients", {"patient_id": POLICY.pseudonym("MRN0001")}) == 1
    everything = json.dumps([researcher.find(level) for level in ("patients", "studies")])
    assert "MRN000" not in everything and "NAME^" not in everything and "1961" not in everything
    if isinstance(catalog, MongoCatalog):
        ids = [d["_id"] for d in view.db["patients"].find({}, {"_id": 1})]
        assert sorted(ids) == sorted(POLICY.pseudonym(p) for p in ("MRN0001", "MRN0002"))


def test_the_oddities_of_hidden_attributes_are_not_in_the_view(catalog):
    view = open_view(catalog, POLICY)
    sync(catalog, view, POLICY)
    study = ResearchCatalog(catalog, view, POLICY).get("studies", "1.2.1")
    assert study["oddities"] == [{"attribute": "StudyDate", "problem": "not a DA date: '20x0'"}]
    assert ResearchCatalog(catalog, view, POLICY).count("studies", {"oddities.problem": {"$regex": "1961"}}) == 0


def test_the_view_follows_writes_and_removals(catalog, monkeypatch):
    monkeypatch.setattr("quire_assets.catalog.view.RETAINED_CHANGES", 1)
    view = open_view(catalog, POLICY)
    sync(catalog, view, POLICY)
    catalog.replace_partitions(["A2"], [], [], [], [])  # A2's files disappeared
    catalog.replace_partitions(["A3"], [], [], [_study("MRN0003", "1.2.3", "A3")], [])
    sync(catalog, view, POLICY)
    assert sorted(view.keys("studies")) == ["1.2.1", "1.2.3"]
    last = catalog.last_change()
    assert [seq for seq, _, _ in catalog.changes_after(0, 10)] == [last]  # taken, and forgotten but the last


def test_another_policy_is_another_view_written_whole(catalog):
    strict = PhiPolicy(rules={**POLICY.rules, "AccessionNumber": "hash"}, salt=b"test-secret", default="drop")
    default_view, strict_view = open_view(catalog, POLICY), open_view(catalog, strict)
    sync(catalog, default_view, POLICY)
    sync(catalog, strict_view, strict)
    assert {d["accession_number"] for d in default_view.find("studies")} == {"A1", "A2"}
    assert {d["accession_number"] for d in strict_view.find("studies")} == {strict.pseudonym("A1"),
                                                                             strict.pseudonym("A2")}
    assert {d["partition_key"] for d in strict_view.find("studies")} == {strict.pseudonym("A1"),
                                                                          strict.pseudonym("A2")}


FORMULAS = ["=HYPERLINK(\"http://x\")", "+1+1", "-2+3", "@SUM(A1)", "\tTAB"]


def test_csv_cells_that_a_spreadsheet_would_run_are_neutralized(tmp_path):
    # (a carriage return does not survive the subprocess's text mode: checked here)
    assert csv_cells({"a": "\rCR", "b": -2, "c": "plain"}, ["a", "b", "c"]) == ["'\rCR", -2, "plain"]
    with SqliteCatalog(tmp_path / "catalog.db") as cat:
        cat.replace_partitions(["F"], [], [], [_study("P", f"1.3.{i}", "F", study_description=text)
                                               for i, text in enumerate(FORMULAS)], [])
    uri = f"sqlite:///{tmp_path / 'catalog.db'}"
    run = {"env": {**os.environ, "QUIRE_HOME": str(tmp_path)}, "cwd": tmp_path}
    out = quire("query", "studies", "--format", "csv", "--fields", "study_description", "--catalog", uri, **run).stdout
    cells = {r["study_description"] for r in csv.DictReader(io.StringIO(out))}
    assert cells == {"'" + text for text in FORMULAS}
    raw = quire("query", "studies", "--format", "csv", "--fields", "study_description", "--raw-csv",
                "--catalog", uri, **run).stdout
    assert {r["study_description"] for r in csv.DictReader(io.StringIO(raw))} == set(FORMULAS)
