"""Series quality from the headers: regular volumes and each way a series falls short of one,
on slices laid out by hand (positions a scanner writes), on real files, and through an ingest of
the sample archive with a slice taken out."""

from __future__ import annotations

import json
import math
import shutil

import pydicom
import pytest

from quire_assets.catalog import open_catalog
from quire_assets.dicom.quality import FLAGS, series_quality, volume_geometry
from quire_assets.dicom.records import extract_file
from tests.cli.test_ingest_e2e import ingested_home, quire
from tests.conftest import PYDICOM_TEST_FILES

AXIAL = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]


def slices(n: int = 10, spacing: float = 1.25, orientation: list[float] = AXIAL, shift=(0.0, 0.0),
           skip: tuple[int, ...] = (), **extra) -> list[dict]:
    """Records of a stack of ``n`` single-frame slices along the orientation's normal (``shift``:
    how far each slice moves in x and y as it goes, a gantry tilt's shear)."""
    row, col = orientation[:3], orientation[3:]
    normal = [row[1] * col[2] - row[2] * col[1], row[2] * col[0] - row[0] * col[2], row[0] * col[1] - row[1] * col[0]]
    records = []
    for i in range(n):
        if i in skip:
            continue
        position = [-100 + i * (spacing * normal[0] + shift[0]), -120 + i * (spacing * normal[1] + shift[1]),
                    -50 + i * spacing * normal[2]]
        records.append({"metadata": {"ImagePositionPatient": position, "ImageOrientationPatient": orientation,
                                     "InstanceNumber": i + 1, "PixelSpacing": [0.7, 0.7], "Rows": 512,
                                     "Columns": 512, **extra}})
    return records


def quality(records: list[dict]) -> dict:
    return series_quality(records, {str(i): 1 for i in range(len(records))}, 0)


def test_a_regular_volume_is_complete():
    found = quality(slices())
    assert found["flags"] == [] and found["complete_volume"] is True
    assert found["volume"] == "regular" and found["orientation"] == "axial"
    assert found["spacing"] == 1.25 and found["slices"] == 10


def test_an_oblique_volume_is_still_a_volume():
    tilt = math.radians(20)
    found = quality(slices(orientation=[1.0, 0.0, 0.0, 0.0, math.cos(tilt), math.sin(tilt)]))
    assert found["complete_volume"] is True and found["orientation"] == "oblique"


@pytest.mark.parametrize(("records", "flag"), [
    (slices(skip=(4,)), "missing_slices"),
    (slices(skip=(2, 3, 7)), "missing_slices"),
    (slices() + slices(n=1), "duplicate_positions"),
    (slices(shift=(0.0, 0.4)), "positions_off_normal"),  # a shear no tilt explains
    (slices(n=5) + [{"metadata": {**slices(n=7)[6]["metadata"], "ImagePositionPatient": [-100, -120, -50 + 5.6]}}],
     "irregular_spacing"),
    (slices(n=5) + slices(n=5, orientation=[0.0, 1.0, 0.0, 0.0, 0.0, -1.0]), "mixed_orientation"),
])
def test_each_way_a_series_falls_short(records, flag):
    found = quality(records)
    assert flag in found["flags"] and flag in FLAGS
    assert found["complete_volume"] is False


def test_a_tilted_gantry_is_still_regular():
    tilt = 15.0
    shift = 1.25 * math.tan(math.radians(tilt))  # each slice moves along y by spacing × tan(tilt)
    found = quality(slices(shift=(0.0, shift), GantryDetectorTilt=tilt))
    assert found["volume"] == "regular" and found["complete_volume"] is True
    assert abs(found["gantry_tilt"] - tilt) < 0.01


def test_missing_slices_are_counted():
    found = quality(slices(skip=(2, 3, 7)))
    assert found["missing_positions"] == 3 and found["instance_number_gaps"] == 3


def test_what_is_not_a_volume_says_why():
    assert volume_geometry(slices(n=2))["volume"] == "not_a_volume"
    assert "multi-frame" in volume_geometry(slices(NumberOfFrames=20))["why"]


def test_files_clocks_and_values():
    records = slices(n=4, StudyDate="2020-01-02", StudyTime="10:00:00", AcquisitionDate="2020-01-02",
                     AcquisitionTime="09:00:00")
    records[0]["damage"] = "an image whose file ends before its pixel data"
    records[1]["oddities"] = [{"attribute": "SliceThickness", "problem": "not a number"}]
    found = series_quality(records, {"a": 2, "b": 1, "c": 1, "d": 1}, 1)
    assert set(found["flags"]) == {"acquired_before_study", "damaged_files", "vr_oddities", "duplicate_files",
                                   "conflicting_copies"}
    assert found["acquired_before_study"] == 4 and found["damaged_instances"] == 1
    late = slices(n=3, StudyDate="2020-01-02", AcquisitionDate="2020-01-05", AcquisitionTime="09:00:00")
    assert quality(late)["flags"] == ["acquired_far_from_study"]


