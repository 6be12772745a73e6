"""The Parquet IO manager: one file per run and asset, a manifest of which file holds each
partition, partition keys (text from files) never in a path, files nobody points to deleted."""

from __future__ import annotations

import pandas as pd
from dagster import DagsterInstance, materialize

from quire_assets.assets import all_assets, ingest_assets, source_index, study_rollups
from quire_assets.resources.io_manager import files_of
from quire_assets.settings import home_of
from tests.assets.test_materialize import _resources as resources_for
from tests.assets.test_materialize import indexed


def _resources(archive, tmp_path):
    # Where the definitions' own IO manager writes too ($QUIRE_HOME, a temporary folder here).
    return resources_for(archive, tmp_path, home_of() / "storage")


def test_a_run_writes_one_file_per_asset_and_a_later_run_reads_partitions_back(sample_archive, tmp_path):
    from quire_assets.orchestration import run_partitions

    # The definitions' own IO manager writes under $QUIRE_HOME (a temporary folder here): so do these.
    instance, resources, keys, defs = indexed(sample_archive, tmp_path, home_of() / "storage")
    # Run twice over all partitions in ranges of 3: 3 runs each time, and the first set of files goes.
    for _ in range(2):
        report = run_partitions(defs, instance, keys, batch=3)
        assert not report.failed and len(report.run_ids) == 3
    series_dir = home_of() / "storage" / "series_rollups"
    files = sorted(p.name for p in series_dir.glob("*.parquet"))
    assert len(files) == 3 and {f.split("-")[0] for f in files} <= {r.split("-")[0] for r in report.run_ids}
    assert not [p for p in home_of().joinpath("storage").rglob("*") if "RAD" in p.name or ".." in p.name[:2]]
    held = files_of(series_dir, keys)
    assert set(held) == set(keys) and set(held.values()) == set(files)

    # A run of study_rollups alone reads instance records and series from the files of other runs.
    result = materialize(all_assets, selection=[study_rollups], partition_key="RAD/2019/0042",
                         instance=instance, resources=resources)
    assert result.success
    [frame_file] = [p for p in (home_of() / "storage" / "study_rollups").glob("*.parquet")
                    if p.name.startswith(result.run_id)]
    frame = pd.read_parquet(frame_file)
    assert list(frame["partition_key"]) == ["RAD/2019/0042"] and frame["num_series"].tolist() == [2]


def test_a_partition_never_materialized_is_named_in_the_error(sample_archive, tmp_path):
    instance = DagsterInstance.ephemeral()
    resources = _resources(sample_archive, tmp_path)
    assert materialize([source_index], instance=instance, resources=resources).success
    result = materialize(all_assets, selection=[study_rollups], partition_key="LIDC0001A",
                         instance=instance, resources=resources, raise_on_error=False)
    assert not result.success
    error = result.get_step_failure_events()[0].step_failure_data.error
    messages = [error.message] + ([error.cause.message] if error.cause else [])
    assert any("has not been materialized for partition(s) 'LIDC0001A'" in m for m in messages), messages


def test_ingest_assets_are_stored_by_this_manager():
    assert all(a.get_io_manager_key_for_asset_key(a.key) == "parquet_io_manager"
               for a in ingest_assets if a.key.path[-1] != "catalog_entries")
