"""``ingest_job`` on Dagster's executors: in process, multiprocess, and Celery with 1 and 2 workers.

    python benchmarks/distributed.py [--accessions 5000] [--runs 4]

The same radiograph-shaped archive (``ingest.py``'s dx archive: 1 to 3 images per accession,
cached), indexed once by ``index_job``. For each executor, a fresh catalog and ``--runs`` runs of
``ingest_job``, each over an equal range of the accessions, started at once by ``dagster job
execute`` as a backfill's runs would be. Wall time runs from their start to the end of the last
one. Celery workers (``--concurrency 1`` each) use a redis-server the script starts on
127.0.0.1; the instance is a DAGSTER_HOME as ``quire`` makes it (SQLite storage with batched
event writes), and runs log at WARNING as ``quire``'s do. Everything shares
the same 2 cores, so the ideal ratio from 1 to 2 workers is 2×. Prints a table; nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from ingest import dx_archive_for  # noqa: E402

from quire_assets.catalog import open_catalog  # noqa: E402
from quire_assets.runtime.instance import open_instance  # noqa: E402
from tests.deploy.test_celery import Workers  # noqa: E402
from tests.s3.conftest import free_port  # noqa: E402

BIN = Path(sys.executable).parent


def dagster(*args: str, env: dict, log: Path) -> subprocess.Popen:
    """``dagster`` with its (long) output in a file: a pipe nobody reads would stall it."""
    return subprocess.Popen([str(BIN / "dagster"), *args], env=env, stdout=open(log, "wb"),  # noqa: SIM115
                            stderr=subprocess.STDOUT)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--accessions", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=4)
    args = parser.parse_args()
    archive = dx_archive_for(args.accessions)
    files = sum(1 for p in archive.rglob("*") if p.is_file())
    work = Path(tempfile.mkdtemp(prefix="quire-distributed-"))
    redis_port = free_port()
    redis = subprocess.Popen([shutil.which("redis-server") or "redis-server", "--bind", "127.0.0.1", "--port",
                              str(redis_port), "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL)
    (work / "dagster").mkdir()
    (work / "logs").mkdir()
    # The instance `quire` makes in a new DAGSTER_HOME (batched event writes), and the console log
    # level its runs use: what differs between the rows is then the executor alone.
    os.environ["DAGSTER_HOME"] = str(work / "dagster")
    open_instance(os.environ["DAGSTER_HOME"])
    run_config = work / "run_config.yaml"
    run_config.write_text("loggers:\n  console:\n    config:\n      log_level: WARNING\n")
    base = {**os.environ, "DAGSTER_HOME": str(work / "dagster"), "QUIRE_HOME": str(work / "home"),
            "QUIRE_SOURCE": str(archive), "QUIRE_CELERY_BROKER": f"redis://127.0.0.1:{redis_port}/0",
            "QUIRE_CELERY_BACKEND": f"redis://127.0.0.1:{redis_port}/1"}
    rows = []
    try:
        index = dagster("job", "execute", "-m", "quire_assets.definitions", "-j", "index_job",
                        env={**base, "QUIRE_CATALOG": f"sqlite:///{work / 'index-only.db'}"}, log=work / "logs" / "index.log")
        assert index.wait() == 0, (work / "logs" / "index.log").read_text()[-3000:]
        code = ("from dagster import DagsterInstance; "
                "print('\\n'.join(DagsterInstance.get().get_dynamic_partitions('accessions')))")
        keys = subprocess.run([sys.executable, "-c", code], env=base, capture_output=True, text=True,
                              check=True).stdout.split()
        size = -(-len(keys) // args.runs)
        ranges = [(keys[i], keys[min(i + size, len(keys)) - 1]) for i in range(0, len(keys), size)]
        for label, executor, n_workers in (("in process (baseline)", "in_process", 0),
                                           ("multiprocess", "multiprocess", 0),
                                           ("Celery, 1 worker", "celery", 1), ("Celery, 2 workers", "celery", 2)):
            catalog = f"sqlite:///{work / f'{executor}-{n_workers}.db'}"
            env = {**base, "QUIRE_EXECUTOR": executor, "QUIRE_CATALOG": catalog}
            workers = Workers(env, work / "logs")
            for i in range(n_workers):
                workers.start(f"w{i}")
            try:
                start = time.perf_counter()
                logs = [work / "logs" / f"{executor}-{n_workers}-run{i}.log" for i in range(len(ranges))]
                runs = [dagster("job", "execute", "-m", "quire_assets.definitions", "-j", "ingest_job",
                                "-c", str(run_config), "--tags",
                                json.dumps({"dagster/asset_partition_range_start": first,
                                            "dagster/asset_partition_range_end": last}), env=env, log=log)
                        for (first, last), log in zip(ranges, logs, strict=True)]
                failed = [log.read_text()[-2000:] for p, log in zip(runs, logs, strict=True) if p.wait() != 0]
                seconds = time.perf_counter() - start
            finally:
                workers.stop()
            with open_catalog(catalog) as cat:
                instances = cat.count("instances")
            rows.append((label, seconds, instances, len(failed)))
            if failed:
                print(f"{label}: {len(failed)} run(s) failed:\n{failed[0]}", file=sys.stderr)
    finally:
        redis.terminate()
        redis.wait()
    one = next(r[1] for r in rows if r[0] == "Celery, 1 worker")
    print(f"\n{files:,} files, {len(keys):,} accessions in {len(ranges)} runs started at once; {os.cpu_count()} cores\n")
    print("| executor | wall s | files/s | instances cataloged | failed runs | vs 1 Celery worker |")
    print("|---|---:|---:|---:|---:|---:|")
    for label, seconds, instances, failed in rows:
        ratio = f"{one / seconds:.2f}×" if label.startswith("Celery") else ""
        print(f"| {label} | {seconds:.1f} | {files / seconds:,.0f} | {instances:,} | {failed} | {ratio} |")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
