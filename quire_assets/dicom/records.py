"""Instance records and error records: what the core makes of one file.

An instance record holds the identifying UIDs, promoted snake_case copies of the attributes
people filter on, and ``metadata``: every feature-set attribute keyed by keyword (private ones by
``CREATOR,gggg,ee``). An error record is ``{uri, reason, detail}``. ``extract`` never raises for
a bad file: whatever goes wrong becomes an error record with a short reason code.
"""

from __future__ import annotations

import functools
import os
import re
import warnings
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from pydicom.dataset import Dataset

from quire_assets.dicom.fastpath import fast_metadata
from quire_assets.dicom.features import Feature, FeatureSets
from quire_assets.dicom.header import DEFAULT_PREFIX, LOCAL_PREFIX, HeaderError, read_header, require_uids
from quire_assets.dicom.normalize import Oddities, normalize_element, safe_element

# Keys Quire gives files that carry no accession number. Both are longer than 16 characters,
# the most an AccessionNumber (VR SH) may hold, so they cannot collide with a real one.
NO_ACCESSION_PREFIX = "no-accession:"
UNSORTED_FILES_KEY = "no-accession:other-files"
_DAGSTER_INVALID = ("...", "\a", "\b", "\f", "\n", "\r", "\t", "\v", "\0")

# Attributes copied to top-level snake_case fields at each catalog level, for filters and indexes.
PROMOTED = {
    "study": (
        "PatientID", "PatientName", "PatientSex", "PatientBirthDate", "PatientAge",
        "StudyInstanceUID", "AccessionNumber", "StudyDate", "StudyTime", "StudyDescription",
        "StudyID", "InstitutionName",
    ),
    "series": (
        "SeriesInstanceUID", "Modality", "Manufacturer", "ManufacturerModelName", "BodyPartExamined",
        "SliceThickness", "PixelSpacing", "SeriesNumber", "SeriesDescription", "SeriesDate",
        "ConvolutionKernel", "KVP", "Rows", "Columns", "ProtocolName", "SpacingBetweenSlices",
        "MagneticFieldStrength",
    ),
    "instance": ("SOPInstanceUID", "SOPClassUID", "InstanceNumber", "SliceLocation", "NumberOfFrames"),
}


@functools.cache  # a few hundred keywords, asked for once per file each
def snake_case(keyword: str) -> str:
    """``SOPInstanceUID`` → ``sop_instance_uid``, ``KVP`` → ``kvp``."""
    step = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", keyword)
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", step).lower()


def partition_key(accession_number: str | None, study_instance_uid: str | None) -> str:
    """The accession partition a file belongs to.

    The accession number verbatim when it has one; ``no-accession:<StudyInstanceUID>`` for a
    study without one; ``no-accession:other-files`` for files with neither (junk, skipped files).
    The few substrings Dagster refuses in a partition key are percent-escaped behind ``escaped:``.
    """
    accession = (accession_number or "").strip()
    if accession:
        if any(bad in accession for bad in _DAGSTER_INVALID):
            return "escaped:" + quote(accession, safe="").replace(".", "%2E")
        return accession
    if study_instance_uid:
        return NO_ACCESSION_PREFIX + study_instance_uid
    return UNSORTED_FILES_KEY


def error_record(uri: str, reason: str, detail: str, key: str = UNSORTED_FILES_KEY, **extra: Any) -> dict:
    return {"uri": uri, "reason": reason, "detail": detail, "partition_key": key, **extra}


def _feature_value(ds: Dataset, feature: Feature, oddities: Oddities) -> Any:
    if feature.is_private:
        try:
            block = ds.private_block(feature.private_group, feature.private_creator)
            tag = block.get_tag(feature.private_offset)
        except (KeyError, ValueError):
            return None
        elem = safe_element(ds, tag, feature.name, oddities)
    else:
        container = ds
        if feature.tag >> 16 == 0x0002:  # file meta information (TransferSyntaxUID, ...)
            container = getattr(ds, "file_meta", None)
            if container is None:
                return None
        if feature.tag not in container:  # most features are absent from most files: skip the lookup
            return None
        elem = safe_element(container, feature.tag, feature.name, oddities)
    if elem is None:
        return None
    return normalize_element(elem, feature.name, oddities)


def record_from_dataset(uri: str, ds: Dataset, features: FeatureSets, preamble: bool, size: int | None) -> dict:
    """The instance record of a parsed header (raises ``HeaderError`` without the UIDs)."""
    study_uid, series_uid, sop_uid = require_uids(ds, preamble)
    oddities = Oddities()
    metadata: dict[str, Any] = {}
    for feature in features.all:
        value = _feature_value(ds, feature, oddities)
        if value is not None:
            metadata[feature.name] = value
    return build_record(uri, size, metadata, oddities, study_uid, series_uid, sop_uid)


