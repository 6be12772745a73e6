"""The columnar copy answers counts and facet counts exactly as the research view does, or not at all.

On the showcase archive (CT, MR and DX from seven vendor families, labels, quality flags, files cut
short), cataloged by ``quire ingest``, and its research view under the default policy: for every
column, filters made of the values the view holds (and values of other types, nulls, and the
operators' edges), each count and each facet's counts from the copy against the view's own.
"""

from __future__ import annotations

import itertools
import os

import pytest

from quire_assets.catalog import open_catalog
from quire_assets.catalog.base import KEYS
from quire_assets.catalog.columnar import ColumnarCopy, FollowedCopy, Unsupported
from quire_assets.catalog.pages import page
from quire_assets.catalog.policy import PhiPolicy
from quire_assets.catalog.view import ResearchCatalog, open_view, sync, view_key
from tests.cli.test_ingest_e2e import ingested_home, quire

POLICY = PhiPolicy.load(None, b"columnar-test")
LEVELS = ("patients", "studies", "series")


@pytest.fixture(scope="module")
def showcase_home(tmp_path_factory):
    folder = tmp_path_factory.mktemp("showcase")
    quire("sample-archive", str(folder / "archive"), "--showcase", env={**os.environ, "QUIRE_HOME": str(folder)},
          cwd=folder)
    archive = folder / "archive"
    _, home = ingested_home(archive, tmp_path_factory)
    return home


@pytest.fixture
def catalog(showcase_home, tmp_path):
    # A copy of the catalog per test: some tests write to it.
    path = tmp_path / "catalog.db"
    with open_catalog(f"sqlite:///{showcase_home / 'catalog.db'}") as source, open_catalog(f"sqlite:///{path}") as target:
        for level in ("patients", "studies", "series", "instances", "errors"):
            target.upsert(level, source.find(level))
    with open_catalog(f"sqlite:///{path}") as opened:
        yield opened


@pytest.fixture
def view(catalog):
    opened = open_view(catalog, POLICY)
    sync(catalog, opened, POLICY)
    yield opened
    opened.close()


def _scalars(values):
    out = []
    for value in values:
        out.extend(value if isinstance(value, list) else [value])
    return [v for v in dict.fromkeys(out, None) if not isinstance(v, dict | list)]


