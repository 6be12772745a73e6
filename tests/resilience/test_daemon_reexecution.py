"""A run launched by the daemon and killed mid-step, then re-executed from failure as the UI does
it (issue 18, item 2): ``dagster dev`` on 127.0.0.1 (webserver, daemon, queued run coordinator,
default run launcher), the run submitted through GraphQL, its run worker process killed with
SIGKILL while ``catalog_entries`` writes (the code server that started it marks the run failed),
then the UI's "Re-execute from failure" through the same GraphQL. The catalog must equal an
undisturbed ingest's, and the steps that had succeeded are not run again.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus
from dagster_graphql import DagsterGraphQLClient

from quire_assets.runtime.instance import open_instance
from tests.deploy.conftest import ROOT
from tests.deploy.test_celery import BIN, dagster
from tests.resilience.test_kill_and_resume import _catalog_instances, _env, documents
from tests.s3.conftest import free_port

REEXECUTE = """mutation($parentRunId: String!) {
  launchPipelineReexecution(reexecutionParams: {parentRunId: $parentRunId, strategy: FROM_FAILURE}) {
    __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message } } }"""
ENDED = (DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED)


def run_worker_pid(instance: DagsterInstance, run_id: str) -> int | None:
    """The process executing the run, as the run's own "Started process for run" event names it."""
    for event in instance.all_logs(run_id, of_type=DagsterEventType.ENGINE_EVENT):
        pid = event.dagster_event.event_specific_data.metadata.get("pid")
        if pid is not None:
            return int(pid.value)
    return None


def wait_for(condition, what: str, seconds: float = 180, every: float = 0.01):
    deadline = time.monotonic() + seconds
    while not (result := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(every)
    return result


def test_daemon_launched_run_killed_mid_step_then_reexecuted_from_failure(archive, reference, tmp_path, monkeypatch):
    home, dagster_home = tmp_path / "home", tmp_path / "dagster"
    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home))
    instance = open_instance(os.environ["DAGSTER_HOME"])  # the dagster.yaml quire writes: the runs' events stored in batches
    env = {**_env(home), "DAGSTER_HOME": str(dagster_home), "QUIRE_SOURCE": str(archive),
           "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS": "true"}
    dagster("job", "execute", "-m", "quire_assets.definitions", "-j", "index_job", env=env, cwd=tmp_path)
    port = free_port()
    log = open(tmp_path / "dagster-dev.log", "wb")  # noqa: SIM115 (lives as long as the server)
    server = subprocess.Popen([str(BIN / "dagster"), "dev", "-h", "127.0.0.1", "-p", str(port),
                               "-w", str(ROOT / "workspace.yaml")], cwd=ROOT, env=env, stdout=log,
                              stderr=subprocess.STDOUT, start_new_session=True)
    try:
        client = DagsterGraphQLClient("127.0.0.1", port_number=port)

        def up() -> bool:
            try:
                client._execute("{ version }")  # noqa: SLF001 (the client has no public ping)
                return True
            except Exception:  # noqa: BLE001 - not listening yet
                assert server.poll() is None, (tmp_path / "dagster-dev.log").read_text()[-3000:]
                return False

        wait_for(up, "the webserver", 120)
        keys = instance.get_dynamic_partitions("accessions")
        assert len(keys) == 1200
        run_id = client.submit_job_execution(
            "ingest_job", repository_location_name="quire", repository_name="__repository__",
            tags={"dagster/asset_partition_range_start": keys[0], "dagster/asset_partition_range_end": keys[-1]})

        # Mid-step: the daemon launched the run, and its catalog_entries step has written part of it.
        pid = wait_for(lambda: run_worker_pid(instance, run_id), "the run worker")
        wait_for(lambda: _catalog_instances(home) >= 1, "the first catalog writes")
        os.kill(pid, signal.SIGKILL)
        # The code server that started the worker sees it exit and fails the run.
        wait_for(lambda: instance.get_run_by_id(run_id).status in ENDED, "the killed run to end", 60)
        assert instance.get_run_by_id(run_id).status == DagsterRunStatus.FAILURE
        done = {e.step_key for e in instance.all_logs(run_id, of_type=DagsterEventType.STEP_SUCCESS)}
        assert "catalog_entries" not in done and "instance_records" in done
        assert _catalog_instances(home) < len(reference["instances"])

        answer = client._execute(REEXECUTE, {"parentRunId": run_id})  # noqa: SLF001
        assert answer["launchPipelineReexecution"]["__typename"] == "LaunchRunSuccess", answer
        child = answer["launchPipelineReexecution"]["run"]["runId"]
        wait_for(lambda: instance.get_run_by_id(child).status in ENDED, "the re-executed run", 300)
        assert instance.get_run_by_id(child).status == DagsterRunStatus.SUCCESS
        # From failure: the steps that had succeeded are not run again, their outputs are read back.
        started = {e.step_key for e in instance.all_logs(child, of_type=DagsterEventType.STEP_START)}
        assert "catalog_entries" in started and not started & (done - {"catalog_entries"})
        assert documents(home) == reference
        checks = [e.dagster_event.event_specific_data for e in instance.all_logs(
            child, of_type=DagsterEventType.ASSET_CHECK_EVALUATION)]
        assert checks and all(c.passed for c in checks)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
