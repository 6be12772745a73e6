"""How many partitions and files go into one run."""

from __future__ import annotations

from quire_assets.orchestration import partition_ranges

ORDER = [f"A{i:02d}" for i in range(10)]


def covered(ranges):
    out = []
    for first, last in ranges:
        out.extend(ORDER[ORDER.index(first) : ORDER.index(last) + 1])
    return out


def test_ranges_cover_what_is_wanted_in_few_runs():
    assert partition_ranges(ORDER, ORDER) == [("A00", "A09")]
    assert partition_ranges(ORDER, ["A01", "A02", "A07"], batch=3) == [("A01", "A02"), ("A07", "A07")]
    assert partition_ranges(ORDER, ORDER, batch=4) == [("A00", "A03"), ("A04", "A07"), ("A08", "A09")]


def test_ranges_are_bounded_by_files_per_run():
    weights = dict.fromkeys(ORDER, 4)
    ranges = partition_ranges(ORDER, ORDER, weights=weights, max_weight=10)
    assert ranges == [("A00", "A01"), ("A02", "A03"), ("A04", "A05"), ("A06", "A07"), ("A08", "A09")]
    assert covered(ranges) == ORDER
    # A partition heavier than the bound still gets its own run.
    assert partition_ranges(ORDER, ["A03", "A04"], weights={"A03": 50, "A04": 1}, max_weight=10) == [
        ("A03", "A03"), ("A04", "A04")]
