"""A reader sees a partition as it was or as it is after ``replace_partitions``, never a mix
(issue 18, item 4): on mongomock (the logic: a standalone server's versioned write), on a real
MongoDB when ``QUIRE_TEST_MONGO_URI`` is set, and on SQLite (one transaction)."""

from __future__ import annotations

import os
import threading
from datetime import UTC, datetime, timedelta

import pytest

import quire_assets.catalog.mongo as mongo_catalog
from quire_assets.catalog.base import CatalogError
from quire_assets.catalog.mongo import LOCKS, VERSIONED, MongoCatalog
from tests.catalog.conftest import backend_catalog, backends, discard, make_catalog


def partition(round_: str, n: int, key: str = "ACC-1") -> dict:
    """One accession's documents; each round has other instances (files replaced) and a size."""
    study, series = f"1.2.{key}", f"1.2.{key}.1"
    instances = [{"sop_instance_uid": f"{series}.{round_}.{i}", "series_instance_uid": series,
                  "study_instance_uid": study, "partition_key": key, "uri": f"/a/{key}/{round_}/{i}",
                  "round": round_} for i in range(n)]
    return {
        "instances": instances,
        "series": [{"series_instance_uid": series, "study_instance_uid": study, "partition_key": key,
                    "num_instances": n, "modality": "CT", "round": round_}],
        "studies": [{"study_instance_uid": study, "accession_number": key, "patient_id": f"P-{key}",
                     "partition_key": key, "num_series": 1, "num_instances": n, "round": round_}],
        "errors": [{"uri": f"/a/{key}/{round_}/bad", "reason": "not_dicom", "partition_key": key, "round": round_}],
    }


ROUNDS = {"A": 40, "B": 30}


def write(catalog, round_: str, key: str = "ACC-1") -> dict:
    docs = partition(round_, ROUNDS.get(round_, 3), key)
    return catalog.replace_partitions([key], docs["instances"], docs["series"], docs["studies"], docs["errors"],
                                      source="file:///a")


def check_reader(reader, failures: list, when: str) -> None:
    """One read of the partition: all of one round and all of it, and one error record."""
    instances = reader.find("instances", {"partition_key": "ACC-1"}, projection={"round": 1})
    rounds = sorted({d["round"] for d in instances})
    if len(rounds) != 1 or len(instances) != ROUNDS[rounds[0]]:
        failures.append(f"{when}: {len(instances)} instances of rounds {rounds}")
    if (counted := reader.count("errors", {"partition_key": "ACC-1"})) != 1:
        failures.append(f"{when}: {counted} error records")
    studies = reader.find("studies", {"partition_key": "ACC-1"})
    if len(studies) != 1:
        failures.append(f"{when}: {len(studies)} studies")


@pytest.fixture(params=backends("sqlite"))
def mongo(request, tmp_path):
    """The versioned write is the MongoDB catalog's (SQLite rolls a transaction back)."""
    with backend_catalog(request.param, tmp_path) as catalog:
        yield catalog


class Probed:
    """A writer's database that lets a reader look after each of its write operations: every
    intermediate state a reader in another process could meet is checked, not a few by chance."""

    WRITES = {"insert_one", "insert_many", "update_one", "update_many", "delete_one", "delete_many",
              "bulk_write", "replace_one", "find_one_and_update"}

    def __init__(self, target, probe):
        self._target, self._probe = target, probe

    def __getitem__(self, name):
        return Probed(self._target[name], self._probe)

    def __getattr__(self, name):
        attribute = getattr(self._target, name)
        if name not in self.WRITES:
            return attribute

        def written(*args, **kwargs):
            result = attribute(*args, **kwargs)
            self._probe(f"after {name}")
            return result

        return written


def test_readers_never_see_a_partition_half_replaced_at_any_step(mongo):
    reader = MongoCatalog(mongo.client, mongo.db.name)
    write(mongo, "A")
    failures: list = []
    probes = []

    def probe(when: str) -> None:
        probes.append(when)
        check_reader(reader, failures, f"write {len(probes)} {when}")

    mongo.db = Probed(mongo.db, probe)
    for i in range(6):
        write(mongo, "B" if i % 2 == 0 else "A")
    assert failures == []
    assert len(probes) > 6 * 10  # each replace is many steps, each one looked at
    assert reader.count("instances") == ROUNDS["A"]
    assert {d["round"] for d in reader.find("studies")} == {"A"}
    assert reader.integrity()["ok"]


