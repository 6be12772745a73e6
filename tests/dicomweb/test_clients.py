"""DICOMweb through dicomweb-client (the field's Python client, written by others): searches,
headers, whole instances, frames and rendered images of a cataloged folder; for a researcher's key
every answer with the PHI policy applied, and retrieved files that hold no hidden value.

The oracle for what a researcher may hold is the policy file itself (read here with tomllib), not
Quire's code: an attribute of a retrieved file is there because the file names it ``keep`` or
``hash``, or because it is a UID (references stay resolvable) or the image's own structure
(``IMAGE_PIXELS``, the one list taken from the package, and checked to name no patient attribute).
"""

from __future__ import annotations

import io
import tomllib
from pathlib import Path

import pydicom
import pytest
import requests
from dicomweb_client.api import DICOMwebClient
from PIL import Image
from pydicom.datadict import dictionary_VR
from pydicom.dataset import Dataset

from quire_assets.catalog.policy import DEFAULT_POLICY, IMAGE_PIXELS
from tests.api.conftest import pseudonym
from tests.pacs.conftest import dicom_files

RULES = tomllib.loads(DEFAULT_POLICY.read_text())["fields"]
SHOWN = {k for k, v in RULES.items() if v in ("keep", "hash")}
HIDDEN = {k for k, v in RULES.items() if v == "drop" and k[0].isupper()}  # DICOM keywords, not uri & co


@pytest.fixture(scope="module")
def files(quire_dicomweb) -> dict[str, Path]:
    """SOP Instance UID → the file in the cataloged folder."""
    return {str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID): p for p in dicom_files(quire_dicomweb.archive)}


def _uids(answer: dict, *tags: str) -> list[str]:
    return [answer[t]["Value"][0] for t in tags]


def _series_of(client, modality: str) -> tuple[str, str]:
    """The study and series UIDs of the modality's series with the most instances."""
    found = client.search_for_series(search_filters={"Modality": modality})
    assert found, modality
    largest = max(found, key=lambda s: s["00201209"]["Value"][0])
    return tuple(_uids(largest, "0020000D", "0020000E"))


def test_an_admin_retrieves_the_files_as_they_are(quire_dicomweb, files):
    client = quire_dicomweb.client("boss")
    studies = client.search_for_studies()
    assert len(studies) == 22
    study, series = _series_of(client, "CT")
    instances = client.search_for_instances(study, series)
    retrieved = client.retrieve_series(study, series)
    assert len(retrieved) == len(instances) >= 2
    # In instance-number order, each equal to its file, pixel data included.
    numbers = [int(ds.InstanceNumber) for ds in retrieved]
    assert numbers == sorted(numbers)
    for ds in retrieved:
        original = pydicom.dcmread(files[ds.SOPInstanceUID])
        assert ds == original and ds.PixelData == original.PixelData
    # The bytes on the wire are the file's own.
    sop = retrieved[0].SOPInstanceUID
    raw = quire_dicomweb.session("boss").get(f"{quire_dicomweb.dicomweb}/studies/{study}/series/{series}/instances/{sop}")
    assert raw.headers["content-type"].startswith('multipart/related; type="application/dicom"')
    assert files[sop].read_bytes() in raw.content


def test_headers_are_the_files_own(quire_dicomweb, files):
    client = quire_dicomweb.client("boss")
    study, series = _series_of(client, "MR")
    metadata = client.retrieve_series_metadata(study, series)
    assert metadata
    for item in metadata:
        ds = Dataset.from_json(item)
        original = pydicom.dcmread(files[ds.SOPInstanceUID], stop_before_pixels=True)
        assert ds.PatientName == original.PatientName and ds.EchoTime == original.EchoTime
        binary = ("OB", "OW", "OF", "OD", "OL", "OV", "UN")
        assert {e.tag for e in original if e.tag.group != 2 and e.VR not in binary} <= {e.tag for e in ds}


