"""Generated filters over generated documents: the SQLite compiler answers exactly what the
mongomock stand-in for MongoDB answers."""

from __future__ import annotations

import os

import mongomock_ng
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quire_assets.catalog.mongo import MongoCatalog
from quire_assets.catalog.sqlite import SqliteCatalog

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
