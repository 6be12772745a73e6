"""Two sources that share some files and not others, ingested into one catalog in every order:
an instance is one document listing every source's files, a re-ingest adds and removes only its
own source's part, and counts are over every source (on SQLite and on mongomock)."""

from __future__ import annotations

import os
import shutil
from collections import defaultdict
from pathlib import Path

import mongomock_ng
import pytest

from quire_assets.catalog import open_catalog
from quire_assets.catalog.mongo import MongoCatalog
from quire_assets.settings import home_of
from quire_assets.sources import SourceIndex, source_from_uri
from tests.cli.test_ingest_e2e import quire
from tests.conftest import PYDICOM_TEST_FILES


class _SharedClient(mongomock_ng.MongoClient):
    def close(self) -> None:  # one in-memory server for every catalog the runs open
        pass


def _files_by_sop(folders: list[Path]) -> dict[str, set[str]]:
    """SOP Instance UID → every readable file that holds it, from the source indexes (not the catalog)."""
    out: dict[str, set[str]] = defaultdict(set)
    for folder in folders:
        with SourceIndex(source_from_uri(str(folder)), home_of()) as index:
            for row in index.files(index.partition_keys()):
                if row["reason"] is None:
                    out[row["sop_instance_uid"]].add(row["uri"])
    return dict(out)


