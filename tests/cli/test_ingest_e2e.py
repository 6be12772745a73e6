"""End to end through the real ``quire`` command: the sample archive, every file pydicom ships,
and broken files, ingested in a subprocess with its own QUIRE_HOME and DAGSTER_HOME."""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pydicom
import pytest

from quire_assets.catalog import COLLECTIONS, open_catalog
from quire_assets.dicom.sample import write_sample_archive
from quire_assets.settings import Settings
from tests.conftest import PYDICOM_TEST_FILES

QUIRE = str(Path(sys.executable).with_name("quire"))


def quire(*args: str, env: dict, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([QUIRE, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=600)
    if check:
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def ingested_home(archive: Path, tmp_path_factory) -> tuple[dict, Path]:
    """A new QUIRE_HOME with the archive ingested into its default catalog: (environment, home)."""
    home = tmp_path_factory.mktemp("home")
    env = {**os.environ, "QUIRE_HOME": str(home)}
    env.pop("QUIRE_CATALOG", None)
    quire("ingest", str(archive), env=env, cwd=home)
    return env, home


def _restamp(source: Path, target: Path, **values: str) -> None:
    ds = pydicom.dcmread(source)
    for key, value in values.items():
        setattr(ds, key, value)
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    target.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(target)


def build_archive(root: Path) -> dict[str, str]:
    """The archive, and the reason expected for each broken file."""
    write_sample_archive(root / "sample")
    shutil.copytree(PYDICOM_TEST_FILES, root / "pydicom")
    slices = sorted((root / "sample").rglob("1-00*.dcm"))
    broken = root / "broken"
    broken.mkdir()
    (broken / "empty.dcm").write_bytes(b"")
    (broken / "notes.dcm").write_text("Reading notes for case 12: see the annotation file.\n" * 10)
    data = slices[0].read_bytes()
    (broken / "truncated.dcm").write_bytes(data[: len(data) // 2])
    (broken / "slice.dcm.gz").write_bytes(gzip.compress(data))
    (broken / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1" + b"\x00" * 64)
    ds = pydicom.dcmread(slices[1])
    del ds.SOPInstanceUID
    ds.save_as(broken / "no_sop.dcm")
    # An exact copy of a slice in another folder: one instance, two locations.
    (root / "copies").mkdir()
    shutil.copy(slices[2], root / "copies" / "copy-of-slice.dcm")
    # An accession number that looks like a path.
    _restamp(slices[3], root / "odd" / "dotdot.dcm", AccessionNumber="../x",
             StudyInstanceUID="1.2.826.0.1.3680043.8.498.77.1", SeriesInstanceUID="1.2.826.0.1.3680043.8.498.77.2",
             SOPInstanceUID="1.2.826.0.1.3680043.8.498.77.3")
    return {
        str(broken / "empty.dcm"): "empty",
        str(broken / "notes.dcm"): "not_dicom",
        str(broken / "truncated.dcm"): "truncated",
        str(broken / "slice.dcm.gz"): "compressed_container",
        str(broken / ".DS_Store"): "skipped",
        str(broken / "no_sop.dcm"): "missing_uid",
    }


def snapshot(root: Path, skip: tuple[Path, ...]) -> dict[str, int]:
    out = {}
    for path in root.rglob("*"):
        if any(path == s or s in path.parents for s in skip):
            continue
        out[str(path)] = path.stat().st_size if path.is_file() else -1
    return out


def dump(uri: str) -> dict[str, list[dict]]:
    with open_catalog(uri) as catalog:
        return {c: catalog.find(c) for c in COLLECTIONS}


@pytest.fixture(scope="module")
def ingested(tmp_path_factory):
    base = tmp_path_factory.mktemp("e2e")
    archive = base / "archive"
    expected_errors = build_archive(archive)
    home, dagster_home, cwd = base / "quire_home", base / "dagster_home", base / "cwd"
    cwd.mkdir()
    env = {**os.environ, "QUIRE_HOME": str(home), "DAGSTER_HOME": str(dagster_home)}
    env.pop("QUIRE_CATALOG", None)
    before = snapshot(base, (home, dagster_home))
    first = quire("ingest", str(archive), env=env, cwd=cwd)
    after = snapshot(base, (home, dagster_home))
    uri = f"sqlite:///{home / 'catalog.db'}"
    return {"archive": archive, "errors": expected_errors, "env": env, "cwd": cwd, "uri": uri, "first": first,
            "before": before, "after": after, "base": base}


def test_every_file_is_accounted_for(ingested):
    files = {str(p) for p in ingested["archive"].rglob("*") if p.is_file()}
    catalog = dump(ingested["uri"])
    located = {u for d in catalog["instances"] for u in d["uris"]}
    errors = {d["uri"]: d for d in catalog["errors"]}
    assert located | set(errors) == files
    assert not located & set(errors)
    for path, reason in ingested["errors"].items():
        assert errors[path]["reason"] == reason, errors[path]
        assert errors[path]["detail"]
    summary = ingested["first"].stdout.strip().splitlines()[-1]
    skipped = [e for e in errors.values() if e["reason"] == "skipped"]
    assert skipped and len(skipped) < len(errors)
    assert f"{len(files):,} files" in summary and f"{len(errors) - len(skipped):,} errors, {len(skipped):,} skipped" \
        in summary


def test_instances_unique_with_every_location(ingested):
    catalog = dump(ingested["uri"])
    sops = [d["sop_instance_uid"] for d in catalog["instances"]]
    assert len(sops) == len(set(sops))
    copy = str(ingested["archive"] / "copies" / "copy-of-slice.dcm")
    holder = [d for d in catalog["instances"] if copy in d["uris"]]
    assert len(holder) == 1 and len(holder[0]["uris"]) == 2


def test_counts_and_values_match_pydicom(ingested):
    catalog = dump(ingested["uri"])
    error_uris = {d["uri"] for d in catalog["errors"]}
    series_sops, study_series, patients, modality = defaultdict(set), defaultdict(set), set(), {}
    for path in ingested["archive"].rglob("*"):
        if not path.is_file() or str(path) in error_uris:
            continue
        ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
        series_sops[ds.SeriesInstanceUID].add(ds.SOPInstanceUID)
        study_series[ds.StudyInstanceUID].add(ds.SeriesInstanceUID)
        modality[ds.SeriesInstanceUID] = ds.get("Modality") or None
        if ds.get("PatientID"):
            patients.add(str(ds.PatientID))
    series = {d["series_instance_uid"]: d for d in catalog["series"]}
    assert {k: len(v) for k, v in series_sops.items()} == {k: d["num_instances"] for k, d in series.items()}
    assert {k: v for k, v in modality.items()} == {k: d["modality"] for k, d in series.items()}
    studies = {d["study_instance_uid"]: d for d in catalog["studies"]}
    assert {k: len(v) for k, v in study_series.items()} == {k: d["num_series"] for k, d in studies.items()}
    assert {d["patient_id"] for d in catalog["patients"]} == patients
    with open_catalog(ingested["uri"]) as cat:
        assert cat.integrity()["ok"]


def test_accession_numbers_verbatim_and_nothing_written_outside_homes(ingested):
    accessions = {d["accession_number"] for d in dump(ingested["uri"])["studies"]}
    assert {"RAD/2019/0042", "../x", "LIDC0001A"} <= accessions
    assert ingested["before"] == ingested["after"]  # the archive and its neighbours untouched
    assert list(ingested["cwd"].iterdir()) == []


def test_query_command_json_and_refusal(ingested):
    out = quire("query", "studies", "--where", json.dumps({"accession_number": "../x"}), "--format", "json",
                env=ingested["env"], cwd=ingested["cwd"])
    docs = json.loads(out.stdout)
    assert [d["accession_number"] for d in docs] == ["../x"]
    bad = quire("query", "series", "--where", '{"$where": "true"}', env=ingested["env"], cwd=ingested["cwd"],
                check=False)
    assert bad.returncode == 2 and "'$where'" in bad.stderr
    bad = quire("query", "series", "--where", "{modality: CT}", env=ingested["env"], cwd=ingested["cwd"], check=False)
    assert bad.returncode == 2 and "not valid JSON" in bad.stderr


def test_second_run_changes_nothing(ingested):
    before = dump(ingested["uri"])
    second = quire("ingest", str(ingested["archive"]), env=ingested["env"], cwd=ingested["cwd"])
    assert "0 files read, 0 accessions cataloged in 0 run(s)" in second.stdout
    assert dump(ingested["uri"]) == before


def test_runs_land_in_dagster_home(ingested, monkeypatch):
    from dagster import AssetKey, DagsterEventType, DagsterInstance, DagsterRunStatus, RunsFilter

    monkeypatch.setenv("DAGSTER_HOME", ingested["env"]["DAGSTER_HOME"])
    instance = DagsterInstance.get()
    runs = instance.get_runs()
    # Found by job name, and carrying the code location's origin: the UI lists them under the job.
    assert {r.run_id for r in instance.get_runs(RunsFilter(job_name="ingest_job"))} == {r.run_id for r in runs}
    assert {r.remote_job_origin.location_name for r in runs} == {"quire"}
    # The filter the UI's job page uses: the job's name and its repository's label.
    assert len(instance.get_runs(RunsFilter(job_name="ingest_job", tags={
        ".dagster/repository": "__repository__@quire"}))) == len(runs)
    # The index the command refreshed shows as a materialization of source_index, with its figures.
    index_event = instance.get_latest_materialization_event(AssetKey("source_index"))
    assert index_event is not None
    files = sum(1 for p in ingested["archive"].rglob("*") if p.is_file())
    assert index_event.asset_materialization.metadata["files"].value == files
    # The runs executed side by side on the machine's cores, from forked workers, into this instance.
    assert len(runs) >= min(2, os.cpu_count() or 1)
    assert all(r.status == DagsterRunStatus.SUCCESS for r in runs)
    assert "../x" in instance.get_dynamic_partitions("accessions")
    # Each run logged one planned event per asset for its range, not one per accession, and every
    # accession was materialized once by exactly one run.
    done = []
    for run in runs:
        planned = instance.get_records_for_run(run.run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION_PLANNED)
        assert len(planned.records) == 5
        done += [r.asset_materialization for r in instance.get_records_for_run(
            run.run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION, limit=10_000).records]
    partitions = instance.get_dynamic_partitions("accessions")
    assert sorted((m.asset_key.path[-1], m.partition) for m in done) == sorted(
        (asset, key) for asset in ("dicom_files", "instance_records", "series_rollups", "study_rollups",
                                   "catalog_entries") for key in partitions)


def test_timings_split_the_wall_time(tmp_path):
    archive = tmp_path / "archive"
    write_sample_archive(archive, patients=2, slices=3)
    env = {**os.environ, "QUIRE_HOME": str(tmp_path / "home")}
    env.pop("DAGSTER_HOME", None)
    proc = quire("ingest", str(archive), "--timings", "--workers", "2", env=env, cwd=tmp_path)
    timings = json.loads(proc.stderr.strip().splitlines()[-1])
    parts = ("dicom_files_s", "instance_records_s", "series_rollups_s", "study_rollups_s", "catalog_entries_s")
    assert all(timings[k] > 0 for k in ("index_s", "dagster_setup_s", "runs_s", *parts))
    # Two workers ran the runs; Quire's time in them came back from the workers.
    assert timings["run_workers"] == 2 and int(re.search(r"in (\d+) run\(s\)", proc.stdout)[1]) >= 2
    assert timings["in_quire_code_s"] >= sum(timings[k] for k in parts)
    assert timings["in_quire_code_s"] + timings["dagster_overhead_s"] == pytest.approx(timings["runs_busy_s"])
    assert timings["runs_busy_s"] > timings["runs_s"]  # the two runs overlapped


def test_two_archives_in_one_catalog_keep_each_others_files(tmp_path, monkeypatch):
    from quire_assets.cli import ingest

    monkeypatch.setenv("QUIRE_HOME", str(tmp_path / "home"))
    first, second = tmp_path / "a", tmp_path / "b"
    write_sample_archive(first, patients=1, slices=2)
    (second / "LIDC-IDRI").mkdir(parents=True)
    shutil.copy(PYDICOM_TEST_FILES / "CT_small.dcm", second / "LIDC-IDRI" / "ct.dcm")
    (second / "notes.txt").write_text("not DICOM")
    for archive in (first, second, first):  # the third run must change nothing
        assert not ingest(str(archive), None, quiet=True)["failed_runs"]
    with open_catalog(Settings.from_environ().catalog_uri) as catalog:
        errors = {d["uri"] for d in catalog.find("errors")}
        located = {u for d in catalog.find("instances") for u in d["uris"]}
    files = {str(p) for root in (first, second) for p in root.rglob("*") if p.is_file()}
    assert located | errors == files  # both archives' non-DICOM files still accounted for
    assert str(second / "notes.txt") in errors and str(first / "metadata.csv") in errors


def test_the_closing_lines_say_what_happened_in_words(sample_archive, tmp_path):
    """Skipped files apart from errors, with their kinds; a source with no DICOM file or no file
    at all says so (exit 0, one line); the count of files read is the count of files."""
    env = {**os.environ, "QUIRE_HOME": str(tmp_path / "home"), "DAGSTER_HOME": str(tmp_path / "dagster")}
    env.pop("QUIRE_CATALOG", None)
    done = quire("ingest", str(sample_archive), env=env, cwd=tmp_path)
    files = sum(1 for p in sample_archive.rglob("*") if p.is_file())
    assert f"{files:,} files, 79 instances, 10 series, 7 studies, 0 errors, 11 skipped (not DICOM: .xml, .csv), " \
        in done.stdout
    assert f"new or changed files read: {files:,} of {files:,} (100%" in done.stderr
    assert "note:" not in done.stderr
    copy = tmp_path / "archive"  # a file changed: its accession is written again, with no Dagster warning shown
    shutil.copytree(sample_archive, copy)
    quire("ingest", str(copy), env=env, cwd=tmp_path)
    changed = next(copy.rglob("*.dcm"))
    changed.write_bytes(changed.read_bytes())
    os.utime(changed, (1, 1))
    again = quire("ingest", str(copy), env=env, cwd=tmp_path)
    assert "1 accessions cataloged" in again.stdout
    assert again.stderr.splitlines()[-1].startswith("run ok") and "warning" not in again.stderr.lower()
    notes, empty = tmp_path / "notes", tmp_path / "empty"
    notes.mkdir()
    empty.mkdir()
    (notes / "README.txt").write_text("no images here")
    (notes / "scan.dcm").write_bytes(b"not really")
    done = quire("ingest", str(notes), env=env, cwd=tmp_path)
    assert done.stdout.startswith("2 files, 0 instances, 0 series, 0 studies, 1 errors, 1 skipped (not DICOM: .txt)")
    assert f"note: no DICOM file in {notes}: each of its 2 files is skipped or an error" in done.stderr
    done = quire("ingest", str(empty), env=env, cwd=tmp_path)
    assert done.stdout.startswith("0 files, 0 instances")
    assert done.stderr.strip().splitlines()[-1] == f"note: {empty} holds no file at all"


def test_ctrl_c_during_the_runs_prints_one_line_and_the_next_ingest_goes_on(tmp_path):
    """Ctrl-C (SIGINT to the terminal's whole process group) while runs are under way: one line,
    exit 130, no traceback of Dagster's or of its helpers, no process left; the same command again
    catalogs the rest."""
    import signal

    archive = tmp_path / "archive"
    write_sample_archive(archive, patients=60, slices=2)
    env = {**os.environ, "QUIRE_HOME": str(tmp_path / "home"), "DAGSTER_HOME": str(tmp_path / "dagster")}
    env.pop("QUIRE_CATALOG", None)
    proc = subprocess.Popen([QUIRE, "ingest", str(archive), "--batch", "4", "--workers", "2"], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    lines = []
    for line in proc.stderr:  # until runs are finishing: others are under way
        lines.append(line)
        if line.startswith("run ok"):
            break
    os.killpg(proc.pid, signal.SIGINT)
    out, rest = proc.communicate(timeout=60)
    err = "".join(lines) + rest
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "ERROR" not in err, err
    assert err.splitlines()[-1] == "interrupted: what was written stays; the same command again goes on from there"
    assert out == ""
    done = quire("ingest", str(archive), env=env, cwd=tmp_path)
    files = sum(1 for p in archive.rglob("*") if p.is_file())
    assert done.stdout.startswith(f"{files:,} files, ") and "note:" not in done.stderr
    with open_catalog(f"sqlite:///{tmp_path / 'home' / 'catalog.db'}") as catalog:
        assert catalog.count("instances") == sum(1 for _ in archive.rglob("*.dcm"))
