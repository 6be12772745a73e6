"""Keyset pages, on every backend: walking the pages gives exactly the one-query order, whatever
the sort, with nulls, missing values, numbers and text mixed, and ties on the sort value."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quire_assets.catalog import FilterError
from quire_assets.catalog.pages import Position, page

VALUES = st.one_of(st.none(), st.integers(-3, 3), st.sampled_from([0.5, 1.25, -2.5]),
                   st.sampled_from(["", "A", "B", "b", "ÄB"]), st.just("missing"))


def _docs(values: list) -> list[dict]:
    docs = []
    for i, value in enumerate(values):
        doc = {"series_instance_uid": f"1.2.{i:03d}", "study_instance_uid": "1", "modality": "CT" if i % 2 else "MR"}
        if value != "missing":
            doc["manufacturer"] = value
        docs.append(doc)
    return docs


def _walk(catalog, limit: int, sort, where=None) -> list[str]:
    keys, after = [], None
    for _ in range(1000):
        docs, after = page(catalog, "series", where, sort, limit, after, ["modality"])
        keys += [d["series_instance_uid"] for d in docs]
        if after is None:
            return keys
    raise AssertionError("pages never ended")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.lists(VALUES, min_size=0, max_size=14), limit=st.integers(1, 5),
       sort=st.sampled_from([None, ("manufacturer", 1), ("manufacturer", -1), ("series_instance_uid", -1)]))
def test_pages_walk_the_whole_order_once(catalog, values, limit, sort):
    catalog.delete("series", {})
    catalog.upsert("series", _docs(values))
    expected = [d["series_instance_uid"] for d in catalog.find("series", sort=[sort] if sort else None)]
    assert _walk(catalog, limit, sort) == expected
    ct = [d["series_instance_uid"] for d in catalog.find("series", {"modality": "CT"}, sort=[sort] if sort else None)]
    assert _walk(catalog, limit, sort, {"modality": "CT"}) == ct


def test_rows_written_while_paging_neither_shift_nor_repeat_the_rest(catalog):
    catalog.upsert("series", _docs([1, 2, 3, 4, 5, 6]))
    first, after = page(catalog, "series", limit=3)
    # An ingest writes before and after the position, and removes a row already seen.
    catalog.upsert("series", [{"series_instance_uid": "1.2.000a", "study_instance_uid": "1"},
                              {"series_instance_uid": "1.2.004a", "study_instance_uid": "1"}])
    catalog.delete("series", {"series_instance_uid": "1.2.001"})
    rest, end = page(catalog, "series", limit=10, after=after)
    assert end is None
    assert [d["series_instance_uid"] for d in first] == ["1.2.000", "1.2.001", "1.2.002"]
    assert [d["series_instance_uid"] for d in rest] == ["1.2.003", "1.2.004", "1.2.004a", "1.2.005"]


def test_projection_keeps_the_key_and_drops_the_helper_sort_field(catalog):
    catalog.upsert("series", _docs([5, 1, 3]))
    docs, after = page(catalog, "series", sort=("manufacturer", 1), limit=2, projection=["modality"])
    assert docs == [{"series_instance_uid": "1.2.001", "modality": "CT"}, {"series_instance_uid": "1.2.002",
                                                                          "modality": "MR"}]
    assert after == Position("manufacturer", 1, 3, "1.2.002")


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"sort": ("metadata.KVP", 1)}, "single-valued"),
    ({"limit": 0}, "between 1 and 10,000"),
    ({"limit": 10_001}, "between 1 and 10,000"),
    ({"after": Position("modality", 1, "CT", "1"), "sort": ("manufacturer", 1)}, "another sort"),
])
def test_refusals(catalog, kwargs, message):
    with pytest.raises(FilterError, match=message):
        page(catalog, "series", **kwargs)


@pytest.mark.parametrize("limit", [1, 3, 50])
def test_a_walk_by_key_holds_every_document_once_in_key_order(catalog, limit):
    """``documents`` (what the research view's rebuild and the columnar copy walk) gives the whole
    level in the key order ``find`` sorts by, whole documents, on every backend."""
    uids = ["1.2.10", "1.2.9", "1.2.100", "1.3", "2", "1.2.9.1", "Z", "a"]
    catalog.upsert("series", [{**doc, "series_instance_uid": uid}
                              for doc, uid in zip(_docs(list(range(len(uids)))), uids, strict=True)])
    walked, after = [], None
    while docs := catalog.documents("series", after, limit):
        assert len(docs) <= limit
        walked += docs
        after = docs[-1]["series_instance_uid"]
    assert walked == catalog.find("series", sort=[("series_instance_uid", 1)])
    assert [d["series_instance_uid"] for d in walked] == sorted(uids)
    assert [d["series_instance_uid"] for d in catalog.documents("series", "1.2.9", 2)] == ["1.2.9.1", "1.3"]
