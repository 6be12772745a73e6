"""A PACS that cannot describe an instance it listed: the instance is gone between the listing
(QIDO-RS) and the read (WADO-RS metadata), as when a PACS deletes or moves a study during an
ingest. The DICOMweb source records it as an error naming the instance and the PACS's answer, and
reads the rest of the series; nothing is dropped without a word."""

from __future__ import annotations

import shutil

import pydicom
import pytest

from quire_assets.dicom.features import load_feature_sets
from quire_assets.dicom.sample import write_sample_archive
from quire_assets.sources.base import FileEntry
from quire_assets.sources.registry import SourceOptions, source_from_uri
from tests.pacs.conftest import PASSWORD, USER, Pacs, dicom_files, start_orthanc


@pytest.fixture
def small_pacs(tmp_path):
    """An Orthanc of its own (the test deletes from it) holding one series of three instances."""
    (tmp_path / "orthanc").mkdir()
    process, http_port, dicom_port = start_orthanc(tmp_path / "orthanc")
    server = Pacs(http_port, dicom_port, process, {})
    write_sample_archive(tmp_path / "archive", patients=1, slices=3, matrix=16)
    try:
        for path in dicom_files(tmp_path / "archive"):
            server.files[server.load(path)] = pydicom.dcmread(path, stop_before_pixels=True)
        yield server
    finally:
        process.terminate()
        process.wait(timeout=30)
        shutil.rmtree(tmp_path / "orthanc", ignore_errors=True)


def test_an_instance_the_pacs_no_longer_describes_is_an_error_record(small_pacs):
    pacs = small_pacs
    source = source_from_uri(pacs.dicomweb, SourceOptions(username=USER, password=PASSWORD))
    series = {(ds.StudyInstanceUID, ds.SeriesInstanceUID) for ds in pacs.files.values()}
    [(study_uid, series_uid)] = [s for s in series if sum(
        (d.StudyInstanceUID, d.SeriesInstanceUID) == s for d in pacs.files.values()) > 1]
    listed = source.instances(study_uid, series_uid)
    entries = [FileEntry(source.instance_uri(study_uid, series_uid, sop), 0, "") for sop in listed]
    [(gone_id, gone)] = [(i, d) for i, d in pacs.files.items() if d.SOPInstanceUID == listed[0]]
    pacs.delete(gone_id)  # after the listing, before the read

    records = source.read_series(study_uid, series_uid, entries, load_feature_sets())

    errors = [r for r in records if "reason" in r]
    assert len(records) == len(listed)  # every listed instance is accounted for
    [error] = errors
    assert error["uri"] == source.instance_uri(study_uid, series_uid, str(gone.SOPInstanceUID))
    assert error["reason"] == "pacs_error" and "404" in error["detail"], error
    assert PASSWORD not in error["detail"]
    read = sorted(r["sop_instance_uid"] for r in records if "reason" not in r)
    assert read == sorted(listed[1:])
