"""Issue 27's finding 9 and the statistics' small cells: what one researcher may cost and keep,
against a ``quire serve`` of its own (its limits set low; failed keys throttle the whole client)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator

import pytest

from quire_assets.catalog.fields import KnownFields, refuse_unknown_fields
from quire_assets.catalog.filters import FilterError
from quire_assets.catalog.sqlite import SqliteCatalog
from tests.api.conftest import Server


@pytest.fixture(scope="module")
def limited(api_home, tmp_path_factory) -> Iterator[Server]:  # noqa: F811
    home = tmp_path_factory.mktemp("limited-home")
    with sqlite3.connect(api_home["catalog"]) as source, sqlite3.connect(home / "catalog.db") as copy:
        source.backup(copy)
    env = {**api_home["env"], "QUIRE_HOME": str(home), "QUIRE_CATALOG": f"sqlite:///{home / 'catalog.db'}",
           "QUIRE_MAX_COLLECTIONS": "2", "QUIRE_MAX_PENDING_JOBS": "1"}
    srv = Server(env, home, "--no-worker")
    yield srv
    srv.stop()


def test_a_request_names_a_bounded_number_of_fields(alice):
    refused = alice.get("/api/v1/series", params={"fields": ",".join(f"metadata.X{i}" for i in range(65))})
    assert refused.status_code == 403  # unlisted names: refused by the policy, before any lookup
    kept = ",".join(["modality"] * 3 + [f"instance_ranges.SliceLocation.x{i}" for i in range(65)])
    refused = alice.get("/api/v1/series", params={"fields": kept})
    assert refused.status_code == 400 and "at most 64 fields" in refused.json()["detail"]
    where = {"$or": [{f"instance_ranges.SliceLocation.x{i}": 1} for i in range(65)]}
    refused = alice.post("/api/v1/series/search", json={"where": where})
    assert refused.status_code == 400 and "at most 64 fields" in refused.json()["detail"]
    assert alice.get("/api/v1/studies", params={"sort": "study_date", "fields": "study_date"}).status_code == 200


def test_unknown_fields_are_looked_for_once_per_write(tmp_path):
    class Counting(SqliteCatalog):
        finds = 0

        def find(self, *args, **kwargs):
            Counting.finds += 1
            return super().find(*args, **kwargs)

    with Counting(tmp_path / "catalog.db") as catalog:
        catalog.upsert("series", [{"series_instance_uid": "1.2", "modality": "CT"}])
        known = KnownFields()
        for _ in range(2):
            with pytest.raises(FilterError, match="nope"):
                refuse_unknown_fields(catalog, "series", ["nope"], "where", has=known.has(catalog.last_change()))
        first = Counting.finds
        with pytest.raises(FilterError):
            refuse_unknown_fields(catalog, "series", ["nope"], "where", has=known.has(catalog.last_change()))
        assert Counting.finds - first == 1  # the level's emptiness only: no scan for "nope" again
        catalog.upsert("series", [{"series_instance_uid": "1.3", "modality": "MR", "nope": 1}])
        refuse_unknown_fields(catalog, "series", ["nope"], "where", has=known.has(catalog.last_change()))


def test_a_researchers_read_stops_at_its_time_limit(tmp_path):
    with SqliteCatalog(tmp_path / "catalog.db") as catalog:
        catalog.upsert("series", [{"series_instance_uid": f"1.{i}", "metadata": {"X": i}} for i in range(5000)])
        flt = {"metadata.X": {"$gte": 4999}}
        assert catalog.count("series", flt) == 1  # no limit: the answer
        catalog.read_seconds = 1e-9  # already past: the first progress check stops it
        with pytest.raises(FilterError, match="ran for more than"):
            catalog.count("series", flt)
        catalog.read_seconds = None
        assert catalog.count("series", flt) == 1


def test_collections_and_jobs_per_researcher_are_bounded(limited, api_home):
    with limited.client(api_home["keys"]["bob"]) as bob:
        held = len(bob.get("/api/v1/collections").json())  # (other tests' collections came with the copy)
        for i in range(max(0, 2 - held)):
            assert bob.post("/api/v1/collections", json={"collection_id": f"bob-{i}", "cases": []}).status_code == 201
        third = bob.post("/api/v1/collections", json={"collection_id": "bob-three", "cases": []})
        assert third.status_code == 429 and "QUIRE_MAX_COLLECTIONS" in third.json()["detail"]
        pending = [j for j in bob.get("/api/v1/jobs").json() if j["status"] in ("pending", "running")]
        if not pending:  # no worker here: a job stays pending
            assert bob.post("/api/v1/jobs", json={"accessions": ["LIDC0001A"]}).status_code == 202
        second = bob.post("/api/v1/jobs", json={"accessions": ["LIDC0002A"]})
        assert second.status_code == 429 and "QUIRE_MAX_PENDING_JOBS" in second.json()["detail"]
        with limited.client(api_home["keys"]["boss"]) as boss:
            assert boss.post("/api/v1/collections", json={"collection_id": "boss-extra", "cases": []}).status_code == 201
            assert boss.post("/api/v1/collections", json={"collection_id": "boss-more", "cases": []}).status_code == 201
            assert boss.post("/api/v1/collections", json={"collection_id": "boss-most", "cases": []}).status_code == 201


def test_statistics_merge_small_cells_for_researchers(limited, api_home, raw):
    with limited.client(api_home["keys"]["alice"]) as alice, limited.client(api_home["keys"]["boss"]) as boss:
        mine, raw_stats = alice.get("/api/v1/stats").json(), boss.get("/api/v1/stats").json()
    small = [(name, label) for name, counts in raw_stats.items() if name.endswith("_distribution")
             for label, n in (counts.get("series", counts) if name == "slice_thickness_distribution" else counts).items()
             if n < 5]
    assert small  # the sample archive has small cells: the admin sees them
    for name, counts in mine.items():
        if name.endswith("_distribution"):
            cells = counts["series"] if name == "slice_thickness_distribution" else counts
            assert all(n >= 5 or label.startswith("other (cells under 5)") for label, n in cells.items()), name
    assert json.dumps(mine).count("other (cells under 5)") >= 1


def test_a_report_is_kept_until_the_catalog_is_written(limited, api_home):
    from quire_assets.catalog import open_catalog

    with limited.client(api_home["keys"]["boss"]) as boss:
        before = boss.get("/api/v1/report")
        assert before.status_code == 200 and boss.get("/api/v1/report").text == before.text
        home = limited.log.parent
        with open_catalog(f"sqlite:///{home / 'catalog.db'}") as catalog:
            study = catalog.find("studies", limit=1)[0]
            catalog.upsert("studies", [{**study, "study_date": "1987-06-05"}])
        after = boss.get("/api/v1/report")
        assert after.status_code == 200 and after.text != before.text


# Last: it throttles this client's new keys for a minute.
def test_failed_keys_are_throttled_per_key_id_and_per_client(limited, api_home):
    with limited.client(api_home["keys"]["alice"]) as alice:
        assert alice.get("/api/v1/studies/count").status_code == 200  # checked once, then known
    statuses = []
    for i in range(12):
        with limited.client(f"qk_beef{i:04d}_wrong-secret") as stranger:
            statuses.append(stranger.get("/api/v1/studies/count").status_code)
    assert statuses[:10] == [401] * 10 and statuses[10:] == [429, 429]
    with limited.client(api_home["keys"]["alice"]) as alice:
        assert alice.get("/api/v1/studies/count").status_code == 200  # a key already checked still works
        assert alice.get("/health").status_code == 200
