"""The fast path gives the same record as the pydicom path, file for file."""

from __future__ import annotations

import pytest

from quire_assets.dicom.features import load_feature_sets
from quire_assets.dicom.records import extract_file
from quire_assets.settings import Settings
from tests.conftest import PYDICOM_TEST_FILES, pydicom_files


@pytest.mark.parametrize("path", pydicom_files(), ids=lambda p: str(p.relative_to(PYDICOM_TEST_FILES)))
def test_fast_path_equals_pydicom_on_shipped_files(path, features):
    assert extract_file(path, features, fast=True) == extract_file(path, features, fast=False)


def test_fast_path_equals_pydicom_on_the_sample_archive(sample_archive, features, tmp_path):
    paths = sorted(p for p in sample_archive.rglob("*") if p.is_file())
    for path in paths:
        assert extract_file(path, features, fast=True) == extract_file(path, features, fast=False), path


def test_fast_path_takes_the_common_case(sample_archive, features, monkeypatch):
    """It must actually serve plain CT files (or it would be a fast path in name only)."""
    from quire_assets.dicom import records

    calls = []
    original = records.read_header
    monkeypatch.setattr(records, "read_header", lambda *a, **k: calls.append(a[0]) or original(*a, **k))
    paths = sorted(sample_archive.rglob("*.dcm"))
    for path in paths:
        extract_file(path, features, fast=True)
    assert calls == []  # no sample slice needed pydicom
    extract_file(PYDICOM_TEST_FILES / "rtplan.dcm", features, fast=True)
    assert len(calls) == 1  # no pixel data: the reference path reads it


def test_custom_feature_set_without_uids(tmp_path, sample_archive):
    (tmp_path / "instance.txt").write_text("InstanceNumber\n")
    (tmp_path / "series.txt").write_text("Modality\nGEMS_IDEN_01,0009,01\n")
    (tmp_path / "study.txt").write_text("AccessionNumber\nPatientName\n")
    custom = load_feature_sets(tmp_path)
    for path in sorted(sample_archive.rglob("*.dcm"))[:12]:
        assert extract_file(path, custom, fast=True) == extract_file(path, custom, fast=False)


def test_fast_and_plain_ingest_give_the_same_catalog(sample_archive, tmp_path, monkeypatch):
    """The whole pipeline, once with the fast path and once with pydicom for every file."""
    import shutil

    from quire_assets.catalog import COLLECTIONS, open_catalog
    from quire_assets.cli import ingest

    archive = tmp_path / "archive"
    shutil.copytree(sample_archive, archive)
    shutil.copytree(PYDICOM_TEST_FILES, archive / "pydicom")
    dumps = []
    for fast in ("1", "0"):
        monkeypatch.setenv("QUIRE_FAST_PATH", fast)
        monkeypatch.setenv("QUIRE_HOME", str(tmp_path / f"home{fast}"))
        report = ingest(str(archive), None, quiet=True)
        assert not report["failed_runs"]
        with open_catalog(Settings.from_environ().catalog_uri) as catalog:
            dumps.append({c: catalog.find(c) for c in COLLECTIONS})
    assert dumps[0] == dumps[1]
    assert len(dumps[0]["instances"]) > 100 and len(dumps[0]["errors"]) > 20
