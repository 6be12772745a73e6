"""``quire ingest`` killed with SIGKILL, then run again: the catalog equals an undisturbed ingest's.

The archive: 1,200 radiograph accessions of 1 to 3 small images (2,400 files), enough for the
header reads and the runs to take a few seconds each on two cores, so that a kill lands inside
them. The kill point is chosen by watching the command's own state (rows in the source index,
documents in the catalog), not by a sleep.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from quire_assets.catalog import COLLECTIONS, open_catalog
from tests.cli.test_ingest_e2e import QUIRE, quire

IGNORED = {"_id", "updated_at", "partition_version"}


def documents(home: Path) -> dict[str, list[dict]]:
    with open_catalog(f"sqlite:///{home}/catalog.db") as catalog:
        return {c: sorted(({k: v for k, v in d.items() if k not in IGNORED} for d in catalog.find(c)),
                          key=lambda d: json.dumps(d, sort_keys=True, default=str))
                for c in COLLECTIONS if c not in ("jobs", "researchers", "collections")}


def _env(home: Path) -> dict:
    env = {**os.environ, "QUIRE_HOME": str(home)}
    for name in ("QUIRE_CATALOG", "DAGSTER_HOME", "QUIRE_SOURCE"):
        env.pop(name, None)
    return env


def _count(path: Path, sql: str) -> int:
    if not path.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=0.2) as conn:
            return conn.execute(sql).fetchone()[0]
    except sqlite3.Error:  # not created yet, or locked this instant
        return 0


def _index_rows(home: Path) -> int:
    return sum(_count(p, "SELECT count(*) FROM files") for p in (home / "index").glob("*.sqlite"))


def _catalog_instances(home: Path) -> int:
    return _count(home / "catalog.db", "SELECT count(*) FROM instances")


KILL_POINTS = {
    # name: when to kill, from what the command has written so far
    "early in the header reads": lambda home: _index_rows(home) >= 1,
    "half-way through the header reads": lambda home: _index_rows(home) >= 1000,
    "late in the header reads": lambda home: _index_rows(home) >= 2000,
    "during the first catalog writes": lambda home: _catalog_instances(home) >= 1,
    "half-way through the catalog writes": lambda home: _catalog_instances(home) >= 1200,
}


@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_killed_then_run_again_equals_an_undisturbed_ingest(archive, reference, tmp_path, point):
    home = tmp_path / "home"
    process = subprocess.Popen([QUIRE, "ingest", str(archive), "--workers", "2", "--batch", "300"], env=_env(home),
                               cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    reached = KILL_POINTS[point]
    deadline = time.monotonic() + 120
    while not reached(home):
        assert process.poll() is None, f"the ingest ended before {point}"
        assert time.monotonic() < deadline
        time.sleep(0.005)
    os.killpg(process.pid, signal.SIGKILL)  # the command and its reader and run processes
    process.wait()
    again = quire("ingest", str(archive), env=_env(home), cwd=tmp_path)
    assert documents(home) == reference
    # The closing line counts the catalog.
    assert f"{len(reference['instances']):,} instances" in again.stdout
