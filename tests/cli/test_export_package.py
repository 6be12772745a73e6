"""`quire export --package`, `--snapshot` and `--from`: a cohort as Parquet in the shape of NCI
IDC's index, with a manifest and a README, read back by DuckDB and pandas; and, after the archive
changes, what changed since the package was written."""

from __future__ import annotations

import hashlib
import json
import shutil

import duckdb
import pandas as pd
import pydicom
import pytest
from pydicom.uid import generate_uid

from quire_assets.catalog import open_catalog
from quire_assets.research.collections import cases_of, save_collection
from tests.cli.test_ingest_e2e import ingested_home, quire

CT = '{"modality": "CT"}'


@pytest.fixture(scope="module")
def archive(sample_archive, tmp_path_factory):
    """The sample archive, with LIDC0001A's files joined by one cut in its header (an error), one
    new instance cut in its pixel data (damaged), and a copy of a slice that says otherwise (a
    conflict between the copies of one instance)."""
    root = tmp_path_factory.mktemp("package-archive") / "archive"
    shutil.copytree(sample_archive, root)
    slices = sorted(p for p in root.rglob("*.dcm") if pydicom.dcmread(p, stop_before_pixels=True).AccessionNumber
                    == "LIDC0001A")
    folder = slices[0].parent
    (folder / "cut-header.dcm").write_bytes(slices[0].read_bytes()[:1000])
    ds = pydicom.dcmread(slices[1])
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.save_as(folder / "damaged.dcm")
    data = (folder / "damaged.dcm").read_bytes()
    (folder / "damaged.dcm").write_bytes(data[: len(data) - 100])
    ds = pydicom.dcmread(slices[2])
    ds.BitsStored = 16
    ds.save_as(folder / "conflicting-copy.dcm")
    return root


@pytest.fixture(scope="module")
def cataloged(archive, tmp_path_factory):
    env, home = ingested_home(archive, tmp_path_factory)
    with open_catalog(f"sqlite:///{home / 'catalog.db'}") as catalog:
        save_collection(catalog, "chest-cohort", "operator", [
            *cases_of(["RAD/2019/0042", "LIDC0001A", "LIDC0003X", "NOPE-404"])])
    return env, home


@pytest.fixture(scope="module")
def package(cataloged, tmp_path_factory):
    env, home = cataloged
    folder = tmp_path_factory.mktemp("packages") / "chest"
    proc = quire("export", "series", "--where", CT, "--collection", "chest-cohort", "--package", str(folder),
                 "--instances", env=env, cwd=home)
    assert "not found 1, excluded 1, errors 1, damaged 1, conflicts 1" in proc.stderr, proc.stderr
    return folder, json.loads((folder / "manifest.json").read_text())


def test_the_package_holds_the_cohort_as_the_catalog_does(cataloged, package):
    env, home = cataloged
    folder, manifest = package
    with open_catalog(f"sqlite:///{home / 'catalog.db'}") as catalog:
        expected = {s["series_instance_uid"]: s for s in catalog.find("series", {
            "modality": "CT", "accession_number": {"$in": ["RAD/2019/0042", "LIDC0001A"]}})}
        instances = catalog.count("instances", {"series_instance_uid": {"$in": list(expected)}})
    series = pd.read_parquet(folder / "series.parquet")
    assert set(series["SeriesInstanceUID"]) == set(expected) and len(series) == len(expected) == 3
    for row in series.to_dict("records"):
        doc = expected[row["SeriesInstanceUID"]]
        assert row["instanceCount"] == doc["num_instances"] and row["SliceThickness"] == doc["slice_thickness"]
        assert row["AccessionNumber"] == doc["accession_number"] and row["PatientID"] == doc["patient_id"]
        assert row["StudyDescription"] == "CT CHEST W/O CONTRAST"  # the study's attributes, joined
        assert row["completeVolume"] == doc["complete_volume"] and json.loads(row["seriesTypes"]) == doc["series_types"]
    assert len(pd.read_parquet(folder / "instances.parquet")) == instances
    # The README's DuckDB query, as a reader would run it.
    readme = (folder / "README.md").read_text()
    query = readme.split("```sql\n-- duckdb\n", 1)[1].split("```", 1)[0].replace("'series.parquet'",
                                                                            f"'{folder / 'series.parquet'}'")
    assert duckdb.sql(query).fetchall() == [("CT", 3, instances)]
    assert manifest["counts"] == {"patients": 2, "studies": 2, "series": 3, "instances": instances,
                                  "instance_rows": instances}


