"""A researcher job while the folder sensor fires (issue 18, item 3), with the real daemon:
``dagster-daemon run`` evaluates ``researcher_requests`` and ``folder_arrival`` on threads of their
own and queues their runs; the queue is then released at once (default run launcher, queued run
coordinator), so that both kinds of run write the same accessions at the same time, whatever
order the sensors' ticks came in. Nothing reports "database is locked", the job ends
with the right statuses, and the catalog equals an undisturbed ingest of the final folder."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

from quire_assets.catalog import open_catalog
from quire_assets.dicom.sample import SeriesPlan, StudyPlan, write_series
from tests.cli.test_ingest_e2e import _restamp, quire
from tests.deploy.conftest import ROOT
from tests.deploy.test_celery import BIN, dagster
from tests.resilience.test_daemon_reexecution import wait_for
from tests.resilience.test_kill_and_resume import _env, documents

DAEMON_YAML = """
sensors:
  use_threads: true
  num_workers: 4
run_coordinator:
  module: dagster.core.run_coordinator
  class: QueuedRunCoordinator
  config:
    max_concurrent_runs: {runs}
"""
FINAL = ("done", "partial", "failed")


def without_tags(docs: dict[str, list[dict]]) -> dict[str, list[dict]]:
    return {c: [{k: v for k, v in d.items() if k != "collection_ids"} for d in ds] for c, ds in docs.items()}


class Daemon:
    """``dagster-daemon run`` on the instance in ``dagster_home``, allowed ``runs`` runs at once (0: runs stay queued)."""

    def __init__(self, dagster_home: Path, instance_yaml: str, runs: int, env: dict, log: Path):
        (dagster_home / "dagster.yaml").write_text(instance_yaml + DAEMON_YAML.format(runs=runs))
        self.log = log
        with log.open("ab") as out:
            self.process = subprocess.Popen([str(BIN / "dagster-daemon"), "run", "-w", str(ROOT / "workspace.yaml")],
                                            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                            start_new_session=True)

    def wait_for(self, condition, what: str) -> None:
        """``wait_for`` that fails at once, with the daemon's log, if the daemon dies."""
        def alive_and_done() -> bool:
            assert self.process.poll() is None, self.log.read_text()[-3000:]
            return condition()

        wait_for(alive_and_done, what, 300, every=0.5)  # each look reads the run storage and the catalog

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=60)


def test_researcher_job_while_the_folder_sensor_fires(archive, tmp_path, monkeypatch):
    """On the 1,200-accession radiograph archive: the job asks for 300 accessions whose files the
    scanner has just sent again (changed), so both sensors' runs cover the same 300 partitions and
    take seconds each; a new accession arrives too."""
    folder, home, dagster_home = tmp_path / "archive", tmp_path / "home", tmp_path / "dagster"
    shutil.copytree(archive, folder)
    env = {**_env(home), "DAGSTER_HOME": str(dagster_home), "QUIRE_SOURCE": str(folder),
           "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS": "true"}  # as the README runs the daemon
    quire("ingest", str(folder), "--workers", "2", env=env, cwd=tmp_path)
    instance_yaml = (dagster_home / "dagster.yaml").read_text()  # quire's instance (it wrote it)

    asked = [f"XR{a:06d}" for a in range(1, 301)]
    with open_catalog(f"sqlite:///{home}/catalog.db") as catalog:
        resent = [d["uri"] for d in catalog.find("instances", {"accession_number": {"$in": asked}}, ["uri"])]
    for uri in resent:
        _restamp(Path(uri), Path(uri), SeriesDescription="RE-SENT BY THE SCANNER")
    study = StudyPlan(patient_index=5000, accession="NEW-0042", date="2001-02-03", description="CT CHEST")
    study.series.append(SeriesPlan(7001, "NEW", "CT", 3, 1.0, 0.7))
    write_series(folder, study, study.series[0], 16, annotation=False)
    job = quire("jobs", "submit", "--researcher", "bob", "--accessions", ",".join([*asked, "ABSENT-9"]),
                "--collection", "cohort-x", "--format", "json", env=env, cwd=tmp_path)
    job_id = json.loads(job.stdout)["job_id"]

    dagster("sensor", "start", "folder_arrival", "-w", str(ROOT / "workspace.yaml"), env=env, cwd=ROOT)
    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home))
    instance = DagsterInstance.get()
    log = tmp_path / "daemon.log"

    def sensors_queued() -> set[str]:
        return {r.tags.get("dagster/sensor_name")
                for r in instance.get_runs(RunsFilter(statuses=[DagsterRunStatus.QUEUED]))}

    # Both sensors evaluate on the daemon's threads and queue their runs; none may start yet.
    daemon = Daemon(dagster_home, instance_yaml, 0, env, log)
    try:
        daemon.wait_for(lambda: {"researcher_requests", "folder_arrival"} <= sensors_queued(),
                        "both sensors' runs in the queue")
    finally:
        daemon.stop()
    # The queue released: the runs of both sensors start side by side.
    daemon = Daemon(dagster_home, instance_yaml, 4, env, log)

    def finished() -> bool:
        with open_catalog(f"sqlite:///{home}/catalog.db") as catalog:
            status = catalog.get("jobs", job_id)["status"]
            arrived = catalog.count("studies", {"accession_number": "NEW-0042"})
        runs = instance.get_runs()
        return status in FINAL and arrived and runs and all(r.is_finished for r in runs)

    try:
        daemon.wait_for(finished, "the job's final status, the new study and the end of every run")
    finally:
        daemon.stop()

    assert "locked" not in log.read_text()
    runs = instance.get_runs(RunsFilter(job_name="ingest_job"))
    assert {r.status for r in runs} == {DagsterRunStatus.SUCCESS}
    spans = {}
    for record in instance.get_run_records(RunsFilter(job_name="ingest_job")):
        sensor = record.dagster_run.tags.get("dagster/sensor_name")
        spans.setdefault(sensor, []).append((record.start_time, record.end_time))
    assert {"researcher_requests", "folder_arrival"} <= set(spans)
    # The two sensors' runs were executing at the same time.
    assert any(a0 < b1 and b0 < a1 for a0, a1 in spans["researcher_requests"] for b0, b1 in spans["folder_arrival"])
    with open_catalog(f"sqlite:///{home}/catalog.db") as catalog:
        final = catalog.get("jobs", job_id)
        tagged = sorted(s["accession_number"] for s in catalog.find("studies", {"collection_ids": "cohort-x"}))
    assert {a: s["status"] for a, s in final["accessions"].items()} == {**dict.fromkeys(asked, "done"),
                                                                        "ABSENT-9": "not_found"}
    assert tagged == asked
    reference = tmp_path / "undisturbed"
    quire("ingest", str(folder), "--workers", "2", env=_env(reference), cwd=tmp_path)
    assert without_tags(documents(home)) == without_tags(documents(reference))
