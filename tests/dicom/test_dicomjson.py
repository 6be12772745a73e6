"""The catalog's normalized values back in DICOM JSON: every attribute Quire records of pydicom's
real test files, answered as DICOM JSON and read back by pydicom's own JSON reader, equals what
pydicom reads from the file (dates and times in their standard form)."""

from __future__ import annotations

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from quire_assets.dicom.dicomjson import dataset, dicom_dt, element, tag_of
from quire_assets.dicom.records import extract_file, is_error
from tests.conftest import pydicom_files


def _plain(value, vr: str):
    if isinstance(value, MultiValue | list):
        return [_plain(v, vr) for v in value]
    if vr in ("DS", "FL", "FD"):
        return round(float(value), 6)
    if vr in ("IS", "US", "SS", "UL", "SL"):
        return int(value)
    if vr == "DA":
        return str(value).replace(".", "")
    if vr == "TM":
        text = str(value).replace(":", "")
        return text.split(".")[0] + ("." + text.split(".")[1].ljust(6, "0") if "." in text else "")
    return str(value).strip()


def test_every_recorded_attribute_reads_back_as_the_file_says(features):
    compared = 0
    for path in pydicom_files():
        record = extract_file(path, features)
        if is_error(record):
            continue
        original = dcmread(path, stop_before_pixels=True, force=True)
        back = Dataset.from_json(dataset(record["metadata"]))
        for keyword, value in record["metadata"].items():
            private = "," in keyword  # CREATOR,gggg,ee: not in the dictionary, left out of DICOM JSON
            if private or value is None or isinstance(value, dict) or keyword not in original or keyword not in back:
                continue
            if any(o.get("attribute") == keyword for o in record.get("oddities", [])):
                continue  # a value that broke its VR is kept as text: not the file's typed value
            elem = original[keyword]
            if elem.VR == "SQ":
                assert len(back[keyword].value) == len([i for i in value if isinstance(i, dict)])
                continue
            assert _plain(back[keyword].value, elem.VR) == _plain(elem.value, elem.VR), (path.name, keyword)
            compared += 1
    assert compared > 1500


def test_names_dates_and_what_the_dictionary_does_not_know():
    assert element("PatientName", "Doe^John") == ("00100010", {"vr": "PN", "Value": [{"Alphabetic": "Doe^John"}]})
    assert element("StudyDate", "2000-03-07") == ("00080020", {"vr": "DA", "Value": ["20000307"]})
    assert element("StudyTime", "10:15:30.500000") == ("00080030", {"vr": "TM", "Value": ["101530.500000"]})
    assert dicom_dt("2004-08-26T18:50:59+02:00") == "20040826185059+0200"
    assert element("SliceThickness", None) == ("00180050", {"vr": "DS"})
    assert element("Rows", {"min": 3, "max": 100}) is None  # a range over a series: no one value
    assert element("NumberOfFrames", "1A") is None  # badVR.dcm's, kept as text with an oddity
    assert element("ModalitiesInStudy", []) is None  # no series names one: left out, not an empty value
    assert element("NoSuchKeyword", "x") is None
    assert tag_of("00100020") == 0x00100020 and tag_of("PatientID") == 0x00100020
    assert tag_of("0010002") is None and tag_of("99990010") is None


@pytest.mark.parametrize("keyword", ["ImageType", "PixelSpacing", "WindowCenter"])
def test_multiple_values_keep_their_order(keyword):
    values = ["ORIGINAL", "PRIMARY", "AXIAL"] if keyword == "ImageType" else [0.5, 0.25]
    assert element(keyword, values)[1]["Value"] == values
