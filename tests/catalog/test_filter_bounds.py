"""Every bound the filter rules accept is run at that bound on every backend, and what lies past
a bound is refused with a clear error, never a crash in a driver. Paths through sequences inside
sequences (records keep three levels) match on SQLite as on MongoDB."""

from __future__ import annotations

import json

import mongomock_ng
import pytest

from quire_assets.catalog import FilterError
from quire_assets.catalog.filters import (
    ARRAY_CROSSINGS,
    INT64,
    MAX_CLAUSES,
    MAX_DEPTH,
    MAX_IN,
    MAX_PATH_PARTS,
    MAX_REGEX,
    user_filter,
)

REFERENCED = "metadata.ReferencedImageSequence.ReferencedImageSequence.ReferencedSOPInstanceUID"
SERIES = [
    {"series_instance_uid": "s1", "modality": "CT", "num_instances": 3,
     "metadata": {"ReferencedImageSequence": [
         {"ReferencedSOPInstanceUID": "1.1"},
         {"ReferencedImageSequence": [{"ReferencedSOPInstanceUID": "9.9"}, {"ReferencedFrameNumber": [1, 2]}]}],
         "Big": INT64[1], "Small": INT64[0], "Label": "x0"}},
    {"series_instance_uid": "s2", "modality": "MR", "num_instances": 1,
     "metadata": {"ReferencedImageSequence": [{"ReferencedImageSequence": [{"ReferencedSOPInstanceUID": "2.2"}]}],
                  "Big": INT64[1] - 1, "Label": "x1"}},
    {"series_instance_uid": "s3", "modality": "MR", "num_instances": 2,
     "metadata": {"A": [{"B": [{"C": [{"D": "deep"}]}]}], "Label": "x2"}},
]


# Where mongomock answers otherwise than MongoDB's documented behaviour: the filter, mongomock's
# answer, and the rule it breaks. The test holds mongomock to its known answer (so a fixed
# mongomock shows here) and SQLite and a real MongoDB to the documented one.
MONGOMOCK_WRONG = {
    json.dumps({REFERENCED: {"$exists": False}}): (
        ["s1", "s3"], "$exists: false matches the documents that do not contain the field "
        "(https://www.mongodb.com/docs/manual/reference/operator/query/exists/): s1 contains it, in its second item"),
}


def is_mongomock(catalog) -> bool:
    return isinstance(getattr(catalog, "client", None), mongomock_ng.MongoClient)


def uids(catalog, flt) -> list[str]:
    found = sorted(d["series_instance_uid"] for d in catalog.find("series", user_filter(flt)))
    assert catalog.count("series", user_filter(flt)) == len(found)
    return found


@pytest.fixture
def loaded(catalog):
    catalog.upsert("series", SERIES)
    return catalog


@pytest.mark.parametrize(("flt", "expected"), [
    ({REFERENCED: "9.9"}, ["s1"]),
    ({REFERENCED: {"$exists": True}}, ["s1", "s2"]),
    ({REFERENCED: {"$exists": False}}, ["s3"]),
    ({REFERENCED: {"$in": ["2.2", "7"]}}, ["s2"]),
    ({REFERENCED: {"$regex": r"^9\."}}, ["s1"]),
    ({REFERENCED: {"$ne": "9.9"}}, ["s2", "s3"]),
    ({"metadata.ReferencedImageSequence.ReferencedImageSequence.ReferencedFrameNumber": 2}, ["s1"]),
    ({"metadata.ReferencedImageSequence.ReferencedSOPInstanceUID": "1.1"}, ["s1"]),
    ({"metadata.A.B.C.D": "deep"}, ["s3"]),  # three arrays crossed
    ({"metadata.A.B.C": {"$exists": True}}, ["s3"]),
])
def test_paths_through_sequences_inside_sequences(loaded, flt, expected):
    if is_mongomock(loaded) and json.dumps(flt) in MONGOMOCK_WRONG:
        expected = MONGOMOCK_WRONG[json.dumps(flt)][0]
    assert uids(loaded, flt) == expected


