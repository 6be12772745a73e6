"""``quire demo`` and ``quire sample-archive`` as a newcomer runs them."""

from __future__ import annotations

import os

from tests.cli.test_ingest_e2e import quire


def test_demo_runs_on_the_embedded_default(tmp_path):
    env = {**os.environ, "QUIRE_HOME": str(tmp_path / "home")}
    env.pop("DAGSTER_HOME", None)
    out = quire("demo", env=env, cwd=tmp_path).stdout
    assert "CT series thinner than 1.5 mm from GE scanners" in out
    assert "GE MEDICAL SYSTEMS" in out and "LightSpeed16" in out
    assert "79 instances" in out and "(tmp" not in out
    assert (tmp_path / "home" / "catalog.db").is_file()


def test_sample_archive_command(tmp_path):
    out = quire("sample-archive", str(tmp_path / "x"), env=dict(os.environ), cwd=tmp_path).stdout
    assert "6 patients" in out
    assert (tmp_path / "x" / "LIDC-IDRI" / "LIDC-IDRI-0001").is_dir()
    assert (tmp_path / "x" / "metadata.csv").is_file()
