"""One contract, every backend: same inputs, same answers."""

from __future__ import annotations

import json

import pytest

from quire_assets.catalog import COLLECTIONS, CatalogError, FilterError
from quire_assets.dicom import rollup
from quire_assets.dicom.records import extract_file


def _keys(docs, key="series_instance_uid"):
    return sorted(d[key] for d in docs)


SERIES = [
    {"series_instance_uid": "s1", "study_instance_uid": "st1", "modality": "CT", "slice_thickness": 1.25,
     "manufacturer": "GE MEDICAL SYSTEMS", "pixel_spacing": [0.7, 0.7], "num_instances": 3,
     "metadata": {"ImageType": ["ORIGINAL", "PRIMARY"], "KVP": 120.0}, "partition_key": "A1"},
    {"series_instance_uid": "s2", "study_instance_uid": "st1", "modality": "CT", "slice_thickness": 5.0,
     "manufacturer": "SIEMENS", "pixel_spacing": [0.5, 0.5], "num_instances": 2,
     "metadata": {"ImageType": ["DERIVED"], "KVP": 140.0}, "partition_key": "A1"},
    {"series_instance_uid": "s3", "study_instance_uid": "st2", "modality": "MR", "slice_thickness": None,
     "manufacturer": "GE MEDICAL SYSTEMS", "num_instances": 1, "metadata": {"EchoTime": 30},
     "partition_key": "A2"},
]


@pytest.fixture
def loaded(catalog):
    catalog.upsert("series", SERIES)
    return catalog


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        ({}, ["s1", "s2", "s3"]),
        ({"modality": "CT"}, ["s1", "s2"]),
        ({"slice_thickness": {"$lt": 1.5}}, ["s1"]),
        ({"slice_thickness": {"$lt": 1.5}, "manufacturer": {"$regex": "^ge", "$options": "i"}}, ["s1"]),
        ({"slice_thickness": None}, ["s3"]),
        ({"slice_thickness": {"$ne": None}}, ["s1", "s2"]),
        ({"pixel_spacing": 0.5}, ["s2"]),  # array semantics: any element matches
        ({"pixel_spacing": [0.7, 0.7]}, ["s1"]),  # whole-array equality
        ({"metadata.ImageType": "PRIMARY"}, ["s1"]),
        ({"metadata.KVP": {"$gte": 130}}, ["s2"]),
        ({"metadata.EchoTime": {"$exists": True}}, ["s3"]),
        ({"metadata.EchoTime": {"$exists": False}}, ["s1", "s2"]),
        ({"modality": {"$in": ["MR", "PT"]}}, ["s3"]),
        ({"modality": {"$nin": ["MR"]}}, ["s1", "s2"]),
        ({"$or": [{"modality": "MR"}, {"slice_thickness": 5.0}]}, ["s2", "s3"]),
        ({"$nor": [{"modality": "MR"}, {"slice_thickness": 5.0}]}, ["s1"]),
        ({"$and": [{"modality": "CT"}, {"num_instances": {"$gt": 2}}]}, ["s1"]),
        ({"slice_thickness": {"$not": {"$gt": 2}}}, ["s1", "s3"]),
        ({"modality": {"$gt": 1}}, []),  # no comparison across types, as in MongoDB
    ],
)
def test_filters(loaded, flt, expected):
    assert _keys(loaded.find("series", flt)) == expected
    assert loaded.count("series", flt) == len(expected)


@pytest.mark.parametrize(
    ("flt", "operator"),
    [
        ({"$where": "sleep(1000)"}, "$where"),
        ({"modality": {"$expr": {"$eq": [1, 1]}}}, "$expr"),
        ({"$expr": {"$gt": ["$a", 1]}}, "$expr"),
        ({"modality": {"$function": {"body": "x"}}}, "$function"),
        ({"modality": {"$elemMatch": {"$gt": 1}}}, "$elemMatch"),
        ({"modality": {"$bogus": 1}}, "$bogus"),
        ({"metadata.$where": 1}, "$where"),
        ({"modality": {"$eq": {"$where": "x"}}}, "$where"),
    ],
)
def test_refused_operators_are_named(loaded, flt, operator):
    with pytest.raises(FilterError, match=f"'\\{operator}'"):
        loaded.find("series", flt)
    with pytest.raises(FilterError):
        loaded.count("series", flt)


