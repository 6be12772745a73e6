"""The header reader over mutated real DICOM files: flipped bytes, cut files, huge declared lengths,
sequences nested thousands deep (closed, left open, or with defined lengths). Whatever the bytes,
``extract`` returns a record or a classified error, never an exception, within a bounded time and
memory. A bounded run in CI (QUIRE_FUZZ_EXAMPLES, default 150 per test); a longer one:
QUIRE_FUZZ_EXAMPLES=5000 pytest tests/resilience/test_fuzz_header.py."""

from __future__ import annotations

import os
import struct
import time
import tracemalloc

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quire_assets.dicom.features import load_feature_sets
from quire_assets.dicom.header import MAX_HEADER_BYTES
from quire_assets.dicom.records import extract
from tests.conftest import PYDICOM_TEST_FILES

# Mutated files are full of values that violate their VR, which pydicom warns about one by one (the
# record's oddities say it): expected here, and pages of binary buffers in the summary otherwise.
pytestmark = pytest.mark.filterwarnings("ignore:.*(VR|value length).*:UserWarning")

FEATURES = load_feature_sets()
SEEDS = [(PYDICOM_TEST_FILES / name).read_bytes() for name in
         ("CT_small.dcm", "MR_small.dcm", "rtplan.dcm", "JPEG2000.dcm", "image_dfl.dcm", "test-SR.dcm",
          "nested_priv_SQ.dcm", "ExplVR_BigEnd.dcm")]
REASONS = {"empty", "not_dicom", "truncated", "missing_uid", "compressed_container", "dicomdir", "skipped",
           "unreadable", "io_error"}
EXAMPLES = int(os.environ.get("QUIRE_FUZZ_EXAMPLES") or 150)
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


MEMORY = 32 * 1024 * 1024  # what one header may cost beyond its bytes, at most


def _check(data: bytes, fast: bool) -> None:
    start = time.monotonic()
    tracemalloc.start()
    try:
        record = extract("fuzz.dcm", len(data), lambda n: data[:n], FEATURES, 1024, fast=fast)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.monotonic() - start < 5, "a header took more than 5 s"
    assert peak < MEMORY + 4 * len(data), f"a header of {len(data):,} bytes took {peak:,} bytes of memory"
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


SEQUENCE = struct.pack("<HH", 0x0008, 0x1115) + b"SQ\0\0"  # Referenced Series Sequence, explicit VR
ITEM, ITEM_END, SEQUENCE_END = (struct.pack("<HHI", 0xFFFE, e, 0) for e in (0xE000, 0xE00D, 0xE0DD))
UNDEFINED = struct.pack("<I", 0xFFFFFFFF)


def nested(depth: int, closing: str) -> bytes:
    """A sequence of an item holding a sequence of an item ... ``depth`` times: with undefined
    lengths, closed or left open (the file ends inside), or with defined lengths."""
    inner = b""
    for _ in range(depth):
        if closing == "defined":
            item = ITEM[:4] + struct.pack("<I", len(inner)) + inner
            inner = SEQUENCE + struct.pack("<I", len(item)) + item
        else:
            end = closing == "closed"
            item = ITEM[:4] + UNDEFINED + inner + (ITEM_END if end else b"")
            inner = SEQUENCE + UNDEFINED + item + (SEQUENCE_END if end else b"")
    return inner


def _dataset_start(data: bytes) -> int:
    """Where the data set begins: after the preamble and the file meta group."""
    return 132 + 12 + struct.unpack("<I", data[140:144])[0]


@settings(FUZZ, max_examples=min(EXAMPLES, 40))  # a deep example costs about 0.4 s under tracemalloc
@given(seed=st.sampled_from([0, 1]), depth=st.integers(1, 3000), closing=st.sampled_from(["closed", "open", "defined"]),
       where=st.sampled_from(["first", "last"]), fast=st.booleans())
def test_sequences_nested_thousands_deep(seed, depth, closing, where, fast):
    data = SEEDS[seed]  # CT_small and MR_small: explicit VR little endian
    at = _dataset_start(data) if where == "first" else len(data)
    _check(data[:at] + nested(depth, closing) + data[at:], fast)


def test_sequences_nested_past_the_recursion_limit_are_unreadable_and_say_so():
    at = _dataset_start(SEEDS[0])
    data = SEEDS[0][:at] + nested(2000, "closed") + SEEDS[0][at:]
    for fast in (False, True):
        record = extract("deep.dcm", len(data), lambda n: data[:n], FEATURES, 1024, fast=fast)
        assert record["reason"] == "unreadable" and "nested too deep" in record["detail"], record


def test_a_header_that_never_ends_is_read_no_further_than_the_bound():
    """A listed size of 1 TiB and a header whose first element claims almost 4 GiB: the reader
    asks for at most MAX_HEADER_BYTES, then says the header runs on."""
    head = SEEDS[0][:_dataset_start(SEEDS[0])] + struct.pack("<HH", 0x0009, 0x1001) + b"OB\0\0" + UNDEFINED[:3] + b"\x7f"
    asked = []

    def fetch(n: int) -> bytes:
        asked.append(n)
        return head + bytes(n - len(head))

    record = extract("huge.dcm", 1 << 40, fetch, FEATURES, 1024)
    assert max(asked) == MAX_HEADER_BYTES
    assert record["reason"] == "unreadable" and "runs on past 64 MiB" in record["detail"]
