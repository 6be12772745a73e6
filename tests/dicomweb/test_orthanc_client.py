"""A real Orthanc with Quire as one of its remote DICOMweb servers (its DICOMweb plugin's
``/dicom-web/servers/quire/...`` routes): Orthanc searches Quire's catalog and retrieves a study from
it into its own store, with a researcher's key in the header Orthanc sends. What Orthanc stores is
what that researcher may see: the PHI policy applied to every file."""

from __future__ import annotations

import pydicom
import pytest
import requests

from tests.api.conftest import pseudonym
from tests.pacs.conftest import PASSWORD, USER, dicom_files, start_orthanc


@pytest.fixture(scope="module")
def viewer_pacs(quire_dicomweb, tmp_path_factory):
    """An empty Orthanc that knows Quire as the DICOMweb server ``quire`` (alice's key)."""
    servers = {"quire": {"Url": f"{quire_dicomweb.dicomweb}/",
                         "HttpHeaders": {"Authorization": f"Bearer {quire_dicomweb.keys['alice']}"}}}
    process, http_port, _ = start_orthanc(tmp_path_factory.mktemp("viewer-orthanc"), DicomWeb={"Servers": servers})
    try:
        yield f"http://127.0.0.1:{http_port}"
    finally:
        process.terminate()
        process.wait(timeout=30)


def _orthanc(method: str, url: str, **kwargs) -> requests.Response:
    response = requests.request(method, url, auth=(USER, PASSWORD), timeout=120, **kwargs)
    assert response.ok, response.text
    return response


def test_orthanc_searches_quire(viewer_pacs, quire_dicomweb):
    studies = _orthanc("POST", f"{viewer_pacs}/dicom-web/servers/quire/get", json={"Uri": "/studies"}).json()
    direct = quire_dicomweb.client("alice").search_for_studies()
    assert sorted(s["0020000D"]["Value"][0] for s in studies) == sorted(s["0020000D"]["Value"][0] for s in direct)
    assert all("00100010" not in s for s in studies)  # PatientName: hidden from alice
    ct = _orthanc("POST", f"{viewer_pacs}/dicom-web/servers/quire/get",
                  json={"Uri": "/series", "Arguments": {"Modality": "CT"}}).json()
    assert ct and {s["00080060"]["Value"][0] for s in ct} == {"CT"}


def test_orthanc_retrieves_a_study_from_quire_de_identified(viewer_pacs, quire_dicomweb):
    files = {str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID): p
             for p in dicom_files(quire_dicomweb.archive)}
    study = next(s for s in quire_dicomweb.client("alice").search_for_studies()
                 if s.get("00080050", {}).get("Value") == ["RAD/2019/0042"])
    study_uid = study["0020000D"]["Value"][0]
    _orthanc("POST", f"{viewer_pacs}/dicom-web/servers/quire/retrieve",
             json={"Resources": [{"Study": study_uid}], "Synchronous": True})
    stored = _orthanc("GET", f"{viewer_pacs}/instances").json()
    assert len(stored) == study["00201208"]["Value"][0] > 1
    for orthanc_id in stored:
        data = _orthanc("GET", f"{viewer_pacs}/instances/{orthanc_id}/file").content
        ds = pydicom.dcmread(pydicom.filebase.DicomBytesIO(data))
        original = pydicom.dcmread(files[ds.SOPInstanceUID])
        assert ds.StudyInstanceUID == study_uid
        assert "PatientName" not in ds and "PatientBirthDate" not in ds and "InstitutionName" not in ds
        assert str(original.PatientName).encode() not in data and original.InstitutionName.encode() not in data
        assert ds.PatientID == pseudonym(str(original.PatientID))
        assert ds.PixelData == original.PixelData
