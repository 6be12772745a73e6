"""``defs`` loads, every job resolves, and the graph is what the README says."""

from __future__ import annotations

import os

from dagster import AssetKey

from quire_assets.definitions import build_definitions, defs
from quire_assets.partitions import accession_partitions
from quire_assets.settings import Settings


def test_importing_the_definitions_reads_and_writes_nothing():
    """Dagster loads ``defs`` when it wants them: importing the module builds nothing, and leaves
    the environment as it found it (the Dagster switches are set when ``defs`` is loaded)."""
    import subprocess
    import sys

    code = ("import os; before = dict(os.environ); import quire_assets.definitions as d; "
            "assert dict(os.environ) == before; assert not hasattr(d, 'Definitions') or callable(d.defs); "
            "d.defs(); print(os.environ['DAGSTER_EVENT_BATCH_SIZE'], os.environ['DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS'])")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAGSTER_E")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["1000", "true"]


def test_definitions_load_and_every_job_resolves():
    defs_ = defs()
    names = {job.name for job in defs_.resolve_all_job_defs()}
    assert {"index_job", "ingest_job"} <= names
    graph = defs_.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert {"source_index", "dicom_files", "instance_records", "series_rollups", "study_rollups",
            "catalog_entries"} <= keys
    for name in ("dicom_files", "instance_records", "series_rollups", "study_rollups", "catalog_entries"):
        assert graph.get(AssetKey(name)).partitions_def == accession_partitions
    checks = {k.name for k in graph.asset_check_keys}
    assert {"every_file_accounted_for", "rollup_counts", "unique_sop_instance_uids"} <= checks


def test_build_definitions_takes_source_and_catalog(tmp_path):
    built = build_definitions(Settings.from_environ(), str(tmp_path), f"sqlite:///{tmp_path / 'c.db'}")
    resources = built.resources
    assert resources["source"].uri == str(tmp_path)
    assert resources["catalog"].uri.endswith("c.db")


def test_ingest_job_runs_in_process_unless_the_deployment_says_otherwise():
    import subprocess
    import sys

    assert defs().resolve_job_def("ingest_job").executor_def.name == "in_process"
    code = "from quire_assets.definitions import defs; print(defs().resolve_job_def('ingest_job').executor_def.name)"
    for value, expected in (("multiprocess", "multiprocess"), ("", "in_process")):
        out = subprocess.run([sys.executable, "-c", code], env={**os.environ, "QUIRE_EXECUTOR": value},
                             capture_output=True, text=True, check=True)
        assert out.stdout.split() == [expected]
    bad = subprocess.run([sys.executable, "-c", code], env={**os.environ, "QUIRE_EXECUTOR": "celery-ish"},
                         capture_output=True, text=True)
    assert bad.returncode != 0 and "QUIRE_EXECUTOR='celery-ish' is not an executor Quire knows" in bad.stderr
