"""Catalog write and query speed, side by side with a naive one-INSERT-per-row loop.

    python benchmarks/catalog.py [--instances 100000]

Prints a table; nothing here is asserted.
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import tempfile
import time
from pathlib import Path

from quire_assets.catalog import open_catalog


def instance_docs(n: int, per_series: int = 100) -> list[dict]:
    rng = random.Random(7)
    docs = []
    for i in range(n):
        s = i // per_series
        docs.append({
            "sop_instance_uid": f"1.2.826.0.1.3680043.8.498.{i}",
            "series_instance_uid": f"1.2.826.0.1.3680043.8.498.9{s}",
            "study_instance_uid": f"1.2.826.0.1.3680043.8.498.8{s // 3}",
            "accession_number": f"ACC{s // 3:06d}", "partition_key": f"ACC{s // 3:06d}",
            "uri": f"/archive/LIDC-IDRI-{s // 3:04d}/{s}/1-{i % per_series:03d}.dcm",
            "uris": [f"/archive/LIDC-IDRI-{s // 3:04d}/{s}/1-{i % per_series:03d}.dcm"],
            "instance_number": i % per_series + 1,
            "metadata": {"SliceLocation": -rng.random() * 300, "ImagePositionPatient": [-180.0, -180.0, -i * 1.25],
                         "ImageType": ["ORIGINAL", "PRIMARY", "AXIAL"], "InstanceNumber": i % per_series + 1},
        })
    return docs


def series_docs(n_series: int) -> list[dict]:
    rng = random.Random(11)
    return [{
        "series_instance_uid": f"1.2.826.0.1.3680043.8.498.9{s}", "study_instance_uid": f"st{s // 3}",
        "modality": rng.choice(["CT", "CT", "CT", "MR", "DX"]),
        "manufacturer": rng.choice(["GE MEDICAL SYSTEMS", "SIEMENS", "Philips", "TOSHIBA"]),
        "slice_thickness": rng.choice([0.625, 1.0, 1.25, 2.5, 3.0, 5.0]), "num_instances": 100,
        "metadata": {"KVP": rng.choice([100.0, 120.0, 140.0])}, "partition_key": f"ACC{s // 3:06d}",
    } for s in range(n_series)]


def naive_inserts(path: Path, docs: list[dict]) -> float:
    """The seed's way: one INSERT and one commit per row."""
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE instances (k TEXT PRIMARY KEY, doc TEXT)")
    start = time.perf_counter()
    for d in docs:
        conn.execute("INSERT OR REPLACE INTO instances VALUES (?, ?)", (d["sop_instance_uid"], json.dumps(d)))
        conn.commit()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--instances", type=int, default=100_000)
    parser.add_argument("--naive", type=int, default=10_000, help="rows for the naive loop (it is slow)")
    parser.add_argument("--series", type=int, default=50_000, help="series documents for the query timing")
    args = parser.parse_args()
    docs = instance_docs(args.instances)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        naive_s = naive_inserts(tmp / "naive.db", docs[: args.naive])
        rows.append(("naive INSERT+commit per row", args.naive, naive_s, args.naive / naive_s))
        catalog = open_catalog(f"sqlite:///{tmp / 'catalog.db'}")
        start = time.perf_counter()
        with catalog.transaction():
            catalog.upsert("instances", docs)
        bulk_s = time.perf_counter() - start
        rows.append(("quire upsert (SQLite, batched)", args.instances, bulk_s, args.instances / bulk_s))
        start = time.perf_counter()
        with catalog.transaction():
            catalog.upsert("instances", docs)
        again_s = time.perf_counter() - start
        rows.append(("quire upsert again (all replaced)", args.instances, again_s, args.instances / again_s))
        catalog.upsert("series", series_docs(args.series))
        query = {"modality": "CT", "slice_thickness": {"$lt": 1.5}, "manufacturer": "GE MEDICAL SYSTEMS"}
        unindexed = {"metadata.KVP": 120.0, "series_number": None}
        timings = {}
        for name, flt in (("indexed", query), ("unindexed (metadata.KVP)", unindexed)):
            start = time.perf_counter()
            for _ in range(20):
                found = catalog.find("series", flt)
            timings[name] = ((time.perf_counter() - start) / 20, len(found))
        plan = catalog.explain("series", query)
    print(f"\nCatalog writes ({args.instances:,} instance documents; naive loop on {args.naive:,})")
    print(f"{'method':<36}{'rows':>10}{'seconds':>10}{'rows/s':>12}")
    for name, n, secs, rate in rows:
        print(f"{name:<36}{n:>10,}{secs:>10.2f}{rate:>12,.0f}")
    print(f"speed-up over naive: {rows[1][3] / rows[0][3]:.1f}x")
    print(f"\nSeries query on {args.series:,} series: {json.dumps(query)}")
    print(f"{'query':<36}{'ms':>10}{'matches':>10}")
    for name, (secs, n) in timings.items():
        print(f"{name:<36}{secs * 1000:>10.2f}{n:>10,}")
    print(f"plan: {plan}")


if __name__ == "__main__":
    main()
