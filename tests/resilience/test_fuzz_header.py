"""The header reader over mutated real DICOM files: flipped bytes, cut files, huge declared lengths.
Whatever the bytes, ``extract`` returns a record or a classified error, never an exception, within
a bounded time. A bounded run in CI (QUIRE_FUZZ_EXAMPLES, default 150 per test); a longer one:
QUIRE_FUZZ_EXAMPLES=5000 pytest tests/resilience/test_fuzz_header.py."""

from __future__ import annotations

import os
import struct
import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quire_assets.dicom.features import load_feature_sets
from quire_assets.dicom.records import extract
from tests.conftest import PYDICOM_TEST_FILES

FEATURES = load_feature_sets()
SEEDS = [(PYDICOM_TEST_FILES / name).read_bytes() for name in
         ("CT_small.dcm", "MR_small.dcm", "rtplan.dcm", "JPEG2000.dcm", "image_dfl.dcm", "test-SR.dcm",
          "nested_priv_SQ.dcm", "ExplVR_BigEnd.dcm")]
REASONS = {"empty", "not_dicom", "truncated", "missing_uid", "compressed_container", "dicomdir", "skipped",
           "unreadable", "io_error"}
EXAMPLES = int(os.environ.get("QUIRE_FUZZ_EXAMPLES") or 150)
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _check(data: bytes, fast: bool) -> None:
    start = time.monotonic()
    record = extract("fuzz.dcm", len(data), lambda n: data[:n], FEATURES, 1024, fast=fast)
    assert time.monotonic() - start < 5, "a header took more than 5 s"
    if "reason" in record:
        assert record["reason"] in REASONS, record
    else:
        assert record["sop_instance_uid"] and record["study_instance_uid"]


@FUZZ
@given(seed=st.sampled_from(range(len(SEEDS))), flips=st.lists(st.tuples(st.integers(0, 4095), st.integers(0, 255)),
                                                               max_size=12), fast=st.booleans())
def test_flipped_bytes(seed, flips, fast):
    data = bytearray(SEEDS[seed])
    for position, value in flips:
        data[position % len(data)] = value
    _check(bytes(data), fast)


@FUZZ
@given(seed=st.sampled_from(range(len(SEEDS))), cut=st.integers(0, 4096), fast=st.booleans())
def test_cut_files(seed, cut, fast):
    _check(SEEDS[seed][:cut], fast)


@FUZZ
@given(seed=st.sampled_from(range(len(SEEDS))), position=st.integers(132, 2048),
       length=st.sampled_from([0xFFFFFFFF, 0xFFFFFFFE, 0x7FFFFFFF, 0x10000000, 1 << 20]), fast=st.booleans())
def test_huge_declared_lengths(seed, position, length, fast):
    data = bytearray(SEEDS[seed])
    position = min(position, len(data) - 4)
    data[position:position + 4] = struct.pack("<I", length)
    _check(bytes(data), fast)