def _sources(tmp_path: Path, sample_archive: Path) -> tuple[Path, Path]:
    """``a``: the sample archive. ``b``: a copy without patient 0002 and without half of one CT
    series of patient 0001, plus two files of its own."""
    a, b = tmp_path / "a", tmp_path / "b"
    shutil.copytree(sample_archive, a)
    shutil.copytree(sample_archive, b)
    shutil.rmtree(b / "LIDC-IDRI" / "LIDC-IDRI-0002")
    series = sorted(p for p in (b / "LIDC-IDRI" / "LIDC-IDRI-0001").rglob("*.dcm"))
    for path in series[: len(series) // 2]:
        path.unlink()
    for name in ("CT_small.dcm", "MR_small.dcm"):
        shutil.copy(PYDICOM_TEST_FILES / name, b / name)
    return a, b


def _check(catalog, folders: list[Path]) -> None:
    expected = _files_by_sop(folders)
    instances = {d["sop_instance_uid"]: d for d in catalog.find("instances")}
    assert set(instances) == set(expected)
    for sop, doc in instances.items():
        assert set(doc["uris"]) == expected[sop], sop
        assert {loc["uri"] for loc in doc["locations"]} == expected[sop]
        holders = {str(f) for f in folders if any(u.startswith(str(f) + "/") for u in expected[sop])}
        assert set(doc["sources"]) == holders
        assert "conflicts" not in doc  # the copies are the same files
    for series in catalog.find("series"):
        members = [d for d in instances.values() if d["series_instance_uid"] == series["series_instance_uid"]]
        assert series["num_instances"] == len(members) and series["num_frames"] == len(members)
    for study in catalog.find("studies"):
        series = catalog.find("series", {"study_instance_uid": study["study_instance_uid"]})
        assert study["num_series"] == len(series)
        assert study["num_instances"] == sum(1 for d in instances.values()
                                             if d["study_instance_uid"] == study["study_instance_uid"])
    for patient in catalog.find("patients"):
        assert patient["num_instances"] == sum(s["num_instances"] for s in catalog.find(
            "studies", {"patient_id": patient["patient_id"]}))


ORDERS = [("a", "b"), ("b", "a"), ("a", "b", "a"), ("b", "a", "b", "a")]


@pytest.mark.parametrize("backend", ["sqlite", "mongomock"])
@pytest.mark.parametrize("order", ORDERS, ids="-".join)
def test_sources_that_share_files_are_one_catalog_in_any_order(backend, order, sample_archive, tmp_path, monkeypatch):
    from quire_assets.cli import ingest

    a, b = _sources(tmp_path, sample_archive)
    folders = {"a": a, "b": b}
    if backend == "mongomock":
        client = _SharedClient()
        monkeypatch.setattr(MongoCatalog, "from_uri", classmethod(lambda cls, uri: cls(client, uri.rsplit("/", 1)[1])))
        uri = "mongodb://127.0.0.1/catalog"
    else:
        uri = f"sqlite:///{tmp_path / 'catalog.db'}"
    for name in order:
        report = ingest(str(folders[name]), uri, workers=1, quiet=True)
        assert not report["failed_runs"] and not report["mismatch"], report["mismatch"]
    with open_catalog(uri) as catalog:
        _check(catalog, sorted({folders[n] for n in order}))

    # A file both hold, deleted from a only; then a file only a holds.
    shared = next(p for p in sorted(a.rglob("*.dcm")) if (b / p.relative_to(a)).exists())
    only_a = next(iter(sorted((a / "LIDC-IDRI" / "LIDC-IDRI-0002").rglob("*.dcm"))))
    for gone in (shared, only_a):
        gone.unlink()
        report = ingest(str(a), uri, workers=1, quiet=True)
        assert not report["mismatch"], report["mismatch"]
        with open_catalog(uri) as catalog:
            _check(catalog, sorted({folders[n] for n in order}))
    # b leaves no trace of itself in what a holds alone once b's files are gone.
    for path in b.rglob("*"):
        if path.is_file():
            path.unlink()
    ingest(str(b), uri, workers=1, quiet=True)
    with open_catalog(uri) as catalog:
        assert catalog.count("instances", {"sources": str(b)}) == 0
        _check(catalog, [a])


def test_the_readme_path_with_two_copies_of_the_sample_archive(tmp_path):
    """``sample-archive`` twice, then ``ingest`` a, b, a: every closing line says the same
    figures, and no note asks to ingest again."""
    env = {**os.environ, "QUIRE_HOME": str(tmp_path / "home"), "DAGSTER_HOME": str(tmp_path / "dagster")}
    env.pop("QUIRE_CATALOG", None)
    for name in ("a", "b"):
        quire("sample-archive", str(tmp_path / name), env=env, cwd=tmp_path)
    lines = []
    for name in ("a", "b", "a"):
        done = quire("ingest", str(tmp_path / name), env=env, cwd=tmp_path)
        assert "note:" not in done.stderr, done.stderr
        lines.append(done.stdout.strip().split(", ")[1:5])
    assert lines[0] == lines[1] == lines[2]
    assert lines[2][0] != "0 instances"


def test_copies_that_differ_are_said_on_the_instance_its_series_and_a_check(sample_archive, tmp_path):
    """One SOP Instance UID in files whose contents differ (a re-export with other frames and bit
    depth): one instance, every file a location, ``conflicts`` naming what differs, the series
    counting it, and the ingest run's ``copies_agree`` check failing with it as an example."""
    import pydicom

    from quire_assets.cli import ingest
    from quire_assets.orchestration import run_partitions
    from tests.assets.test_catalog_checks import _evaluations
    from tests.assets.test_materialize import indexed

    a, b = _sources(tmp_path, sample_archive)
    original = sorted((a / "LIDC-IDRI" / "LIDC-IDRI-0003").rglob("*.dcm"))[0]
    ds = pydicom.dcmread(b / original.relative_to(a))
    ds.NumberOfFrames, ds.BitsStored = 3, 16
    ds.save_as(b / original.relative_to(a))
    twin = a / "twin.dcm"  # and a copy in the same source, the same as the original
    shutil.copy(original, twin)
    uri = f"sqlite:///{tmp_path / 'catalog.db'}"
    assert not ingest(str(a), uri, workers=1, quiet=True)["mismatch"]
    # b through Dagster's own run machinery, to read the check its run evaluates
    instance, _, keys, defs = indexed(b, tmp_path)
    [run_id] = run_partitions(defs, instance, keys, batch=len(keys)).run_ids
    verdict = _evaluations(instance, run_id)["copies_agree"]
    assert not verdict.passed and verdict.metadata["conflicting_instances"].value == 1
    assert verdict.metadata["examples"].value[0]["sop_instance_uid"] == ds.SOPInstanceUID
    with open_catalog(uri) as catalog:
        [doc] = catalog.find("instances", {"conflicts": {"$exists": True}})
        assert doc["sop_instance_uid"] == ds.SOPInstanceUID
        assert doc["conflicts"] == {"BitsStored": [12, 16], "NumberOfFrames": [1, 3]}
        by_uri = {loc["uri"]: loc["recorded"] for loc in doc["locations"]}
        assert set(by_uri) == {str(original), str(twin), str(b / original.relative_to(a))}
        assert by_uri[str(b / original.relative_to(a))]["NumberOfFrames"] == 3
        assert by_uri[str(original)] == by_uri[str(twin)]
        [series] = catalog.find("series", {"series_instance_uid": doc["series_instance_uid"]})
        assert series["conflicting_instances"] == 1


def test_a_catalog_that_lost_documents_converges_in_the_same_ingest(tmp_path):
    """Documents removed behind Quire's back (a restore from an older backup): the next ingest finds
    the accessions that differ from what their files make, writes them again, and says nothing."""
    env = {**os.environ, "QUIRE_HOME": str(tmp_path / "home"), "DAGSTER_HOME": str(tmp_path / "dagster")}
    env.pop("QUIRE_CATALOG", None)
    quire("sample-archive", str(tmp_path / "a"), env=env, cwd=tmp_path)
    first = quire("ingest", str(tmp_path / "a"), env=env, cwd=tmp_path).stdout
    with open_catalog(f"sqlite:///{tmp_path / 'home' / 'catalog.db'}") as catalog:
        catalog.delete("instances", {"accession_number": "LIDC0001A"})
        catalog.delete("errors", {"reason": {"$exists": True}})
    again = quire("ingest", str(tmp_path / "a"), env=env, cwd=tmp_path)
    assert "note:" not in again.stderr, again.stderr
    assert again.stdout.split(", ")[:5] == first.split(", ")[:5]
    assert "(0 files read, 2 accessions cataloged in 2 run(s); 2 written again: the catalog had lost their " \
        "documents)" in again.stdout
