"""Materialize accession partitions in-process, on an ephemeral instance."""

from __future__ import annotations

from dagster import DagsterEventType, DagsterInstance, materialize

from quire_assets.assets import all_assets, ingest_assets, source_index
from quire_assets.catalog import open_catalog
from quire_assets.partitions import accession_partitions
from quire_assets.resources import CatalogResource, DicomSource, PartitionedParquetIOManager
from quire_assets.settings import Settings


def _resources(archive, tmp_path, storage=None):
    return {
        "source": DicomSource(uri=str(archive)),
        "catalog": CatalogResource(uri=f"sqlite:///{tmp_path / 'catalog.db'}"),
        "parquet_io_manager": PartitionedParquetIOManager(base_dir=str(storage or tmp_path / "storage")),
    }


def test_materialize_one_accession_partition(sample_archive, tmp_path):
    instance = DagsterInstance.ephemeral()
    resources = _resources(sample_archive, tmp_path)
    indexed = materialize([source_index], instance=instance, resources=resources)
    assert indexed.success
    keys = instance.get_dynamic_partitions(accession_partitions.name)
    assert "RAD/2019/0042" in keys and "LIDC0001A" in keys
    result = materialize(all_assets, selection=ingest_assets, partition_key="RAD/2019/0042",
                         instance=instance, resources=resources)
    assert result.success
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks == {"every_file_accounted_for": True, "rollup_counts": True, "series_quality": True,
                      "unique_sop_instance_uids": True, "copies_agree": True}
    catalog = open_catalog(resources["catalog"].uri)
    assert catalog.distinct("studies", "accession_number") == ["RAD/2019/0042"]
    series = catalog.find("series", sort=[("slice_thickness", 1)])
    assert [s["slice_thickness"] for s in series] == [0.625, 1.25]
    assert sum(s["num_instances"] for s in series) == catalog.count("instances") == 18
    rows = {m.asset_key.path[-1]: m.metadata["dagster/row_count"].value
            for m in (e.materialization for e in result.get_asset_materialization_events())}
    assert rows == {"dicom_files": 18, "instance_records": 18, "series_rollups": 2, "study_rollups": 1,
                    "catalog_entries": 18}
    # One Parquet file for the run and the manifest; the key (text from a file) is in no path.
    stored = sorted(p.name for p in (tmp_path / "storage" / "dicom_files").iterdir() if not p.name.startswith("partitions.db"))
    assert len(stored) == 1 and stored[0].startswith(result.run_id) and stored[0].endswith(".parquet")


def indexed(archive, tmp_path, storage=None, instance=None):
    """An ephemeral instance with the archive's partitions registered, resources, and definitions."""
    from quire_assets.definitions import build_definitions

    instance = instance or DagsterInstance.ephemeral()
    resources = _resources(archive, tmp_path, storage)
    assert materialize([source_index], instance=instance, resources=resources).success
    keys = instance.get_dynamic_partitions(accession_partitions.name)
    return instance, resources, keys, build_definitions(Settings.from_environ(), str(archive), resources["catalog"].uri)


