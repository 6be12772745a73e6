"""The S3 source against a real S3-protocol server (moto server mode on 127.0.0.1, over HTTP)."""

from __future__ import annotations

import json
import os
import uuid

from dagster import DagsterInstance, build_sensor_context

from quire_assets.catalog import COLLECTIONS, open_catalog
from quire_assets.dicom.features import load_feature_sets
from quire_assets.dicom.records import extract, extract_file
from quire_assets.dicom.sample import SeriesPlan, StudyPlan, write_sample_archive, write_series
from quire_assets.partitions import accession_partitions
from quire_assets.resources import CatalogResource, DicomSource
from quire_assets.sensors import s3_arrival
from quire_assets.settings import home_of
from quire_assets.sources import SourceIndex
from quire_assets.sources.s3 import S3Files
from tests.cli.test_ingest_e2e import quire
from tests.conftest import PYDICOM_TEST_FILES
from tests.s3.conftest import upload_tree


def bucket(s3) -> str:
    name = f"quire-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=name)
    return name


def test_listing_paginates_past_1000_keys(s3, proxy, tmp_path, monkeypatch):
    name = bucket(s3)
    for i in range(1005):
        s3.put_object(Bucket=name, Key=f"many/{i:05d}.dcm", Body=b"not a dicom file at all")
    s3.put_object(Bucket=name, Key="elsewhere/x.dcm", Body=b"outside the prefix")
    files = S3Files(name, "many/")
    entries = list(files.list())
    assert len(entries) == 1005 and entries[0].uri == f"s3://{name}/many/00000.dcm"
    monkeypatch.setenv("QUIRE_HOME", str(tmp_path))
    index = SourceIndex(files, home_of())
    result = index.refresh(load_feature_sets(), workers=2)
    assert result.listed == result.read == 1005
    assert index.summary()["errors"] == 1005  # every object accounted for, as not_dicom


def test_header_longer_than_the_first_range(s3, proxy):
    name = bucket(s3)
    data = (PYDICOM_TEST_FILES / "CT_small.dcm").read_bytes()
    s3.put_object(Bucket=name, Key="ct.dcm", Body=data)
    files = S3Files(name)
    [entry] = list(files.list())
    features = load_feature_sets()
    record = extract(entry.uri, entry.size, files.fetcher(entry), features, first_bytes=1024)
    local = extract_file(PYDICOM_TEST_FILES / "CT_small.dcm", features)
    assert {**record, "uri": None} == {**local, "uri": None}
    assert proxy.gets_by_key["ct.dcm"] >= 2  # a first range, then a longer one
    assert proxy.bytes_by_key["ct.dcm"] < 3 * len(data)


def _canonical(uri: str, tmp_root: str, name: str) -> dict:
    dump = {}
    with open_catalog(uri) as catalog:
        for collection in COLLECTIONS:
            docs = json.loads(json.dumps(catalog.find(collection)).replace(f"s3://{name}/lidc/", "ROOT/")
                              .replace(tmp_root + "/", "ROOT/"))
            for doc in docs:
                doc.get("uris", []).sort()
                # The one expected difference: which archive a document came from.
                sources = doc.pop("sources", None)
                assert sources in ([f"s3://{name}/lidc"], [tmp_root]) or collection == "patients", sources
                for location in doc.get("locations", []):
                    assert location.pop("source") == sources[0]
            dump[collection] = sorted(docs, key=lambda d: json.dumps(d, sort_keys=True))
    return dump


def test_s3_ingest_equals_folder_ingest_and_reads_headers_only(s3, proxy, tmp_path, aws_env):
    name = bucket(s3)
    archive = tmp_path / "archive"
    write_sample_archive(archive, patients=3, slices=3)
    full = StudyPlan(patient_index=8, accession="FULL-512", date="2002-03-04", description="CT CHEST")
    full.series.append(SeriesPlan(9001, "FULL", "CT", 4, 1.25, 0.7))
    write_series(archive, full, full.series[0], 512)  # four real-size 512 KiB slices
    uploaded = upload_tree(s3, name, archive, "lidc/")
    env = {**os.environ, **aws_env, "QUIRE_HOME": str(tmp_path / "home_s3")}
    out = quire("ingest", f"s3://{name}/lidc", env=env, cwd=tmp_path)
    assert f"{len(uploaded):,} files" in out.stdout
    env_local = {**os.environ, "QUIRE_HOME": str(tmp_path / "home_local")}
    quire("ingest", str(archive), env=env_local, cwd=tmp_path)
    from_s3 = _canonical(f"sqlite:///{tmp_path / 'home_s3' / 'catalog.db'}", str(archive), name)
    from_folder = _canonical(f"sqlite:///{tmp_path / 'home_local' / 'catalog.db'}", str(archive), name)
    assert from_s3 == from_folder
    assert len(from_s3["instances"]) == sum(1 for k in uploaded if k.endswith(".dcm"))
    # Header-only: a 512 KiB slice costs one 64 KiB range, not the object.
    big = [k for k, p in uploaded.items() if p.stat().st_size > 500_000]
    assert len(big) == 4
    for key in big:
        assert proxy.bytes_by_key[key] <= 64 * 1024 < uploaded[key].stat().st_size / 8


