"""Shared fixtures: real DICOM files (pydicom's shipped ones, and the sample archive)."""

from __future__ import annotations

import os
from pathlib import Path

import pydicom
import pytest

from quire_assets.dicom.features import load_feature_sets
from quire_assets.dicom.sample import write_sample_archive

PYDICOM_TEST_FILES = Path(os.path.dirname(pydicom.__file__)) / "data" / "test_files"


def pydicom_files() -> list[Path]:
    return sorted(p for p in PYDICOM_TEST_FILES.rglob("*") if p.is_file())


@pytest.fixture(scope="session")
def features():
    return load_feature_sets()


@pytest.fixture(scope="session")
def sample_archive(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sample")
    write_sample_archive(root)
    return root


@pytest.fixture(scope="session")
def pacs_archive(tmp_path_factory) -> Path:
    """The PACS's files as a folder (``tests/pacs/conftest.py``: ``write_pacs_archive``)."""
    from tests.pacs.conftest import write_pacs_archive

    return write_pacs_archive(tmp_path_factory.mktemp("pacs-archive"))


@pytest.fixture(scope="session")
def pacs(tmp_path_factory, pacs_archive):
    """A real Orthanc loaded with ``pacs_archive``, one per session: the PACS source's tests and
    DICOMweb's reference answers share it."""
    from tests.pacs.conftest import loaded_pacs

    server = loaded_pacs(tmp_path_factory.mktemp("orthanc"), pacs_archive)
    try:
        yield server
    finally:
        server.process.terminate()
        server.process.wait(timeout=30)


@pytest.fixture(autouse=True)
def _isolated_quire_home(tmp_path, monkeypatch):
    """No test writes to the working tree's .quire or reads a developer's settings."""
    monkeypatch.setenv("QUIRE_HOME", str(tmp_path / "quire_home"))
    for name in ("QUIRE_CATALOG", "QUIRE_SOURCE", "QUIRE_FEATURES"):
        monkeypatch.delenv(name, raising=False)


def processes_of(base: str) -> dict[int, str]:
    """Live processes (not zombies) whose environment names ``base``: what this session's tests
    started, through QUIRE_HOME, DAGSTER_HOME or a working folder under the session's temp folder."""
    found = {}
    for proc in Path("/proc").glob("[0-9]*"):
        if int(proc.name) == os.getpid():
            continue
        try:
            if base.encode() not in (proc / "environ").read_bytes():
                continue
            status = dict(line.split(":", 1) for line in (proc / "status").read_text().splitlines() if ":" in line)
            command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            # This interpreter's own multiprocessing helper ends with it.
            mine = status.get("PPid", "").strip() == str(os.getpid()) and "multiprocessing.resource_tracker" in command
            if "zombie" not in status.get("State", "") and not mine:
                found[int(proc.name)] = command
        except OSError:
            continue
    return found


@pytest.fixture(scope="session", autouse=True)
def no_process_left_behind(tmp_path_factory):
    """The suite leaves no process behind (issue 28: `quire serve`'s job workers outlived it). The
    first session fixture, so its check runs after every other fixture has stopped what it started."""
    import time

    base = str(tmp_path_factory.getbasetemp())
    yield
    deadline = time.monotonic() + 20
    while (left := processes_of(base)) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not left, f"processes outlived the test session: {left}"


def pytest_terminal_summary(terminalreporter) -> None:
    """Skips, one line per reason with their count (``-ra`` would print a line per test location:
    the real MongoDB's parameter alone is skipped in some eighty places without a server)."""
    reasons: dict[str, int] = {}
    for report in terminalreporter.stats.get("skipped", []):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        reasons[reason.removeprefix("Skipped: ")] = reasons.get(reason.removeprefix("Skipped: "), 0) + 1
    for reason, count in sorted(reasons.items()):
        terminalreporter.write_line(f"SKIPPED {count}: {reason}")
