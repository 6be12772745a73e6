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


@pytest.fixture(autouse=True)
def _isolated_quire_home(tmp_path, monkeypatch):
    """No test writes to the working tree's .quire or reads a developer's settings."""
    monkeypatch.setenv("QUIRE_HOME", str(tmp_path / "quire_home"))
    for name in ("QUIRE_CATALOG", "QUIRE_SOURCE", "QUIRE_FEATURES"):
        monkeypatch.delenv(name, raising=False)
