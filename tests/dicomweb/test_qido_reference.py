"""Quire's QIDO-RS answers against a real PACS's: the session's Orthanc holds the same files Quire
cataloged from a folder, and each query is asked of both.

Equal means: the same studies, series or instances match, and every attribute both answers hold
has the same value (Orthanc repeats a few values as the file spells them, ``1997.04.24``; Quire
answers them in the standard form, ``19970424``: compared as dates). Orthanc answers some
attributes Quire does not hold (SpecificCharacterSet, TimezoneOffsetFromUTC) and Quire some that
Orthanc leaves out by default (StudyDescription): each answers what it holds, so only attributes
in both are compared. Two differences are Quire's choice and are asserted as such: a date range
does not match a study without a date, and text other than a person's name matches with regard to
case, as PS3.4 C.2.2.2 has it (Orthanc 1.10 does neither).
"""

from __future__ import annotations

from urllib.parse import urlencode

import pytest
import requests

from tests.pacs.conftest import PASSWORD, USER

KEY = {"studies": "0020000D", "series": "0020000E", "instances": "00080018"}
DATE_TIME_VRS = ("DA", "TM")

QUERIES = [
    ("studies", {}),
    ("series", {}),
    ("instances", {}),
    ("studies", {"StudyDate": "20000101-20001231"}),
    ("studies", {"StudyDate": "20040826"}),
    ("studies", {"StudyTime": "100000-"}),
    ("studies", {"ModalitiesInStudy": "CT"}),
    ("studies", {"ModalitiesInStudy": "MR"}),
    ("studies", {"PatientID": "LIDC*"}),
    ("studies", {"PatientID": "LIDC-IDRI-000?"}),
    ("studies", {"PatientName": "*Samples*"}),
    ("studies", {"PatientName": "lidc*"}),  # person names match without regard to case
    ("studies", {"AccessionNumber": "RAD/2019/0042"}),
    ("studies", {"PatientSex": "F"}),
    ("studies", {"StudyInstanceUID": "1.3.6.1.4.1.5962.1.2.8.20040826185059.5457,"
                                     "1.2.826.0.1.3680043.8.498.60543724659400058586588956057012408119"}),
    ("studies", {"StudyDescription": "CT*"}),
    ("series", {"Modality": "MR"}),
    ("series", {"SeriesDescription": "*MM"}),
    ("series", {"SeriesDescription": "THIN*"}),
    ("series", {"SeriesNumber": "4002"}),
    ("series", {"StudyDate": "20000101-20001231", "Modality": "CT"}),  # a study attribute on series
    ("instances", {"InstanceNumber": "3"}),
    ("instances", {"SOPClassUID": "1.2.840.10008.5.1.4.1.1.2"}),
    ("instances", {"Modality": "CT", "StudyDate": "20000101-20001231"}),
]


def orthanc(pacs, path: str, params: dict) -> list[dict]:
    # Orthanc's DICOMweb plugin reads %2A and %2F literally: the wildcard and the slash go as they are.
    query = urlencode(params, safe="*?/^,")
    response = requests.get(f"{pacs.url}/dicom-web/{path}?{query}", auth=(USER, PASSWORD), timeout=30)
    response.raise_for_status()
    return response.json()


def quire(server, path: str, params: dict) -> requests.Response:
    return server.session("boss").get(f"{server.dicomweb}/{path}", params=params, timeout=30)


def _comparable(element: dict) -> list | None:
    values = element.get("Value")
    if values and element["vr"] in DATE_TIME_VRS:
        return [str(v).replace(".", "").replace(":", "") if element["vr"] == "DA" else str(v).replace(":", "")
                for v in values]
    return values


def _undated(answer: dict) -> bool:
    return not answer.get("00080020", {}).get("Value")


@pytest.mark.parametrize(("path", "params"), QUERIES, ids=[f"{p}?{urlencode(q)}" for p, q in QUERIES])
def test_answers_equal_orthancs(pacs, quire_dicomweb, path, params):
    response = quire(quire_dicomweb, path, params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/dicom+json")
    theirs = {d[KEY[path]]["Value"][0]: d for d in orthanc(pacs, path, params)}
    ours = {d[KEY[path]]["Value"][0]: d for d in response.json()}
    if any("-" in params.get(k, "") for k in ("StudyDate", "StudyTime")):
        # Quire's choice: a range asks for values in it, so an undated study is not an answer.
        theirs = {uid: d for uid, d in theirs.items() if not _undated(d) or path != "studies"}
        if path != "studies":
            undated = {d[KEY["studies"]]["Value"][0] for d in orthanc(pacs, "studies", {}) if _undated(d)}
            theirs = {uid: d for uid, d in theirs.items() if d[KEY["studies"]]["Value"][0] not in undated}
    assert set(ours) == set(theirs)
    assert ours, "each query is one the files answer"
    compared = 0
    for uid, answer in ours.items():
        for tag in answer.keys() & theirs[uid].keys() - {"00081190"}:  # RetrieveURL: each its own base
            assert answer[tag]["vr"] == theirs[uid][tag]["vr"], (uid, tag)
            assert _comparable(answer[tag]) == _comparable(theirs[uid][tag]), (uid, tag)
            compared += 1
        assert answer["00081190"]["Value"][0].startswith(f"{quire_dicomweb.dicomweb}/studies/")
    assert compared >= len(ours) * 3


def test_paging_covers_every_study_once(pacs, quire_dicomweb):
    everything = {d[KEY["studies"]]["Value"][0] for d in orthanc(pacs, "studies", {})}
    seen: list[str] = []
    for offset in range(0, len(everything) + 5, 5):
        page = quire(quire_dicomweb, "studies", {"limit": "5", "offset": str(offset)}).json()
        assert len(page) <= 5
        seen += [d[KEY["studies"]]["Value"][0] for d in page]
    assert sorted(seen) == sorted(everything)


def test_includefield_all_answers_what_the_catalog_holds(quire_dicomweb):
    plain = quire(quire_dicomweb, "series", {"Modality": "MR"}).json()
    everything = quire(quire_dicomweb, "series", {"Modality": "MR", "includefield": "all"}).json()
    named = quire(quire_dicomweb, "series", {"Modality": "MR", "includefield": "EchoTime,00180080"}).json()
    assert len(plain) == len(everything) == len(named) == 2
    for few, many, some in zip(plain, everything, named, strict=True):
        assert set(few) < set(many)
        assert "00180081" in many and "00180081" not in few  # EchoTime
        assert {"00180081", "00180080"} <= set(some)
        assert many["00180081"]["vr"] == "DS" and isinstance(many["00180081"]["Value"][0], float)


def test_text_matches_with_regard_to_case_but_names_without(quire_dicomweb):
    def count(**params: str) -> int:
        response = quire(quire_dicomweb, "series" if "SeriesDescription" in params else "studies", params)
        assert response.status_code == 200, response.text
        return len(response.json())

    assert count(SeriesDescription="THIN*") == 2
    assert count(SeriesDescription="thin*") == 0
    assert count(PatientName="lidc*") == count(PatientName="LIDC*") > 0
