"""Series-type labels: real files (pydicom's and nibabel's test data) against a hand-labelled table,
the rules file's own guarantees, a site's rules, the evidence a researcher may see, and labels
through an ingest, `ask` and a dcm2bids configuration."""

from __future__ import annotations

import io
import json

import pydicom
import pytest

from benchmarks.series_types import labelled, reference_rows, scores
from quire_assets.catalog.policy import PhiPolicy
from quire_assets.dicom.features import load_feature_sets
from quire_assets.dicom.records import extract
from quire_assets.dicom.series_types import (
    CONTRAST_DELAY,
    SeriesTypeError,
    load_rules,
    parse_rules,
    series_types,
)
from tests.cli.test_ingest_e2e import ingested_home, quire
from tests.conftest import PYDICOM_TEST_FILES


@pytest.fixture(scope="module")
def reference():
    return reference_rows()


def test_the_hand_labelled_real_files(reference):
    results = labelled(reference)
    assert len(results) >= 20
    for (expected, found, _), row in zip(results, reference, strict=True):
        assert found == expected, (row["file"], row["why"])
    assert all(fp == fn == 0 for _, fp, fn in scores([(e, f) for e, f, _ in results]).values())


def test_each_label_carries_its_evidence(reference, features):
    row = next(r for r in reference if r["file"] == "siemens_dwi_1000.dcm.gz")
    data = row["bytes"]
    record = extract(row["file"], len(data), lambda n: data[:n], features, 64 * 1024)
    labels, evidence = series_types([record])
    dwi = [e for e in evidence if e["label"] == "DWI"]
    assert labels == ["DWI", "original"]
    assert [{**e, "rule": e["rule"].split("#")[0]} for e in dwi] == [{
        "label": "DWI", "rule": "series-types.toml", "confidence": 0.95, "attribute": "ImageType", "value": "DIFFUSION"}]


def test_a_rule_never_decides_from_the_description_alone():
    with pytest.raises(SeriesTypeError, match="SeriesDescription alone"):
        parse_rules('[[rule]]\nlabel = "T1w"\ngroup = "g"\nany = [{attribute = "SeriesDescription", '
                    'matches = "t1"}]\n', "site.toml")
    with pytest.raises(SeriesTypeError, match="bad regular expression"):
        parse_rules('[[rule]]\nlabel = "x"\ngroup = "g"\nall = [{attribute = "ImageType", matches = "("}]\n', "s")
    with pytest.raises(SeriesTypeError, match="one test"):
        parse_rules('[[rule]]\nlabel = "x"\ngroup = "g"\nall = [{attribute = "ImageType"}]\n', "s")


def test_a_sites_rules_come_first(tmp_path, features):
    (tmp_path / "series-types.toml").write_text(
        '[[rule]]\nlabel = "T2w-site"\ngroup = "mr_sequence"\nmodality = ["MR"]\nconfidence = 0.99\n'
        'all = [{attribute = "EchoTime", ge = 200}]\n')
    record = extract(str(PYDICOM_TEST_FILES / "MR_small.dcm"), (PYDICOM_TEST_FILES / "MR_small.dcm").stat().st_size,
                     lambda n: (PYDICOM_TEST_FILES / "MR_small.dcm").read_bytes()[:n], features, 64 * 1024)
    assert series_types([record])[0] == ["T2w", "derived"]
    assert series_types([record], load_rules(str(tmp_path)))[0] == ["T2w-site", "derived"]


def test_a_researcher_sees_evidence_only_of_attributes_the_policy_shows():
    policy = PhiPolicy.load(None, b"salt")
    doc = {"series_types": ["DWI"], "series_type_evidence": [
        {"label": "DWI", "rule": "r", "confidence": 0.9, "attribute": "SIEMENS MR HEADER,0019,0C", "value": 1000},
        {"label": "contrast", "rule": "r", "confidence": 0.9, "attribute": "ContrastBolusAgent", "value": "Gd"},
        {"label": "x", "rule": "r", "confidence": 0.9, "attribute": "InstitutionName", "value": "Hospital"}]}
    shown = policy.apply(doc)
    assert shown["series_types"] == ["DWI"]
    assert [e["attribute"] for e in shown["series_type_evidence"]] == ["ContrastBolusAgent"]


