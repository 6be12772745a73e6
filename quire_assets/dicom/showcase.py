"""A small hospital-shaped archive that shows what Quire does (``quire sample-archive --showcase``).

Where the LIDC-shaped sample archive (``sample.py``) is one CT collection of one year, this one has
what a department's archive has: CT, MR and DX from several vendors over a decade, patients of
both sexes and many ages, thin and thick slices, contrast phases, MR sequences Quire labels (T1w,
T2w, FLAIR, DWI), radiographs of one or two images, and a few known defects (a missing slice, a
duplicated position, a damaged file, a file that is not DICOM). Deterministic: the same files on
every machine, laid out as ``<year>/<accession>/<series number>/<n>.dcm``.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

from quire_assets.dicom.sample import _file_dataset, _image, _uid

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
DX_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.1.1"
# manufacturer, CT model, MR model, CT kernels (soft, sharp)
VENDORS = [("GE MEDICAL SYSTEMS", "Revolution CT", "SIGNA Premier", ("STANDARD", "LUNG")),
           ("SIEMENS", "SOMATOM Force", "MAGNETOM Skyra", ("Br40d", "Br64d")),
           ("Philips", "IQon Spectral CT", "Ingenia", ("B", "YC")),
           ("TOSHIBA", "Aquilion ONE", "Vantage Orian", ("FC08", "FC52"))]
# MR sequences: description, TR, TE, TI, image type's third value, sequence name, b-value
MR_SEQUENCES = [("T1 SE AX", 550, 12, None, "M", "se2d1", None), ("T2 TSE AX", 4500, 95, None, "M", "tse2d1_15", None),
                ("FLAIR AX", 9000, 120, 2500, "M", "tir2d1_21", None),
                ("DWI b1000", 5200, 80, None, "DIFFUSION", "ep_b1000t", 1000)]
CT_RECONS = [("CHEST 0.625MM LUNG", 0.625, 1), ("CHEST 1MM", 1.0, 0), ("ABDOMEN 2.5MM", 2.5, 0),
             ("ABDOMEN 5MM", 5.0, 0), ("CHEST 1.25MM", 1.25, 1)]


def _patient(ds, index: int, year: int) -> None:
    """A patient's sex and birth date are the same at every visit (drawn from their index)."""
    rng = random.Random(index)
    ds.PatientID = f"MRN{100000 + index * 7919 % 900000:06d}"
    ds.PatientName = f"SHOWCASE^PATIENT{index:03d}"
    ds.PatientSex = rng.choice("MMFFFMFO"[: 7 + (index % 9 == 0)])
    born = rng.randint(1930, 2004)
    ds.PatientBirthDate = f"{born}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"
    ds.PatientAge = f"{year - born:03d}Y"


def _instance(sop_class: str, study_uid: str, patient: int, year: int, series_number: int, n: int):
    ds = _file_dataset(sop_class, _uid(study_uid, series_number, n))
    _patient(ds, patient, year)
    ds.InstanceNumber = n
    return ds


def _series_common(ds, study: dict, number: int, description: str, modality: str, vendor: tuple, model: str) -> None:
    for keyword, value in study["tags"].items():
        setattr(ds, keyword, value)
    ds.SeriesInstanceUID = _uid(study["uid"], number)
    ds.SeriesNumber = number
    ds.SeriesDescription = description
    ds.SeriesDate, ds.SeriesTime = ds.StudyDate, "101000"
    ds.Modality = modality
    ds.Manufacturer = vendor[0]
    ds.ManufacturerModelName = model
    ds.InstitutionName = "Quire Showcase Hospital"