def test_faults_are_retried_and_nothing_is_lost(s3, proxy, tmp_path, aws_env):
    name = bucket(s3)
    archive = tmp_path / "archive"
    write_sample_archive(archive, patients=3, slices=4)
    uploaded = upload_tree(s3, name, archive, "lidc/")
    proxy.reset(slow_down_every=4, drop_every=7, cut_every=5)
    env = {**os.environ, **aws_env, "QUIRE_HOME": str(tmp_path / "home")}
    out = quire("ingest", f"s3://{name}/lidc", env=env, cwd=tmp_path)
    assert proxy.injected["slow_down"] and proxy.injected["drop"] and proxy.injected["cut"]
    with open_catalog(f"sqlite:///{tmp_path / 'home' / 'catalog.db'}") as catalog:
        errors = catalog.find("errors")
        assert {e["reason"] for e in errors} == {"skipped"}  # only the .xml and .csv files
        located = {u for d in catalog.find("instances") for u in d["uris"]}
        assert located | {e["uri"] for e in errors} == {f"s3://{name}/{k}" for k in uploaded}
    assert f"{len(uploaded):,} files" in out.stdout


def test_missing_bucket_and_bad_credentials_fail_clearly(s3, proxy, tmp_path, aws_env):
    env = {**os.environ, **aws_env, "QUIRE_HOME": str(tmp_path / "home")}
    out = quire("ingest", "s3://no-such-bucket-here/x", env=env, cwd=tmp_path, check=False)
    assert out.returncode == 2
    assert out.stderr.strip() == "error: s3://no-such-bucket-here: the bucket does not exist"
    # Nothing was written: the catalog made for this ingest is gone again (no empty catalog to misread).
    assert not (tmp_path / "home" / "catalog.db").exists()
    name = bucket(s3)
    proxy.reset(deny=True)
    out = quire("ingest", f"s3://{name}/", env=env, cwd=tmp_path, check=False)
    assert out.returncode == 2
    assert "the AWS access key id is not valid" in out.stderr and name in out.stderr
    assert "Traceback" not in out.stderr and "testing" not in out.stderr


def test_s3_arrival_sensor_across_ticks(s3, proxy, tmp_path, monkeypatch):
    monkeypatch.setenv("QUIRE_HOME", str(tmp_path / "home"))
    name = bucket(s3)
    archive = tmp_path / "archive"
    write_sample_archive(archive, patients=2, slices=2)
    upload_tree(s3, name, archive, "m/")
    resources = {"source": DicomSource(uri=f"s3://{name}/m/"),
                 "catalog": CatalogResource(uri=f"sqlite:///{tmp_path / 'catalog.db'}")}
    (tmp_path / "dagster").mkdir()
    with DagsterInstance.local_temp(str(tmp_path / "dagster")) as instance:
        def tick(cursor):
            with build_sensor_context(instance=instance, resources=resources, cursor=cursor) as context:
                result = s3_arrival(context)
            for request in result.dynamic_partitions_requests or []:
                instance.add_dynamic_partitions(accession_partitions.name, list(request.partition_keys))
            return result

        first = tick(None)
        assert first.run_requests
        # New objects, one under a key that sorts before every earlier key.
        late = tmp_path / "late"
        study = StudyPlan(patient_index=7, accession="EARLY-KEY", date="2003-01-01", description="CT")
        study.series.append(SeriesPlan(7100, "S", "CT", 2, 2.0, 0.7))
        write_series(late, study, study.series[0], 16, annotation=False)
        upload_tree(s3, name, late, "m/0000-first/")
        second = tick(first.cursor)
        assert [r.tags["dagster/asset_partition_range_start"] for r in second.run_requests] == ["EARLY-KEY"]
        assert [list(r.partition_keys) for r in second.dynamic_partitions_requests] == [["EARLY-KEY"]]
        third = tick(second.cursor)
        assert not third.run_requests and third.skip_reason
