"""``defs`` loads, every job resolves, and the graph is what the README says."""

from __future__ import annotations

import os

from dagster import AssetKey

from quire_assets.definitions import build_definitions, defs
from quire_assets.partitions import accession_partitions


def test_definitions_load_and_every_job_resolves():
    names = {job.name for job in defs.resolve_all_job_defs()}
    assert {"index_job", "ingest_job"} <= names
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert {"source_index", "dicom_files", "instance_records", "series_rollups", "study_rollups",
            "catalog_entries"} <= keys
    for name in ("dicom_files", "instance_records", "series_rollups", "study_rollups", "catalog_entries"):
        assert graph.get(AssetKey(name)).partitions_def == accession_partitions
    checks = {k.name for k in graph.asset_check_keys}
    assert {"every_file_accounted_for", "rollup_counts", "unique_sop_instance_uids"} <= checks


def test_build_definitions_takes_source_and_catalog(tmp_path):
    built = build_definitions(str(tmp_path), f"sqlite:///{tmp_path / 'c.db'}")
    resources = built.resources
    assert resources["source"].root == str(tmp_path)
    assert resources["catalog"].uri.endswith("c.db")


def test_ingest_job_runs_in_process_unless_the_deployment_says_otherwise():
    import subprocess
    import sys

    assert defs.resolve_job_def("ingest_job").executor_def.name == "in_process"
    code = "from quire_assets.definitions import defs; print(defs.resolve_job_def('ingest_job').executor_def.name)"
    for value, expected in (("multiprocess", "multiprocess"), ("", "in_process")):
        out = subprocess.run([sys.executable, "-c", code], env={**os.environ, "QUIRE_EXECUTOR": value},
                             capture_output=True, text=True, check=True)
        assert out.stdout.split() == [expected]
    bad = subprocess.run([sys.executable, "-c", code], env={**os.environ, "QUIRE_EXECUTOR": "celery-ish"},
                         capture_output=True, text=True)
    assert bad.returncode != 0 and "QUIRE_EXECUTOR='celery-ish' is not an executor Quire knows" in bad.stderr
