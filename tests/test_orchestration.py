"""How many partitions and files go into one run."""

from __future__ import annotations

from quire_assets.orchestration import partition_ranges
from quire_assets.settings import Settings, home_of

ORDER = [f"A{i:02d}" for i in range(10)]


def covered(ranges):
    out = []
    for first, last in ranges:
        out.extend(ORDER[ORDER.index(first) : ORDER.index(last) + 1])
    return out


def test_ranges_cover_what_is_wanted_in_few_runs():
    assert partition_ranges(ORDER, ORDER) == [("A00", "A09")]
    assert partition_ranges(ORDER, ["A01", "A02", "A07"], batch=3) == [("A01", "A02"), ("A07", "A07")]
    assert partition_ranges(ORDER, ORDER, batch=4) == [("A00", "A03"), ("A04", "A07"), ("A08", "A09")]


def test_ranges_are_bounded_by_files_per_run():
    weights = dict.fromkeys(ORDER, 4)
    ranges = partition_ranges(ORDER, ORDER, weights=weights, max_weight=10)
    assert ranges == [("A00", "A01"), ("A02", "A03"), ("A04", "A05"), ("A06", "A07"), ("A08", "A09")]
    assert covered(ranges) == ORDER
    # A partition heavier than the bound still gets its own run.
    assert partition_ranges(ORDER, ["A03", "A04"], weights={"A03": 50, "A04": 1}, max_weight=10) == [
        ("A03", "A03"), ("A04", "A04")]


# ---- runs side by side on forked workers -------------------------------------------------------


def _indexed(archive, tmp_path, instance):
    """Definitions over ``archive`` with its source index built and its partitions registered."""
    from quire_assets.definitions import build_definitions
    from quire_assets.dicom.features import load_feature_sets
    from quire_assets.partitions import register_partitions
    from quire_assets.sources import SourceIndex, source_from_uri

    catalog_uri = f"sqlite:///{tmp_path / 'catalog.db'}"
    index = SourceIndex(source_from_uri(str(archive)), home_of())
    index.refresh(load_feature_sets(), workers=1)
    keys = index.partition_keys()
    index.close()
    register_partitions(instance, keys)
    return build_definitions(Settings.from_environ(), str(archive), catalog_uri), catalog_uri, keys


def test_runs_on_two_workers_land_in_a_persistent_instance(sample_archive, tmp_path):
    from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus

    from quire_assets.catalog import open_catalog
    from quire_assets.orchestration import run_partitions

    (tmp_path / "dagster").mkdir()
    with DagsterInstance.local_temp(str(tmp_path / "dagster")) as instance:
        defs, catalog_uri, keys = _indexed(sample_archive, tmp_path, instance)
        report = run_partitions(defs, instance, keys, workers=2)
        assert report.workers == 2 and len(report.run_ids) >= 2 and not report.failed
        runs = instance.get_runs()
        assert sorted(r.run_id for r in runs) == sorted(report.run_ids)
        assert all(r.status == DagsterRunStatus.SUCCESS for r in runs)
        # Every accession cataloged by exactly one of the runs.
        written = [r.asset_materialization.partition for run in runs for r in instance.get_records_for_run(
            run.run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION, limit=1000).records
            if r.asset_materialization.asset_key.path == ["catalog_entries"]]
        assert sorted(written) == sorted(keys)
    catalog = open_catalog(catalog_uri)
    assert (catalog.count("studies"), catalog.count("instances"), catalog.count("patients")) == (7, 79, 6)
    assert catalog.integrity()["ok"]


def test_runs_on_two_workers_with_an_ephemeral_instance(sample_archive, tmp_path):
    from dagster import DagsterInstance

    from quire_assets.catalog import open_catalog
    from quire_assets.orchestration import run_partitions

    instance = DagsterInstance.ephemeral()
    defs, catalog_uri, keys = _indexed(sample_archive, tmp_path, instance)
    seen = []
    report = run_partitions(defs, instance, keys, workers=2, on_run=lambda a, b, ok: seen.append((a, b, ok)))
    assert report.workers == 2 and not report.failed and len(seen) == len(report.run_ids) >= 2
    assert all(ok for _, _, ok in seen) and seen[0][0] == keys[0] and seen[-1][1] == keys[-1]
    # The runs' events lived in the workers' own instances: the report is what is left of them.
    assert instance.get_runs() == []
    assert open_catalog(catalog_uri).count("instances") == 79


def test_a_failed_run_on_a_worker_is_reported(sample_archive, tmp_path):
    from dagster import DagsterInstance

    from quire_assets.definitions import build_definitions
    from quire_assets.orchestration import run_partitions

    instance = DagsterInstance.ephemeral()
    _, _, keys = _indexed(sample_archive, tmp_path, instance)
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the catalog's folder should be")
    defs = build_definitions(Settings.from_environ(), str(sample_archive), f"sqlite:///{blocked / 'catalog.db'}")
    report = run_partitions(defs, instance, keys, workers=2)
    assert report.workers == 2 and len(report.failed) == len(report.run_ids) >= 2


def test_a_run_whose_process_dies_is_reported_failed(sample_archive, tmp_path, monkeypatch):
    import os

    from dagster import DagsterInstance

    from quire_assets import orchestration

    instance = DagsterInstance.ephemeral()
    defs, _, keys = _indexed(sample_archive, tmp_path, instance)
    # What the forked processes inherit: a run that kills its process before any outcome is sent.
    monkeypatch.setattr(orchestration, "_execute_one", lambda *args: os._exit(3))
    report = orchestration.run_partitions(defs, instance, keys, workers=2)
    assert len(report.failed) == len(report.run_ids) >= 2
    assert all(f.endswith("(its process exited with status 3)") for f in report.failed)
    assert report.failed[0].startswith(f"{keys[0]}..")


def test_an_sop_uid_in_two_accessions_is_caught_by_runs_that_overlap(tmp_path):
    """Two accessions holding one SOP Instance UID, cataloged by two runs at once: the check must
    not depend on which run writes first."""
    import pydicom
    from dagster import DagsterEventType, DagsterInstance

    from quire_assets.dicom.sample import write_sample_archive
    from quire_assets.orchestration import run_partitions

    archive = tmp_path / "archive"
    write_sample_archive(archive, patients=1, slices=2)
    ds = pydicom.dcmread(next(archive.rglob("1-001.dcm")))
    ds.AccessionNumber = "RELABELED"
    (archive / "relabeled").mkdir()
    ds.save_as(archive / "relabeled" / "x.dcm")
    (tmp_path / "dagster").mkdir()
    with DagsterInstance.local_temp(str(tmp_path / "dagster")) as instance:
        defs, _, keys = _indexed(archive, tmp_path, instance)
        report = run_partitions(defs, instance, keys, workers=2, batch=1)
        assert len(report.run_ids) == len(keys) >= 2
        verdicts = {}
        for run_id in report.run_ids:
            for record in instance.get_records_for_run(run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION).records:
                evaluation = record.event_log_entry.dagster_event.event_specific_data
                if evaluation.check_name == "unique_sop_instance_uids":
                    verdicts[instance.get_run_by_id(run_id).tags["dagster/asset_partition_range_start"]] = (
                        evaluation.passed)
    assert verdicts["LIDC0001A"] is False and verdicts["RELABELED"] is False
