"""A synthetic archive shaped like TCIA's LIDC-IDRI as the NBIA retriever lays it out.

``LIDC-IDRI/LIDC-IDRI-0001/<study folder>/<series folder>/1-001.dcm``, an annotation ``.xml``
per series and a ``metadata.csv`` at the top, as NBIA writes them. Realistic CT tags, several
scanners, slice thicknesses and pixel spacings, a DX study, and one study with no accession
number. Pixel matrices are small by default so the archive is quick to write; ``matrix=512``
gives full-size 512 KiB CT slices for benchmarks.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
DX_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.1.1"
COLLECTION = "LIDC-IDRI"

SCANNERS = [
    # manufacturer, model, kernel, private creator block (GE only)
    ("GE MEDICAL SYSTEMS", "LightSpeed16", "STANDARD", "GEMS_IDEN_01"),
    ("SIEMENS", "Sensation 16", "B30f", None),
    ("Philips", "Brilliance 16P", "C", None),
    ("TOSHIBA", "Aquilion", "FC01", None),
]
THICKNESSES = [2.5, 1.25, 0.625, 5.0, 1.0, 3.0, 2.0]
SPACINGS = [0.703125, 0.5859375, 0.78125, 0.664062, 0.820312, 0.6484375]


@dataclass
class SeriesPlan:
    number: int
    description: str
    modality: str
    slices: int
    thickness: float | None = None
    spacing: float = 0.7
    scanner: int = 0


@dataclass
class StudyPlan:
    patient_index: int
    accession: str | None
    date: str
    description: str
    series: list[SeriesPlan] = field(default_factory=list)


def _uid(*parts: object) -> str:
    return generate_uid(entropy_srcs=["quire-sample", *map(str, parts)])


def default_plan(patients: int = 6, slices: int = 8) -> list[StudyPlan]:
    """The studies of the sample archive: deterministic, varied where researchers filter."""
    plans = []
    for p in range(1, patients + 1):
        scanner = (p - 1) % len(SCANNERS)
        study = StudyPlan(
            patient_index=p,
            accession=None if p == 5 else ("RAD/2019/0042" if p == 2 else f"LIDC{p:04d}A"),
            date=f"2000-{(p % 12) + 1:02d}-{(p * 3 % 27) + 1:02d}",
            description="CT CHEST W/O CONTRAST",
        )
        thickness = THICKNESSES[(p - 1) % len(THICKNESSES)]
        study.series.append(SeriesPlan(3000 + p, f"CHEST {thickness:g}MM" if p % 2 else "LUNG", "CT", slices,
                                       thickness, SPACINGS[(p - 1) % len(SPACINGS)], scanner))
        if p % 2 == 0:  # a thin reconstruction of the same scan
            study.series.append(SeriesPlan(4000 + p, "THIN 0.625MM", "CT", slices + 2, 0.625,
                                           SPACINGS[p % len(SPACINGS)], scanner))
        plans.append(study)
        if p == 3:
            dx = StudyPlan(p, f"LIDC{p:04d}X", f"2000-{(p % 12) + 2:02d}-10", "XR CHEST PA")
            dx.series.append(SeriesPlan(1, "PA", "DX", 1, None, 0.139))
            plans.append(dx)
    return plans


def _patient(ds: Dataset, index: int) -> None:
    pid = f"{COLLECTION}-{index:04d}"
    ds.PatientID = pid
    if index == 4:  # a name outside ASCII, in UTF-8, as some sites export
        ds.SpecificCharacterSet = "ISO_IR 192"
        ds.PatientName = "Müller^Jürgen"
    else:
        ds.SpecificCharacterSet = "ISO_IR 100"
        ds.PatientName = pid
    ds.PatientSex = "M" if index % 2 else "F"
    year = 1930 + (index * 7) % 50
    ds.PatientBirthDate = f"{year}{(index % 12) + 1:02d}15"
    ds.PatientAge = f"{2000 - year:03d}Y"


def _image(ds: Dataset, matrix: int, value: int) -> None:
    ds.Rows = ds.Columns = matrix
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.PixelData = (value % 4096).to_bytes(2, "little") * (matrix * matrix)


def _file_dataset(sop_class: str, sop_uid: str) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.ImplementationClassUID = "1.2.826.0.1.3680043.8.498.1"
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    return ds


def _folder_part(text: str) -> str:
    """NBIA replaces characters that cannot stand in a folder name."""
    return "".join(c if c.isalnum() or c in " .-_" else "_" for c in text) or "NA"


def write_series(root: Path, study: StudyPlan, series: SeriesPlan, matrix: int, annotation: bool = True) -> list[dict]:
    """Write one series (and its annotation ``.xml``); returns one ``metadata.csv`` row."""
    pid = f"{COLLECTION}-{study.patient_index:04d}"
    study_uid = _uid(pid, study.accession, study.date)
    series_uid = _uid(study_uid, series.number)
    mm, dd, yyyy = study.date[5:7], study.date[8:10], study.date[:4]
    study_dir = f"{mm}-{dd}-{yyyy}-NA-{_folder_part(study.description)}-{study_uid[-5:]}"
    series_dir = f"{series.number}.000000-{_folder_part(series.description)}-{series_uid[-5:]}"
    folder = root / COLLECTION / pid / study_dir / series_dir
    folder.mkdir(parents=True, exist_ok=True)
    manufacturer, model, kernel, private = SCANNERS[series.scanner]
    sop_class = CT_IMAGE_STORAGE if series.modality == "CT" else DX_IMAGE_STORAGE
    size = 0
    for n in range(1, series.slices + 1):
        sop_uid = _uid(series_uid, n)
        ds = _file_dataset(sop_class, sop_uid)
        _patient(ds, study.patient_index)
        ds.StudyInstanceUID = study_uid
        ds.StudyDate = study.date.replace("-", "")
        ds.StudyTime = "101530"
        ds.StudyID = str(study.patient_index)
        if study.accession:
            ds.AccessionNumber = study.accession
        else:
            ds.AccessionNumber = ""
        ds.StudyDescription = study.description
        ds.ReferringPhysicianName = ""
        ds.SeriesInstanceUID = series_uid
        ds.SeriesNumber = series.number
        ds.SeriesDate = ds.StudyDate
        ds.SeriesTime = "102000"
        ds.SeriesDescription = series.description
        ds.Modality = series.modality
        ds.Manufacturer = manufacturer if series.modality == "CT" else "Carestream Health"
        ds.ManufacturerModelName = model if series.modality == "CT" else "DRX-Evolution"
        ds.InstitutionName = "Quire Sample Hospital"
        ds.BodyPartExamined = "CHEST"
        ds.InstanceNumber = n
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL" if series.modality == "CT" else ""]
        ds.PixelSpacing = [series.spacing, series.spacing]
        ds.PatientPosition = "FFS" if series.modality == "CT" else ""
        if series.modality == "CT":
            z = -50.0 - (n - 1) * series.thickness
            ds.SliceThickness = series.thickness
            ds.KVP = 120 if series.scanner % 2 == 0 else 140
            ds.ConvolutionKernel = kernel
            ds.ReconstructionDiameter = round(series.spacing * 512, 3)
            ds.GantryDetectorTilt = 0
            ds.FrameOfReferenceUID = _uid(study_uid, "frame")
            ds.ImagePositionPatient = [-180.0, -180.0, z]
            ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
            ds.SliceLocation = z
            ds.RescaleIntercept = -1024
            ds.RescaleSlope = 1
            ds.WindowCenter = -600
            ds.WindowWidth = 1600
            ds.XRayTubeCurrent = 200 + 10 * (n % 5)  # tube current modulation: varies per slice
            ds.ExposureTime = 570
            if private:
                block = ds.private_block(0x0009, private, create=True)
                block.add_new(0x01, "LO", "CT_LIGHTSPEED")
        else:
            ds.ViewPosition = "PA"
            ds.KVP = 120
            ds.DistanceSourceToDetector = 1800
        _image(ds, matrix if series.modality == "CT" else max(matrix, 8), n)
        path = folder / f"1-{n:03d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        size += path.stat().st_size
    if annotation:
        (folder / f"{series.number % 1000:03d}.xml").write_text(_annotation(study_uid, series_uid),
                                                                encoding="utf-8")
    return [{
        "Series UID": series_uid, "Collection": COLLECTION, "3rd Party Analysis": "NO",
        "Data Description URI": "", "Subject ID": pid, "Study UID": study_uid,
        "Study Description": study.description, "Study Date": f"{mm}-{dd}-{yyyy}",
        "Series Description": series.description, "Manufacturer": ds.Manufacturer,
        "Modality": series.modality, "SOP Class Name": "CT Image Storage" if series.modality == "CT"
        else "Digital X-Ray Image Storage - For Presentation", "SOP Class UID": sop_class,
        "Number of Images": series.slices, "File Size": f"{size / 1e6:.2f} MB",
        "File Location": "./" + os.path.relpath(folder, root).replace(os.sep, "/"),
        "Download Timestamp": "2024-05-01T10:00:00.000",
    }]


def _annotation(study_uid: str, series_uid: str) -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<LidcReadMessage uid="1.1.1" xmlns="http://www.nih.gov">\n'
        "  <ResponseHeader>\n"
        f"    <StudyInstanceUID>{study_uid}</StudyInstanceUID>\n"
        f"    <SeriesInstanceUid>{series_uid}</SeriesInstanceUid>\n"
        "  </ResponseHeader>\n"
        "  <readingSession><annotationVersion>3.12</annotationVersion></readingSession>\n"
        "</LidcReadMessage>\n"
    )


def write_sample_archive(root: str | os.PathLike[str], patients: int = 6, slices: int = 8, matrix: int = 16) -> dict:
    """Write the sample archive under ``root``; returns counts of what was written."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    plans = default_plan(patients, slices)
    for study in plans:
        for series in study.series:
            rows.extend(write_series(root, study, series, matrix))
    with open(root / "metadata.csv", "w", newline="", encoding="utf-8") as fp:
        writer = csv.DictWriter(fp, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return {
        "patients": patients,
        "studies": len(plans),
        "series": len(rows),
        "instances": sum(r["Number of Images"] for r in rows),
        "other_files": len(rows) + 1,
    }
