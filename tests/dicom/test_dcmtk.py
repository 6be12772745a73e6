"""Quire's records agree with dcmtk's dcmdump, an independent DICOM parser (installed by .ci/run)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from quire_assets.dicom.records import extract_file
from tests.conftest import PYDICOM_TEST_FILES

TAGS = {
    "0020,000d": "StudyInstanceUID", "0020,000e": "SeriesInstanceUID", "0008,0018": "SOPInstanceUID",
    "0008,0050": "AccessionNumber", "0008,0060": "Modality", "0018,0050": "SliceThickness",
    "0028,0030": "PixelSpacing", "0020,0013": "InstanceNumber",
}
LINE = re.compile(r"^\((?P<tag>[0-9a-f]{4},[0-9a-f]{4})\) \w\w \[(?P<value>.*?)\]")


def dcmdump(paths: list[Path]) -> dict[str, dict[str, str]]:
    exe = shutil.which("dcmdump")
    assert exe, "dcmdump is missing: install Debian's dcmtk (.ci/run does)"
    args = [exe, "+F", "-q"] + [a for tag in TAGS for a in ("+P", tag)] + [str(p) for p in paths]
    out = subprocess.run(args, capture_output=True, text=True, errors="replace", timeout=120).stdout
    result: dict[str, dict[str, str]] = {}
    current = None
    for line in out.splitlines():
        if line.startswith("# dcmdump"):
            current = result.setdefault(line.split(": ", 1)[1], {})
        elif current is not None and (m := LINE.match(line)):
            current.setdefault(TAGS[m["tag"]], m["value"])
    return result


def _same(ours, theirs: str) -> bool:
    values = [v.strip() for v in theirs.split("\\")]
    ours = ours if isinstance(ours, list) else [ours]
    if len(values) != len(ours):
        return False
    for a, b in zip(ours, values, strict=True):
        if isinstance(a, int | float):
            if abs(float(b) - a) > 1e-9:
                return False
        elif str(a) != b:
            return False
    return True


def test_records_match_dcmdump(sample_archive, features):
    paths = sorted(sample_archive.rglob("*.dcm")) + [
        PYDICOM_TEST_FILES / n for n in ("CT_small.dcm", "MR_small.dcm", "MR_small_bigendian.dcm",
                                         "ExplVR_LitEndNoMeta.dcm", "rtplan.dcm", "JPEG2000.dcm")]
    theirs = dcmdump(paths)
    assert len(theirs) == len(paths)
    compared = 0
    for path in paths:
        record = extract_file(path, features)
        assert "reason" not in record, record
        for keyword, value in theirs[str(path)].items():
            if value == "":
                assert record["metadata"].get(keyword) is None, (path, keyword)
                continue
            assert _same(record["metadata"][keyword], value), (path, keyword, record["metadata"][keyword], value)
            compared += 1
    assert compared > len(paths) * 4