def test_in_and_nin_at_their_bound(loaded):
    labels = [f"x{i}" for i in range(MAX_IN)]
    assert uids(loaded, {"metadata.Label": {"$in": labels}}) == ["s1", "s2", "s3"]
    assert uids(loaded, {"metadata.Label": {"$in": labels[1:]}}) == ["s2", "s3"]
    assert uids(loaded, {"metadata.Label": {"$nin": labels[2:]}}) == ["s1", "s2"]
    # Mixed types and a path through sequences, at the bound too.
    mixed = [*range(MAX_IN // 2), *(f"{i}.{i}" for i in range(MAX_IN // 2 - 1)), None]
    assert len(mixed) == MAX_IN and uids(loaded, {REFERENCED: {"$in": mixed}}) == ["s1", "s2", "s3"]
    assert uids(loaded, {"modality": {"$in": [f"M{i}" for i in range(MAX_IN - 1)] + ["CT"]}}) == ["s1"]
    with pytest.raises(FilterError, match="at most 10,000 values"):
        user_filter({"modality": {"$in": labels + ["CT"]}})


def test_or_and_nor_at_their_bound(loaded):
    clauses = [{"metadata.Label": f"x{i}"} for i in range(MAX_CLAUSES)]
    assert uids(loaded, {"$or": clauses}) == ["s1", "s2", "s3"]
    assert uids(loaded, {"$nor": clauses[1:]}) == ["s1"]
    assert uids(loaded, {"$and": [{REFERENCED: {"$exists": True}}] * MAX_CLAUSES}) == ["s1", "s2"]
    with pytest.raises(FilterError, match="at most 1,000 clauses"):
        user_filter({"$or": [*clauses, {"modality": "CT"}]})


def test_depth_regex_and_path_length_at_their_bound(loaded):
    nested: dict = {"modality": "CT"}
    while True:
        deeper = {"$and": [nested]}
        try:
            user_filter(deeper)
        except FilterError:
            break
        nested = deeper
    assert uids(loaded, nested) == ["s1"]  # the deepest filter accepted runs
    with pytest.raises(FilterError, match=f"deeper than {MAX_DEPTH} levels"):
        user_filter({"$and": [nested]})
    pattern = "x[0-2]|" + "x" * (MAX_REGEX - 9) + "1?"
    assert len(pattern) == MAX_REGEX and uids(loaded, {"metadata.Label": {"$regex": pattern}}) == ["s1", "s2", "s3"]
    longest = ".".join(["metadata", *"ABCDEFG"][:MAX_PATH_PARTS])
    assert uids(loaded, {longest: {"$exists": False}}) == ["s1", "s2", "s3"]
    assert ARRAY_CROSSINGS == 3  # the depth the records keep: metadata.A.B.C.D above crosses all three
    with pytest.raises(FilterError, match=f"more than {MAX_PATH_PARTS} parts"):
        user_filter({longest + ".H": 1})


def test_integers_at_64_bits_compare_exactly_and_beyond_are_refused(loaded):
    assert uids(loaded, {"metadata.Big": INT64[1]}) == ["s1"]
    assert uids(loaded, {"metadata.Big": {"$lt": INT64[1]}}) == ["s2"]
    assert uids(loaded, {"metadata.Small": {"$lte": INT64[0]}}) == ["s1"]
    for flt in ({"metadata.Big": 2**63}, {"metadata.Big": {"$gt": -(2**63) - 1}}, {"metadata.Big": {"$in": [1, 2**64]}},
                {"num_instances": {"$not": {"$lt": 2**70}}}):
        for call in (loaded.find, loaded.count):
            with pytest.raises(FilterError, match="at most 64 bits"):
                call("series", flt)


def test_ranges_over_arrays_or_documents_are_refused_not_answered_empty(loaded):
    for flt in ({"metadata.Label": {"$gt": ["x"]}}, {"num_instances": {"$not": {"$lte": {"a": 1}}}}):
        for call in (loaded.find, loaded.count):
            with pytest.raises(FilterError, match=r"compares numbers, text, booleans or null, not an? "):
                call("series", flt)