def _write(folder: Path, ds, n: int, matrix: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    _image(ds, matrix, n)
    path = folder / f"{n}.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path


def write_showcase_archive(root: str | os.PathLike[str], studies: int = 48, matrix: int = 16) -> dict:
    """Write the showcase archive under ``root``; returns counts of what was written."""
    root = Path(root)
    rng = random.Random(33)
    counts = {"patients": 0, "studies": 0, "series": 0, "instances": 0, "other_files": 0}
    patients = max(1, studies * 3 // 4)  # some patients come back
    seen = set()
    ct_studies = 0
    for s in range(studies):
        patient = rng.randrange(patients)
        year = 2014 + rng.randrange(11)
        kind = rng.choices(["CT", "MR", "DX"], weights=[5, 3, 4])[0]
        accession = f"ACC{year}{s:05d}"
        date = f"{year}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"
        study_uid = _uid("showcase", accession)
        tags = {"StudyInstanceUID": study_uid, "StudyDate": date, "StudyTime": "100000", "AccessionNumber": accession,
                "StudyID": str(s + 1), "ReferringPhysicianName": "",
                "StudyDescription": {"CT": rng.choice(["CT CHEST", "CT ABDOMEN PELVIS W CONTRAST", "CT CHEST W/O"]),
                                     "MR": "MR BRAIN W/O", "DX": "XR CHEST"}[kind]}
        study = {"uid": study_uid, "tags": tags}
        vendor = VENDORS[rng.randrange(len(VENDORS))]
        folder = root / str(year) / accession
        counts["studies"] += 1
        if patient not in seen:
            seen.add(patient)
            counts["patients"] += 1

        if kind == "DX":
            views = ["PA", "LAT"][: rng.choice([1, 2])]
            for number, view in enumerate(views, start=1):
                ds = _instance(DX_IMAGE_STORAGE, study_uid, patient, year, number, 1)
                _series_common(ds, study, number, f"CHEST {view}", "DX", vendor, "DRX-Evolution")
                ds.Manufacturer = rng.choice(["Carestream Health", "FUJIFILM Corporation", "Agfa"])
                ds.BodyPartExamined, ds.ViewPosition, ds.KVP = "CHEST", view, 110 + 15 * (view == "LAT")
                ds.ImageType = ["ORIGINAL", "PRIMARY"]
                ds.PixelSpacing = [0.139, 0.139]
                _write(folder / str(number), ds, 1, matrix)
                counts["series"] += 1
                counts["instances"] += 1
            continue
        if kind == "MR":
            strength = rng.choice([1.5, 3.0])
            for number, (description, tr, te, ti, kind3, name, b) in enumerate(MR_SEQUENCES, start=1):
                for n in range(1, 6):
                    ds = _instance(MR_IMAGE_STORAGE, study_uid, patient, year, number, n)
                    _series_common(ds, study, number, description, "MR", vendor, vendor[2])
                    ds.BodyPartExamined = "BRAIN"
                    ds.ImageType = ["ORIGINAL", "PRIMARY", kind3]
                    ds.ScanningSequence = "EP" if b else ("IR" if ti else "SE")
                    ds.SequenceVariant = "SK"
                    ds.RepetitionTime, ds.EchoTime = tr, te
                    if ti:
                        ds.InversionTime = ti
                    if b:
                        ds.DiffusionBValue = b
                    ds.SequenceName = name
                    ds.MagneticFieldStrength = strength
                    ds.SliceThickness, ds.SpacingBetweenSlices = 5.0, 6.0
                    ds.PixelSpacing = [0.9, 0.9]
                    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
                    ds.ImagePositionPatient = [-115.0, -115.0, 6.0 * n]
                    ds.FrameOfReferenceUID = _uid(study_uid, "frame")
                    _write(folder / str(number), ds, n, matrix)
                    counts["instances"] += 1
                counts["series"] += 1
            continue
        ct_studies += 1
        contrast = "CONTRAST" in tags["StudyDescription"] and " W/O" not in tags["StudyDescription"]
        recons = rng.sample(CT_RECONS, rng.choice([1, 2]))
        for number, (description, thickness, sharp) in enumerate(recons, start=1):
            slices = rng.randint(6, 10)
            kvp = rng.choice([100, 120])
            positions = [-100.0 - i * thickness for i in range(slices)]
            if ct_studies == 1 and number == 1:  # a slice lost in transfer: missing_slices
                del positions[3]
            if ct_studies == 2 and number == 1:  # a slice sent twice under two UIDs: duplicate_positions
                positions[4] = positions[3]
            for n, z in enumerate(positions, start=1):
                ds = _instance(CT_IMAGE_STORAGE, study_uid, patient, year, number, n)
                _series_common(ds, study, number, description, "CT", vendor, vendor[1])
                ds.BodyPartExamined = "CHEST" if "CHEST" in description else "ABDOMEN"
                ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
                ds.SliceThickness = thickness
                ds.KVP = kvp
                ds.ConvolutionKernel = vendor[3][sharp]
                ds.PixelSpacing = [0.7, 0.7]
                ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
                ds.ImagePositionPatient = [-180.0, -180.0, z]
                ds.SliceLocation = z
                ds.FrameOfReferenceUID = _uid(study_uid, "frame")
                ds.GantryDetectorTilt = 0
                if contrast:
                    ds.ContrastBolusAgent = "IOPAMIDOL"
                    ds.ContrastBolusStartTime = "100000"
                    ds.AcquisitionTime = "100100"  # 60 s after the bolus: portal venous
                _write(folder / str(number), ds, n, matrix)
                counts["instances"] += 1
            counts["series"] += 1
    # What an archive also holds: a file cut short in its pixels (cataloged from its header, flagged
    # damaged), one cut short in its header (an error), and a file that is not DICOM.
    files = sorted(root.rglob("*.dcm"))
    for path, keep in ((files[11], -100), (files[7], 300)):
        path.write_bytes(path.read_bytes()[:keep])
    (root / "README.txt").write_text("Quire's showcase archive: synthetic, no real patient.\n", encoding="utf-8")
    counts["other_files"] = 1
    return counts
