"""Researcher jobs, incremental re-reads, retries, bytes and the poll sensor, against the real PACS."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pydicom
import pytest
from dagster import DagsterInstance, build_sensor_context
from pydicom.uid import generate_uid

from quire_assets.catalog import open_catalog
from quire_assets.definitions import build_definitions
from quire_assets.orchestration import execute_run_requests
from quire_assets.partitions import accession_partitions
from quire_assets.resources import CatalogResource, DicomSource
from quire_assets.sensors import pacs_poll, researcher_requests
from quire_assets.settings import Settings
from tests.cli.test_ingest_e2e import quire
from tests.pacs.conftest import CALLED_AET, CALLING_AET, PASSWORD, USER
from tests.pacs.test_pacs_ingest import env_for


def accessions_of(pacs) -> dict[str, list[Path]]:
    out: dict[str, list[Path]] = {}
    for path in pacs.files.values():
        accession = str(pydicom.dcmread(path, stop_before_pixels=True).get("AccessionNumber") or "")
        if accession:
            out.setdefault(accession, []).append(path)
    return out


def copy_with_new_uids(source: Path, target: Path, study: bool) -> Path:
    """A new instance (new SOP UID; with ``study``, in a new study and series) keeping the accession."""
    ds = pydicom.dcmread(source)
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    if study:
        ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.save_as(target)
    return target


def instances_in(home: Path) -> list[dict]:
    with open_catalog(f"sqlite:///{home}/catalog.db") as catalog:
        return catalog.find("instances")


def test_job_by_accession_on_the_pacs(pacs, tmp_path):
    """`quire jobs submit --wait` with a PACS source: present accessions done (one of them matching
    two studies, both cataloged), an absent one not_found."""
    accessions = accessions_of(pacs)
    first, second = sorted(accessions)[:2]
    twin = pacs.load(copy_with_new_uids(accessions[first][0], tmp_path / "twin.dcm", study=True))
    try:
        home = tmp_path / "home"
        env = env_for(home, QUIRE_PACS_USER=USER, QUIRE_PACS_PASSWORD=PASSWORD)
        proc = quire("jobs", "submit", "--researcher", "alice", "--source", pacs.dicomweb, "--accessions",
                     f"{first},{second},NOT-ON-THE-PACS", "--wait", "--format", "json", env=env, cwd=tmp_path)
        job = json.loads(proc.stdout)
        status = {a: s["status"] for a, s in job["accessions"].items()}
        assert status == {first: "ambiguous", second: "done", "NOT-ON-THE-PACS": "not_found"}
        assert "has no study with this accession number" in job["accessions"]["NOT-ON-THE-PACS"]["detail"]
        assert "2 studies carry this accession number" in job["accessions"][first]["detail"]
        cataloged = instances_in(home)
        assert {d["accession_number"] for d in cataloged} == {first, second}
        with open_catalog(f"sqlite:///{home}/catalog.db") as catalog:
            studies = catalog.find("studies", {"accession_number": first})
        assert len(studies) == 2  # the accession matches two studies: both are there, and listed
        assert job["accessions"][first]["studies"] == sorted(s["study_instance_uid"] for s in studies)
        assert len(cataloged) == len(accessions[first]) + 1 + len(accessions[second])
    finally:
        pacs.delete(twin)


def test_a_retry_asks_the_pacs_for_its_corrected_rows_only(pacs, counting_proxy, tmp_path):
    """Rows resubmitted with `quire jobs retry --fix`: the corrected accession is asked of the PACS, a
    row asked moments ago is answered from the index (the PACS's look-ups are cached)."""
    third, fourth = sorted(accessions_of(pacs))[2:4]
    env = env_for(tmp_path / "home", QUIRE_PACS_USER=USER, QUIRE_PACS_PASSWORD=PASSWORD)
    submit = quire("jobs", "submit", "--researcher", "alice", "--source", counting_proxy.url(), "--accessions",
                   f"{third},MISSING-1,MISSING-2", "--wait", "--format", "json", env=env, cwd=tmp_path)
    job = json.loads(submit.stdout)
    assert {a: s["status"] for a, s in job["accessions"].items()} == {
        third: "done", "MISSING-1": "not_found", "MISSING-2": "not_found"}
    assert any("MISSING-2" in q for q in counting_proxy.queries)
    counting_proxy.reset()
    retried = json.loads(quire("jobs", "retry", job["job_id"], "--fix", f"MISSING-1={fourth}", "--wait",
                               "--format", "json", env=env, cwd=tmp_path).stdout)
    assert {a: s["status"] for a, s in retried["accessions"].items()} == {fourth: "done", "MISSING-2": "not_found"}
    assert retried["retry_of"] == job["job_id"] and retried["collection_id"] == job["collection_id"]
    assert any(f"AccessionNumber={fourth}" in q for q in counting_proxy.queries)
    assert not any("MISSING" in q for q in counting_proxy.queries), counting_proxy.queries


def test_researcher_requests_sensor_on_a_dimse_pacs(pacs, tmp_path):
    accession = sorted(accessions_of(pacs))[-1]
    catalog_uri = f"sqlite:///{tmp_path / 'catalog.db'}"
    from quire_assets.research.requests import submit_request

    with open_catalog(catalog_uri) as catalog:
        job = submit_request(catalog, "bob", [accession, "ABSENT-1"], name="dimse")
    source = DicomSource(uri=f"dimse://{CALLED_AET}@127.0.0.1:{pacs.dicom_port}?calling={CALLING_AET}")
    resources = {"source": source, "catalog": CatalogResource(uri=catalog_uri)}
    (tmp_path / "dagster").mkdir()
    with DagsterInstance.local_temp(str(tmp_path / "dagster")) as instance:
        result = researcher_requests(build_sensor_context(instance=instance, resources=resources))
        [add] = result.dynamic_partitions_requests
        assert list(add.partition_keys) == [accession]
        instance.add_dynamic_partitions(accession_partitions.name, list(add.partition_keys))
        defs = build_definitions(Settings.from_environ(), pacs.dimse(), catalog_uri)
        assert all(r.success for r in execute_run_requests(defs, instance, result.run_requests))
    with open_catalog(catalog_uri) as catalog:
        assert catalog.get("jobs", job["job_id"])["accessions"]["ABSENT-1"]["status"] == "not_found"
        assert {d["accession_number"] for d in catalog.find("instances")} == {accession}
        assert catalog.count("instances") == len(accessions_of(pacs)[accession])


def test_a_second_run_asks_only_for_what_changed(pacs, counting_proxy, tmp_path):
    accessions = accessions_of(pacs)
    accession = sorted(accessions)[0]
    env = env_for(tmp_path / "home", QUIRE_PACS_USER=USER, QUIRE_PACS_PASSWORD=PASSWORD)
    quire("ingest", counting_proxy.url(), "--accessions", accession, env=env, cwd=tmp_path)
    assert any(p.endswith("/metadata") for p in counting_proxy.requests)

    counting_proxy.reset()
    quire("ingest", counting_proxy.url(), "--accessions", accession, env=env, cwd=tmp_path)
    assert counting_proxy.requests == ["/dicom-web/studies"]  # the counts match: nothing else is asked

    added = pacs.load(copy_with_new_uids(accessions[accession][0], tmp_path / "new.dcm", study=False))
    try:
        counting_proxy.reset()
        proc = quire("ingest", counting_proxy.url(), "--accessions", accession, env=env, cwd=tmp_path)
        metadata = [p for p in counting_proxy.requests if p.endswith("/metadata")]
        series_uid = pydicom.dcmread(accessions[accession][0], stop_before_pixels=True).SeriesInstanceUID
        assert metadata == [f"/dicom-web/studies/{pydicom.dcmread(accessions[accession][0]).StudyInstanceUID}"
                            f"/series/{series_uid}/metadata"]
        assert "1 files read" in proc.stdout
        assert len(instances_in(tmp_path / "home")) == len(accessions[accession]) + 1
    finally:
        pacs.delete(added)


def test_503_twice_then_success_is_retried(pacs, counting_proxy, tmp_path):
    accession = sorted(accessions_of(pacs))[0]
    counting_proxy.reset(fail_first=2)
    env = env_for(tmp_path / "home", QUIRE_PACS_USER=USER, QUIRE_PACS_PASSWORD=PASSWORD)
    quire("ingest", counting_proxy.url(), "--accessions", accession, env=env, cwd=tmp_path)
    assert counting_proxy.failed == 2
    assert len(instances_in(tmp_path / "home")) == len(accessions_of(pacs)[accession])


def test_dicomweb_reads_a_small_fraction_of_each_instance(pacs, counting_proxy, tmp_path):
    """Every byte the source receives, QIDO included, counted at the proxy, against the size of the
    instances it cataloged (the sample archive's 256×256 images, about 130 KB each; DICOM JSON
    takes about 6 KB an instance, QIDO 3 KB)."""
    env = env_for(tmp_path / "home", QUIRE_PACS_USER=USER, QUIRE_PACS_PASSWORD=PASSWORD)
    quire("ingest", counting_proxy.url(), "--modality", "CT", env=env, cwd=tmp_path)
    cataloged = instances_in(tmp_path / "home")
    with open_catalog(f"sqlite:///{tmp_path / 'home'}/catalog.db") as catalog:
        assert {d["modality"] for d in catalog.find("series")} == {"CT"}
    instance_bytes = sum(pacs.files[d["sop_instance_uid"]].stat().st_size for d in cataloged)
    received = sum(counting_proxy.bytes.values())

    assert received / instance_bytes < 0.10, (received, instance_bytes)
    # Nothing but QIDO and metadata: no instance, frame, rendered or bulk-data retrieval.
    assert all(re.fullmatch(r"/dicom-web/studies(/[\d.]+/series(/[\d.]+/(instances|metadata))?)?", p)
               for p in counting_proxy.requests), counting_proxy.requests


def test_pacs_poll_requests_studies_since_its_cursor(pacs, tmp_path):
    resource = DicomSource(uri=f"dicomweb+{pacs.url}/dicom-web", username=USER, password=PASSWORD)
    resources = {"source": resource, "catalog": CatalogResource(uri=f"sqlite:///{tmp_path / 'catalog.db'}")}
    (tmp_path / "dagster").mkdir()
    with DagsterInstance.local_temp(str(tmp_path / "dagster")) as instance:
        first = pacs_poll(build_sensor_context(instance=instance, resources=resources,
                                               cursor=json.dumps({"since": "19000101"})))
        [add] = first.dynamic_partitions_requests
        assert set(accessions_of(pacs)) <= set(add.partition_keys)
        assert first.run_requests
        instance.add_dynamic_partitions(accession_partitions.name, list(add.partition_keys))
        # The next poll asks from today on: nothing dated today on this PACS.
        again = pacs_poll(build_sensor_context(instance=instance, resources=resources, cursor=first.cursor))
        assert not again.run_requests and "no new or changed studies since" in again.skip_reason.skip_message


def test_pacs_poll_skips_a_folder_source(tmp_path):
    resources = {"source": DicomSource(uri=str(tmp_path)),
                 "catalog": CatalogResource(uri=f"sqlite:///{tmp_path / 'catalog.db'}")}
    with DagsterInstance.ephemeral() as instance:
        result = pacs_poll(build_sensor_context(instance=instance, resources=resources))
    assert "is not a PACS" in result.skip_message


@pytest.mark.parametrize("kind", ["dicomweb", "dimse"])
def test_definitions_for_a_pacs_keep_credentials_in_the_environment(pacs, monkeypatch, kind):
    monkeypatch.setenv("QUIRE_PACS_USER", USER)
    monkeypatch.setenv("QUIRE_PACS_PASSWORD", PASSWORD)
    monkeypatch.setenv("QUIRE_SOURCE", pacs.dicomweb if kind == "dicomweb" else pacs.dimse())
    defs = build_definitions(Settings.from_environ())
    source = defs.resources["source"]
    # The URI and the credentials are EnvVars, resolved at run time: not in the definitions.
    assert PASSWORD not in repr(source.__dict__) and pacs.url not in repr(source.__dict__)
    resolved = source.process_config_and_initialize()  # as a run resolves it
    assert resolved.files().uri == (pacs.dicomweb if kind == "dicomweb" else pacs.dimse())
    assert (resolved.username, resolved.password) == (USER, PASSWORD)
    defs.resolve_job_def("ingest_job")
