"""`quire export`: a cohort's files, and collection membership usable at series and instance level."""

from __future__ import annotations

import csv
import io
import json

import pydicom
import pytest

from quire_assets.catalog import open_catalog
from tests.cli.test_ingest_e2e import ingested_home, quire


@pytest.fixture(scope="module")
def cohort(sample_archive, tmp_path_factory):
    env, home = ingested_home(sample_archive, tmp_path_factory)
    with open_catalog(f"sqlite:///{home / 'catalog.db'}") as catalog:
        catalog.add_to_collection("cohort-1", ["LIDC0001A", "RAD/2019/0042"])
    files = {}
    for path in sample_archive.rglob("*.dcm"):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        files[str(path)] = (ds.AccessionNumber, ds.PatientID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
    return env, home, files


def test_export_of_a_collection_lists_every_file_with_its_identifiers(cohort):
    env, home, files = cohort
    out = quire("export", "studies", "--collection", "cohort-1", env=env, cwd=home).stdout
    rows = list(csv.DictReader(io.StringIO(out)))
    expected = {uri: v for uri, v in files.items() if v[0] in ("LIDC0001A", "RAD/2019/0042")}
    assert {r["uri"] for r in rows} == set(expected) and len(rows) == len(expected)
    for r in rows:
        assert (r["accession_number"], r["patient_id"], r["series_instance_uid"], r["sop_instance_uid"]) == expected[r["uri"]]


def test_collection_membership_at_series_and_instance_level(cohort):
    env, home, files = cohort
    series = json.loads(quire("query", "series", "--collection", "cohort-1", "--format", "json", env=env, cwd=home).stdout)
    in_cohort = {v[2] for v in files.values() if v[0] in ("LIDC0001A", "RAD/2019/0042")}
    assert {s["series_instance_uid"] for s in series} == in_cohort
    thin = quire("count", "series", "--collection", "cohort-1", "--where", '{"slice_thickness": {"$lt": 1}}',
                 env=env, cwd=home).stdout.strip()
    assert int(thin) == sum(1 for s in series if (s.get("slice_thickness") or 99) < 1) > 0
    count = quire("count", "instances", "--collection", "cohort-1", env=env, cwd=home).stdout.strip()
    assert int(count) == sum(1 for v in files.values() if v[0] in ("LIDC0001A", "RAD/2019/0042"))


def test_export_to_a_file_and_refusals(cohort, tmp_path):
    env, home, files = cohort
    target = tmp_path / "cohort.json"
    proc = quire("export", "series", "--where", '{"modality": "DX"}', "--format", "json", "--out", str(target),
                 env=env, cwd=home)
    rows = json.loads(target.read_text())
    assert proc.stderr.strip() == f"{target}: {len(rows)} files" and rows
    assert {r["uri"] for r in rows} == {u for u, v in files.items() if v[0] == "LIDC0003X"}
    missing = quire("export", "instances", "--collection", "nobody", env=env, cwd=home, check=False)
    assert missing.returncode == 2 and missing.stderr.strip() == "error: no collection 'nobody'"