def _filters(view, copy, level):
    """Filters over every column: its values, a value of another type, null, and combinations."""
    docs = view.find(level)
    filters = [{}]
    for name, column in copy.columns[level].items():
        values = _scalars([d.get(name.split(".")[0]) if "." not in name else
                           (d.get("metadata") or {}).get(name.split(".")[1]) for d in docs])[:4]
        other = 7 if column.element == "VARCHAR" else "7"
        for value in [*values, other, True]:
            filters += [{name: value}, {name: {"$ne": value}}]
        filters += [{name: None}, {name: {"$ne": None}}, {name: {"$in": [*values[:2], None]}},
                    {name: {"$nin": values[:2]}}, {name: {"$in": []}}]
        if not column.is_list and values:
            for op in ("$gt", "$gte", "$lt", "$lte"):
                filters.append({name: {op: sorted(values, key=repr)[len(values) // 2]}})
                filters.append({name: {op: other}})
    pairs = [f for f in filters[1:] if len(f) == 1][::7]
    filters += [{"$or": [a, b]} for a, b in itertools.combinations(pairs[:8], 2)]
    filters += [{"$nor": [a]} for a in pairs[:10]] + [{"$and": [a, b]} for a, b in zip(pairs, pairs[1:], strict=False)]
    return filters


@pytest.mark.parametrize("level", LEVELS)
def test_counts_are_the_views_or_not_given(view, level):
    copy = ColumnarCopy(LEVELS)
    copy.build(view, 0)
    answered = 0
    for flt in _filters(view, copy, level):
        try:
            got = copy.count(level, flt)
        except Unsupported:
            continue
        assert got == view.count(level, flt), flt
        answered += 1
    assert answered > 100  # the copy answers most of them: the test cannot pass by declining


@pytest.mark.parametrize("level", LEVELS)
def test_facet_counts_are_the_views(view, level):
    copy = ColumnarCopy(LEVELS)
    copy.build(view, 0)
    filters = []
    for flt in _filters(view, copy, level)[::9]:
        try:
            copy.count(level, flt)
            filters.append(flt)
        except Unsupported:
            pass
    answered = 0
    for field, column in copy.columns[level].items():
        for flt in filters if column.exact_values else []:
            assert copy.value_counts(level, field, flt) == view.value_counts(level, field, flt), (field, flt)
            answered += 1
    assert answered > 50


def test_the_dashboards_facets_and_labels_are_columns(view):
    copy = ColumnarCopy(LEVELS)
    copy.build(view, 0)
    series = copy.columns["series"]
    for field in ("modality", "manufacturer_family", "manufacturer", "body_part_examined", "series_types",
                  "quality_flags", "complete_volume", "slice_thickness", "num_instances", "metadata.KVP"):
        assert field in series, field
    assert series["series_types"].is_list and series["slice_thickness"].element == "DOUBLE"
    assert copy.value_counts("series", "modality") == view.value_counts("series", "modality")
    assert {v for v, _ in copy.value_counts("series", "modality")} == {"CT", "MR", "DX"}


def test_questions_it_cannot_answer_exactly_are_declined(view):
    copy = ColumnarCopy(LEVELS)
    copy.build(view, 0)
    for flt in ({"series_description": {"$regex": "CHEST"}}, {"metadata.Modality": "CT"}, {"modality": {"$exists": 1}},
                {"series_types": None}, {"series_types": ["axial"]}, {"pixel_spacing": {"$gt": 0.5}},
                {"quality": {"flags": []}}):
        with pytest.raises(Unsupported):
            copy.count("series", flt)


def test_a_field_that_mixes_types_is_left_to_the_store(catalog):
    series = catalog.find("series", sort=[("series_instance_uid", 1)])
    catalog.upsert("series", [{**series[0], "kvp": "high"}, {**series[1], "series_types": "axial"}])
    copy = ColumnarCopy(LEVELS)
    copy.build(catalog, 0)
    assert "kvp" not in copy.columns["series"] and "series_types" not in copy.columns["series"]
    with pytest.raises(Unsupported):
        copy.count("series", {"kvp": {"$gt": 100}})
    assert copy.count("series", {"modality": "CT"}) == catalog.count("series", {"modality": "CT"})


def test_the_copy_follows_writes_and_answers_only_once_it_holds_them(catalog, view):
    columns = FollowedCopy(lambda: catalog, lambda: view, LEVELS, lambda level, key: view_key(POLICY, level, key))
    research = ResearchCatalog(catalog, view, POLICY, columns)
    try:
        columns.follow(sync(catalog, view, POLICY))
        _settle(columns)
        ct = view.count("series", {"modality": "CT"})
        assert columns.count("series", {"modality": "CT"}) == ct
        built = columns.copy.db

        # A re-ingest rewrites a CT series as MR, and removes another: the view is synced, the copy
        # not yet: it declines, and the research catalog answers from the view.
        first, second = catalog.find("series", {"modality": "CT"}, sort=[("series_instance_uid", 1)], limit=2)
        catalog.upsert("series", [{**first, "modality": "MR"}])
        catalog.delete("series", {"series_instance_uid": second["series_instance_uid"]})
        columns.target = sync(catalog, view, POLICY)  # as the owner does, without waking the thread yet
        with pytest.raises(Unsupported):
            columns.count("series", {"modality": "CT"})
        assert research.count("series", {"modality": "CT"}) == ct - 2

        columns.follow(columns.target)
        _settle(columns)
        assert columns.count("series", {"modality": "CT"}) == ct - 2
        assert columns.value_counts("series", "modality") == view.value_counts("series", "modality")
        assert columns.copy.db is built  # by the log: two keys copied again, not the whole view

        # A write whose value no longer fits its column: the copy is built again, without that column.
        catalog.upsert("series", [{**first, "slice_thickness": "thin"}])
        columns.follow(sync(catalog, view, POLICY))
        _settle(columns)
        assert "slice_thickness" not in columns.copy.columns["series"] and columns.copy.db is not built
        assert research.count("series", {"slice_thickness": "thin"}) == 1
        assert columns.count("series") == view.count("series")
    finally:
        columns.close()


def _settle(columns: FollowedCopy) -> None:
    import time

    deadline = time.monotonic() + 60
    while not columns.ready:
        assert not columns.error, columns.error
        assert time.monotonic() < deadline, "the copy did not reach the view's position"
        time.sleep(0.02)


@pytest.mark.parametrize("level", LEVELS)
def test_sorted_pages_are_the_views(view, level):
    copy = ColumnarCopy(LEVELS)
    copy.build(view, 0)
    key = KEYS[level]
    filters = [{}] + [f for f in _filters(view, copy, level)[1::23] if _answers(copy, level, f)][:6]
    sorted_on = [f for f, c in copy.columns[level].items() if not c.is_list]
    assert len(sorted_on) >= 5
    for field in sorted_on:
        for direction, flt in itertools.product((1, -1), filters):
            for limit, skip in ((10, 0), (25, 5)):
                want = [d[key] for d in view.find(level, flt, projection=[key], sort=[(field, direction)],
                                                  limit=limit, skip=skip)]
                assert copy.ordered_keys(level, flt, [(field, direction)], limit, skip) == want, (field, flt)


def test_keyset_pages_through_the_research_catalog_are_the_views(catalog, view):
    columns = FollowedCopy(lambda: catalog, lambda: view, LEVELS, lambda level, key: view_key(POLICY, level, key))
    research = ResearchCatalog(catalog, view, POLICY, columns)
    answered = []
    ordered_keys = columns.ordered_keys
    columns.ordered_keys = lambda *args: answered.append(ordered_keys(*args)) or answered[-1]
    try:
        columns.follow(sync(catalog, view, POLICY))
        _settle(columns)
        for sort in (("num_instances", 1), ("slice_thickness", -1), ("manufacturer", 1), None):
            mine, theirs = [], []
            for reader, out in ((research, mine), (view, theirs)):
                after = None
                while True:
                    docs, after = page(reader, "series", {"modality": {"$ne": "DX"}}, sort=sort, limit=7, after=after)
                    out.extend(docs)
                    if after is None:
                        break
            assert mine == theirs and len(mine) > 20
        assert len(answered) > 20  # the pages' keys came from the copy
    finally:
        columns.close()


def _answers(copy: ColumnarCopy, level: str, flt: dict) -> bool:
    try:
        copy.count(level, flt)
        return True
    except Unsupported:
        return False
