"""Dagster's partition store is kept to a working set (``partitions.py``): old cataloged accessions
are retired from it and registered again when they change, and the catalog is the same as when
every accession stays registered."""

from __future__ import annotations

import json
import os

import pydicom
from dagster import AssetKey, DagsterInstance, build_sensor_context

from quire_assets.catalog import COLLECTIONS, open_catalog
from quire_assets.dicom.sample import SeriesPlan, StudyPlan, write_sample_archive, write_series
from quire_assets.partitions import accession_partitions, retirable
from quire_assets.resources import CatalogResource, DicomSource
from quire_assets.sensors import folder_arrival
from quire_assets.sources import SourceIndex, source_from_uri
from tests.cli.test_ingest_e2e import quire


def test_retirable_keeps_the_newest_and_what_is_needed():
    keys = [f"A{i}" for i in range(6)]
    assert retirable(keys, 0, set()) == []  # 0: keep everything
    assert retirable(keys, 6, set()) == [] and retirable(keys, 10, set()) == []
    assert retirable(keys, 2, set()) == ["A0", "A1", "A2", "A3"]  # the oldest, in order
    assert retirable(keys, 2, {"A1", "A3", "A5"}) == ["A0", "A2"]  # never what is still needed


def _dump(uri: str) -> dict:
    with open_catalog(uri) as catalog:
        return {c: sorted(catalog.find(c), key=lambda d: json.dumps(d, sort_keys=True, default=str))
                for c in COLLECTIONS}


def test_ingest_keeps_a_working_set_and_catalogs_the_same(tmp_path):
    archive = tmp_path / "archive"
    write_sample_archive(archive, patients=4, slices=2)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("QUIRE_", "DAGSTER_HOME"))}
    kept = {**base, "QUIRE_HOME": str(tmp_path / "kept"), "DAGSTER_HOME": str(tmp_path / "dagster"),
            "QUIRE_PARTITIONS_KEPT": "2"}
    every = {**base, "QUIRE_HOME": str(tmp_path / "every"), "QUIRE_PARTITIONS_KEPT": "0"}
    quire("ingest", str(archive), "--workers", "2", env=kept, cwd=tmp_path)
    quire("ingest", str(archive), env=every, cwd=tmp_path)
    kept_uri = f"sqlite:///{tmp_path / 'kept' / 'catalog.db'}"
    assert _dump(kept_uri) == _dump(f"sqlite:///{tmp_path / 'every' / 'catalog.db'}")

    with SourceIndex(source_from_uri(str(archive)), tmp_path / "kept") as index:
        accessions = index.partition_keys()
    assert len(accessions) >= 5
    with DagsterInstance.from_config(str(tmp_path / "dagster")) as instance:
        # Two stay registered: the newest; every accession was materialized by a run all the same.
        registered = instance.get_dynamic_partitions(accession_partitions.name)
        assert len(registered) == 2 and set(registered) < set(accessions)
        events = instance.fetch_materializations(AssetKey("catalog_entries"), limit=1000).records
        assert {e.partition_key for e in events} == set(accessions)

    # A file of a retired accession changes: that accession is registered again, and cataloged again.
    retired = next(a for a in accessions if a not in registered and not a.startswith("no-accession"))
    path = next(p for p in archive.rglob("*.dcm") if pydicom.dcmread(p, stop_before_pixels=True).AccessionNumber == retired)
    ds = pydicom.dcmread(path)
    ds.SeriesDescription = "CHANGED SERIES"
    ds.save_as(path)
    out = quire("ingest", str(archive), env=kept, cwd=tmp_path)
    assert "1 accessions cataloged" in out.stdout or "1 accession cataloged" in out.stdout, out.stdout
    with DagsterInstance.from_config(str(tmp_path / "dagster")) as instance:
        again = instance.get_dynamic_partitions(accession_partitions.name)
        assert len(again) == 2 and again[-1] == retired
    with open_catalog(kept_uri) as catalog:
        assert any("CHANGED SERIES" in json.dumps(d) for d in catalog.find("series", {"partition_key": retired}))