@pytest.fixture(params=backends("mongomock"))  # mongomock's documents are not thread-safe
def two_catalogs(request, tmp_path):
    """A writer's and a reader's catalog on one database, as two processes would have them."""
    writer = make_catalog(request.param, tmp_path)
    if request.param == "sqlite":
        reader = make_catalog("sqlite", tmp_path)
    else:
        from pymongo import MongoClient

        reader = MongoCatalog(MongoClient(os.environ["QUIRE_TEST_MONGO_URI"]), writer.db.name)
    yield writer, reader
    reader.close()
    discard(writer, request.param)


def test_readers_in_another_thread_never_see_a_partition_half_replaced(two_catalogs):
    writer, reader = two_catalogs
    write(writer, "A")
    stop = threading.Event()
    failures: list = []
    done = {"writes": 0}

    def keep_replacing():
        try:
            for i in range(12):
                write(writer, "B" if i % 2 == 0 else "A")
                done["writes"] += 1
        except Exception as exc:  # noqa: BLE001 - reported below
            failures.append(repr(exc))
        finally:
            stop.set()

    thread = threading.Thread(target=keep_replacing)
    thread.start()
    reads = 0
    while not stop.is_set() or reads < 5:
        check_reader(reader, failures, f"read {reads}")
        reads += 1
    thread.join()
    assert done["writes"] == 12
    assert failures == []
    assert reader.count("instances") == ROUNDS["A"]
    assert {d["round"] for d in reader.find("studies")} == {"A"}
    assert reader.integrity()["ok"]


def raw_counts(catalog: MongoCatalog) -> dict[str, int]:
    return {c: catalog.db[c].count_documents({}) for c in VERSIONED}


@pytest.fixture
def no_grace(monkeypatch):
    """Superseded documents deleted at once, so that what is stored can be counted exactly."""
    monkeypatch.setattr(mongo_catalog, "GRACE_SECONDS", 0.0)


def test_a_writer_that_dies_before_the_switch_is_rolled_back(mongo, monkeypatch, no_grace):
    write(mongo, "A")
    calls = {"n": 0}
    renew = MongoCatalog._renew

    def dies_midway(self):
        calls["n"] += 1
        if calls["n"] == 3:  # after the first instance batch went in
            raise SystemExit("killed")
        renew(self)

    monkeypatch.setattr(MongoCatalog, "_renew", dies_midway)
    with pytest.raises(SystemExit):
        write(mongo, "B")
    monkeypatch.setattr(MongoCatalog, "_renew", renew)
    # What SIGKILL leaves: the record, half the new documents, and a lease nobody renews.
    assert len(mongo._state()["writing"]) == 1  # noqa: SLF001
    assert mongo.db["instances"].count_documents({}) > ROUNDS["A"]
    mongo.db[LOCKS].update_one({"_id": "partitions"}, {"$set": {"holder": "dead",
                                                                  "expires": datetime.now(UTC) - timedelta(seconds=1)}})
    instances = mongo.find("instances")
    assert len(instances) == ROUNDS["A"] and {d["round"] for d in instances} == {"A"}
    assert {d["round"] for d in mongo.find("studies")} == {"A"}
    write(mongo, "C")  # the next writer rolls the dead one back, then writes
    assert mongo._state()["writing"] == [] and mongo._state()["switched"] == []  # noqa: SLF001
    assert raw_counts(mongo) == {"instances": 3, "series": 1, "studies": 1, "errors": 1}
    assert mongo.db["instances"].count_documents({"_superseded_by": {"$exists": True, "$ne": []}}) == 0


def test_a_writer_that_dies_after_the_switch_is_finished(mongo, monkeypatch, no_grace):
    write(mongo, "A")
    original = MongoCatalog._in_transaction

    def dies_after_switch(self, work):
        original(self, work)
        raise SystemExit("killed")

    monkeypatch.setattr(MongoCatalog, "_in_transaction", dies_after_switch)
    with pytest.raises(SystemExit):
        write(mongo, "B")
    monkeypatch.setattr(MongoCatalog, "_in_transaction", original)
    assert len(mongo._state()["switched"]) == 1  # noqa: SLF001
    assert mongo.db["instances"].count_documents({}) == ROUNDS["A"] + ROUNDS["B"]
    instances = mongo.find("instances")  # switched: the new partition, whole
    assert len(instances) == ROUNDS["B"] and {d["round"] for d in instances} == {"B"}
    assert mongo.count("series") == 1 and mongo.get("series", "1.2.ACC-1.1")["round"] == "B"
    write(mongo, "B")
    assert raw_counts(mongo) == {"instances": ROUNDS["B"], "series": 1, "studies": 1, "errors": 1}
    assert mongo._state()["switched"] == []  # noqa: SLF001