def test_booleans_are_not_numbers(catalog):
    catalog.upsert("series", [{"series_instance_uid": "b", "metadata": {"flag": True}},
                              {"series_instance_uid": "n", "metadata": {"flag": 1}}])
    if "mongomock" in type(getattr(catalog, "client", None)).__module__:
        # mongomock follows Python (True == 1); MongoDB and SQLite keep the BSON types apart
        # (test_differential.MONGOMOCK_WRONG lists each of its known errors).
        assert _keys(catalog.find("series", {"metadata.flag": True})) == ["b", "n"]
        return
    assert _keys(catalog.find("series", {"metadata.flag": True})) == ["b"]
    assert _keys(catalog.find("series", {"metadata.flag": 1})) == ["n"]


def test_injection_attempts_are_data(loaded):
    assert loaded.find("series", {"modality": "CT' OR 1=1 --"}) == []
    assert loaded.find("series", {"manufacturer": {"$regex": "x'; DROP TABLE series; --"}}) == []
    with pytest.raises(FilterError):
        loaded.find("series", {"modality') OR 1=1 --": "x"})
    assert loaded.count("series") == 3


def test_projection_sort_limit_skip_distinct(loaded):
    docs = loaded.find("series", {}, projection={"series_instance_uid": 1, "metadata.KVP": 1},
                       sort=[("slice_thickness", -1)], limit=2)
    assert docs == [{"series_instance_uid": "s2", "metadata": {"KVP": 140.0}},
                    {"series_instance_uid": "s1", "metadata": {"KVP": 120.0}}]
    assert _keys(loaded.find("series", {}, sort=[("series_instance_uid", 1)], skip=1)) == ["s2", "s3"]
    assert loaded.distinct("series", "manufacturer") == ["GE MEDICAL SYSTEMS", "SIEMENS"]
    assert loaded.distinct("series", "metadata.ImageType") == ["DERIVED", "ORIGINAL", "PRIMARY"]
    assert "_id" not in loaded.find("series", {"series_instance_uid": "s1"})[0]
    excluded = loaded.find("series", {"series_instance_uid": "s1"},
                           projection={"metadata.KVP": 0, "pixel_spacing": 0, "nothing.here": 0})[0]
    assert excluded["metadata"] == {"ImageType": ["ORIGINAL", "PRIMARY"]}
    assert "pixel_spacing" not in excluded and excluded["modality"] == "CT"
    assert loaded.get("series", "s1")["metadata"]["KVP"] == 120.0  # the stored document is untouched


def test_projection_of_top_level_fields_keeps_every_type(catalog):
    doc = {"uri": "u1", "reason": "empty", "n": 3, "x": 2.5, "yes": True, "no": False, "none": None,
           "text": "é", "list": [1, "a", {"b": None}], "obj": {"k": [2.0]}, "empty_list": [], "empty_obj": {}}
    catalog.upsert("errors", [doc])
    fields = ["uri", "n", "x", "yes", "no", "none", "text", "list", "obj", "empty_list", "empty_obj", "absent"]
    [found] = catalog.find("errors", {}, projection=dict.fromkeys(fields, 1))
    assert found == {k: v for k, v in doc.items() if k != "reason"}
    assert type(found["yes"]) is bool and type(found["n"]) is int and type(found["x"]) is float
    assert catalog.find("errors", {}, projection=["none", "absent"]) == [{"none": None}]
    with pytest.raises(FilterError):
        catalog.find("errors", {}, projection={"uri') --": 1})


