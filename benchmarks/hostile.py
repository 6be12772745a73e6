"""What a hostile researcher's requests cost the service, and whether ``/health`` still answers
while they run, beside the same service at rest (issue 27, finding 9).

    python benchmarks/hostile.py [--series 50000] [--seconds 10] [--clients 4]

The catalog is benchmarks/api.py's (cached under benchmarks/.cache). Hostile clients, each in a
loop for ``--seconds``: ten field names no document has, a backtracking ``$regex``, and keys with a
known key id but a wrong secret. ``/health`` is asked every 50 ms meanwhile. Prints a table;
nothing here is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # benchmarks.api, tests.api.conftest.Server

from benchmarks.api import build_catalog, serving  # noqa: E402
from quire_assets.catalog import open_catalog  # noqa: E402
from quire_assets.research.researchers import add_researcher  # noqa: E402

UNKNOWN = {"where": json.dumps({f"metadata.Nope{i}": 1 for i in range(10)})}
BACKTRACKING = {"where": json.dumps({"series_description": {"$regex": "^(a|aa)+$"}})}


async def hostile(url: str, key: str, kind: str, seconds: float, latencies: list[float]) -> None:
    key_id = key.split("_")[1]
    headers = {"Authorization": f"Bearer {key if kind != 'auth' else f'qk_{key_id}_wrong-secret'}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=120) as client:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            start = time.perf_counter()
            if kind == "unknown":
                await client.get("/api/v1/series", params=UNKNOWN)
            elif kind == "regex":
                await client.get("/api/v1/series/count", params=BACKTRACKING)
            else:
                await client.get("/api/v1/series/count")
            latencies.append(time.perf_counter() - start)


async def health(url: str, seconds: float) -> list[float]:
    times = []
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            start = time.perf_counter()
            (await client.get("/health")).raise_for_status()
            times.append(time.perf_counter() - start)
            await asyncio.sleep(0.05)
    return times


async def run(url: str, key: str, kinds: list[str], clients: int, seconds: float) -> tuple[list[float], dict]:
    latencies: dict[str, list[float]] = {kind: [] for kind in kinds}
    tasks = [hostile(url, key, kind, seconds, latencies[kind]) for kind in kinds for _ in range(clients)]
    results = await asyncio.gather(health(url, seconds), *tasks)
    return results[0], latencies


def figures(times: list[float]) -> str:
    if not times:
        return "–"
    return f"{statistics.median(times) * 1000:.0f} / {max(times) * 1000:.0f} ms ({len(times)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=50_000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()
    catalog_path = build_catalog(args.series)
    with open_catalog(f"sqlite:///{catalog_path}") as catalog:
        catalog.delete("researchers", {})
        _, key = add_researcher(catalog, "bench")
    rows = []
    with serving(catalog_path) as server:
        httpx.get(f"{server.url}/api/v1/series/count", headers={"Authorization": f"Bearer {key}"}, timeout=600)
        rest, _ = asyncio.run(run(server.url, key, [], args.clients, args.seconds))
        rows.append(("/health, the service at rest (baseline)", figures(rest), ""))
        for kind in ("unknown", "regex", "auth"):
            during, hostile_times = asyncio.run(run(server.url, key, [kind], args.clients, args.seconds))
            rows.append((f"/health while {args.clients} clients send {kind} requests", figures(during),
                         figures(hostile_times[kind])))
    print(f"catalog: {args.series:,} series; median / slowest (count), {args.seconds:g} s each\n")
    print(f"| {'what':<52} | {'/health':>22} | {'the hostile requests':>24} |")
    print(f"|{'-' * 54}|{'-' * 24}|{'-' * 26}|")
    for what, health_figures, hostile_figures in rows:
        print(f"| {what:<52} | {health_figures:>22} | {hostile_figures:>24} |")


if __name__ == "__main__":
    main()