def test_a_catalog_of_an_earlier_version_is_replaced_without_duplicates(mongo, no_grace):
    """Documents written before versions (``_id`` = the key, no ``_pv``, a unique key index)."""
    old = partition("A", 4)
    for collection, docs in old.items():
        key = {"instances": "sop_instance_uid", "series": "series_instance_uid", "studies": "study_instance_uid",
               "errors": "uri"}[collection]
        mongo.db[collection].drop_indexes()
        mongo.db[collection].create_index(key, name=f"ux_{key}", unique=True)
        mongo.db[collection].insert_many([{**d, "source": "file:///a", "_id": d[key]} for d in docs])
    reopened = MongoCatalog(mongo.client, mongo.db.name)
    assert "ux_sop_instance_uid" not in reopened.db["instances"].index_information()
    docs = partition("A", 4)
    docs["instances"][0]["round"] = "A2"  # one file changed, the others the same
    reopened.replace_partitions(["ACC-1"], docs["instances"], docs["series"], docs["studies"], docs["errors"],
                                source="file:///a")
    assert raw_counts(reopened) == {"instances": 4, "series": 1, "studies": 1, "errors": 1}
    assert sorted(d["round"] for d in reopened.find("instances")) == ["A", "A", "A", "A2"]


def test_tags_and_recounts_edit_the_current_version(catalog, no_grace):
    """Writes outside ``replace_partitions`` (a collection tag, a recount) change the visible
    document in place: no second version of it appears, and a later replace keeps the tag."""
    write(catalog, "A")
    assert catalog.add_to_collection("cohort-1", ["ACC-1"]) == 1
    assert catalog.count("studies") == 1
    assert catalog.get("studies", "1.2.ACC-1")["collection_ids"] == ["cohort-1"]
    write(catalog, "B")
    assert catalog.count("studies") == 1
    assert catalog.get("studies", "1.2.ACC-1")["collection_ids"] == ["cohort-1"]
    if isinstance(catalog, MongoCatalog):
        assert raw_counts(catalog)["studies"] == 1


def test_writers_take_turns_on_the_lease(mongo):
    """A second writer waits while the first holds the lease, then writes; a lease whose holder
    died (it ran out) is taken over."""
    other = MongoCatalog(mongo.client, mongo.db.name)
    held, released = threading.Event(), threading.Event()
    order = []

    def first():
        with mongo._lease():  # noqa: SLF001 - a writer in the middle of its write
            held.set()
            released.wait(5)
            order.append("first done")

    thread = threading.Thread(target=first)
    thread.start()
    held.wait(5)
    threading.Timer(0.3, released.set).start()
    write(other, "A")
    order.append("second wrote")
    thread.join()
    assert order == ["first done", "second wrote"]
    assert other.count("instances") == ROUNDS["A"]

    mongo.db[LOCKS].update_one({"_id": "partitions"}, {"$set": {"holder": "dead",
                                                                "expires": datetime.now(UTC) - timedelta(seconds=1)}})
    write(other, "B")
    assert other.count("instances") == ROUNDS["B"]


def test_a_reader_that_began_before_a_switch_still_finds_the_old_partition(mongo):
    """Superseded documents stay for the grace period: a long query that took its write state
    before a switch still reads the whole old partition after it."""
    write(mongo, "A")
    before = mongo._state()  # noqa: SLF001
    write(mongo, "B")
    late = list(mongo.db["instances"].find(mongo._visible("instances", {"partition_key": "ACC-1"}, before)))  # noqa: SLF001
    assert len(late) == ROUNDS["A"] and {d["round"] for d in late} == {"A"}
    assert {d["round"] for d in mongo.find("instances")} == {"B"}  # a reader starting now


def test_a_read_longer_than_the_grace_period_is_asked_again(mongo, monkeypatch, no_grace):
    """With writes going on, a read that outlived the grace period may have lost documents: it is
    asked again, and after three such tries the reader is told so. Without writes it stands."""
    write(mongo, "A")
    assert len(mongo.find("instances")) == ROUNDS["A"]  # nothing written meanwhile: the answer stands
    states = iter(range(100))
    monkeypatch.setattr(MongoCatalog, "_state", lambda self: {"version": next(states)})
    with pytest.raises(CatalogError, match="took longer than 0 s while the catalog was being written, three times"):
        mongo.find("instances")
    assert next(states) == 6  # three tries, each with its state before and after