def test_frames_and_rendered_images(quire_dicomweb, files):
    client = quire_dicomweb.client("boss")
    by_name = {p.name: (sop, p) for sop, p in files.items()}
    for name in ("CT_small.dcm", "MR_small.dcm", "examples_rgb_color.dcm", "SC_rgb_jpeg_gdcm.dcm", "693_J2KI.dcm",
                 "JPEG-lossy.dcm"):
        sop, path = by_name[name]
        original = pydicom.dcmread(path)
        where = client.search_for_instances(search_filters={"SOPInstanceUID": sop})
        study, series = _uids(where[0], "0020000D", "0020000E")
        frame = client.retrieve_instance_frames(study, series, sop, [1])[0]
        if original.file_meta.TransferSyntaxUID.is_compressed:
            assert len(frame) > 100 and frame in path.read_bytes()  # the compressed frame, as stored
        else:
            assert frame == original.PixelData[: len(frame)]
            assert len(frame) == original.Rows * original.Columns * original.SamplesPerPixel * original.BitsAllocated // 8
        url = f"{quire_dicomweb.dicomweb}/studies/{study}/series/{series}/instances/{sop}/rendered"
        if name == "JPEG-lossy.dcm":
            # 12-bit extended JPEG: no decoder pydicom can use here reads it, and the answer says so.
            refused = quire_dicomweb.session("boss").get(url, headers={"Accept": "image/png"})
            assert refused.status_code == 404 and "cannot be rendered" in refused.json()["detail"]
            continue
        png = client.retrieve_instance_rendered(study, series, sop, media_types=("image/png",))
        image = Image.open(io.BytesIO(png))
        assert image.format == "PNG" and image.size == (original.Columns, original.Rows)
        assert len(image.getcolors(maxcolors=1 << 24)) > 4, f"{name}: the rendering shows the image"
    sop, path = by_name["examples_rgb_color.dcm"]
    where = client.search_for_instances(search_filters={"SOPInstanceUID": sop})
    study, series = _uids(where[0], "0020000D", "0020000E")
    thumbnail = quire_dicomweb.session("boss").get(f"{quire_dicomweb.dicomweb}/studies/{study}/series/{series}/thumbnail",
                                                   headers={"Accept": "image/jpeg"})
    assert thumbnail.headers["content-type"] == "image/jpeg"
    assert max(Image.open(io.BytesIO(thumbnail.content)).size) == 128


def _elements(ds: Dataset, depth: int = 0):
    for elem in ds:
        yield elem, depth
        if elem.VR == "SQ":
            for item in elem.value:
                yield from _elements(item, depth + 1)


def _values(ds: Dataset) -> set[str]:
    """Every text value of a dataset, at any depth."""
    found = set()
    for elem, _ in _elements(ds):
        if elem.VR in ("PN", "LO", "SH", "DA", "LT", "ST", "UT", "AE", "DT", "TM", "CS", "UC", "UI", "IS", "DS"):
            values = elem.value if elem.VM > 1 else [elem.value]
            found.update(str(v) for v in values if v not in (None, ""))
    return found


def test_image_structure_names_no_patient_attribute():
    assert not IMAGE_PIXELS & HIDDEN
    assert all(dictionary_VR(k) for k in IMAGE_PIXELS)


def test_a_researchers_retrieved_files_hold_no_hidden_value(quire_dicomweb, files):
    client = quire_dicomweb.client("alice")
    checked = 0
    for answer in client.search_for_instances():
        study, series, sop = _uids(answer, "0020000D", "0020000E", "00080018")
        ds = client.retrieve_instance(study, series, sop)
        original = pydicom.dcmread(files[sop])
        wire = quire_dicomweb.session("alice").get(
            f"{quire_dicomweb.dicomweb}/studies/{study}/series/{series}/instances/{sop}").content
        for elem, depth in _elements(ds):
            assert not elem.tag.is_private, (files[sop].name, elem)
            if depth == 0 and elem.tag.group > 2:
                assert elem.keyword in SHOWN | IMAGE_PIXELS | {"DeidentificationMethod"} or elem.VR == "UI", \
                    (files[sop].name, elem.keyword)
        shown = _values(ds)
        for text in _values(original) - shown:
            if len(text) >= 6 and not any(text in value for value in shown):
                assert text.encode() not in wire, (files[sop].name, text)
        for keyword in HIDDEN:
            assert keyword not in ds
            value = original.get(keyword)
            if value not in (None, "") and len(str(value)) >= 4:
                assert str(value).encode() not in wire, (files[sop].name, keyword)
        if original.get("PatientID"):
            assert ds.PatientID == pseudonym(str(original.PatientID))
        assert ds.SOPInstanceUID == original.SOPInstanceUID and ds.StudyInstanceUID == original.StudyInstanceUID
        if "PixelData" in original:
            assert ds.PixelData == original.PixelData
        checked += 1
    assert checked == 61


