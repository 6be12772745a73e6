"""Wall time of one ingest run over the same accession partitions, launched three ways.

    python benchmarks/launched_runs.py [--accessions 600]

On a radiograph-shaped archive (``ingest.py --shape dx``, cached), with a DAGSTER_HOME on Quire's
SQLite storage:

- ``quire ingest --workers 1``: the command line's run (created with the code location's origin,
  executed in the command's process), from its ``--timings``;
- launched as the UI launches it: ``dagster dev`` (webserver and daemon, on 127.0.0.1), the run
  submitted through GraphQL to the queue, dequeued by the daemon and started by the run launcher
  in a process of its own; once with ``QUIRE_EXECUTOR=multiprocess`` (a process per step: Dagster's
  default executor, what ingest runs used before issue 12) and once with the default in-process
  executor.

For the second of two launched runs (the first also waits for the daemon to warm up), from the
run's record and events: created → ended (what a user waits for), of which creating (the
webserver logs the run's planned events), launching (the daemon's queue and the launcher's new
process) and started → ended (the run's own process). Without
``DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS=true`` in the webserver's environment (README),
creating takes about 19 s here: a planned event per asset and partition, one by one. Nothing is asserted; the table is the output.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from ingest import dx_archive_for  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli_run(archive: Path, env: dict) -> float:
    out = subprocess.run([str(Path(sys.executable).with_name("quire")), "ingest", str(archive), "--workers", "1",
                          "--timings"], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stderr.strip().splitlines()[-1])["runs_s"]


def launched_run(env: dict, executor: str) -> dict[str, float]:
    """Start ``dagster dev``, submit one ingest_job run over every partition, wait for its end."""
    from dagster import DagsterInstance, DagsterRunStatus
    from dagster_graphql import DagsterGraphQLClient

    port = free_port()
    env = {**env, "QUIRE_EXECUTOR": executor}
    server = subprocess.Popen([str(Path(sys.executable).with_name("dagster")), "dev", "-h", "127.0.0.1", "-p",
                               str(port), "-w", str(ROOT / "workspace.yaml")], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        client = DagsterGraphQLClient("127.0.0.1", port_number=port)
        deadline = time.time() + 120
        while True:
            try:
                client._execute("{ version }")  # noqa: SLF001 (the client has no public ping)
                break
            except Exception:
                if time.time() > deadline:
                    raise
                time.sleep(1)
        os.environ["DAGSTER_HOME"] = env["DAGSTER_HOME"]
        instance = DagsterInstance.get()
        keys = instance.get_dynamic_partitions("accessions")
        for _ in range(2):  # the first run also waits for the daemon and the code server to warm up
            run_id = client.submit_job_execution(
                "ingest_job", repository_location_name="quire", repository_name="__repository__",
                tags={"dagster/asset_partition_range_start": keys[0], "dagster/asset_partition_range_end": keys[-1]})
            while True:
                record = instance.get_run_record_by_id(run_id)
                if record.dagster_run.status in (DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE,
                                                 DagsterRunStatus.CANCELED):
                    break
                time.sleep(0.2)
            status = record.dagster_run.status
            assert status == DagsterRunStatus.SUCCESS, f"run {run_id} ended {status}"
        stamps = {e.dagster_event_type.value: e.timestamp for e in instance.all_logs(run_id) if e.dagster_event_type}
        created = record.create_timestamp.timestamp()
        return {"queued_to_end_s": record.end_time - created,
                "creating_s": stamps["PIPELINE_ENQUEUED"] - created,  # the run's planned events
                "launching_s": record.start_time - stamps["PIPELINE_ENQUEUED"],
                "started_to_end_s": record.end_time - record.start_time}
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--accessions", type=int, default=600)
    args = parser.parse_args()
    archive = dx_archive_for(args.accessions)
    files = sum(1 for p in archive.rglob("*") if p.is_file())
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "QUIRE_HOME": str(Path(tmp) / "home"), "DAGSTER_HOME": str(Path(tmp) / "dagster")}
        env.pop("QUIRE_CATALOG", None)
        env["QUIRE_SOURCE"] = str(archive)
        # As the README says to run `dagster dev`: the webserver, which creates runs launched from
        # the UI, logs one planned event per asset for a partition range, not one per partition.
        env.setdefault("DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS", "true")
        cli = cli_run(archive, env)
        rows = [("quire ingest --workers 1 (one run, in its process)", cli, 0.0, 0.0, cli)]
        for executor in ("multiprocess", "in_process"):
            t = launched_run(env, executor)
            rows.append((f"dagster dev, daemon-launched, {executor} executor", t["queued_to_end_s"],
                         t["creating_s"], t["launching_s"], t["started_to_end_s"]))
    print(f"\nOne ingest_job run over {args.accessions:,} accession partitions ({files:,} DX files), 2 cores")
    print(f"{'how the run was launched':<55}{'created→end s':>14}{'creating s':>12}{'launching s':>13}"
          f"{'start→end s':>13}")
    for name, total, create, launch, own in rows:
        print(f"{name:<55}{total:>14.1f}{create:>12.1f}{launch:>13.1f}{own:>13.1f}")


if __name__ == "__main__":
    main()
