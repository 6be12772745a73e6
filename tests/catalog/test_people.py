"""Researchers' keys, collections of cases, count repair, facets and the bounds on user filters,
on every backend."""

from __future__ import annotations

import json

import pytest

from quire_assets.catalog import CatalogError, FilterError
from quire_assets.catalog.filters import MAX_DEPTH, user_filter
from quire_assets.research.collections import case, collection_member, remove_case, save_collection
from quire_assets.research.researchers import add_researcher, issue_key, keys_defined, revoke_key, verify_key


def test_a_key_is_kept_only_as_a_hash_and_stops_when_revoked(catalog):
    assert not keys_defined(catalog)
    doc, key = add_researcher(catalog, "alice", "Alice", "alice@example.org")
    assert key.startswith("qk_") and doc["researcher_id"] == "alice" and not doc["admin"]
    assert key not in json.dumps(catalog.find("researchers"))  # only the hash is stored
    assert keys_defined(catalog)
    assert verify_key(catalog, key)["researcher_id"] == "alice"
    assert verify_key(catalog, key[:-1] + ("A" if key[-1] != "A" else "B")) is None
    assert verify_key(catalog, "qk_nope_secret") is None and verify_key(catalog, "garbage") is None
    with pytest.raises(CatalogError, match="already has a key"):
        add_researcher(catalog, "alice")
    newer = issue_key(catalog, "alice")
    assert verify_key(catalog, key) is None and verify_key(catalog, newer)["researcher_id"] == "alice"
    revoke_key(catalog, "alice")
    assert verify_key(catalog, newer) is None and not keys_defined(catalog)


def test_collections_hold_cases_and_select_their_accessions(catalog):
    catalog.upsert("studies", [{"study_instance_uid": "s1", "accession_number": "A1"},
                               {"study_instance_uid": "s2", "accession_number": "A2", "collection_ids": ["c"]},
                               {"study_instance_uid": "s3", "accession_number": "A3"}])
    save_collection(catalog, "c", "alice", [case(["A1"], patient_id="P1")])
    assert [d["study_instance_uid"] for d in catalog.find("studies", collection_member(catalog, "c"))] == ["s1", "s2"]
    doc = save_collection(catalog, "c", "alice", [case(["A3", "A3 "], case_id="third")])
    assert [c["case_id"] for c in doc["cases"]] == ["A1", "third"] and doc["cases"][1]["accession_numbers"] == ["A3"]
    with pytest.raises(CatalogError, match="another researcher"):
        save_collection(catalog, "c", "bob", [case(["A2"])])
    remove_case(catalog, "c", "A1")
    assert [d["study_instance_uid"] for d in catalog.find("studies", collection_member(catalog, "c"))] == ["s2", "s3"]
    with pytest.raises(CatalogError, match="no case"):
        remove_case(catalog, "c", "A1")
    with pytest.raises(CatalogError, match="no collection"):
        collection_member(catalog, "nope")


def test_recount_rerolls_wrong_counts_from_the_documents_present(catalog):
    catalog.upsert("studies", [{"study_instance_uid": "st", "patient_id": "p", "num_series": 5, "num_instances": 9}])
    catalog.upsert("series", [{"series_instance_uid": "se", "study_instance_uid": "st", "num_instances": 7}])
    catalog.upsert("instances", [{"sop_instance_uid": f"i{n}", "series_instance_uid": "se", "study_instance_uid": "st"}
                                 for n in range(2)])
    assert not catalog.integrity()["ok"]
    assert catalog.recount() == {"series": 1, "studies": 1}
    assert catalog.integrity()["ok"]
    assert catalog.get("studies", "st")["num_instances"] == 2 and catalog.get("series", "se")["num_instances"] == 2
    assert catalog.get("patients", "p")["num_instances"] == 2


def test_value_counts_count_documents_per_value(catalog):
    catalog.upsert("series", [{"series_instance_uid": str(i), "modality": m, "study_instance_uid": "s"}
                              for i, m in enumerate(["CT", "CT", "MR", None, "CT"])])
    assert catalog.value_counts("series", "modality") == [("CT", 3), ("MR", 1)]
    assert catalog.distinct("series", "modality") == ["CT", "MR"]


