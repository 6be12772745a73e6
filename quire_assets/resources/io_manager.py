"""An IO manager that stores an asset's DataFrame as Parquet: one file per run, for all the
accession partitions the run covers, and a manifest saying which file holds each partition.

Why not one file per partition: most accessions are one to four radiographs, and a file per asset
and partition was a quarter of what a partition cost (four files, ~0.4 ms each). A run writes one
file per asset; the manifest (SQLite, beside the files) maps each partition key to the file that
holds its latest rows, and a file no partition points to any more is deleted. Partition keys are
text from DICOM files (``RAD/2019/0042``, ``../x``): they are only ever values in the manifest and
in the files' ``partition_key`` column, never part of a path.
"""

from __future__ import annotations

import os
import sqlite3
import uuid
from contextlib import closing
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from dagster import ConfigurableIOManager, InputContext, OutputContext
from pydantic import Field

from quire_assets.settings import home_of
from quire_assets.timing import timed
from quire_assets.util import chunks
from quire_assets.util.sqlite import BUSY_TIMEOUT_MS, immediate

PARTITION_COLUMN = "partition_key"
MANIFEST = "partitions.db"

# The last output of each asset in this process, for the same run: with the in-process executor
# a downstream step reads it back without re-reading Parquet (the files are written all the same).
_recent: dict[tuple[str, str], tuple[tuple[str, ...], pd.DataFrame]] = {}


def _manifest(directory: Path) -> sqlite3.Connection:
    # The rollback journal, not WAL: runs forked side by side create the manifest at the same time,
    # and switching a new database to WAL fails at once ("database is locked") instead of waiting.
    conn = sqlite3.connect(directory / MANIFEST, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
    # In a write transaction taken up front: two connections that both read the schema and then
    # both try to write it can deadlock, and SQLite then fails one at once instead of waiting.
    with immediate(conn):
        conn.execute("CREATE TABLE IF NOT EXISTS partitions (partition_key TEXT PRIMARY KEY, file TEXT NOT NULL)")
        conn.execute("CREATE INDEX IF NOT EXISTS partitions_file ON partitions (file)")
    return conn


def _held(conn: sqlite3.Connection, keys: list[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for chunk in chunks(keys, 500):
        found.update(conn.execute(f"SELECT partition_key, file FROM partitions WHERE partition_key IN "
                                  f"({','.join('?' * len(chunk))})", list(chunk)).fetchall())
    return found


def files_of(directory: Path, keys: list[str]) -> dict[str, str]:
    """The file holding each partition's rows, for the keys that have one."""
    if not (directory / MANIFEST).exists():
        return {}
    with closing(_manifest(directory)) as conn:
        return _held(conn, keys)


class PartitionedParquetIOManager(ConfigurableIOManager):
    base_dir: str = Field(default="", description="Where Parquet files go; empty: $QUIRE_HOME/storage")

    def _dir(self, asset_path: list[str]) -> Path:
        base = Path(self.base_dir) if self.base_dir else home_of() / "storage"
        return base.joinpath(*asset_path)

    @timed
    def handle_output(self, context: OutputContext, obj: pd.DataFrame) -> None:
        if obj is None:
            return
        asset_path = list(context.asset_key.path)
        directory = self._dir(asset_path)
        directory.mkdir(parents=True, exist_ok=True)
        table = pa.Table.from_pandas(obj, preserve_index=False)
        if not context.has_asset_partitions:
            pq.write_table(table, directory / "data.parquet")
            return
        keys = list(context.asset_partition_keys)
        if any(run_id != context.run_id for run_id, _ in _recent):
            _recent.clear()
        _recent[(context.run_id, "/".join(asset_path))] = (tuple(keys), obj)
        # A new name every time (a retried step writes again): the manifest switches to it at once.
        name = f"{context.run_id}-{uuid.uuid4().hex[:8]}.parquet"
        temporary = directory / f".{name}.tmp"
        pq.write_table(table, temporary)
        os.replace(temporary, directory / name)
        with closing(_manifest(directory)) as conn, immediate(conn):
            before = set(_held(conn, keys).values())
            conn.executemany("INSERT INTO partitions VALUES (?, ?) ON CONFLICT(partition_key) DO UPDATE "
                             "SET file = excluded.file", [(k, name) for k in keys])
            unused = [f for f in before - {name}
                      if conn.execute("SELECT 1 FROM partitions WHERE file = ? LIMIT 1", (f,)).fetchone() is None]
        for file in unused:
            (directory / file).unlink(missing_ok=True)

    @timed
    def load_input(self, context: InputContext) -> pd.DataFrame:
        asset_path = list(context.asset_key.path)
        directory = self._dir(asset_path)
        if not context.has_asset_partitions:
            return pq.read_table(directory / "data.parquet").to_pandas()
        upstream = context.upstream_output
        run_id = getattr(upstream, "run_id", None) if upstream is not None else None
        keys = list(context.asset_partition_keys)
        cached = _recent.get((run_id, "/".join(asset_path))) if run_id else None
        if cached is not None and cached[0] == tuple(keys):
            return cached[1]
        files = files_of(directory, keys)
        missing = [k for k in keys if k not in files]
        if missing:
            raise FileNotFoundError(f"{'/'.join(asset_path)} has not been materialized for partition(s) "
                                    f"{', '.join(map(repr, missing[:5]))}{' and more' if len(missing) > 5 else ''}")
        by_file: dict[str, list[str]] = {}
        for key, file in files.items():
            by_file.setdefault(file, []).append(key)
        tables = []
        for file, wanted in by_file.items():
            table = pq.read_table(directory / file)
            tables.append(table if not table.num_rows else table.filter(pc.is_in(table[PARTITION_COLUMN], value_set=pa.array(wanted, pa.string()))))
        return pa.concat_tables(tables, promote_options="default").to_pandas()
