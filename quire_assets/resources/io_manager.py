"""An IO manager that stores DataFrames as Parquet, one file per accession partition.

Partition keys are text from DICOM files (``RAD/2019/0042``, ``../x``): they are stored under a
percent-encoded name (``RAD%2F2019%2F0042``, ``%2E%2E%2Fx``) that can never be a path, and that
``unquote`` turns back into the key. A run over many partitions writes and reads them all at once.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from urllib.parse import quote

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from dagster import ConfigurableIOManager, InputContext, OutputContext
from pydantic import Field

from quire_assets.catalog import quire_home
from quire_assets.timing import timed

PARTITION_COLUMN = "partition_key"
MAX_NAME = 200


def safe_name(partition_key: str) -> str:
    """A file name for a partition key: no separator, no leading dot, reversible by ``unquote``."""
    name = quote(partition_key, safe="").replace(".", "%2E") or "%00empty"
    if len(name) > MAX_NAME:  # very long keys: a readable head and a digest (the file holds the key)
        name = name[:120] + "~" + hashlib.sha256(partition_key.encode()).hexdigest()[:32]
    return name


# The last output of each asset in this process, for the same run: with the in-process executor
# a downstream step reads it back without re-reading Parquet (the files are written all the same).
_recent: dict[tuple[str, str], tuple[tuple[str, ...], pd.DataFrame]] = {}


class PartitionedParquetIOManager(ConfigurableIOManager):
    base_dir: str = Field(default="", description="Where Parquet files go; empty: $QUIRE_HOME/storage")

    def _dir(self, asset_path: list[str]) -> Path:
        base = Path(self.base_dir) if self.base_dir else quire_home() / "storage"
        return base.joinpath(*asset_path)

    def _path(self, asset_path: list[str], partition_key: str | None) -> Path:
        directory = self._dir(asset_path)
        return directory / (f"{safe_name(partition_key)}.parquet" if partition_key is not None else "data.parquet")

    @timed
    def handle_output(self, context: OutputContext, obj: pd.DataFrame) -> None:
        if obj is None:
            return
        asset_path = list(context.asset_key.path)
        self._dir(asset_path).mkdir(parents=True, exist_ok=True)
        table = pa.Table.from_pandas(obj, preserve_index=False)
        if not context.has_asset_partitions:
            pq.write_table(table, self._path(asset_path, None))
            return
        # One conversion to Arrow, then a slice per partition: far cheaper than a DataFrame per file.
        keys = context.asset_partition_keys
        if any(run_id != context.run_id for run_id, _ in _recent):
            _recent.clear()
        _recent[(context.run_id, "/".join(asset_path))] = (tuple(keys), obj)
        rows: dict[str, list[int]] = {}
        for i, key in enumerate(obj[PARTITION_COLUMN]) if len(obj) else []:
            rows.setdefault(key, []).append(i)
        for key in keys:
            pq.write_table(table.take(pa.array(rows.get(key, []), type=pa.int64())), self._path(asset_path, key))

    @timed
    def load_input(self, context: InputContext) -> pd.DataFrame:
        asset_path = list(context.asset_key.path)
        if not context.has_asset_partitions:
            return pq.read_table(self._path(asset_path, None)).to_pandas()
        upstream = context.upstream_output
        run_id = getattr(upstream, "run_id", None) if upstream is not None else None
        cached = _recent.get((run_id, "/".join(asset_path))) if run_id else None
        if cached is not None and cached[0] == tuple(context.asset_partition_keys):
            return cached[1]
        tables = []
        for key in context.asset_partition_keys:
            path = self._path(asset_path, key)
            if not path.exists():
                raise FileNotFoundError(
                    f"{'/'.join(asset_path)} has not been materialized for partition {key!r} ({path.name})")
            tables.append(pq.read_table(path))
        return pa.concat_tables(tables, promote_options="default").to_pandas()