def test_one_run_covers_a_range_of_partitions(sample_archive, tmp_path):
    from quire_assets.orchestration import run_partitions

    instance, resources, keys, defs = indexed(sample_archive, tmp_path)
    report = run_partitions(defs, instance, keys)
    assert len(report.run_ids) == 1 and not report.failed
    run = instance.get_run_by_id(report.run_ids[0])
    assert run.tags["dagster/asset_partition_range_start"] == keys[0]
    assert run.tags["dagster/asset_partition_range_end"] == keys[-1]
    catalog = open_catalog(resources["catalog"].uri)
    assert catalog.count("studies") == 7 and catalog.count("patients") == 6
    # Planned events: one per asset holding the range, not one per asset and partition.
    planned = instance.get_records_for_run(report.run_ids[0], of_type=DagsterEventType.ASSET_MATERIALIZATION_PLANNED)
    assert len(planned.records) == len(ingest_assets)
    subset = planned.records[0].event_log_entry.dagster_event.event_specific_data.partitions_subset
    assert sorted(subset.get_partition_keys()) == sorted(keys)
    done = instance.get_records_for_run(report.run_ids[0], of_type=DagsterEventType.ASSET_MATERIALIZATION).records
    assert len(done) == len(ingest_assets) * len(keys)
    # Metadata of a run over many partitions speaks for the run: no run total posing as a partition's rows.
    entries = [r.asset_materialization for r in done if r.asset_materialization.asset_key.path == ["catalog_entries"]]
    assert {m.partition for m in entries} == set(keys)
    metadata = entries[0].metadata
    assert metadata["rows_in_run"].value == catalog.count("instances") == 79
    assert metadata["accessions_in_run"].value == len(keys)
    assert "dagster/row_count" not in metadata
    # Several small runs when the batch is small.
    report = run_partitions(defs, instance, keys, batch=3)
    assert len(report.run_ids) == -(-len(keys) // 3)


def test_summary_statistics_asset(sample_archive, tmp_path, monkeypatch):
    from quire_assets.assets import summary_statistics
    from quire_assets.definitions import build_definitions
    from quire_assets.orchestration import run_partitions

    monkeypatch.setenv("QUIRE_HOME", str(tmp_path / "home"))
    instance = DagsterInstance.ephemeral()
    resources = _resources(sample_archive, tmp_path)
    assert materialize([source_index], instance=instance, resources=resources).success
    defs = build_definitions(Settings.from_environ(), str(sample_archive), resources["catalog"].uri)
    run_partitions(defs, instance, instance.get_dynamic_partitions(accession_partitions.name))
    result = materialize([summary_statistics], instance=instance, resources=resources)
    [event] = result.get_asset_materialization_events()
    metadata = event.materialization.metadata
    assert metadata["total_studies"].value == 7
    assert metadata["total_instances"].value == metadata["total_images"].value == 79
    assert metadata["average_images_per_study"].value == round(79 / 7, 2)
    assert "| 0.625 | 4 |" in metadata["distributions"].value  # four 0.625 mm series
    assert (tmp_path / "home" / "reports" / "quire-report.html").is_file()


def test_sop_uid_claimed_by_two_accessions_fails_its_check(tmp_path):
    import pydicom

    from quire_assets.dicom.sample import write_sample_archive
    from quire_assets.orchestration import range_tags

    archive = tmp_path / "archive"
    write_sample_archive(archive, patients=1, slices=2)
    slice_ = next(archive.rglob("1-001.dcm"))
    ds = pydicom.dcmread(slice_)
    ds.AccessionNumber = "RELABELED"  # same SOP Instance UID, another accession
    (archive / "relabeled").mkdir()
    ds.save_as(archive / "relabeled" / "x.dcm")
    instance = DagsterInstance.ephemeral()
    resources = _resources(archive, tmp_path)
    assert materialize([source_index], instance=instance, resources=resources).success
    keys = instance.get_dynamic_partitions(accession_partitions.name)
    assert {"LIDC0001A", "RELABELED"} <= set(keys)
    result = materialize(all_assets, selection=ingest_assets, instance=instance, resources=resources,
                         tags=range_tags(keys[0], keys[-1]))
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert not checks["unique_sop_instance_uids"].passed
    assert checks["unique_sop_instance_uids"].metadata["shared_across_accessions"].value == 1
    assert checks["every_file_accounted_for"].passed is False  # the relabeled copy took the instance over
    # Judged per accession too: the one that lost its file fails, with its own figures; the others pass.
    failing = _partition_verdicts(instance, "every_file_accounted_for")
    assert set(failing) == set(keys)
    [loser] = [k for k, v in failing.items() if not v.passed]
    assert loser in {"LIDC0001A", "RELABELED"}
    assert failing[loser].metadata["unaccounted"].value == 1
    assert failing[loser].metadata["files"].value == {"LIDC0001A": 2, "RELABELED": 1}[loser]
    # Two accessions now share a series and an instance: their rollups disagree, and only theirs.
    rollups = _partition_verdicts(instance, "rollup_counts")
    assert set(rollups) == set(keys)
    assert {k for k in keys if not rollups[k].passed} & {"LIDC0001A", "RELABELED"}
    assert all(rollups[k].passed for k in keys if k not in {"LIDC0001A", "RELABELED"})
    # A later run over an accession not involved: the duplicate is still there, and so is the verdict.
    later = materialize(all_assets, selection=ingest_assets, instance=instance, resources=resources,
                        partition_key="no-accession:other-files")
    [verdict] = [e for e in later.get_asset_check_evaluations() if e.check_name == "unique_sop_instance_uids"]
    assert not verdict.passed and verdict.metadata["shared_across_accessions"].value == 1
    assert verdict.metadata["involving_this_run"].value == 0
    assert not _partition_verdicts(instance, "every_file_accounted_for")[loser].passed


def _partition_verdicts(instance, check_name: str) -> dict:
    """The latest evaluation of a per-partition check, by partition, as the instance stores it."""
    from dagster import AssetCheckKey, AssetKey

    history = instance.event_log_storage.get_asset_check_execution_history(
        AssetCheckKey(AssetKey("catalog_entries"), check_name), limit=1_000)
    latest: dict = {}
    for record in history:  # newest first
        if record.partition is not None and record.evaluation is not None:
            latest.setdefault(record.partition, record.evaluation)
    return latest
