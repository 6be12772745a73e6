"""summary_statistics refreshes itself after catalog writes (its automation condition, evaluated
by the summary_refresh sensor), once, and not again until the catalog changes."""

from __future__ import annotations

from dagster import AssetKey, evaluate_automation_conditions, materialize

from quire_assets.assets import all_assets, ingest_assets
from quire_assets.definitions import defs
from quire_assets.sensors import summary_refresh
from tests.assets.test_materialize import indexed

SUMMARY = AssetKey("summary_statistics")


def test_summary_statistics_is_requested_after_catalog_writes(sample_archive, tmp_path):
    instance, resources, keys, built = indexed(sample_archive, tmp_path)
    result = evaluate_automation_conditions(defs=built, instance=instance)
    assert result.get_num_requested(SUMMARY) == 0  # nothing cataloged yet
    # Two accessions cataloged, of the eight registered: the others are not waited for.
    for key in keys[:2]:
        assert materialize(all_assets, selection=ingest_assets, partition_key=key, instance=instance,
                           resources=resources).success
    result = evaluate_automation_conditions(defs=built, instance=instance, cursor=result.cursor)
    assert result.get_num_requested(SUMMARY) == 1
    # Once handled, not again until the catalog changes.
    again = evaluate_automation_conditions(defs=built, instance=instance, cursor=result.cursor)
    assert again.get_num_requested(SUMMARY) == 0
    assert materialize(all_assets, selection=ingest_assets, partition_key=keys[2], instance=instance,
                       resources=resources).success
    assert evaluate_automation_conditions(defs=built, instance=instance, cursor=again.cursor
                                          ).get_num_requested(SUMMARY) == 1


def test_the_refresh_sensor_is_on_by_default_and_targets_the_summary():
    from dagster import DefaultSensorStatus

    assert summary_refresh.default_status == DefaultSensorStatus.RUNNING
    assert defs().resolve_sensor_def("summary_refresh") is not None
    graph = defs().resolve_asset_graph()
    assert summary_refresh.asset_selection.resolve(graph) == {SUMMARY}