@pytest.mark.parametrize(("flt", "message"), [
    ({"a": {"$in": list(range(10_001))}}, "at most 10,000 values"),
    ({"a": {"$regex": "x" * 1001}}, "at most 1,000 characters"),
    ({"a": json.loads("[" * MAX_DEPTH + "]" * MAX_DEPTH)}, "deeper than 32"),
    ({"$where": "1"}, "'\\$where' is not supported"),
])
def test_user_filters_are_bounded(flt, message):
    with pytest.raises(FilterError, match=message):
        user_filter(flt)
    assert user_filter({"a": {"$in": list(range(10_000))}})


@pytest.mark.parametrize("value", [True, ["CT"], {"a": 1}])
def test_single_valued_fields_hold_one_text_or_number(catalog, value):
    with pytest.raises(CatalogError, match="one text or number"):
        catalog.upsert("series", [{"series_instance_uid": "s", "modality": value}])


@pytest.mark.parametrize("value", [True, ["CT"], {"a": 1}])
def test_a_partition_write_holds_to_the_same_rules(catalog, value):
    """``replace_partitions`` writes by its own path on MongoDB: it refuses what ``upsert`` does."""
    with pytest.raises(CatalogError, match="one text or number"):
        catalog.replace_partitions(["P"], [], [{"series_instance_uid": "s", "modality": value, "partition_key": "P"}],
                                   [], [])
    with pytest.raises(CatalogError, match="needs its key"):
        catalog.replace_partitions(["P"], [{"partition_key": "P"}], [], [], [])
    assert catalog.count("series") == 0


def test_ranges_on_single_valued_fields_keep_to_their_type(catalog):
    catalog.upsert("series", [{"series_instance_uid": str(i), "series_number": v}
                              for i, v in enumerate([1, 2.5, "10", "a", None])])
    for flt, expected in [({"series_number": {"$gt": 1}}, ["1"]), ({"series_number": {"$lt": "b"}}, ["2", "3"]),
                          ({"series_number": {"$gte": ""}}, ["2", "3"]), ({"series_number": {"$lte": 2.5}}, ["0", "1"]),
                          ({"series_number": {"$in": [1, "a"]}}, ["0", "3"]), ({"series_number": "10"}, ["2"]),
                          ({"series_number": {"$ne": 1}}, ["1", "2", "3", "4"])]:
        assert sorted(d["series_instance_uid"] for d in catalog.find("series", flt)) == expected, flt


def test_value_counts_of_single_valued_and_array_fields_agree_with_the_documents(catalog):
    catalog.upsert("studies", [{"study_instance_uid": str(i), "patient_sex": sex, "modalities": mods}
                               for i, (sex, mods) in enumerate([("F", ["CT", "PT"]), ("M", ["CT"]), ("F", []),
                                                                (None, ["MR"]), ("F", ["CT"])])])
    assert catalog.value_counts("studies", "patient_sex") == [("F", 3), ("M", 1)]
    assert catalog.value_counts("studies", "patient_sex", {"modalities": "CT"}) == [("F", 2), ("M", 1)]
    assert catalog.value_counts("studies", "modalities") == [("CT", 3), ("MR", 1), ("PT", 1)]


def test_fetch_commands_name_files_by_identifiers_not_by_keys():
    from quire_assets.research.exports import fetch_commands

    rows = [{"uri": "s3://bucket/a/../../etc/x.dcm", "accession_number": "RAD/2019/0042", "sop_instance_uid": "1.2.3"},
            {"uri": "/local/file.dcm", "accession_number": "A", "sop_instance_uid": "4"},
            {"uri": 's3://b/quote".dcm', "accession_number": None, "sop_instance_uid": "5"}]
    assert fetch_commands(rows) == ['cp "s3://bucket/a/../../etc/x.dcm" "cohort/RAD-2019-0042/1.2.3.dcm"',
                                    'cp "s3://b/quote%22.dcm" "cohort/no-accession/5.dcm"']