def test_a_researchers_searches_and_headers_follow_the_policy(quire_dicomweb, files):
    client = quire_dicomweb.client("alice")
    for answer in client.search_for_studies(fields=["all"]):
        assert "00100010" not in answer and "00100030" not in answer  # PatientName, PatientBirthDate
    study, series = _series_of(client, "CT")
    for item in client.retrieve_series_metadata(study, series):
        ds = Dataset.from_json(item)
        original = pydicom.dcmread(files[ds.SOPInstanceUID], stop_before_pixels=True)
        assert "PatientName" not in ds and "InstitutionName" not in ds
        assert ds.PatientID == pseudonym(str(original.PatientID))
    original_id = str(pydicom.dcmread(next(iter(files.values())), stop_before_pixels=True).PatientID)
    assert client.search_for_studies(search_filters={"PatientID": pseudonym(original_id)})
    assert not client.search_for_studies(search_filters={"PatientID": original_id})
    refused = quire_dicomweb.session("alice").get(f"{quire_dicomweb.dicomweb}/studies", params={"PatientName": "LIDC*"})
    assert refused.status_code == 403 and "PatientName" in refused.json()["detail"]


def test_a_collection_is_a_scope(quire_dicomweb):
    alice = quire_dicomweb.session("alice")
    made = alice.post(f"{quire_dicomweb.server.url}/api/v1/collections", json={
        "collection_id": "one-chest-ct", "cases": [{"case_id": "case-1", "accession_numbers": ["RAD/2019/0042"]}]})
    assert made.status_code == 201, made.text
    scoped = DICOMwebClient(f"{quire_dicomweb.dicomweb}/collections/one-chest-ct", session=alice)
    studies = scoped.search_for_studies()
    assert [s["00080050"]["Value"][0] for s in studies] == ["RAD/2019/0042"]
    # dicomweb-client's Host header names no port: the RetrieveURL is the configured public address.
    assert studies[0]["00081190"]["Value"][0].startswith(f"{quire_dicomweb.dicomweb}/collections/one-chest-ct/")
    inside = scoped.search_for_instances()
    assert inside and all(i["00080050"]["Value"][0] == "RAD/2019/0042" for i in inside)
    study, series, sop = _uids(inside[0], "0020000D", "0020000E", "00080018")
    assert scoped.retrieve_instance(study, series, sop).SOPInstanceUID == sop
    outside = next(i for i in quire_dicomweb.client("alice").search_for_instances()
                   if i.get("00080050", {}).get("Value") != ["RAD/2019/0042"])
    study, series, sop = _uids(outside, "0020000D", "0020000E", "00080018")
    path = f"/collections/one-chest-ct/studies/{study}/series/{series}/instances/{sop}"
    assert alice.get(f"{quire_dicomweb.dicomweb}{path}").status_code == 404
    assert alice.get(f"{quire_dicomweb.dicomweb}{path}/metadata").status_code == 404
    # Another researcher's collection is no scope of theirs, and says nothing of it.
    other = quire_dicomweb.session("boss").post(f"{quire_dicomweb.server.url}/api/v1/collections",
                                                json={"collection_id": "boss-only", "cases": []})
    assert other.status_code == 201, other.text
    assert alice.get(f"{quire_dicomweb.dicomweb}/collections/boss-only/studies").status_code == 404
    assert alice.get(f"{quire_dicomweb.dicomweb}/collections/nothing-here/studies").status_code == 404


