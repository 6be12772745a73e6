"""Files arrive in the watched folder between two ticks: exactly the new accession is requested, once."""

from __future__ import annotations

import json

from dagster import DagsterInstance, build_sensor_context

from quire_assets.dicom.sample import SeriesPlan, StudyPlan, write_sample_archive, write_series
from quire_assets.partitions import accession_partitions
from quire_assets.resources import CatalogResource, DicomSource
from quire_assets.sensors import folder_arrival


def _tick(instance, resources, cursor):
    result = folder_arrival(build_sensor_context(instance=instance, resources=resources, cursor=cursor))
    for request in result.dynamic_partitions_requests or []:
        instance.add_dynamic_partitions(accession_partitions.name, list(request.partition_keys))
    return result


def test_new_accession_between_ticks(tmp_path):
    archive = tmp_path / "archive"
    write_sample_archive(archive, patients=2, slices=2)
    resources = {"source": DicomSource(uri=str(archive)),
                 "catalog": CatalogResource(uri=f"sqlite:///{tmp_path / 'catalog.db'}")}
    (tmp_path / "dagster").mkdir()
    with DagsterInstance.local_temp(str(tmp_path / "dagster")) as instance:
        first = _tick(instance, resources, None)
        assert first.run_requests  # the initial archive, never cataloged
        cursor = first.cursor

        study = StudyPlan(patient_index=9, accession="NEW-0042", date="2001-02-03", description="CT CHEST")
        study.series.append(SeriesPlan(7001, "NEW", "CT", 3, 1.0, 0.7))
        write_series(archive, study, study.series[0], 16, annotation=False)

        second = _tick(instance, resources, cursor)
        assert len(second.run_requests) == 1
        tags = second.run_requests[0].tags
        assert tags["dagster/asset_partition_range_start"] == tags["dagster/asset_partition_range_end"] == "NEW-0042"
        assert [list(r.partition_keys) for r in second.dynamic_partitions_requests] == [["NEW-0042"]]

        third = _tick(instance, resources, second.cursor)
        assert not third.run_requests
        assert "no new or changed files" in third.skip_reason.skip_message
        assert json.loads(third.cursor)["files"] == json.loads(second.cursor)["files"]

        # A non-DICOM file arriving is accounted for too: its partition is requested.
        (archive / "notes.txt").write_text("reading notes")
        fourth = _tick(instance, resources, third.cursor)
        [request] = fourth.run_requests
        assert request.tags["dagster/asset_partition_range_start"] == "no-accession:other-files"
