"""``PhiPolicy.deidentify``: a whole DICOM dataset as a researcher may retrieve it, for every real
file pydicom ships, under the default allow-list and under a deny-list that hashes UIDs."""

from __future__ import annotations

import io

import pydicom
import pytest
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID

from quire_assets.catalog.policy import IMAGE_PIXELS, PhiPolicy
from tests.conftest import pydicom_files

SALT = b"deidentify-test"
# Files with values that break their VR are among them on purpose (badVR.dcm's NumberOfFrames "1A",
# a UID with a leading zero): pydicom warns of them as it reads them.
pytestmark = pytest.mark.filterwarnings("ignore:Invalid value for VR:UserWarning")


def _readable():
    for path in pydicom_files():
        try:
            yield path, pydicom.dcmread(path)
        except (InvalidDicomError, OSError, ValueError, EOFError, TypeError, KeyError, NotImplementedError):
            continue


def _elements(ds, depth=0):
    for elem in ds:
        yield elem, depth
        if elem.VR == "SQ":
            for item in elem.value:
                yield from _elements(item, depth + 1)


@pytest.fixture(scope="module")
def files():
    found = list(_readable())
    assert len(found) > 80
    return found


def _written(ds) -> pydicom.Dataset:
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, ds, enforce_file_format=True)
    return pydicom.dcmread(io.BytesIO(buffer.getvalue()))


def test_the_default_policy_keeps_only_what_it_lists(files):
    policy = PhiPolicy.load(None, SALT)
    shown = {k for k, v in policy.rules.items() if v in ("keep", "hash")}
    for path, original in files:
        out = policy.deidentify(original)
        for elem, depth in _elements(out):
            assert not elem.tag.is_private, path.name
            if depth == 0:
                assert elem.keyword in shown | IMAGE_PIXELS | {"DeidentificationMethod"} or elem.VR == "UI", \
                    (path.name, elem.keyword)
        for keyword in ("PatientName", "PatientBirthDate", "InstitutionName", "ReferringPhysicianName", "StudyID"):
            assert keyword not in out
        if original.get("PatientID"):
            assert out.PatientID == policy.pseudonym(str(original.PatientID))
        for keyword in ("SOPInstanceUID", "StudyInstanceUID", "FrameOfReferenceUID"):
            assert out.get(keyword) == original.get(keyword)
        assert "Quire PHI policy" in out.DeidentificationMethod
        if "PixelData" in original and "SOPInstanceUID" in original:
            back = _written(out)
            assert back.PixelData == original.PixelData
            assert back.file_meta.MediaStorageSOPInstanceUID == original.SOPInstanceUID


def _uids(ds) -> set[str]:
    """The instance UIDs of a dataset at any depth (not the standard's registered class UIDs)."""
    found = set()
    for elem, _ in _elements(ds):
        if elem.VR == "UI" and elem.value:
            found.update(str(v) for v in (elem.value if elem.VM > 1 else [elem.value]) if UID(str(v)).name == str(v))
    return found


def test_hashed_uids_stay_valid_and_references_still_resolve(tmp_path, files):
    policy_file = tmp_path / "policy.toml"
    policy_file.write_text('[policy]\ndefault = "keep"\n[fields]\nPatientName = "drop"\nStudyInstanceUID = "hash"\n'
                           'SOPInstanceUID = "hash"\nSeriesInstanceUID = "hash"\nStudyDate = "hash"\n')
    policy = PhiPolicy.load(policy_file, SALT)
    assert policy.uid_action == "hash"
    checked = 0
    for path, original in files:
        out = policy.deidentify(original)
        before, after = _uids(original), _uids(out)
        assert all(u.startswith("2.25.") and len(u) <= 64 for u in after), path.name
        # Every UID, a reference inside a sequence or a private block too, is hashed the one way:
        # a reference to another instance is that instance's hashed SOP Instance UID.
        assert after == {policy.uid_pseudonym(u) for u in before}, path.name
        assert "StudyDate" not in out, "a hashed date cannot hold a pseudonym: it is removed"
        if "SOPInstanceUID" in original:
            assert out.SOPInstanceUID == policy.uid_pseudonym(str(original.SOPInstanceUID))
        checked += bool(before)
    assert checked > 80
