"""The catalog is found, never invented: one per-user place by default, the same from any working
directory; reading commands refuse a catalog that is not there and create nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.cli.test_ingest_e2e import quire


def _env(tmp_path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("QUIRE_HOME", "QUIRE_CATALOG", "DAGSTER_HOME")}
    env["XDG_DATA_HOME"] = str(tmp_path / "data")  # the platform's user data folder, on Linux
    return env


def test_the_default_catalog_is_the_same_from_any_working_directory(sample_archive, tmp_path):
    env = _env(tmp_path)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    ingested = quire("ingest", str(sample_archive), env=env, cwd=tmp_path / "a")
    catalog = tmp_path / "data" / "quire" / "catalog.db"
    assert f"created the catalog sqlite:///{catalog}" in ingested.stderr and catalog.is_file()
    studies = json.loads(quire("query", "studies", "--format", "json", env=env, cwd=tmp_path / "b").stdout)
    assert len(studies) == 7
    assert not (tmp_path / "a" / ".quire").exists() and not (tmp_path / "b" / ".quire").exists()
    # A second ingest finds it: nothing is announced.
    assert "created the catalog" not in quire("ingest", str(sample_archive), env=env, cwd=tmp_path / "b").stderr


@pytest.mark.parametrize("args", [
    ["query", "studies"],
    ["query", "series", "--catalog", "sqlite:///{tmp}/typo/nested/catalog.db"],
    ["jobs", "list"],
    ["jobs", "show", "job-1"],
    ["report", "--out", "{tmp}/report.html"],
])
def test_reading_a_catalog_that_is_not_there_exits_2_and_creates_nothing(args, tmp_path):
    env = _env(tmp_path)
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    proc = quire(*args, env=env, cwd=tmp_path, check=False)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: no catalog at ") and "quire ingest" in lines[0]
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before



def test_ingest_materializes_source_index_in_the_instance(sample_archive, tmp_path):
    env = {**_env(tmp_path), "DAGSTER_HOME": str(tmp_path / "dagster")}
    for _ in range(2):
        quire("ingest", str(sample_archive), env=env, cwd=tmp_path)
    code = ("import json; from dagster import AssetKey, AssetRecordsFilter, DagsterInstance; i = DagsterInstance.get(); "
            "r = i.fetch_materializations(AssetRecordsFilter(asset_key=AssetKey('source_index')), limit=10).records; "
            "print(json.dumps([{k: v.value for k, v in x.asset_materialization.metadata.items() "
            "if k in ('files', 'read', 'new_partitions')} for x in r]))")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    latest, first = json.loads(out.stdout)
    files = sum(1 for p in sample_archive.rglob("*") if p.is_file())
    assert first == {"files": files, "read": files, "new_partitions": 8}
    assert latest == {"files": files, "read": 0, "new_partitions": 0}
