"""The DICOM core on real files and on constructed edge cases."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import bson
import pydicom
import pydicom.uid
import pytest
from pydicom.dataset import Dataset

from quire_assets.dicom.features import FeatureSetError, load_feature_sets
from quire_assets.dicom.records import UNSORTED_FILES_KEY, extract, extract_file, partition_key
from quire_assets.dicom.sample import write_sample_archive
from tests.conftest import PYDICOM_TEST_FILES, pydicom_files

REASONS = {"empty", "not_dicom", "truncated", "missing_uid", "compressed_container", "skipped", "dicomdir",
           "unreadable", "io_error"}


def _encodable(record: dict) -> None:
    json.dumps(record, allow_nan=False)
    bson.encode(record)


@pytest.mark.parametrize("path", pydicom_files(), ids=lambda p: str(p.relative_to(PYDICOM_TEST_FILES)))
def test_every_pydicom_file_is_a_record_or_a_classified_error(path: Path, features):
    record = extract_file(path, features)
    _encodable(record)
    if "reason" in record:
        assert record["reason"] in REASONS
        assert record["detail"]
        return
    ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
    assert record["sop_instance_uid"] == ds.SOPInstanceUID
    assert record["study_instance_uid"] == ds.StudyInstanceUID
    assert record["series_instance_uid"] == ds.SeriesInstanceUID
    if "Modality" in ds and ds.Modality:
        assert record["metadata"]["Modality"] == ds.Modality


def test_classifications_of_known_pydicom_files(features):
    def reason(name):
        return extract_file(PYDICOM_TEST_FILES / name, features).get("reason")

    assert reason("CT_small.dcm") is None
    assert reason("MR_small_implicit.dcm") is None
    assert reason("MR_small_bigendian.dcm") is None
    assert reason("ExplVR_LitEndNoMeta.dcm") is None  # no preamble, still DICOM
    assert reason("zipMR.gz") == "compressed_container"
    # Cut files: what precedes the cut is cataloged, and the instance says what is missing.
    assert extract_file(PYDICOM_TEST_FILES / "rtplan_truncated.dcm", features)["damage"] == \
        "element (300A,00B0) declares 976 bytes, 711 remain"
    assert extract_file(PYDICOM_TEST_FILES / "MR_truncated.dcm", features)["damage"] == \
        "pixel data declares 8192 bytes, the file ends 8130 bytes after its start"
    assert reason("dicomdirtests/DICOMDIR") == "dicomdir"
    assert reason("README.txt") == "skipped"
    assert reason("crayons.icc") == "not_dicom"


def test_ct_values_are_normalized(features):
    record = extract_file(PYDICOM_TEST_FILES / "CT_small.dcm", features)
    meta = record["metadata"]
    assert meta["StudyDate"] == "2004-01-19"
    assert meta["StudyTime"] == "07:27:30"
    assert meta["PixelSpacing"] == [0.661468, 0.661468]
    assert meta["SliceThickness"] == 5.0 and isinstance(meta["SliceThickness"], float)
    assert meta["InstanceNumber"] == 1 and isinstance(meta["InstanceNumber"], int)
    assert meta["ImageType"] == ["ORIGINAL", "PRIMARY", "AXIAL"]
    assert meta["PatientName"] == "CompressedSamples^CT1"
    # A private attribute found by its creator, not by a fixed element number.
    assert meta["GEMS_IDEN_01,0009,01"] == "GE_GENESIS_FF"
    assert "PixelData" not in meta


# ---- constructed edge cases -------------------------------------------------------------------


def _base_dataset(**extra) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ds.SOPInstanceUID = "1.2.3.4.5.6.1"
    ds.StudyInstanceUID = "1.2.3.4.5"
    ds.SeriesInstanceUID = "1.2.3.4.5.6"
    ds.PatientID = "P1"
    ds.AccessionNumber = "ACC1"
    ds.Modality = "CT"
    ds.Rows = ds.Columns = 2
    ds.BitsAllocated = 16
    ds.PixelData = b"\x00\x01" * 4
    for key, value in extra.items():
        setattr(ds, key, value)
    return ds


def _write(ds: Dataset, path: Path, preamble: bool = True) -> Path:
    if preamble:
        ds.file_meta = pydicom.dataset.FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
        ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
        ds.file_meta.MediaStorageSOPInstanceUID = ds.get("SOPInstanceUID", "1.2.3")
        pydicom.dcmwrite(path, ds, enforce_file_format=True)
    else:
        pydicom.dcmwrite(path, ds, implicit_vr=True, little_endian=True)
    return path


def test_no_preamble_is_dicom(tmp_path, features):
    path = _write(_base_dataset(), tmp_path / "raw", preamble=False)
    assert path.read_bytes()[128:132] != b"DICM"
    record = extract_file(path, features)
    assert "reason" not in record
    assert record["accession_number"] == "ACC1"


def test_empty_gzip_and_text(tmp_path, features):
    (tmp_path / "empty.dcm").write_bytes(b"")
    assert extract_file(tmp_path / "empty.dcm", features)["reason"] == "empty"
    good = _write(_base_dataset(), tmp_path / "good.dcm")
    (tmp_path / "good.dcm.gz").write_bytes(gzip.compress(good.read_bytes()))
    assert extract_file(tmp_path / "good.dcm.gz", features)["reason"] == "compressed_container"
    (tmp_path / "notes.dcm").write_text("this is not an image, just some notes\n" * 20)
    assert extract_file(tmp_path / "notes.dcm", features)["reason"] == "not_dicom"
    (tmp_path / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1" + b"\x00" * 200)
    assert extract_file(tmp_path / ".DS_Store", features)["reason"] == "skipped"


CT_SMALL = PYDICOM_TEST_FILES / "CT_small.dcm"


def test_a_cut_file_keeps_what_precedes_the_cut_and_says_it_is_damaged(tmp_path, features):
    """Cut in its pixel data or after its UIDs: cataloged, with the damage named. Cut before its
    UIDs: a ``truncated`` error, never ``missing_uid``."""
    source = (PYDICOM_TEST_FILES / "CT_small.dcm").read_bytes()
    whole = pydicom.dcmread(CT_SMALL)
    cuts = {"pixels.dcm": len(source) - 1000, "after_uids.dcm": 2500, "before_uids.dcm": 1000}
    for name, length in cuts.items():
        (tmp_path / name).write_bytes(source[:length])
    record = extract_file(tmp_path / "pixels.dcm", features)
    assert record["damage"] == "pixel data declares 32768 bytes, the file ends 31906 bytes after its start"
    assert record["sop_instance_uid"] == whole.SOPInstanceUID
    assert record["metadata"]["SliceThickness"] == float(whole.SliceThickness)
    record = extract_file(tmp_path / "after_uids.dcm", features)
    assert record["damage"] == "element (0020,0052) declares 46 bytes, 40 remain"
    assert record["series_instance_uid"] == whole.SeriesInstanceUID
    assert "FrameOfReferenceUID" not in record["metadata"]  # the cut value is not kept half
    # The series of a damaged instance counts it, so a series-level cohort sees it.
    from quire_assets.dicom.rollup import series_documents

    [series] = series_documents([extract_file(tmp_path / "pixels.dcm", features)], features)
    assert series["damaged_instances"] == 1
    assert "damaged_instances" not in series_documents([extract_file(CT_SMALL, features)], features)[0]
    record = extract_file(tmp_path / "before_uids.dcm", features)
    assert record["reason"] == "truncated"
    assert record["detail"].startswith("element (0010,1002) declares 72 bytes, 6 remain; missing StudyInstanceUID")


def test_missing_uid_names_the_uid(tmp_path, features):
    ds = _base_dataset()
    del ds.SOPInstanceUID
    record = extract_file(_write(ds, tmp_path / "nosop.dcm"), features)
    assert record["reason"] == "missing_uid"
    assert "SOPInstanceUID" in record["detail"]
    assert record["partition_key"] == "ACC1"  # the error stays with its accession


@pytest.mark.parametrize(
    ("charset", "name"),
    [("ISO_IR 192", "Müller^Jürgen"), ("ISO_IR 100", "Buc^Jérôme"), ("ISO_IR 144", "Люкceмбypг^Иван")],
)
def test_non_ascii_person_names(tmp_path, features, charset, name):
    ds = _base_dataset(SpecificCharacterSet=charset, PatientName=name)
    path = _write(ds, tmp_path / "pn.dcm")
    assert name.encode("utf-8") not in path.read_bytes() or charset == "ISO_IR 192"
    record = extract_file(path, features)
    assert record["metadata"]["PatientName"] == name
    _encodable(record)


def test_invalid_ds_is_kept_as_text_with_an_oddity(tmp_path, features):
    ds = _base_dataset()
    ds.add_new(0x00180050, "DS", "1.5")  # SliceThickness
    ds.add_new(0x00280030, "DS", "0.5\\0.5")  # PixelSpacing
    path = _write(ds, tmp_path / "bad_ds.dcm")
    raw = path.read_bytes().replace(b"1.5 ", b"1,5x")  # a decimal comma: violates DS
    path.write_bytes(raw)
    record = extract_file(path, features)
    assert "reason" not in record
    assert record["metadata"]["SliceThickness"] == "1,5x"
    assert any(o["attribute"] == "SliceThickness" for o in record["oddities"])
    assert record["metadata"]["PixelSpacing"] == [0.5, 0.5]


def test_private_attribute_found_in_any_block(tmp_path, features):
    for block_number, filename in ((0x10, "a.dcm"), (0x42, "b.dcm")):
        ds = _base_dataset()
        if block_number != 0x10:  # occupy the first blocks with another creator
            for n, creator in enumerate(range(0x10, block_number)):
                ds.add_new((0x0009 << 16) | creator, "LO", f"OTHER_{n}")
        block = ds.private_block(0x0009, "GEMS_IDEN_01", create=True)
        block.add_new(0x01, "LO", "CT_LIGHTSPEED")
        assert (block.block_start >> 8) & 0xFF == block_number
        record = extract_file(_write(ds, tmp_path / filename), features)
        assert record["metadata"]["GEMS_IDEN_01,0009,01"] == "CT_LIGHTSPEED"


def test_nested_sequences_are_bounded(tmp_path, features):
    custom = tmp_path / "fs"
    custom.mkdir()
    (custom / "series.txt").write_text("SeriesInstanceUID\nReferencedImageSequence  # nested below\n")
    fs = load_feature_sets(custom)
    ds = _base_dataset()
    inner = Dataset()
    inner.ReferencedSOPInstanceUID = "9.9.9"
    for _ in range(5):
        wrapper = Dataset()
        wrapper.ReferencedSOPInstanceUID = "1.1"
        wrapper.ReferencedImageSequence = [inner]
        inner = wrapper
    ds.ReferencedImageSequence = [inner]
    record = extract_file(_write(ds, tmp_path / "nested.dcm"), fs)
    value = record["metadata"]["ReferencedImageSequence"]
    assert value[0]["ReferencedSOPInstanceUID"] == "1.1"
    depth, node = 0, value
    while isinstance(node, list) and node and "ReferencedImageSequence" in node[0]:
        node, depth = node[0]["ReferencedImageSequence"], depth + 1
    assert depth == 2  # three levels kept, deeper ones left out ...
    assert any("deeper than" in o["problem"] for o in record["oddities"])  # ... and said so
    _encodable(record)


def test_header_read_stops_before_pixels(tmp_path, features):
    write_sample_archive(tmp_path, patients=1, slices=1, matrix=512)
    path = next(tmp_path.rglob("*.dcm"))
    asked: list[int] = []

    def fetch(n):
        asked.append(n)
        return path.read_bytes()[:n]

    record = extract(str(path), path.stat().st_size, fetch, features)
    assert "reason" not in record
    assert path.stat().st_size > 500_000
    assert max(asked) <= 64 * 1024


def test_header_longer_than_first_prefix_asks_for_more(features):
    data = (PYDICOM_TEST_FILES / "CT_small.dcm").read_bytes()
    asked: list[int] = []
    record = extract("mem://ct", len(data), lambda n: asked.append(n) or data[:n], features, first_bytes=512)
    assert "reason" not in record
    assert asked[0] == 512 and len(asked) > 1


def test_feature_set_errors_name_the_file_and_line(tmp_path):
    (tmp_path / "study.txt").write_text("PatientID\nNotAKeyword\n")
    with pytest.raises(FeatureSetError, match=r"study.txt:2: 'NotAKeyword'"):
        load_feature_sets(tmp_path)


def test_partition_keys_are_verbatim_or_documented():
    assert partition_key("RAD/2019/0042", "1.2") == "RAD/2019/0042"
    assert partition_key("../x", "1.2") == "../x"
    assert partition_key("", "1.2.3") == "no-accession:1.2.3"
    assert partition_key(None, None) == UNSORTED_FILES_KEY
    assert partition_key("A...B", "1") == "escaped:A%2E%2E%2EB"  # Dagster refuses "..." in a key


def test_sample_archive_layout(tmp_path, features):
    counts = write_sample_archive(tmp_path)
    assert counts["patients"] >= 5
    patients = sorted(p.name for p in (tmp_path / "LIDC-IDRI").iterdir())
    assert patients[0] == "LIDC-IDRI-0001"
    files = sorted(tmp_path.rglob("1-001.dcm"))
    assert len(files) == counts["series"]
    assert (tmp_path / "metadata.csv").is_file()
    assert len(list(tmp_path.rglob("*.xml"))) == counts["series"]
    records = [extract_file(p, features) for p in tmp_path.rglob("*.dcm")]
    assert all("reason" not in r for r in records)
    modalities = {r["metadata"]["Modality"] for r in records}
    assert modalities == {"CT", "DX"}
    thicknesses = {r["metadata"].get("SliceThickness") for r in records if r["modality"] == "CT"}
    assert len(thicknesses) >= 3
    assert sum(1 for r in records if not r["accession_number"]) > 0
    assert sum(1 for r in records if r["accession_number"]) > len(records) / 2


def test_copy_of_sample_file_is_identical_record(tmp_path, features, sample_archive):
    path = next(sample_archive.rglob("1-001.dcm"))
    shutil.copy(path, tmp_path / "copy.dcm")
    a = extract_file(path, features)
    b = extract_file(tmp_path / "copy.dcm", features)
    assert {**a, "uri": None} == {**b, "uri": None}


@pytest.mark.parametrize("fast", [True, False])
def test_unreadable_paths_are_error_records_not_exceptions(tmp_path, features, fast):
    (tmp_path / "a_folder.dcm").mkdir()
    record = extract_file(tmp_path / "a_folder.dcm", features, fast=fast)
    assert record["reason"] == "io_error"
    record = extract_file(tmp_path / "vanished.dcm", features, fast=fast)
    assert record["reason"] == "io_error"
    data = (PYDICOM_TEST_FILES / "CT_small.dcm").read_bytes()

    def failing(n):
        raise OSError("connection reset")

    record = extract("s3://b/k.dcm", len(data), failing, features, fast=fast)
    assert record["reason"] == "io_error" and "connection reset" in record["detail"]


@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize("first_bytes", [256, 16 * 1024])
def test_a_deflated_file_is_cataloged_and_a_cut_one_is_truncated(features, fast, first_bytes):
    """Deflated Explicit VR Little Endian: the data set after the file meta is deflated, so file
    offsets say nothing of the data set's; the file is read whole and inflated."""
    path = PYDICOM_TEST_FILES / "image_dfl.dcm"
    data = path.read_bytes()
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    record = extract(str(path), len(data), lambda n: data[:n], features, first_bytes, fast=fast)
    assert "reason" not in record, record
    assert record["sop_instance_uid"] == ds.SOPInstanceUID and record["study_instance_uid"] == ds.StudyInstanceUID
    assert record["metadata"]["TransferSyntaxUID"] == "1.2.840.10008.1.2.1.99"
    assert record["metadata"]["Modality"] == ds.Modality
    cut = data[: len(data) // 2]
    record = extract("cut.dcm", len(cut), lambda n: cut[:n], features, first_bytes, fast=fast)
    assert record["reason"] == "truncated" and "deflated data set ends early" in record["detail"]