def test_what_it_does_not_do_is_said(quire_dicomweb):
    url, alice = quire_dicomweb.dicomweb, quire_dicomweb.session("alice")
    assert requests.get(f"{url}/studies", timeout=30).status_code == 401
    for params, words in [({"NoSuchKey": "1"}, "NoSuchKey"), ({"includefield": "NotAKeyword"}, "NotAKeyword"),
                          ({"ScanningSequence": "SE"}, "ScanningSequence"), ({"Modality": "CT"}, "series"),
                          ({"StudyDate": "2000-13"}, "StudyDate"), ({"limit": "-1"}, "limit")]:
        response = alice.get(f"{url}/studies", params=params)
        assert response.status_code == 400, (params, response.text)
        assert words.split()[0].lower() in response.text.lower(), (params, response.text)
    fuzzy = alice.get(f"{url}/studies", params={"fuzzymatching": "true"})
    assert fuzzy.status_code == 200 and "fuzzymatching parameter is not supported" in fuzzy.headers["warning"]
    log = quire_dicomweb.server.log.read_text()
    assert "access alice GET /dicomweb/studies 200" in log
    assert "access alice GET /dicomweb/studies 400 'NoSuchKey'" in log
    assert "access - GET /dicomweb/studies 401" in log  # refused before anyone was known


def test_a_policy_that_hashes_uids_keeps_researchers_out(quire_dicomweb, tmp_path):
    """The research view's hashed UIDs are not UIDs a viewer could ask for: researchers are told so,
    admins are served. On a copy of the catalog (two policies on one catalog replace each other's view)."""
    import shutil

    from tests.api.conftest import Server

    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(quire_dicomweb.home / "catalog.db", home / "catalog.db")
    policy = tmp_path / "policy.toml"
    policy.write_text('[policy]\ndefault = "drop"\n[fields]\nStudyInstanceUID = "hash"\nSeriesInstanceUID = "keep"\n'
                      'SOPInstanceUID = "keep"\nModality = "keep"\n')
    server = Server({**quire_dicomweb.env, "QUIRE_HOME": str(home), "QUIRE_PHI_POLICY": str(policy)}, home)
    try:
        alice, boss = (requests.get(f"{server.url}/dicomweb/studies", timeout=30,
                                    headers={"Authorization": f"Bearer {quire_dicomweb.keys[who]}"})
                       for who in ("alice", "boss"))
    finally:
        server.stop()
    assert alice.status_code == 403 and "hashes UIDs" in alice.json()["detail"]
    assert boss.status_code == 200 and len(boss.json()) == 22


def test_a_key_as_basic_credentials(quire_dicomweb):
    """Clients that send only HTTP Basic credentials give the key as the password."""
    url = f"{quire_dicomweb.dicomweb}/studies"
    assert requests.get(url, auth=("anyone", quire_dicomweb.keys["alice"]), timeout=30).status_code == 200
    assert requests.get(url, auth=("alice", "qk_not_a_key"), timeout=30).status_code == 401
    assert requests.get(url, headers={"Authorization": "Basic !!!"}, timeout=30).status_code == 401


def test_a_file_gone_from_its_source_is_a_503_that_names_no_path(quire_dicomweb, files):
    """A researcher is told the instance cannot be read now, never where it was (archives are often
    foldered by patient); an admin is told which file and why."""
    sop, path = next((s, p) for s, p in files.items() if p.name == "CT_small.dcm")
    where = quire_dicomweb.client("boss").search_for_instances(search_filters={"SOPInstanceUID": sop})[0]
    url = "{}/studies/{}/series/{}/instances/{}".format(
        quire_dicomweb.dicomweb, where["0020000D"]["Value"][0], where["0020000E"]["Value"][0], sop)
    hidden = path.with_name("CT_small.moved")
    path.rename(hidden)
    try:
        alice = quire_dicomweb.session("alice").get(url)
        boss = quire_dicomweb.session("boss").get(url)
    finally:
        hidden.rename(path)
    assert alice.status_code == boss.status_code == 503
    assert str(path.parent) not in alice.text and "CT_small" not in alice.text
    assert "CT_small.dcm" in boss.json()["detail"]