def test_a_real_file_whose_acquisition_predates_its_study(features):
    """pydicom's CT_small.dcm: study 2004-01-19, acquired 1997-04-30."""
    record = extract_file(PYDICOM_TEST_FILES / "CT_small.dcm", features)
    assert quality([record])["flags"] == ["acquired_before_study"]


def test_an_ingested_series_with_a_slice_taken_out(sample_archive, tmp_path_factory):
    archive = tmp_path_factory.mktemp("quality-archive") / "archive"
    shutil.copytree(sample_archive, archive)
    thin = sorted(p for p in archive.rglob("*.dcm") if pydicom.dcmread(p, stop_before_pixels=True).SeriesDescription
                  == "THIN 0.625MM" and pydicom.dcmread(p, stop_before_pixels=True).AccessionNumber == "LIDC0004A")
    middle = thin[len(thin) // 2]
    gone = pydicom.dcmread(middle, stop_before_pixels=True).SeriesInstanceUID
    middle.unlink()
    env, home = ingested_home(archive, tmp_path_factory)
    with open_catalog(f"sqlite:///{home / 'catalog.db'}") as catalog:
        flagged = catalog.find("series", {"quality_flags": "missing_slices"})
        assert [s["series_instance_uid"] for s in flagged] == [gone]
        assert flagged[0]["quality"]["missing_positions"] == 1 and flagged[0]["complete_volume"] is False
        complete = catalog.count("series", {"complete_volume": True})
        assert complete == catalog.count("series", {"modality": "CT"}) - 1
    asked = json.loads(quire("query", "series", "--where", '{"complete_volume": true}', "--format", "json",
                             env=env, cwd=home).stdout)
    assert gone not in {s["series_instance_uid"] for s in asked} and len(asked) == complete


def test_the_docs_list_every_flag():
    from pathlib import Path

    page = (Path(__file__).resolve().parents[2] / "docs" / "catalog.md").read_text()
    assert all(f"| `{flag}` |" in page for flag in FLAGS)


def _series_files(archive, accession: str, number: int) -> list:
    found = []
    for path in archive.rglob("*.dcm"):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        if ds.AccessionNumber == accession and ds.SeriesNumber == number:
            found.append((int(ds.InstanceNumber), path))
    return [p for _, p in sorted(found)]


def test_archives_made_with_each_defect(sample_archive, tmp_path_factory):
    """Real files written with each defect, ingested: a duplicated position, mixed pixel spacing, and a
    tilted gantry that is still regular; an untouched series stays clean."""
    from pydicom.uid import generate_uid

    archive = tmp_path_factory.mktemp("defects") / "archive"
    shutil.copytree(sample_archive, archive)
    duplicated = _series_files(archive, "LIDC0001A", 3001)
    ds = pydicom.dcmread(duplicated[2])
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.InstanceNumber = len(duplicated) + 1
    ds.save_as(duplicated[0].parent / "same-position.dcm")
    mixed = _series_files(archive, "RAD/2019/0042", 4002)
    ds = pydicom.dcmread(mixed[1])
    ds.PixelSpacing = [0.5, 0.5]
    ds.save_as(mixed[1])
    tilted = _series_files(archive, "LIDC0003A", 3003)
    for path in tilted:
        ds = pydicom.dcmread(path)
        x, y, z = (float(v) for v in ds.ImagePositionPatient)
        ds.ImagePositionPatient = [x, y + z * math.tan(math.radians(12)), z]  # sheared along z, as a tilt does
        ds.GantryDetectorTilt = 12
        ds.save_as(path)
    env, home = ingested_home(archive, tmp_path_factory)
    series = {(s["accession_number"], s["series_number"]): s for s in json.loads(quire(
        "query", "series", "--format", "json", env=env, cwd=home).stdout)}
    assert series[("LIDC0001A", 3001)]["quality_flags"] == ["duplicate_positions"]
    assert series[("RAD/2019/0042", 4002)]["quality_flags"] == ["mixed_pixel_spacing"]
    tilt = series[("LIDC0003A", 3003)]
    assert tilt["quality_flags"] == [] and tilt["complete_volume"] is True
    assert abs(tilt["quality"]["gantry_tilt"] - 12) < 0.01
    clean = series[("LIDC0004A", 3004)]
    assert clean["quality_flags"] == [] and clean["complete_volume"] is True


def test_real_files_that_are_clean_and_real_ones_that_are_not(features):
    """pydicom's real CT series of five slices is a complete volume; its four-slice excerpt of another
    (instances 18, 180, 181, 182) misses slices; a tri-planar localizer has three orientations."""
    def quality_of(folder: str) -> dict:
        records = [extract_file(p, features) for p in sorted((PYDICOM_TEST_FILES / folder).iterdir())]
        return quality(records)

    assert quality_of("dicomdirtests/98892001/CT5N")["complete_volume"] is True
    assert "missing_slices" in quality_of("dicomdirtests/77654033/CT2")["flags"]
    assert quality_of("dicomdirtests/98892003/MR700")["flags"] == ["mixed_orientation"]
