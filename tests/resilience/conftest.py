"""The archive the resilience tests ingest, and its catalog from an undisturbed ingest."""

from __future__ import annotations

from pathlib import Path

import pytest

from quire_assets.dicom.sample import SeriesPlan, StudyPlan, write_series
from tests.cli.test_ingest_e2e import quire
from tests.resilience.test_kill_and_resume import _env, documents


@pytest.fixture(scope="session")
def archive(tmp_path_factory) -> Path:
    """1,200 radiograph accessions of 1 to 3 small images (2,400 files)."""
    root = tmp_path_factory.mktemp("dx")
    for a in range(1200):
        study = StudyPlan(patient_index=a + 1, accession=f"XR{a + 1:06d}", date="2019-03-01",
                          description="XR CHEST 2 VIEWS")
        study.series.append(SeriesPlan(1, "CHEST", "DX", 1 + a % 3, None, 0.139))
        write_series(root, study, study.series[0], 16, annotation=False)
    return root


@pytest.fixture(scope="session")
def reference(archive, tmp_path_factory) -> dict[str, list[dict]]:
    home = tmp_path_factory.mktemp("undisturbed")
    quire("ingest", str(archive), "--workers", "2", env=_env(home), cwd=home)
    return documents(home)
