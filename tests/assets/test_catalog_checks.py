"""The whole-catalog check: evaluated after ingests (report_job), never inside an ingest run, and
it sees what is wrong anywhere in the catalog, not only in the last run's accessions."""

from __future__ import annotations

from dagster import AssetCheckKey, AssetKey, DagsterEventType

from quire_assets.catalog import open_catalog
from quire_assets.sensors import summary_refresh
from tests.assets.test_materialize import indexed

INTEGRITY = AssetCheckKey(AssetKey("catalog_entries"), "catalog_integrity")


def _evaluations(instance, run_id) -> dict:
    records = instance.get_records_for_run(run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION).records
    return {r.event_log_entry.dagster_event.event_specific_data.check_name:
            r.event_log_entry.dagster_event.event_specific_data for r in records}


def test_catalog_integrity_runs_after_ingests_over_the_whole_catalog(sample_archive, tmp_path):
    from quire_assets.orchestration import run_partitions

    instance, resources, keys, defs = indexed(sample_archive, tmp_path)
    report = run_partitions(defs, instance, keys, batch=3)
    assert not report.failed
    for run_id in report.run_ids:  # the ingest runs evaluate their own checks, not the whole catalog
        assert set(_evaluations(instance, run_id)) == {"every_file_accounted_for", "rollup_counts",
                                                       "series_quality", "unique_sop_instance_uids", "copies_agree"}
    result = defs.resolve_job_def("report_job").execute_in_process(instance=instance)
    [verdict] = [e for e in result.get_asset_check_evaluations() if e.check_name == "catalog_integrity"]
    assert verdict.passed and verdict.metadata["studies_checked"].value == 7
    assert verdict.metadata["instances_checked"].value == 79

    # Something wrong in an accession no later run touches: the next evaluation still sees it.
    with open_catalog(resources["catalog"].uri) as catalog:
        catalog.upsert("instances", [{"sop_instance_uid": "9.9.9", "series_instance_uid": "gone",
                                      "study_instance_uid": "gone", "partition_key": keys[0]}])
    result = defs.resolve_job_def("report_job").execute_in_process(instance=instance)
    [verdict] = [e for e in result.get_asset_check_evaluations() if e.check_name == "catalog_integrity"]
    assert not verdict.passed and verdict.metadata["orphan_instances"].value == 1


def test_the_refresh_sensor_evaluates_the_check_too():
    from quire_assets.definitions import defs

    assert INTEGRITY in summary_refresh.asset_selection.resolve_checks(defs().resolve_asset_graph())


def test_per_partition_checks_judge_every_accession_of_every_run_shape(sample_archive, tmp_path):
    """Runs over ranges of several accessions and of one: each accession gets its own passed
    verdict, with its own figures (a range of one is not stamped with its partition by Dagster),
    judging that partition's new materialization (what makes the UI show it as current)."""
    from quire_assets.orchestration import run_partitions
    from quire_assets.runtime.instance import ephemeral_instance
    from tests.assets.test_materialize import _partition_verdicts

    instance, resources, keys, defs = indexed(sample_archive, tmp_path, instance=ephemeral_instance())
    report = run_partitions(defs, instance, keys, batch=len(keys) - 1)  # a range of 7, then a range of 1
    assert not report.failed and len(report.run_ids) == 2
    with open_catalog(resources["catalog"].uri) as catalog:
        for name in ("every_file_accounted_for", "rollup_counts", "series_quality"):
            verdicts = _partition_verdicts(instance, name)
            assert set(verdicts) == set(keys) and all(v.passed for v in verdicts.values())
            infos = instance.event_log_storage.get_asset_check_partition_info(
                [AssetCheckKey(AssetKey("catalog_entries"), name)], after_storage_id=None)
            assert {i.partition_key for i in infos if i.is_current and i.partition_key} == set(keys)
        files = _partition_verdicts(instance, "every_file_accounted_for")
        for key in keys:
            held = catalog.count("instances", {"partition_key": key}) + catalog.count("errors", {"partition_key": key})
            assert files[key].metadata["files"].value >= held > 0
            assert _partition_verdicts(instance, "rollup_counts")[key].metadata["studies_checked"].value == (
                catalog.count("studies", {"partition_key": key}))


def test_series_quality_warns_for_the_accession_with_a_slice_missing(sample_archive, tmp_path):
    """The per-accession ``series_quality`` check: a warning for the one accession whose series lost a
    slice, with the flag counted; every other accession passes."""
    import shutil

    import pydicom
    from dagster import AssetCheckSeverity

    from quire_assets.orchestration import run_partitions
    from tests.assets.test_materialize import _partition_verdicts

    archive = tmp_path / "archive"
    shutil.copytree(sample_archive, archive)
    lung = sorted(p for p in archive.rglob("*.dcm")
                  if pydicom.dcmread(p, stop_before_pixels=True).AccessionNumber == "LIDC0003A")
    lung[len(lung) // 2].unlink()
    instance, resources, keys, defs = indexed(archive, tmp_path)
    assert not run_partitions(defs, instance, keys, batch=len(keys)).failed
    verdicts = _partition_verdicts(instance, "series_quality")
    assert set(verdicts) == set(keys)
    failing = {k for k, v in verdicts.items() if not v.passed}
    assert failing == {"LIDC0003A"}
    assert verdicts["LIDC0003A"].severity == AssetCheckSeverity.WARN
    assert verdicts["LIDC0003A"].metadata["missing_slices"].value == 1
    assert verdicts["LIDC0003A"].metadata["series_flagged"].value == 1
