"""Two `quire ingest` processes at once on one QUIRE_HOME and catalog: of the same archive, and of
two archives. Neither reports "database is locked", and nothing is lost or doubled."""

from __future__ import annotations

import subprocess
from pathlib import Path

from quire_assets.dicom.sample import write_sample_archive
from tests.cli.test_ingest_e2e import QUIRE, quire
from tests.resilience.test_kill_and_resume import _env, documents


def _both(commands: list[list[str]], env: dict, cwd: Path) -> list[subprocess.CompletedProcess]:
    processes = [subprocess.Popen([QUIRE, *c], env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True) for c in commands]
    done = []
    for p in processes:
        out, err = p.communicate(timeout=300)
        done.append(subprocess.CompletedProcess(p.args, p.returncode, out, err))
    return done


def test_two_ingests_of_one_archive_at_once(archive, reference, tmp_path):
    home = tmp_path / "home"
    for proc in _both([["ingest", str(archive), "--workers", "2"]] * 2, _env(home), tmp_path):
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert "locked" not in proc.stderr
    assert documents(home) == reference


def test_two_archives_at_once_into_one_catalog(archive, reference, tmp_path):
    other = tmp_path / "other"
    write_sample_archive(other, patients=3, slices=4)
    alone = tmp_path / "alone"
    quire("ingest", str(other), env=_env(alone), cwd=tmp_path)
    home = tmp_path / "home"
    for proc in _both([["ingest", str(archive), "--workers", "2"], ["ingest", str(other), "--workers", "2"]],
                      _env(home), tmp_path):
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert "locked" not in proc.stderr
    both = documents(home)
    expected = {c: sorted(reference[c] + documents(alone)[c], key=lambda d: repr(sorted(d.items())))
                for c in reference if c != "patients"}
    for collection, docs in expected.items():
        assert sorted(both[collection], key=lambda d: repr(sorted(d.items()))) == docs, collection
    # Both sample archives name their patients LIDC-IDRI-000N: one patient, whichever archive it came from.
    ids = {p["patient_id"] for p in reference["patients"] + documents(alone)["patients"]}
    assert sorted(p["patient_id"] for p in both["patients"]) == sorted(ids)
