"""The researcher API's speed on a catalog of 50,000 series, beside the same query through the
``Catalog`` object in process.

    python benchmarks/api.py [--series 50000] [--requests 500] [--seconds 10] [--clients 16] [--workers 1 2]

The catalog is made once (cached under benchmarks/.cache): the sample archive's real series and
study documents, cloned with new UIDs and varied modality, manufacturer and slice thickness. The
query is an indexed series filter, limit 100, asked with a researcher's key (so the PHI policy is
applied to every document). Latency: one client, one request after the other. Throughput:
``--clients`` concurrent clients (asyncio, one process, on the same machine as the server).
Prints a table; nothing here is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from quire_assets.catalog import open_catalog
from quire_assets.catalog.pages import page
from quire_assets.research.researchers import add_researcher

CACHE = Path(__file__).parent / ".cache"
QUIRE = str(Path(sys.executable).with_name("quire"))
WHERE = {"modality": "CT", "manufacturer": "GE MEDICAL SYSTEMS", "slice_thickness": {"$lt": 1.5}}


def build_catalog(n_series: int) -> Path:
    path = CACHE / f"api-{n_series}" / "catalog.db"
    if path.exists():
        return path
    work = Path(tempfile.mkdtemp())
    env = {**os.environ, "QUIRE_HOME": str(work / "home")}
    subprocess.run([QUIRE, "sample-archive", str(work / "archive")], env=env, check=True, capture_output=True)
    subprocess.run([QUIRE, "ingest", str(work / "archive")], env=env, check=True, capture_output=True)
    with open_catalog(f"sqlite:///{work / 'home' / 'catalog.db'}") as sample:
        series_templates = [s for s in sample.find("series") if s.get("modality") == "CT"]
        study_templates = sample.find("studies")
    rng = random.Random(5)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open_catalog(f"sqlite:///{path}") as catalog, catalog.transaction():
        studies, series = [], []
        for s in range(n_series):
            st = s // 3
            study_uid, series_uid = f"1.2.826.0.1.3680043.10.{st}", f"1.2.826.0.1.3680043.11.{s}"
            accession, patient = f"ACC{st:07d}", f"PAT-{st // 2:06d}"
            if s % 3 == 0:
                t = rng.choice(study_templates)
                studies.append({**t, "study_instance_uid": study_uid, "accession_number": accession,
                                "partition_key": accession, "patient_id": patient, "patient_name": f"NAME^{patient}",
                                "metadata": {**t.get("metadata", {}), "StudyInstanceUID": study_uid,
                                             "PatientID": patient, "PatientName": f"NAME^{patient}"}})
            t = rng.choice(series_templates)
            series.append({**t, "series_instance_uid": series_uid, "study_instance_uid": study_uid,
                           "accession_number": accession, "partition_key": accession, "patient_id": patient,
                           "modality": rng.choice(["CT", "CT", "CT", "MR", "PT", "DX"]),
                           "manufacturer": rng.choice(["GE MEDICAL SYSTEMS", "SIEMENS", "Philips", "TOSHIBA"]),
                           "slice_thickness": rng.choice([0.625, 1.0, 1.25, 2.5, 3.0, 5.0]),
                           "metadata": {**t.get("metadata", {}), "SeriesInstanceUID": series_uid}})
        catalog.upsert("studies", studies)
        catalog.upsert("series", series)
    shutil.rmtree(work)
    return path


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered) * 1000, ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000


def in_process(catalog_path: Path, n: int) -> dict:
    with open_catalog(f"sqlite:///{catalog_path}") as catalog:
        for _ in range(20):
            page(catalog, "series", WHERE, limit=100)
        times = []
        for _ in range(n):
            start = time.perf_counter()
            docs, _ = page(catalog, "series", WHERE, limit=100)
            times.append(time.perf_counter() - start)
    p50, p99 = percentiles(times)
    return {"p50": p50, "p99": p99, "rps": len(times) / sum(times), "rows": len(docs)}


async def _load(url: str, key: str, clients: int, seconds: float) -> int:
    """``clients`` clients, each with its own connection, asking the query over and over. The
    connections are opened one after the other (each with a first request): opened all at once,
    one uvicorn worker process can accept them all and leave the other idle."""
    params = {"where": json.dumps(WHERE), "limit": "100"}
    headers = {"Authorization": f"Bearer {key}"}
    sessions = [httpx.AsyncClient(base_url=url, headers=headers, timeout=60, limits=httpx.Limits(max_connections=1))
                for _ in range(clients)]
    for session in sessions:
        (await session.get("/api/v1/series", params=params)).raise_for_status()
        await asyncio.sleep(0.02)
    done = 0
    stop = time.perf_counter() + seconds

    async def one(session: httpx.AsyncClient) -> None:
        nonlocal done
        while time.perf_counter() < stop:
            (await session.get("/api/v1/series", params=params)).raise_for_status()
            done += 1

    await asyncio.gather(*(one(s) for s in sessions))
    for session in sessions:
        await session.aclose()
    return done


@contextmanager
def serving(catalog_path: Path, *args: str) -> Iterator[Any]:
    """``quire serve`` on the catalog, jobs left to no one: the tests' ``Server`` (a free loopback
    port, up once /health answers)."""
    from tests.api.conftest import Server

    env = {**os.environ, "QUIRE_PHI_SALT": "benchmark", "QUIRE_HOME": str(catalog_path.parent)}
    server = Server(env, catalog_path.parent, "--catalog", f"sqlite:///{catalog_path}", "--no-worker", *args)
    try:
        yield server
    finally:
        server.stop()


def over_http(catalog_path: Path, key: str, workers: int, n: int, clients: int, seconds: float) -> dict:
    with serving(catalog_path, "--workers", str(workers)) as server:
        with server.client(key) as client:
            params = {"where": json.dumps(WHERE), "limit": "100"}
            for _ in range(50):
                rows = client.get("/api/v1/series", params=params).json()["count"]
            times = []
            for _ in range(n):
                start = time.perf_counter()
                client.get("/api/v1/series", params=params).raise_for_status()
                times.append(time.perf_counter() - start)
        done = asyncio.run(_load(server.url, key, clients, seconds))
    p50, p99 = percentiles(times)
    return {"p50": p50, "p99": p99, "rps": done / seconds, "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=50_000)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.api.conftest.Server
    catalog_path = build_catalog(args.series)
    with open_catalog(f"sqlite:///{catalog_path}") as catalog:
        catalog.delete("researchers", {})
        _, key = add_researcher(catalog, "bench")
        matching = catalog.count("series", WHERE)
        total = catalog.count("series")
    print(f"catalog: {total:,} series ({matching:,} match {json.dumps(WHERE)}), {catalog_path}")
    print(f"latency: {args.requests} sequential requests; throughput: {args.clients} concurrent clients for "
          f"{args.seconds:g} s; {os.cpu_count()} cores\n")
    rows = [("Catalog object, in process (baseline)", in_process(catalog_path, args.requests))]
    for workers in args.workers:
        rows.append((f"quire serve, {workers} uvicorn worker(s), HTTP", over_http(
            catalog_path, key, workers, args.requests, args.clients, args.seconds)))
    print(f"{'':44}  {'p50 ms':>8}  {'p99 ms':>8}  {'req/s':>8}  rows")
    for label, r in rows:
        print(f"{label:44}  {r['p50']:8.2f}  {r['p99']:8.2f}  {r['rps']:8.0f}  {r['rows']}")
    print("\n(the baseline's req/s is one thread's queries per second; the servers' are with "
          f"{args.clients} clients)")


if __name__ == "__main__":
    main()
