"""Generated filters over generated documents. The SQLite compiler answers exactly what the
reference evaluator (``tests/catalog/reference.py``, MongoDB's documented semantics) answers, on
every shape a catalog document holds; and what mongomock answers, on the shapes where mongomock
itself is right (``test_mongomock_known_errors`` lists where it is not)."""

from __future__ import annotations

import json
import os

import mongomock_ng
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quire_assets.catalog.filters import INT64, SHORT_IN
from quire_assets.catalog.mongo import MongoCatalog
from quire_assets.catalog.sqlite import SqliteCatalog
from tests.catalog.conftest import NO_SERVER, backend_catalog, backends
from tests.catalog.reference import matches

# No booleans: mongomock compares True == 1 as Python does, where MongoDB (and the SQLite
# backend) keep BSON types apart; booleans are covered by the contract suite instead.
scalars = st.one_of(
    st.none(),
    st.integers(-3, 3),
    st.sampled_from([0.5, 1.25, -2.5, 3.0]),
    st.sampled_from(["CT", "MR", "ct", "GE MEDICAL", "", "Ü", "s0", "s1"]),
)
values = st.one_of(scalars, st.lists(scalars, max_size=3))
# Promoted fields hold single values only (the catalog refuses arrays there).
promoted = st.fixed_dictionaries({}, optional={
    "modality": st.one_of(st.none(), st.sampled_from(["CT", "MR", "DX"])),
    "slice_thickness": st.one_of(st.none(), st.sampled_from([0.625, 1.25, 2.5, 5]), st.integers(0, 3)),
})
documents = st.lists(
    st.tuples(
        promoted,
        st.fixed_dictionaries({}, optional={"a": values, "b": values, "meta": st.fixed_dictionaries(
            {}, optional={"x": values, "y": values})}),
    ),
    max_size=8,
)

fields = st.sampled_from(["a", "b", "meta.x", "meta.y", "modality", "slice_thickness", "missing", "series_instance_uid"])
plain = st.one_of(scalars, st.lists(scalars, max_size=2))


def conditions():
    comparison = st.tuples(st.sampled_from(["$gt", "$gte", "$lt", "$lte"]),
                           st.one_of(st.integers(-3, 3), st.sampled_from([1.25, "CT", "M"])))
    ops = st.one_of(
        plain,
        st.builds(lambda v: {"$eq": v}, plain),
        st.builds(lambda v: {"$ne": v}, scalars),
        st.builds(lambda c: {c[0]: c[1]}, comparison),
        st.builds(lambda a, b: {a[0]: a[1], b[0]: b[1]}, comparison, comparison),
        st.builds(lambda v: {"$in": v}, st.lists(scalars, max_size=3)),
        st.builds(lambda v: {"$nin": v}, st.lists(scalars, max_size=3)),
        st.builds(lambda v: {"$exists": v}, st.booleans()),
        st.builds(lambda r: {"$regex": r}, st.sampled_from(["^C", "T$", "m", "^$", "E M"])),
        st.builds(lambda r: {"$regex": r, "$options": "i"}, st.sampled_from(["^c", "mr"])),
        st.builds(lambda c: {"$not": {c[0]: c[1]}}, comparison),
    )
    return ops


leaf = st.builds(lambda f, c: {f: c}, fields, conditions())
filters = st.recursive(
    leaf,
    lambda inner: st.one_of(
        st.builds(lambda xs: {"$and": xs}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda xs: {"$or": xs}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda xs: {"$nor": xs}, st.lists(inner, min_size=1, max_size=3)),
    ),
    max_leaves=4,
)