def test_the_manifest_says_what_was_asked_of_which_catalog(cataloged, package):
    env, home = cataloged
    folder, manifest = package
    for name, digest in manifest["files"].items():
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest
    assert set(manifest["files"]) == {"series.parquet", "instances.parquet", "README.md"}
    assert manifest["query"] == {"level": "series", "where": {"modality": "CT"}, "collection": "chest-cohort"}
    with open_catalog(f"sqlite:///{home / 'catalog.db'}") as catalog:
        assert manifest["catalog"]["write_log_position"] == catalog.last_change()
    assert manifest["phi_policy"]["applied"] is False
    assert manifest["quire_version"] and manifest["created_at"].endswith("+00:00")
    short = manifest["shortfall"]
    assert short["not_found"] == ["NOPE-404"] and short["excluded"] == ["LIDC0003X"]
    assert [(e["accession_number"], e["reason"]) for e in short["errors"]] == [("LIDC0001A", "truncated")]
    readme = (folder / "README.md").read_text()
    assert "accession numbers not in the catalog: 1 (NOPE-404)" in readme
    assert "that the filter left out: 1 (LIDC0003X)" in readme and "could not be read: 1" in readme
    assert len(short["damaged"]) == len(short["conflicts"]) == 1


def test_a_snapshot_is_the_whole_catalog(cataloged, tmp_path):
    env, home = cataloged
    quire("export", "--snapshot", str(tmp_path / "snap"), env=env, cwd=home)
    with open_catalog(f"sqlite:///{home / 'catalog.db'}") as catalog:
        counts = {level: catalog.count(level) for level in ("studies", "series", "instances")}
    modalities = duckdb.sql(f"SELECT Modality, count(*) FROM '{tmp_path / 'snap' / 'series.parquet'}' "
                            "GROUP BY Modality ORDER BY Modality").fetchall()
    assert sum(n for _, n in modalities) == counts["series"] and dict(modalities)["DX"] == 1
    manifest = json.loads((tmp_path / "snap" / "manifest.json").read_text())
    assert manifest["kind"] == "snapshot" and manifest["counts"]["instances"] == counts["instances"]
    again = quire("export", "--snapshot", str(tmp_path / "snap"), env=env, cwd=home, check=False)
    assert again.returncode == 2 and "is not empty" in again.stderr


def test_from_lists_what_changed_since(archive, cataloged, package, tmp_path):
    env, home = cataloged
    folder, manifest = package
    unchanged = json.loads(quire("export", "--from", str(folder / "manifest.json"), "--format", "json",
                                 env=env, cwd=home).stdout)
    assert unchanged == {"added": [], "removed": [], "changed": []}
    by_series: dict[str, list] = {}
    for path in archive.rglob("1-*.dcm"):  # the sample's own files
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        if ds.get("AccessionNumber") in ("RAD/2019/0042", "LIDC0001A") and ds.Modality == "CT":
            by_series.setdefault(str(ds.SeriesInstanceUID), []).append(path)
    removed, changed = sorted(by_series)[:2]
    for path in by_series[removed]:
        path.unlink()
    for path in by_series[changed]:
        ds = pydicom.dcmread(path)
        ds.SeriesDescription = "RELABELLED"
        ds.save_as(path)
    source = pydicom.dcmread(by_series[sorted(by_series)[2]][0])
    source.SeriesInstanceUID, source.SOPInstanceUID = generate_uid(), generate_uid()
    source.file_meta.MediaStorageSOPInstanceUID = source.SOPInstanceUID
    source.save_as(archive / "new-series.dcm")
    quire("ingest", str(archive), env=env, cwd=home)
    changes = json.loads(quire("export", "--from", str(folder / "manifest.json"), "--format", "json",
                               env=env, cwd=home).stdout)
    assert changes == {"added": [str(source.SeriesInstanceUID)], "removed": [removed], "changed": [changed]}
    bad = tmp_path / "not-a-manifest.json"
    bad.write_text("[1, 2]")
    refused = quire("export", "--from", str(bad), env=env, cwd=home, check=False)
    assert refused.returncode == 2 and "is not a package manifest" in refused.stderr