def test_upsert_is_idempotent_and_replaces(loaded):
    loaded.upsert("series", SERIES)
    assert loaded.count("series") == 3
    loaded.upsert("series", [{**SERIES[0], "modality": "PT"}])
    assert loaded.get("series", "s1")["modality"] == "PT"
    assert loaded.count("series") == 3


def test_scalar_fields_refuse_arrays(catalog):
    with pytest.raises(CatalogError, match="series.modality"):
        catalog.upsert("series", [{"series_instance_uid": "x", "modality": ["CT", "MR"]}])
    with pytest.raises(CatalogError, match="key"):
        catalog.upsert("series", [{"modality": "CT"}])


def _partition_docs(records, features):
    ok = [r for r in records if "reason" not in r]
    series = rollup.series_documents(ok, features)
    return (rollup.instance_documents(ok, features), series, rollup.study_documents(ok, series, features),
            [r for r in records if "reason" in r])


def test_replace_partition_round_trip(catalog, sample_archive, features, tmp_path):
    files = sorted(p for p in sample_archive.rglob("*") if p.is_file())
    records = [extract_file(p, features) for p in files]
    key = "LIDC0001A"
    mine = [r for r in records if r["partition_key"] == key]
    # A copy of one slice elsewhere: one instance, both locations.
    copy = dict(mine[0], uri=mine[0]["uri"] + ".copy")
    mine.append(copy)
    counts = catalog.replace_partitions([key], *_partition_docs(mine, features))
    assert counts["instances"] == len(mine) - 1
    instance = catalog.get("instances", mine[0]["sop_instance_uid"])
    assert sorted(instance["uris"]) == sorted([mine[0]["uri"], copy["uri"]])
    study = catalog.find("studies", {"accession_number": key})[0]
    assert study["num_instances"] == len(mine) - 1 and study["modalities"] == ["CT"]
    patient = catalog.get("patients", study["patient_id"])
    assert patient["num_studies"] == 1 and patient["accession_numbers"] == [key]
    # Researchers' collections survive a re-ingest.
    catalog.add_to_collection("cohort-1", [key])
    catalog.replace_partitions([key], *_partition_docs(mine, features))
    assert catalog.get("studies", study["study_instance_uid"])["collection_ids"] == ["cohort-1"]
    # A file that disappeared disappears from the catalog.
    fewer = [r for r in mine if r is not copy and r["uri"] != mine[1]["uri"]]
    catalog.replace_partitions([key], *_partition_docs(fewer, features))
    assert catalog.get("instances", mine[1]["sop_instance_uid"]) is None
    assert catalog.get("instances", mine[0]["sop_instance_uid"])["uris"] == [mine[0]["uri"]]
    assert catalog.integrity()["ok"]
    # An empty partition leaves nothing behind, patients included.
    catalog.replace_partitions([key], [], [], [], [])
    assert catalog.count("instances") == catalog.count("studies") == catalog.count("patients") == 0


def test_many_partitions_in_one_write_equal_one_write_each(catalog_factory, sample_archive, features):
    """What a run does for a group of accessions at once leaves the catalog as one call per
    accession would, removals and kept collections included."""
    records = [extract_file(p, features) for p in sorted(sample_archive.rglob("*")) if p.is_file()]
    keys = sorted({r["partition_key"] for r in records})
    by_key = {k: [r for r in records if r["partition_key"] == k] for k in keys}
    one_each, together = catalog_factory(), catalog_factory()
    for round_ in range(2):  # the second round drops each partition's first file
        docs = {k: _partition_docs(rs[round_:], features) for k, rs in by_key.items()}
        for key in keys:
            one_each.replace_partitions([key], *docs[key], source="archive")
        together.replace_partitions(keys, *([d for k in keys for d in docs[k][i]] for i in range(4)), source="archive")
        if round_ == 0:
            for cat in (one_each, together):
                cat.add_to_collection("cohort-1", keys[:2])
    dumps = [{c: sorted(cat.find(c), key=lambda d: json.dumps(d, sort_keys=True, default=str)) for c in COLLECTIONS}
             for cat in (one_each, together)]
    assert dumps[0] == dumps[1]
    assert len(dumps[0]["instances"]) == len(records) - len(keys) - sum(1 for r in records if "reason" in r) + sum(
        1 for rs in by_key.values() if "reason" in rs[0])  # every partition's first file is gone
    assert sum("cohort-1" in (s.get("collection_ids") or []) for s in dumps[1]["studies"]) >= 1