@settings(max_examples=int(os.environ.get("QUIRE_DIFF_EXAMPLES", "400")), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(docs=documents, flt=filters)
def test_sqlite_answers_what_mongomock_answers(tmp_path_factory, docs, flt):
    sqlite = SqliteCatalog(tmp_path_factory.mktemp("diff") / "c.db")
    mongo = MongoCatalog(mongomock_ng.MongoClient(), "diff")
    rows = [{"series_instance_uid": f"s{i}", **p, **rest} for i, (p, rest) in enumerate(docs)]
    for catalog in (sqlite, mongo):
        catalog.upsert("series", rows)
    expected = sorted(d["series_instance_uid"] for d in mongo.find("series", flt))
    got = sorted(d["series_instance_uid"] for d in sqlite.find("series", flt))
    assert got == expected, (flt, rows)
    assert sqlite.count("series", flt) == len(expected)
    sqlite.close()


# ---- Every shape a catalog document can hold, against the reference evaluator -----------------------

# Numbers never equal across int and float here ([1] and [1.0] are one value to MongoDB and two JSON
# texts to SQLite's whole-value comparison: see docs/api.md); integers reach 64 bits.
wide_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.sampled_from([2**53 + 1, -(2**62), INT64[1], INT64[0]]),
    st.sampled_from([0.5, 1.25, -2.5]),
    st.sampled_from(["CT", "ct", "", "Ü", "a.b", "$gt", "s0"]),
)
# Arrays of documents holding arrays of documents, three levels as sequences are stored.
nested = st.recursive(
    wide_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.sampled_from(["b", "c", "d"]), inner, max_size=3)),
    max_leaves=10,
)
# The shape of a DICOM sequence in a record: a list of items, each holding attributes and
# sequences of its own, three levels deep (a.b.c.d crosses three arrays).
leaf_values = st.one_of(wide_scalars, st.lists(wide_scalars, max_size=2))


def items(inner: dict) -> st.SearchStrategy:
    return st.lists(st.fixed_dictionaries({}, optional=inner), max_size=3)


sequences = items({"b": items({"c": items({"d": leaf_values}), "d": leaf_values}), "c": leaf_values, "d": leaf_values})
wide_documents = st.lists(
    st.tuples(promoted, st.fixed_dictionaries({}, optional={"a": st.one_of(nested, sequences), "b": nested})),
    max_size=6,
)
wide_fields = st.sampled_from(["a", "b", "a.b", "a.c", "a.b.c", "a.b.c.d", "a.d", "b.c", "modality",
                               "slice_thickness", "missing"])
# Operands for whole-value equality: arrays and documents of integers and strings.
containers = st.recursive(
    st.one_of(st.integers(-3, 3), st.sampled_from(["CT", "a.b"]), st.none(), st.booleans()),
    lambda inner: st.one_of(st.lists(inner, max_size=2),
                            st.dictionaries(st.sampled_from(["b", "c", "d"]), inner, max_size=2)),
    max_leaves=4,
)
operands = st.one_of(wide_scalars, containers)
range_operands = st.one_of(st.integers(-3, 3), st.sampled_from([INT64[1], -(2**62), 1.25, "CT", "a", None, True,
                                                                False]))
wide_conditions = st.one_of(
    operands,
    st.builds(lambda v: {"$eq": v}, operands),
    st.builds(lambda v: {"$ne": v}, operands),
    st.builds(lambda o, v: {o: v}, st.sampled_from(["$gt", "$gte", "$lt", "$lte"]), range_operands),
    st.builds(lambda v: {"$in": v}, st.lists(operands, max_size=3)),
    st.builds(lambda v: {"$nin": v}, st.lists(operands, max_size=3)),
    # Lists longer than SHORT_IN: SQLite joins them (json_each) instead of one condition per value.
    st.builds(lambda o, v: {o: v}, st.sampled_from(["$in", "$nin"]), st.lists(operands, min_size=SHORT_IN + 1,
                                                                               max_size=SHORT_IN + 4)),
    st.builds(lambda v: {"$exists": v}, st.booleans()),
    st.builds(lambda r: {"$regex": r}, st.sampled_from(["^C", "T$", r"\.", "^$", r"^\$"])),
    st.builds(lambda r: {"$regex": r, "$options": "i"}, st.sampled_from(["^c", "ü"])),
    st.builds(lambda o, v: {"$not": {o: v}}, st.sampled_from(["$gt", "$lte"]), range_operands),
    st.builds(lambda v: {"$not": {"$in": v}}, st.lists(operands, max_size=2)),
    st.builds(lambda v: {"$not": {"$eq": v}}, operands),
    st.builds(lambda v: {"$not": {"$exists": v}}, st.booleans()),
)
wide_filters = st.recursive(
    st.builds(lambda f, c: {f: c}, wide_fields, wide_conditions),
    lambda inner: st.one_of(
        st.builds(lambda xs: {"$and": xs}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda xs: {"$or": xs}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda xs: {"$nor": xs}, st.lists(inner, min_size=1, max_size=3)),
    ),
    max_leaves=4,
)