def test_labels_through_an_ingest_ask_and_dcm2bids(reference, tmp_path_factory):
    archive = tmp_path_factory.mktemp("labelled") / "archive"
    archive.mkdir()
    for row in reference:
        (archive / row["file"].replace("/", "_").removesuffix(".gz")).write_bytes(row["bytes"])
    env, home = ingested_home(archive, tmp_path_factory)
    dwi = json.loads(quire("query", "series", "--where", '{"series_types": "DWI"}', "--format", "json",
                           env=env, cwd=home).stdout)
    diffusion = {str(pydicom.dcmread(io.BytesIO(r["bytes"]), stop_before_pixels=True).SOPInstanceUID)
                 for r in reference if "DWI" in r["expected"]}
    assert len(dwi) == 1 and dwi[0]["num_instances"] == len(diffusion) == 4
    asked = quire("ask", "T1 weighted MR series with contrast", env=env, cwd=home)
    assert '"series_types": "T1w"' in asked.stderr and "marked lesion<MPR Collection>" in asked.stdout
    assert "(1 of 1 series)" in asked.stderr
    config = home / "dcm2bids.json"
    quire("export", "series", "--where", '{"modality": "MR"}', "--dcm2bids", str(config), env=env, cwd=home)
    descriptions = json.loads(config.read_text())["descriptions"]
    assert sorted((d["datatype"], d["suffix"]) for d in descriptions) == [
        ("anat", "T1w"), ("dwi", "dwi"), ("func", "bold")]  # derived and unlabelled series are left out
    assert all(d["criteria"]["SeriesNumber"] is not None and d["id"] for d in descriptions)


def test_the_feature_sets_read_what_the_rules_need():
    names = {f.name for f in load_feature_sets().all}
    needed = {a for rule in load_rules() for a in rule.attributes} - {"SeriesDescription", "ProtocolName",
                                                                       CONTRAST_DELAY}  # computed
    assert needed <= names


@pytest.mark.parametrize(("acquired", "phase"), [("10:00:30", "phase:arterial"), ("10:01:10", "phase:portal_venous"),
                                                 ("10:05:00", "phase:delayed"), ("09:59:00", None)])
def test_the_contrast_phase_where_the_bolus_start_is_recorded(acquired, phase):
    records = [{"metadata": {"Modality": "CT", "ContrastBolusAgent": "IOMERON", "ContrastBolusStartTime": "10:00:00",
                             "AcquisitionTime": acquired}}]
    labels = series_types(records)[0]
    assert [x for x in labels if x.startswith("phase:")] == ([phase] if phase else [])
    assert "contrast" in labels
    del records[0]["metadata"]["ContrastBolusAgent"]
    assert not [x for x in series_types(records)[0] if x.startswith("phase:")]


def test_annotations_name_the_series_they_are_about(sample_archive, tmp_path_factory):
    """pydicom's SEG and RT structure set, made to annotate a sample CT series of the same study."""
    import shutil

    from pydicom.uid import generate_uid

    archive = tmp_path_factory.mktemp("annotated") / "archive"
    shutil.copytree(sample_archive, archive)
    ct = pydicom.dcmread(next(p for p in sorted(archive.rglob("*.dcm"))
                              if pydicom.dcmread(p, stop_before_pixels=True).AccessionNumber == "LIDC0001A"))
    made = {}
    for name in ("liver_1frame.dcm", "rtstruct.dcm"):
        ds = pydicom.dcmread(PYDICOM_TEST_FILES / name, force=True)
        ds.StudyInstanceUID, ds.AccessionNumber, ds.PatientID = ct.StudyInstanceUID, ct.AccessionNumber, ct.PatientID
        ds.SeriesInstanceUID, ds.SOPInstanceUID = generate_uid(), generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        if name == "rtstruct.dcm":
            study = ds.ReferencedFrameOfReferenceSequence[0].RTReferencedStudySequence[0]
            study.RTReferencedSeriesSequence[0].SeriesInstanceUID = ct.SeriesInstanceUID
        else:
            ds.ReferencedSeriesSequence[0].SeriesInstanceUID = ct.SeriesInstanceUID
        ds.save_as(archive / name)
        made[str(ds.SeriesInstanceUID)] = "SEG" if name.startswith("liver") else "RTSTRUCT"
    env, home = ingested_home(archive, tmp_path_factory)
    series = {s["series_instance_uid"]: s for s in json.loads(quire(
        "query", "series", "--where", '{"accession_number": "LIDC0001A"}', "--format", "json", env=env, cwd=home).stdout)}
    for uid, label in made.items():
        assert label in series[uid]["series_types"] and series[uid]["annotates"] == [str(ct.SeriesInstanceUID)]
    assert sorted(series[str(ct.SeriesInstanceUID)]["annotated_by"]) == sorted(made)