def _cataloged_archive(tmp_path, monkeypatch) -> tuple:
    """A sample archive cataloged by ``quire ingest`` (in memory): the archive, the catalog's URI
    and the accessions of the index, in their order."""
    from quire_assets.cli import ingest

    monkeypatch.setenv("QUIRE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    archive = tmp_path / "archive"
    write_sample_archive(archive, patients=3, slices=2)
    catalog_uri = f"sqlite:///{tmp_path / 'catalog.db'}"
    assert not ingest(str(archive), catalog_uri, workers=1, quiet=True)["failed_runs"]
    with SourceIndex(source_from_uri(str(archive)), tmp_path / "home") as index:
        return archive, catalog_uri, index.partition_keys()


def _new_accession(archive) -> None:
    study = StudyPlan(patient_index=9, accession="NEW-0042", date="2001-02-03", description="CT CHEST")
    study.series.append(SeriesPlan(7001, "NEW", "CT", 2, 1.0, 0.7))
    write_series(archive, study, study.series[0], 16, annotation=False)


def test_a_sensor_retires_old_cataloged_accessions_and_never_what_it_runs(tmp_path, monkeypatch):
    archive, catalog_uri, cataloged = _cataloged_archive(tmp_path, monkeypatch)

    resources = {"source": DicomSource(uri=str(archive), home=str(tmp_path / "home"), partitions_kept=1),
                 "catalog": CatalogResource(uri=catalog_uri)}
    (tmp_path / "dagster").mkdir()
    with DagsterInstance.local_temp(str(tmp_path / "dagster")) as instance:
        instance.add_dynamic_partitions(accession_partitions.name, cataloged)  # an instance that saw them all
        first = folder_arrival(build_sensor_context(instance=instance, resources=resources))
        # Nothing new on the first tick: it only reads the folder.
        assert not first.run_requests
        _new_accession(archive)
        second = folder_arrival(build_sensor_context(instance=instance, resources=resources, cursor=first.cursor))
        [run] = second.run_requests
        assert run.tags["dagster/asset_partition_range_start"] == "NEW-0042"
        add, delete = second.dynamic_partitions_requests
        assert list(add.partition_keys) == ["NEW-0042"]
        # Every cataloged accession but the newest is retired; the one the run needs is not.
        assert list(delete.partition_keys) == cataloged[:-1]


def test_a_researcher_request_registers_a_retired_accession_again(tmp_path, monkeypatch):
    archive = tmp_path / "archive"
    write_sample_archive(archive, patients=2, slices=2)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("QUIRE_", "DAGSTER_HOME"))},
           "QUIRE_HOME": str(tmp_path / "home"), "DAGSTER_HOME": str(tmp_path / "dagster"), "QUIRE_PARTITIONS_KEPT": "1",
           "QUIRE_SOURCE": str(archive)}
    quire("ingest", str(archive), env=env, cwd=tmp_path)
    with DagsterInstance.from_config(str(tmp_path / "dagster")) as instance:
        [kept] = instance.get_dynamic_partitions(accession_partitions.name)
    wanted = "LIDC0001A" if kept != "LIDC0001A" else "RAD/2019/0042"
    quire("researchers", "add", "alice", env=env, cwd=tmp_path)
    out = quire("jobs", "submit", "--researcher", "alice", "--accessions", wanted, "--wait", env=env, cwd=tmp_path)
    assert "done" in out.stdout + out.stderr
    with DagsterInstance.from_config(str(tmp_path / "dagster")) as instance:
        assert instance.get_dynamic_partitions(accession_partitions.name)[-1] == wanted


def test_the_source_index_asset_registers_what_is_pending_and_retires_the_rest(tmp_path, monkeypatch):
    from dagster import materialize

    from quire_assets.assets.catalog_assets import source_index
    archive, catalog_uri, cataloged = _cataloged_archive(tmp_path, monkeypatch)
    _new_accession(archive)

    resources = {"source": DicomSource(uri=str(archive), home=str(tmp_path / "home"), partitions_kept=2),
                 "catalog": CatalogResource(uri=catalog_uri)}
    (tmp_path / "dagster").mkdir()
    with DagsterInstance.local_temp(str(tmp_path / "dagster")) as instance:
        instance.add_dynamic_partitions(accession_partitions.name, cataloged)  # an instance that saw them all
        result = materialize([source_index], resources=resources, instance=instance)
        assert result.success
        # The new accession is registered; of the cataloged ones, the two newest are kept.
        assert list(instance.get_dynamic_partitions(accession_partitions.name)) == [*cataloged[-1:], "NEW-0042"]
        metadata = result.asset_materializations_for_node("source_index")[0].metadata
        assert metadata["new_partitions"].value == 1
        assert metadata["retired_partitions"].value == len(cataloged) - 1
