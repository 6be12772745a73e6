"""Batched event writes keep Dagster's semantics: the same `quire ingest` on the stock storage
(events stored one by one) and with batches (Quire's SQLite storage; dagster-postgres' own batch
write on PostgreSQL) gives the same answers to what the Dagster UI asks of the instance."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

from dagster import (
    AssetCheckKey,
    AssetKey,
    AssetRecordsFilter,
    DagsterEventType,
    DagsterInstance,
    EventRecordsFilter,
)

from quire_assets.partitions import accession_partitions
from quire_assets.runtime.instance import ephemeral_instance
from quire_assets.runtime.storage import BatchedInMemoryEventLogStorage, BatchedSqliteEventLogStorage
from quire_assets.settings import Settings, home_of
from tests.cli.test_ingest_e2e import quire
from tests.deploy.conftest import postgres  # noqa: F401 (a fixture)

ASSETS = ["source_index", "dicom_files", "instance_records", "series_rollups", "study_rollups", "catalog_entries"]
ROOT = Path(__file__).resolve().parents[2]
# The per-run figures differ between two runs of the same work; everything else must not.
RUN_DEPENDENT = {"seconds", "read", "unchanged", "new_partitions", "changed_partitions"}
CHECKS = ["every_file_accounted_for", "rollup_counts", "series_quality", "unique_sop_instance_uids", "copies_agree"]


def plain(metadata: dict) -> dict:
    """Metadata as plain values, compared across processes."""
    return {k: v.value if isinstance(v.value, int | float | str | bool | None) else repr(v.value)
            for k, v in metadata.items()}


def answers(instance: DagsterInstance) -> dict:
    """What the UI reads: materialized partitions, the latest materialization per partition and
    per asset, event records by type, the asset's latest-event row, and each run's event log."""
    out: dict = {}
    partitions = instance.get_dynamic_partitions(accession_partitions.name)
    for name in ASSETS:
        key = AssetKey(name)
        latest_by_partition = {}
        for partition in partitions if name != "source_index" else [None]:
            records = instance.fetch_materializations(
                AssetRecordsFilter(asset_key=key, asset_partitions=[partition] if partition else None), limit=1).records
            if records:
                mat = records[0].asset_materialization
                latest_by_partition[partition] = (mat.partition, {
                    k: v for k, v in plain(mat.metadata).items()
                    if k not in RUN_DEPENDENT and not (name == "source_index" and k == "summary")})  # it has seconds
        latest = instance.get_latest_materialization_event(key)
        records = instance.get_asset_records([key])
        if not records:
            out[name] = None
            continue
        entry = records[0].asset_entry
        out[name] = {
            "materialized_partitions": sorted(instance.get_materialized_partitions(key)),
            "latest_by_partition": latest_by_partition,
            "latest": latest.dagster_event.partition if latest else None,
            "entry_partition": entry.last_materialization_record.event_log_entry.dagster_event.partition,
            "entry_is_latest": entry.last_materialization_record.storage_id == instance.get_event_records(
                EventRecordsFilter(DagsterEventType.ASSET_MATERIALIZATION, asset_key=key), limit=1)[0].storage_id,
            "entry_run_is_last_run": entry.last_run_id == instance.get_runs(limit=1)[0].run_id,
            **{f"records_{t.value}": len(instance.get_event_records(EventRecordsFilter(t, asset_key=key)))
               for t in (DagsterEventType.ASSET_MATERIALIZATION, DagsterEventType.ASSET_MATERIALIZATION_PLANNED)},
        }
    # The checks' executions, per partition for the per-accession ones: status and figures.
    for name in CHECKS:
        history = instance.event_log_storage.get_asset_check_execution_history(
            AssetCheckKey(AssetKey("catalog_entries"), name), limit=10_000)
        out[f"check_{name}"] = sorted((r.partition or "", r.status.value, sorted(plain(r.evaluation.metadata).items())
                                       if r.evaluation else None) for r in history)
    runs = sorted(instance.get_runs(), key=lambda r: r.tags.get("dagster/asset_partition_range_start", ""))
    # Each run's events in order; Quire's storages store a step's per-partition check evaluations
    # after its materializations (which they judge), so those are compared as a count.
    out["runs"] = []
    for r in runs:
        types = [e.dagster_event_type.value for e in instance.all_logs(r.run_id) if e.dagster_event_type]
        out["runs"].append((r.job_name, r.status.value, [t for t in types if t != "ASSET_CHECK_EVALUATION"],
                            types.count("ASSET_CHECK_EVALUATION")))
    return out


def _ingest(archive: Path, tmp_path: Path, name: str, yaml: str | None, batch: str, extra_env: dict | None = None):
    home = tmp_path / name
    home.mkdir()
    if yaml is not None:
        (home / "dagster.yaml").write_text(yaml)
    # The same QUIRE_HOME (emptied) on both sides: the catalog's path is in the metadata compared.
    shutil.rmtree(tmp_path / "quire", ignore_errors=True)
    env = {**os.environ, "DAGSTER_HOME": str(home), "QUIRE_HOME": str(tmp_path / "quire"),
           "DAGSTER_EVENT_BATCH_SIZE": batch, **(extra_env or {}),
           # Dagster orders a run's partitions through a set: the same hash seed on both sides.
           "PYTHONHASHSEED": "0"}
    # One worker: the same runs over the same ranges, in the same order, on both sides.
    proc = quire("ingest", str(archive), "--workers", "1", "--batch", "3", env=env, cwd=tmp_path)
    return home, env, proc


def _answers_in_subprocess(env: dict) -> dict:
    code = ("import json, sys; from dagster import DagsterInstance; from tests.runtime.test_batched_events "
            "import answers; print(repr(answers(DagsterInstance.get())))")
    out = subprocess.run([sys.executable, "-c", code], env={**env, "PYTHONPATH": str(ROOT)}, cwd=ROOT,
                         capture_output=True, text=True, check=True)
    return eval(out.stdout)  # noqa: S307 (our own repr of plain values)


def test_sqlite_batched_storage_answers_as_the_stock_one(sample_archive, tmp_path):
    stock_home, stock_env, _ = _ingest(sample_archive, tmp_path, "stock", "telemetry:\n  enabled: false\n", "0")
    ours_home, ours_env, proc = _ingest(sample_archive, tmp_path, "ours", None, "1000")
    assert "wrote" in proc.stderr and (ours_home / "dagster.yaml").exists()
    stock, ours = _answers_in_subprocess(stock_env), _answers_in_subprocess(ours_env)
    assert len(stock["runs"]) >= 3  # several runs over partition ranges, so the asset rows change hands
    assert stock["catalog_entries"]["materialized_partitions"] == sorted(
        stock["catalog_entries"]["latest_by_partition"])
    # Each accession has its own evaluation of the per-partition checks, passed, on both storages.
    evaluated = {p for p, status, _ in stock["check_every_file_accounted_for"] if p and status == "SUCCEEDED"}
    assert evaluated == set(stock["catalog_entries"]["materialized_partitions"])
    assert ours == stock
    kinds = subprocess.run([sys.executable, "-c", "from dagster import DagsterInstance; "
                            "print(type(DagsterInstance.get().event_log_storage).__name__)"],
                           env=ours_env, capture_output=True, text=True, check=True).stdout.split()
    assert kinds == [BatchedSqliteEventLogStorage.__name__]
    # The file quire wrote keeps Dagster's default layout: the same databases in the same places.
    def layout(home):
        return sorted(str(p.relative_to(home)) for p in home.rglob("*.db") if len(p.stem) < 30)  # not per-run files
    assert layout(ours_home) == layout(stock_home) and "history/runs.db" in layout(ours_home)


def test_a_batch_is_stored_in_one_transaction_per_database(sample_archive, tmp_path):
    """The batched path is the one taken: with batches on, the index database of a 7-partition run
    sees a handful of transactions, not two per event."""
    _, env, _ = _ingest(sample_archive, tmp_path, "ours", None, "1000")
    code = (
        "from dagster import DagsterInstance\n"
        "from quire_assets.runtime.storage import BatchedSqliteEventLogStorage as S\n"
        "calls = []\n"
        "real = S._index_asset_events\n"
        "def spy(self, conn, events, ids):\n"
        "    calls.append(len(events)); return real(self, conn, events, ids)\n"
        "S._index_asset_events = spy\n"
        "from quire_assets.cli import main\n"
        "import sys\n"
        "main(['ingest', sys.argv[1], '--workers', '1'])\n"
        "print('BATCHES', calls)\n")
    fresh = tmp_path / "fresh"
    (fresh / "dagster").mkdir(parents=True)
    out = subprocess.run([sys.executable, "-c", code, str(sample_archive)], cwd=ROOT, capture_output=True, text=True,
                         env={**env, "DAGSTER_HOME": str(fresh / "dagster"), "QUIRE_HOME": str(fresh / "quire"),
                              "PYTHONPATH": str(ROOT)}, check=True)
    batches = eval(out.stdout.split("BATCHES", 1)[1])  # noqa: S307
    partitions = 8  # the sample archive's 7 studies and the partition of non-DICOM files
    # One batch per output covering the run's partitions, for each of the 5 partitioned assets.
    assert batches == [partitions] * 5, batches


def test_in_memory_batched_storage_answers_as_the_stock_one(sample_archive, tmp_path, monkeypatch):
    from quire_assets.definitions import build_definitions
    from quire_assets.dicom.features import load_feature_sets
    from quire_assets.orchestration import run_partitions
    from quire_assets.partitions import register_partitions
    from quire_assets.sources import SourceIndex, source_from_uri

    index = SourceIndex(source_from_uri(str(sample_archive)), home_of())
    index.refresh(load_feature_sets(), workers=1)
    keys = index.partition_keys()
    index.close()
    results = []
    for instance, batch in ((DagsterInstance.ephemeral(), "0"), (ephemeral_instance(), "1000")):
        monkeypatch.setenv("DAGSTER_EVENT_BATCH_SIZE", batch)
        shutil.rmtree(tmp_path / "catalog", ignore_errors=True)  # the same path on both sides (it is in metadata)
        defs = build_definitions(Settings.from_environ(), str(sample_archive), f"sqlite:///{tmp_path / 'catalog' / 'catalog.db'}")
        register_partitions(instance, keys)
        report = run_partitions(defs, instance, keys, batch=3)
        assert not report.failed
        results.append(answers(instance))
    assert isinstance(ephemeral_instance().event_log_storage, BatchedInMemoryEventLogStorage)
    assert results[0] == results[1]


def test_postgres_batched_writes_answer_as_one_by_one(postgres, sample_archive, tmp_path):  # noqa: F811
    import psycopg2

    results = []
    for batch in ("0", "1000"):
        db = f"dagster_batch_{batch}"
        conn = psycopg2.connect(host="127.0.0.1", port=postgres, user="postgres", dbname="postgres")
        conn.autocommit = True
        conn.cursor().execute(f"CREATE DATABASE {db}")
        conn.close()
        yaml = (ROOT / "deploy" / "dagster.yaml").read_text()
        _, env, _ = _ingest(sample_archive, tmp_path, f"pg{batch}", yaml, batch, {
            "DAGSTER_POSTGRES_HOST": "127.0.0.1", "DAGSTER_POSTGRES_PORT": str(postgres),
            "DAGSTER_POSTGRES_DB": db, "DAGSTER_POSTGRES_USER": "postgres", "DAGSTER_POSTGRES_PASSWORD": "x"})
        results.append(_answers_in_subprocess(env))
    assert Counter(r[1] for r in results[0]["runs"]) == {"SUCCESS": len(results[0]["runs"])}
    assert results[0] == results[1]



def test_the_dagster_yaml_quire_writes_validates_and_is_never_overwritten(tmp_path, monkeypatch):
    import yaml

    from quire_assets.runtime.instance import open_instance
    from quire_assets.runtime.storage import SqliteRunStorage, SqliteScheduleStorage

    home = tmp_path / "dagster home: #1"  # characters YAML would misread unquoted
    told = []
    instance = open_instance(home, announce=told.append)
    assert told == [home / "dagster.yaml"] and isinstance(instance.event_log_storage, BatchedSqliteEventLogStorage)
    assert isinstance(instance.run_storage, SqliteRunStorage) and isinstance(instance.schedule_storage, SqliteScheduleStorage)
    config = yaml.safe_load((home / "dagster.yaml").read_text())
    assert config["event_log_storage"]["config"]["base_dir"] == str(home.resolve() / "history" / "runs")
    # It names Quire's classes only: a Dagster release that moves its own modules changes quire, not this file.
    assert {config[k]["module"] for k in ("run_storage", "event_log_storage", "schedule_storage")} == {
        "quire_assets.runtime.storage"}
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    told.clear()
    assert type(open_instance(home, announce=told.append).event_log_storage).__name__ == "SqliteEventLogStorage"
    assert told == [] and (home / "dagster.yaml").read_text() == "telemetry:\n  enabled: false\n"