@settings(max_examples=int(os.environ.get("QUIRE_REFERENCE_EXAMPLES", "300")), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(docs=wide_documents, flt=wide_filters)
def test_sqlite_answers_what_the_reference_answers(tmp_path_factory, docs, flt):
    sqlite = SqliteCatalog(tmp_path_factory.mktemp("ref") / "c.db")
    rows = [{"series_instance_uid": f"s{i}", **p, **rest} for i, (p, rest) in enumerate(docs)]
    sqlite.upsert("series", rows)
    expected = sorted(d["series_instance_uid"] for d in rows if matches(d, flt))
    got = sorted(d["series_instance_uid"] for d in sqlite.find("series", flt))
    assert got == expected, (flt, rows)
    assert sqlite.count("series", flt) == len(expected)
    sqlite.close()


# Where mongomock departs from MongoDB's documented behaviour, found by running it against the
# reference on the shapes above: (filter, document, whether MongoDB matches it, the rule).
# mongomock answers the opposite in each: the test holds it to that answer, so that a mongomock
# that is fixed shows here, and holds SQLite, the reference and a real server to the manual.
MONGOMOCK_WRONG = [
    ({"a": 1}, {"a": True}, False,
     "booleans are their own type: true is not 1 (reference/bson-type-comparison-order)"),
    ({"a.b": None}, {"a": 0.5}, True,
     "null matches a missing field (tutorial/query-for-null-fields): a number has no field b"),
    ({"a.d": None}, {"a": None}, True,
     "null matches a missing field: a null has no field d"),
    ({"a.d": {}}, {"b": 1}, False,
     "a document equals only a document: a missing field is not {} (reference/operator/query/eq)"),
    ({"a.b.c": {"$not": {"$lte": 1.25}}}, {"a": {"b": True}}, True,
     "$not matches documents without the field (reference/operator/query/not): a.b is a boolean, with no field c"),
    ({"a.c": {"$not": {"$in": []}}}, {"a": []}, True,
     "$not matches documents without the field: an empty array holds no document with c"),
    ({"a.b.c": {"$exists": False}}, {"a": [{"b": [{"c": 1}]}, {"d": 2}]}, False,
     "$exists: false matches only documents without the field (reference/operator/query/exists): one item has it"),
    # The manual does not say how null meets a path through an empty array; the reference's rule (a
    # path that reaches no value is a missing field) decides, and a real server, when one is set.
    ({"a.c": None}, {"a": []}, True,
     "null matches a missing field: an empty array holds no document with c"),
]


@pytest.mark.parametrize("backend", backends("sqlite"))
@pytest.mark.parametrize(("flt", "doc", "documented", "rule"), MONGOMOCK_WRONG,
                         ids=[json.dumps(case[0]) + " on " + json.dumps(case[1]) for case in MONGOMOCK_WRONG])
def test_mongomock_known_errors(backend, flt, doc, documented, rule, tmp_path):
    assert matches(doc, flt) is documented, rule
    row = {"series_instance_uid": "s0", **doc}
    sqlite = SqliteCatalog(tmp_path / "c.db")
    sqlite.upsert("series", [row])
    assert (sqlite.count("series", flt) == 1) is documented, rule
    sqlite.close()
    with backend_catalog(backend, tmp_path) as mongo:
        mongo.upsert("series", [row])
        answer = mongo.count("series", flt) == 1
    assert answer is (not documented if backend == "mongomock" else documented), rule


@NO_SERVER
@settings(max_examples=int(os.environ.get("QUIRE_REFERENCE_EXAMPLES", "300")), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(docs=wide_documents, flt=wide_filters)
def test_a_real_mongodb_answers_what_the_reference_answers(tmp_path_factory, docs, flt):
    """Where the manual leaves a case open, a real server is the oracle too: a disagreement here
    is a rule of ``reference.py`` to correct (and SQLite with it)."""
    rows = [{"series_instance_uid": f"s{i}", **p, **rest} for i, (p, rest) in enumerate(docs)]
    with backend_catalog("mongodb", tmp_path_factory.mktemp("real")) as mongo:
        if rows:
            mongo.upsert("series", rows)
        got = sorted(d["series_instance_uid"] for d in mongo.find("series", flt))
    assert got == sorted(d["series_instance_uid"] for d in rows if matches(d, flt)), (flt, rows)
