"""Every transfer syntax pydicom reads is cataloged (issue 18, item 1): each of pydicom's test
files that ``pydicom.dcmread`` opens with its three UIDs becomes an instance record with the same
values, never an error, by the pydicom path and by the fast path; pixels are never decoded."""

from __future__ import annotations

import warnings
from pathlib import Path

import pydicom
import pytest
from pydicom import uid
from pydicom.pixels.utils import get_expected_length

from quire_assets.dicom.records import extract_file
from tests.conftest import PYDICOM_TEST_FILES, pydicom_files


def opens_with_uids(path: Path) -> bool:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ds = pydicom.dcmread(path)
            return all(str(ds.get(k) or "") for k in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"))
        except Exception:  # noqa: BLE001 - pydicom does not open it: not this test's files
            return False


OPENED = [p for p in pydicom_files() if opens_with_uids(p)]


def expected(ds: pydicom.Dataset) -> dict:
    accession = str(ds.get("AccessionNumber") or "") or None
    return {"study_instance_uid": ds.StudyInstanceUID, "series_instance_uid": ds.SeriesInstanceUID,
            "sop_instance_uid": ds.SOPInstanceUID, "accession_number": accession,
            "modality": str(ds.get("Modality") or "") or None,
            "transfer_syntax": str(ds.file_meta.get("TransferSyntaxUID") or "") or None}


def damaged(path: Path) -> bool:
    """Whether the file is cut, by pydicom's full read: an image without its pixel data, native
    pixel data shorter than its rows, columns, samples and frames need, or one of the files that
    pydicom's own suite names truncated (cut inside an element whose length pydicom trusts)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        full = pydicom.dcmread(path)
    if "truncated" in path.name:
        return True
    if "Image Storage" not in uid.UID(str(full.get("SOPClassUID") or "")).name:
        return False
    if "PixelData" not in full:
        return True
    if full.file_meta.TransferSyntaxUID.is_compressed:
        return False
    size = get_expected_length(full)
    return isinstance(size, int) and len(full.PixelData) < size  # a malformed NumberOfFrames sizes nothing


def found(record: dict) -> dict:
    return {**{k: record.get(k) for k in ("study_instance_uid", "series_instance_uid", "sop_instance_uid",
                                           "accession_number", "modality")},
            "transfer_syntax": record["metadata"].get("TransferSyntaxUID")}


@pytest.mark.parametrize("path", OPENED, ids=lambda p: str(p.relative_to(PYDICOM_TEST_FILES)))
@pytest.mark.parametrize("fast", [False, True], ids=["pydicom", "fast"])
def test_every_file_pydicom_opens_is_cataloged_with_its_values(path, fast, features):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(path, stop_before_pixels=True)
    record = extract_file(path, features, fast=fast)
    assert "reason" not in record, record
    assert found(record) == expected(ds)
    assert bool(record.get("damage")) == damaged(path), record.get("damage")


def test_the_walk_covers_every_kind_of_transfer_syntax():
    syntaxes = set()
    for path in OPENED:
        meta = pydicom.dcmread(path, stop_before_pixels=True).file_meta
        syntaxes.add(str(meta.get("TransferSyntaxUID")))
    assert len(OPENED) >= 140
    assert {uid.ImplicitVRLittleEndian, uid.ExplicitVRLittleEndian, uid.ExplicitVRBigEndian,
            uid.DeflatedExplicitVRLittleEndian, uid.JPEGBaseline8Bit, uid.JPEGExtended12Bit, uid.JPEGLosslessSV1,
            uid.JPEGLSLossless, uid.JPEG2000Lossless, uid.JPEG2000, uid.RLELossless} <= syntaxes


# Syntaxes none of pydicom's files use: the same encapsulated pixel data declared as each of them
# (a header reader never looks inside the fragments, so this is all it would meet).
NEWER = [uid.HTJ2KLossless, uid.HTJ2KLosslessRPCL, uid.HTJ2K, uid.JPEGLSNearLossless, uid.JPEGLossless,
         uid.JPEG2000MCLossless, uid.MPEG2MPML, uid.MPEG4HP41, uid.HEVCMP51]


@pytest.mark.parametrize("syntax", NEWER, ids=lambda s: s.name)
def test_encapsulated_syntaxes_without_test_files_are_cataloged(syntax, tmp_path, features):
    ds = pydicom.dcmread(PYDICOM_TEST_FILES / "MR_small_jp2klossless.dcm")
    ds.file_meta.TransferSyntaxUID = syntax
    ds.save_as(tmp_path / "x.dcm", enforce_file_format=True)
    for fast in (False, True):
        record = extract_file(tmp_path / "x.dcm", features, fast=fast)
        assert "reason" not in record, record
        assert found(record) == {**expected(ds), "transfer_syntax": str(syntax)}
