"""``ingest_job`` on Dagster's Celery executor, with real processes: redis-server (broker and
result backend) and PostgreSQL (the Dagster instance) on 127.0.0.1, two Celery workers, and runs
started by ``dagster job execute``. Compared with the catalog of an in-process ``quire ingest``."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from quire_assets.catalog import COLLECTIONS, open_catalog
from tests.cli.test_ingest_e2e import quire
from tests.deploy.conftest import ROOT, postgres_env

BIN = Path(sys.executable).parent
IGNORED = {"_id", "updated_at", "partition_version"}


class Workers:
    """Celery worker processes, each in its own session so that it can be killed whole."""

    def __init__(self, env: dict, logs: Path):
        self.env, self.logs = env, logs
        self.processes: dict[str, subprocess.Popen] = {}

    def start(self, name: str) -> subprocess.Popen:
        log = open(self.logs / f"{name}.log", "wb")  # noqa: SIM115 (lives as long as the worker)
        process = subprocess.Popen(
            [str(BIN / "celery"), "-A", "quire_assets.workers", "worker", "--queues", "dagster", "--concurrency", "1",
             "--hostname", f"{name}@%h", "--loglevel", "INFO", "--without-gossip", "--without-mingle"],
            env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.processes[name] = process
        deadline = time.monotonic() + 60
        while b"ready." not in (self.logs / f"{name}.log").read_bytes():
            assert process.poll() is None and time.monotonic() < deadline, (self.logs / f"{name}.log").read_text()
            time.sleep(0.2)
        return process

    def kill(self, name: str) -> None:
        os.killpg(self.processes[name].pid, signal.SIGKILL)
        self.processes[name].wait()

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)


def dagster(*args: str, env: dict, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(BIN / "dagster"), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=600)
    if check:
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def documents(catalog_uri: str) -> dict[str, list[dict]]:
    with open_catalog(catalog_uri) as catalog:
        return {c: sorted(({k: v for k, v in d.items() if k not in IGNORED} for d in catalog.find(c)),
                          key=lambda d: json.dumps(d, sort_keys=True, default=str))
                for c in COLLECTIONS if c not in ("jobs", "researchers", "collections")}


@pytest.fixture
def cluster(tmp_path, postgres, redis_url, sample_archive):
    """The environment every process shares, the workers, and the partitions registered by index_job."""
    dagster_home = tmp_path / "dagster"
    dagster_home.mkdir()
    shutil.copy(ROOT / "deploy" / "dagster.yaml", dagster_home / "dagster.yaml")
    env = {**os.environ, "DAGSTER_HOME": str(dagster_home), "QUIRE_HOME": str(tmp_path / "home"),
           "QUIRE_SOURCE": str(sample_archive), "QUIRE_CATALOG": f"sqlite:///{tmp_path / 'catalog.db'}",
           "QUIRE_EXECUTOR": "celery", "QUIRE_CELERY_BROKER": f"{redis_url}/0",
           "QUIRE_CELERY_BACKEND": f"{redis_url}/1", "QUIRE_CELERY_VISIBILITY_TIMEOUT": "5",
           **postgres_env(postgres)}
    (tmp_path / "logs").mkdir()
    workers = Workers(env, tmp_path / "logs")
    try:
        dagster("job", "execute", "-m", "quire_assets.definitions", "-j", "index_job", env=env, cwd=tmp_path)
        yield env, workers
    finally:
        workers.stop()


@pytest.fixture
def reference(tmp_path_factory, sample_archive) -> dict[str, list[dict]]:
    """The catalog of the same archive, ingested in process by `quire ingest`."""
    home = tmp_path_factory.mktemp("reference")
    env = {**os.environ, "QUIRE_HOME": str(home)}
    for name in ("QUIRE_CATALOG", "QUIRE_EXECUTOR", "DAGSTER_HOME"):
        env.pop(name, None)
    quire("ingest", str(sample_archive), env=env, cwd=home)
    return documents(f"sqlite:///{home}/catalog.db")


def partitions(env: dict) -> list[str]:
    code = ("from dagster import DagsterInstance; "
            "print('\\n'.join(DagsterInstance.get().get_dynamic_partitions('accessions')))")
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          check=True).stdout.split("\n")[:-1] or []


def step_pids(env: dict, run_id: str) -> dict[str, list[int]]:
    """Step key → the process ids of its STEP_START events (one per attempt)."""
    code = (
        "import json, sys; from dagster import DagsterInstance, DagsterEventType; i = DagsterInstance.get(); "
        f"rs = i.get_records_for_run({run_id!r}, of_type=DagsterEventType.STEP_START).records; "
        "out = {}; [out.setdefault(r.event_log_entry.dagster_event.step_key, []).append(r.event_log_entry.dagster_event.pid)"
        " for r in rs]; print(json.dumps(out))")
    return json.loads(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                                     check=True).stdout)


def test_ingest_on_two_celery_workers_equals_an_in_process_ingest(cluster, reference, tmp_path):
    env, workers = cluster
    workers.start("w1")
    workers.start("w2")
    keys = partitions(env)
    tags = {"dagster/asset_partition_range_start": keys[0], "dagster/asset_partition_range_end": keys[-1]}
    dagster("job", "execute", "-m", "quire_assets.definitions", "-j", "ingest_job", "--tags", json.dumps(tags),
            env=env, cwd=tmp_path)
    assert documents(env["QUIRE_CATALOG"]) == reference
    # The steps ran in the workers' processes, not in the run's.
    logs = "".join((tmp_path / "logs" / f"{w}.log").read_text() for w in ("w1", "w2"))
    assert logs.count("succeeded in") >= 5, logs[-3000:]


def _instance(env: dict, monkeypatch):
    from dagster import DagsterInstance

    for name in ("DAGSTER_HOME", *postgres_env(0)):
        monkeypatch.setenv(name, env[name])
    return DagsterInstance.get()


def test_a_worker_killed_mid_step_hands_the_step_to_another(cluster, reference, tmp_path, monkeypatch):
    """SIGKILL to the whole worker (main and pool process) while its process is inside a step: the
    step's message was not acknowledged (late acks), so after the visibility timeout the other
    worker runs the step again and the run ends as an undisturbed one does."""
    from dagster import DagsterEventType, DagsterRunStatus

    env, workers = cluster
    instance = _instance(env, monkeypatch)
    first = workers.start("w1")
    keys = partitions(env)
    tags = {"dagster/asset_partition_range_start": keys[0], "dagster/asset_partition_range_end": keys[-1]}
    run = subprocess.Popen([str(BIN / "dagster"), "job", "execute", "-m", "quire_assets.definitions", "-j", "ingest_job",
                            "--tags", json.dumps(tags)], env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
    killed_step = None
    deadline = time.monotonic() + 300
    while killed_step is None:
        assert run.poll() is None and time.monotonic() < deadline, "the run ended before a step could be caught"
        runs = [r for r in instance.get_runs() if r.job_name == "ingest_job"]
        if runs:
            events = instance.get_records_for_run(runs[0].run_id).records
            started = {e.event_log_entry.step_key for e in events
                       if e.event_log_entry.dagster_event_type == DagsterEventType.STEP_START}
            ended = {e.event_log_entry.step_key for e in events
                     if e.event_log_entry.dagster_event_type == DagsterEventType.STEP_SUCCESS}
            if started - ended:
                os.killpg(first.pid, signal.SIGSTOP)  # frozen where it is, then checked
                events = instance.get_records_for_run(runs[0].run_id).records
                ended = {e.event_log_entry.step_key for e in events
                         if e.event_log_entry.dagster_event_type == DagsterEventType.STEP_SUCCESS}
                inside = sorted(started - ended)
                if inside:
                    killed_step = inside[0]
                    workers.kill("w1")
                else:  # the step ended just before the freeze: let it go on to the next one
                    os.killpg(first.pid, signal.SIGCONT)
        time.sleep(0.02)
    killed_at = time.monotonic()
    workers.start("w2")
    output, _ = run.communicate(timeout=300)
    print(f"the run ended {time.monotonic() - killed_at:.1f} s after the kill")
    assert run.returncode == 0, output[-3000:]
    [done] = [r for r in instance.get_runs() if r.job_name == "ingest_job"]
    assert done.status == DagsterRunStatus.SUCCESS
    attempts = step_pids(env, done.run_id)[killed_step]
    assert len(attempts) == 2 and attempts[0] != attempts[1]  # started twice: killed, then on w2
    assert documents(env["QUIRE_CATALOG"]) == reference


def test_an_unreachable_broker_fails_the_run_clearly(cluster, tmp_path, monkeypatch):
    from dagster import DagsterEventType, DagsterRunStatus

    from tests.s3.conftest import free_port

    env, _ = cluster
    env = {**env, "QUIRE_CELERY_BROKER": f"redis://127.0.0.1:{free_port()}/0"}
    keys = partitions(env)
    tags = {"dagster/asset_partition_range_start": keys[0], "dagster/asset_partition_range_end": keys[-1]}
    proc = dagster("job", "execute", "-m", "quire_assets.definitions", "-j", "ingest_job", "--tags", json.dumps(tags),
                   env=env, cwd=tmp_path, check=False)
    assert proc.returncode != 0
    instance = _instance(env, monkeypatch)
    [run] = [r for r in instance.get_runs() if r.job_name == "ingest_job"]
    assert run.status == DagsterRunStatus.FAILURE
    failure = instance.get_records_for_run(run.run_id, of_type=DagsterEventType.RUN_FAILURE).records
    engine = [e.event_log_entry.dagster_event.message for e in instance.get_records_for_run(run.run_id).records
              if e.event_log_entry.dagster_event]
    assert failure and any("celery task submission" in (m or "") for m in engine), engine
    assert "Connection refused" in proc.stdout + proc.stderr
    with open_catalog(env["QUIRE_CATALOG"]) as catalog:
        assert catalog.count("instances") == 0  # nothing written, nothing marked done


def test_a_machine_without_the_archive_fails_the_index_step_clearly(tmp_path):
    """The steps on the workers read the source index, not the files: the archive must be mounted
    where the index step runs, at the path QUIRE_SOURCE names. Where it is not, the run fails
    naming the folder; nothing is skipped quietly."""
    (tmp_path / "dagster").mkdir()
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "dagster"), "QUIRE_HOME": str(tmp_path / "home"),
           "QUIRE_SOURCE": "/mnt/archive-not-mounted-here", "QUIRE_CATALOG": f"sqlite:///{tmp_path / 'catalog.db'}"}
    proc = dagster("job", "execute", "-m", "quire_assets.definitions", "-j", "index_job", env=env, cwd=tmp_path,
                   check=False)
    assert proc.returncode != 0
    assert "the source folder /mnt/archive-not-mounted-here does not exist or is not a folder" in proc.stdout + proc.stderr
