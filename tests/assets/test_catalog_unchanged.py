"""The catalog a Dagster ingest writes (runs over partition ranges, accessions written in groups,
batched events, one Parquet file per run) holds exactly what cataloging each accession on its own
from the core's records holds: same documents, same errors, on SQLite and on mongomock."""

from __future__ import annotations

import json
import shutil

import mongomock_ng
import pytest

from quire_assets.assets import catalog_assets
from quire_assets.catalog import COLLECTIONS, open_catalog
from quire_assets.catalog.mongo import MongoCatalog
from quire_assets.dicom import rollup
from quire_assets.dicom.features import load_feature_sets
from quire_assets.settings import home_of
from quire_assets.sources import SourceIndex, source_from_uri
from tests.conftest import PYDICOM_TEST_FILES


class _SharedClient(mongomock_ng.MongoClient):
    """One in-memory server for every catalog the runs open (each closes its client when done)."""

    def close(self) -> None:
        pass


def _dump(catalog) -> dict:
    return {c: sorted(catalog.find(c), key=lambda d: json.dumps(d, sort_keys=True, default=str)) for c in COLLECTIONS}


def _reference(archive, catalog) -> None:
    """One accession at a time, straight from the source index's records: the per-partition
    write the pipeline did before it grouped accessions."""
    features = load_feature_sets()
    with SourceIndex(source_from_uri(str(archive)), home_of()) as index:
        for key in index.partition_keys():
            files = index.files([key])
            records = index.records([f["uri"] for f in files])
            ok = [r for r in records if "reason" not in r]
            series = rollup.series_documents(ok, features)
            catalog.replace_partitions([key], rollup.instance_documents(ok, features), series,
                                       rollup.study_documents(ok, series, features),
                                       [r for r in records if "reason" in r], source=index.source.uri)


@pytest.mark.parametrize("backend", ["sqlite", "mongomock"])
def test_ingest_writes_what_one_accession_at_a_time_writes(backend, sample_archive, tmp_path, monkeypatch):
    from quire_assets.cli import ingest

    archive = tmp_path / "archive"
    shutil.copytree(sample_archive, archive)
    shutil.copytree(PYDICOM_TEST_FILES, archive / "pydicom")
    monkeypatch.setattr(catalog_assets, "WRITE_GROUP_RECORDS", 20)  # several groups per run
    if backend == "mongomock":
        client = _SharedClient()
        monkeypatch.setattr(MongoCatalog, "from_uri", classmethod(lambda cls, uri: cls(client, uri.rsplit("/", 1)[1])))
        pipeline_uri, reference = "mongodb://127.0.0.1/pipeline", MongoCatalog(client, "reference")
    else:
        pipeline_uri, reference = f"sqlite:///{tmp_path / 'pipeline.db'}", open_catalog(f"sqlite:///{tmp_path / 'ref.db'}")
    # One worker: the runs execute in this process (mongomock lives in its memory), in ranges of 4.
    report = ingest(str(archive), pipeline_uri, workers=1, batch=4, quiet=True)
    assert not report["failed_runs"] and report["runs"] >= 3
    _reference(archive, reference)
    with open_catalog(pipeline_uri) as pipeline:
        written, expected = _dump(pipeline), _dump(reference)
    assert len(written["instances"]) > 140 and len(written["errors"]) > 20
    assert written == expected