def build_record(uri: str, size: int | None, metadata: dict[str, Any], oddities: list, study_uid: str, series_uid: str,
                 sop_uid: str) -> dict:
    """An instance record from its metadata (shared by the pydicom path and the fast path)."""
    # The UIDs identify the record whatever the feature set says.
    metadata.update(StudyInstanceUID=study_uid, SeriesInstanceUID=series_uid, SOPInstanceUID=sop_uid)
    accession = metadata.get("AccessionNumber")
    record = {
        "uri": uri,
        "size": size,
        "partition_key": partition_key(str(accession) if accession is not None else None, study_uid),
        "study_instance_uid": study_uid,
        "series_instance_uid": series_uid,
        "sop_instance_uid": sop_uid,
        "accession_number": accession,
        "patient_id": metadata.get("PatientID"),
        "modality": metadata.get("Modality"),
        "metadata": metadata,
        "oddities": list(oddities),
    }
    return record


def extract(
    uri: str,
    size: int,
    fetch: Callable[[int], bytes],
    features: FeatureSets,
    first_bytes: int = DEFAULT_PREFIX,
    fast: bool = False,
) -> dict:
    """The record of one file: an instance record, or an error record (``"reason"`` set).

    ``fetch(n)`` returns the file's first ``n`` bytes. Never raises for a bad file.
    """
    if fast and size:
        try:
            prefix = fetch(min(first_bytes, size))
        except OSError as exc:
            return error_record(uri, "io_error", f"{type(exc).__name__}: {exc}"[:300], size=size)
        record = _fast_record(uri, size, prefix, features)
        if record is not None:
            return record

        def fetch(n: int, _prefix: bytes = prefix, _fetch: Callable[[int], bytes] = fetch) -> bytes:
            return _prefix[:n] if n <= len(_prefix) else _fetch(n)  # the pydicom path reuses the bytes read

    try:
        header = read_header(uri, size, fetch, first_bytes)
    except HeaderError as exc:
        return error_record(uri, exc.reason, exc.detail, size=size)
    except OSError as exc:
        return error_record(uri, "io_error", f"{type(exc).__name__}: {exc}"[:300], size=size)
    except RecursionError:  # pydicom reads a sequence's items recursively: hundreds of levels deep
        return error_record(uri, "unreadable", "sequences nested too deep to read (more levels than "
                            "Python's recursion limit)", size=size)
    except Exception as exc:  # the core's promise: a bad file is a record, never a crash
        return error_record(uri, "unreadable", f"{type(exc).__name__}: {exc}"[:300], size=size)
    ds = header.dataset
    record = record_or_error(uri, ds, features, getattr(ds, "preamble", None) is not None, size)
    if header.damage:
        if record.get("reason") == "missing_uid":  # the cut took a UID with it
            return error_record(uri, "truncated", f"{header.damage}; {record['detail']}",
                                record["partition_key"], size=size)
        if not is_error(record):
            record["damage"] = header.damage
    return record


def record_or_error(uri: str, ds: Dataset, features: FeatureSets, preamble: bool, size: int | None) -> dict:
    """``record_from_dataset``, with whatever goes wrong as an error record (a file's header, or an
    instance a PACS described)."""
    try:
        with warnings.catch_warnings():  # pydicom warns on values that violate their VR: oddities say it
            warnings.simplefilter("ignore")
            return record_from_dataset(uri, ds, features, preamble, size)
    except HeaderError as exc:
        return error_record(uri, exc.reason, exc.detail, _partition_of_partial(ds), size=size)
    except Exception as exc:  # the core's promise: a bad file is a record, never a crash
        return error_record(uri, "unreadable", f"{type(exc).__name__}: {exc}"[:300], _partition_of_partial(ds), size=size)


def _fast_record(uri: str, size: int, prefix: bytes, features: FeatureSets) -> dict | None:
    metadata = fast_metadata(prefix, size, features)
    if metadata is None:
        return None
    uids = [str(metadata.get(k) or "").strip() for k in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")]
    if not all(uids) or any(isinstance(metadata.get(k), list) for k in
                            ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")):
        return None  # the pydicom path classifies it
    return build_record(uri, size, metadata, [], *uids)


def _partition_of_partial(ds: Dataset) -> str:
    """Errors in files that still name their accession or study stay with that partition."""
    try:
        accession = ds.get("AccessionNumber")
        study = ds.get("StudyInstanceUID")
    except Exception:
        return UNSORTED_FILES_KEY
    return partition_key(str(accession) if accession else None, str(study) if study else None)


def read_file_prefix(path: str | os.PathLike[str]) -> Callable[[int], bytes]:
    """A ``fetch`` for a local file: its first ``n`` bytes, one read each call."""

    def fetch(n: int) -> bytes:
        with open(path, "rb", buffering=0) as fp:
            return fp.read(n)

    return fetch


def extract_file(path: str | os.PathLike[str], features: FeatureSets, uri: str | None = None,
                 fast: bool = False) -> dict:
    """``extract`` for a local file (``uri`` defaults to the path)."""
    uri = uri or os.fspath(path)
    try:
        size = os.stat(path).st_size
    except OSError as exc:
        return error_record(uri, "io_error", f"{type(exc).__name__}: {exc}"[:300])
    return extract(uri, size, read_file_prefix(path), features, LOCAL_PREFIX, fast=fast)


def is_error(record: dict) -> bool:
    return "reason" in record