def test_integrity_reports_orphans_and_mismatches(catalog):
    catalog.upsert("studies", [{"study_instance_uid": "st1", "num_series": 1, "num_instances": 5}])
    catalog.upsert("series", [{"series_instance_uid": "s1", "study_instance_uid": "st1", "num_instances": 2},
                              {"series_instance_uid": "s9", "study_instance_uid": "nope", "num_instances": 0}])
    catalog.upsert("instances", [{"sop_instance_uid": "i1", "series_instance_uid": "s1", "study_instance_uid": "st1"},
                                 {"sop_instance_uid": "i2", "series_instance_uid": "gone", "study_instance_uid": "st1"}])
    report = catalog.integrity()
    assert report["orphan_series"] == ["s9"]
    assert report["orphan_instances"] == ["i2"]
    assert {"series_instance_uid": "s1", "num_instances": 2, "present": 1} in report["count_mismatches"]
    assert not report["ok"]


def test_unknown_collection(catalog):
    with pytest.raises(CatalogError, match="unknown collection"):
        catalog.find("nope")


def test_unknown_fields_and_level_fields(catalog):
    from quire_assets.catalog.fields import filter_fields, level_fields, unknown_fields

    assert unknown_fields(catalog, "series", ["anything"]) == {}  # an empty level refuses nothing
    catalog.upsert("studies", [{"study_instance_uid": "st1", "study_date": "2000-01-01", "metadata": {"StudyID": "7"}}])
    catalog.upsert("series", [{"series_instance_uid": "s1", "modality": "CT", "kvp": None, "metadata": {"KVP": 120}}])
    flt = {"$or": [{"modality": "CT"}, {"metadata.KVP": {"$gt": 100}}], "study_date": {"$gte": "2000"}}
    assert filter_fields(flt) == ["modality", "metadata.KVP", "study_date"]
    assert unknown_fields(catalog, "series", [*filter_fields(flt), "kvp", "metadata.Nope"]) == {
        "study_date": ["studies"], "metadata.Nope": []}
    assert level_fields(catalog, "series") == ["kvp", "metadata.KVP", "modality", "series_instance_uid"]


def test_cohort_files_and_collection_membership(catalog, sample_archive, features):
    from quire_assets.research.collections import in_collection
    from quire_assets.research.exports import cohort_files

    records = [extract_file(p, features) for p in sorted(sample_archive.rglob("*.dcm"))]
    keys = sorted({r["partition_key"] for r in records})
    for key in keys:
        catalog.replace_partitions([key], *_partition_docs([r for r in records if r["partition_key"] == key], features))
    catalog.add_to_collection("c1", [keys[0]])
    mine = {r["uri"] for r in records if r["partition_key"] == keys[0]}
    rows = list(cohort_files(catalog, "series", in_collection(catalog, "c1")))
    assert {r["uri"] for r in rows} == mine and all(r["patient_id"] for r in rows)
    assert catalog.count("instances", in_collection(catalog, "c1", {"instance_number": 1})) == len(
        {r["series_instance_uid"] for r in records if r["partition_key"] == keys[0]})
    with pytest.raises(CatalogError, match="no collection 'nope'"):
        in_collection(catalog, "nope")
