"""Event log storages that store a batch of events in one transaction: Dagster's own classes with
``store_event_batch`` rewritten, and everything else inherited.

Why: a run over N accession partitions logs one materialization event per asset and partition.
Dagster groups those of one output into a batch (``DAGSTER_EVENT_BATCH_SIZE``) and hands the batch
to ``EventLogStorage.store_event_batch``, but its SQLite and in-memory storages then store the
batch one event at a time: on SQLite each event opens two engines and commits two transactions
(about 10 ms, measured: 90 % of a radiograph partition's cost). Here the whole batch goes in one
transaction per database, so the tables, and every answer read from them (latest materialization,
materialized partitions, event records, the UI's), are what the stock storage gives
(``tests/runtime`` compares both on the same runs). They also store a run's per-partition check
verdicts together, pointing at the materializations they judge, and plan partitioned checks in
O(N) (see ``_BatchedAssetEvents``). On PostgreSQL, ``dagster-postgres`` already writes a batch of
materializations in one statement; its check verdicts go one by one (no class of ours there yet).

``SqliteRunStorage`` and ``SqliteScheduleStorage`` are Dagster's, under a name of Quire's: the
``dagster.yaml`` Quire writes names only ``quire_assets.runtime.storage``, so a Dagster release
that moves its private modules changes this file, not the users' instance files.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from dagster import DagsterInstance
from dagster._core.definitions.asset_checks.asset_check_evaluation import (
    AssetCheckEvaluationTargetMaterializationData,
)
from dagster._core.events import DagsterEventType
from dagster._core.events.log import EventLogEntry
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus
from dagster._core.storage.event_log import InMemoryEventLogStorage, SqliteEventLogStorage
from dagster._core.storage.event_log.base import EventLogCursor
from dagster._core.storage.event_log.schema import (
    AssetCheckExecutionsTable,
    DynamicPartitionsTable,
    SqlEventLogStorageTable,
)
from dagster._core.storage.event_log.sql_event_log import SqlEventLogStorage
from dagster._core.storage.runs import SqliteRunStorage as _DagsterSqliteRunStorage
from dagster._core.storage.schedules import SqliteScheduleStorage as _DagsterSqliteScheduleStorage
from dagster._serdes import serialize_value
from dagster_shared.record import copy
from sqlalchemy import and_, bindparam

# What the batched path stores: asset materializations, observations and planned events (other
# batches, e.g. with planned check evaluations, are stored the stock way).
_BATCHED_TYPES = frozenset({DagsterEventType.ASSET_MATERIALIZATION, DagsterEventType.ASSET_OBSERVATION,
                            DagsterEventType.ASSET_MATERIALIZATION_PLANNED})


def _batchable(events: Sequence[EventLogEntry]) -> bool:
    return len({e.run_id for e in events}) == 1 and all(
        e.dagster_event is not None and e.dagster_event.asset_key is not None
        and e.dagster_event.event_type in _BATCHED_TYPES for e in events)


def _naive_utc(timestamp: float) -> datetime:
    # As Dagster stores check timestamps (PostgreSQL wants UTC without a zone).
    return datetime.fromtimestamp(timestamp, UTC).replace(tzinfo=None)


_BETWEEN_OUTPUT_AND_MATERIALIZATION = frozenset({DagsterEventType.STEP_OUTPUT, DagsterEventType.HANDLED_OUTPUT})


def _partition_check_evaluation(event: EventLogEntry) -> bool:
    return bool(event.run_id) and event.dagster_event is not None and (
        event.dagster_event.event_type == DagsterEventType.ASSET_CHECK_EVALUATION
        and event.dagster_event.event_specific_data.partition is not None)


class _BatchedAssetEvents:
    """``store_event_batch`` for Dagster's SQL event log storages: the rows go in with one
    statement per database, and the asset index (tags, the asset's latest-event row) is updated in
    the same transaction, with what storing the events one by one would leave there.

    Per-partition check evaluations (a run over N accessions logs N per check, one at a time:
    Dagster batches only materializations) are held back and stored in one transaction after the
    step's materializations, each pointing at its partition's new materialization (what makes the
    UI count a partition's verdict as current), or with the next other event of their run, which
    always comes (the step's success or failure): the step's events are stored before it ends.
    """

    def _hold(self, event: EventLogEntry) -> bool:
        if not _partition_check_evaluation(event):
            return False
        self.__dict__.setdefault("_held_checks", {}).setdefault(event.run_id, []).append(event)
        return True

    def _take_held(self, run_id: str, targets: dict | None = None) -> list[EventLogEntry]:
        """The run's held evaluations, each given the materialization it judges when ``targets``
        ((asset key, partition) → (storage id, event)) has it."""
        out = []
        for event in self.__dict__.get("_held_checks", {}).pop(run_id, []):
            evaluation = event.dagster_event.event_specific_data
            target = (targets or {}).get((evaluation.asset_key.to_string(), evaluation.partition))
            if target and evaluation.target_materialization_data is None:
                storage_id, materialization = target
                event = event._replace(dagster_event=event.dagster_event._replace(event_specific_data=copy(
                    evaluation, target_materialization_data=AssetCheckEvaluationTargetMaterializationData(
                        storage_id=storage_id, run_id=materialization.run_id, timestamp=materialization.timestamp))))
            out.append(event)
        return out

    @staticmethod
    def _materialization_targets(events: Sequence[EventLogEntry], event_ids: Sequence[int]) -> dict:
        return {(e.dagster_event.asset_key.to_string(), e.dagster_event.partition): (i, e)
                for e, i in zip(events, event_ids, strict=True)
                if e.dagster_event.event_type == DagsterEventType.ASSET_MATERIALIZATION}

    def _judged(self, event: EventLogEntry) -> bool:
        """A materialization that held evaluations of its run wait for."""
        return (event.dagster_event is not None
                and event.dagster_event.event_type == DagsterEventType.ASSET_MATERIALIZATION
                and bool(self.__dict__.get("_held_checks", {}).get(event.run_id)))

    @staticmethod
    def _passes_held(event: EventLogEntry) -> bool:
        # The events a step logs between its check evaluations and its materializations.
        return event.dagster_event is not None and event.dagster_event.event_type in _BETWEEN_OUTPUT_AND_MATERIALIZATION

    def store_event(self, event: EventLogEntry) -> None:
        if self._hold(event):
            return
        if self._judged(event):  # a run of one partition: its materialization comes alone
            return self.store_event_batch([event])
        if not self._passes_held(event):
            self._store_held({event.run_id})
        super().store_event(event)

    def store_event_batch(self, events: Sequence[EventLogEntry]) -> None:
        if not _batchable(events):
            self._store_held({e.run_id for e in events})
            return super().store_event_batch(events)
        ids = self._write(events, lambda conn, rows, ids: self._index_asset_events(conn, events, ids))
        self._store_held({events[0].run_id}, self._materialization_targets(events, ids))

    def _store_held(self, run_ids: set[str], targets: dict | None = None) -> None:
        for run_id in run_ids:
            held = self._take_held(run_id, targets)
            if held:
                self._write(held, lambda conn, rows, ids, held=held: self._index_check_evaluations(
                    conn, rows, held, ids))

    def _write(self, events: Sequence[EventLogEntry], index: Callable[[Any, list[dict], list[int]], None]) -> list[int]:
        """Store the rows of one run's events in one transaction per database; ``index`` adds to
        the index database, in the same transaction, what they need there. Returns their ids."""
        raise NotImplementedError

    def _index_asset_events(self, conn, events: Sequence[EventLogEntry], event_ids: Sequence[int]) -> None:
        self._store_asset_event_tags(conn, events, event_ids)
        # The asset's row keeps, per column, the value of the last event that sets it; a column is
        # set by one event type or more, so replaying the last event of each type per asset, in the
        # original order, leaves the row exactly as replaying every event would.
        last: dict[tuple[str, DagsterEventType], int] = {}
        for i, event in enumerate(events):
            last[(event.dagster_event.asset_key.to_string(), event.dagster_event.event_type)] = i
        for i in sorted(last.values()):
            self._store_asset_event(conn, events[i], event_ids[i])

    def _store_asset_check_evaluation_planned(self, event: EventLogEntry, event_id: int | None) -> None:
        """Dagster's own, but each partition's row holds the planned event without the run's
        partition subset (its partition is the row's column): Dagster stores the whole subset in
        every row, which made planning a run over N partitions O(N²) in time and space (a run of
        2,500 accessions wrote 250 MB of rows, measured). The event log keeps the full event."""
        planned = event.dagster_event.event_specific_data
        keys = planned.partitions_subset.get_partition_keys() if planned.partitions_subset else [None]
        slim = event._replace(dagster_event=event.dagster_event._replace(
            event_specific_data=copy(planned, partitions_subset=None)))
        common = {"asset_key": planned.asset_key.to_string(), "check_name": planned.check_name,
                  "run_id": event.run_id, "execution_status": AssetCheckExecutionRecordStatus.PLANNED.value,
                  "evaluation_event": serialize_value(slim), "evaluation_event_storage_id": event_id,
                  "evaluation_event_timestamp": _naive_utc(event.timestamp)}
        with self.index_connection() as conn:
            conn.execute(AssetCheckExecutionsTable.insert(), [{**common, "partition": key} for key in keys])

    @staticmethod
    def _index_check_evaluations(conn, rows: Sequence[dict], events: Sequence[EventLogEntry],
                                 event_ids: Sequence[int]) -> None:
        """What Dagster's ``_update_asset_check_evaluation`` does per event, as one statement for
        all: the row planned for each run and partition gets its outcome (and a row is inserted for
        an evaluation that had none planned)."""
        table = AssetCheckExecutionsTable
        params = []
        for row, event, event_id in zip(rows, events, event_ids, strict=True):
            evaluation = event.dagster_event.event_specific_data
            params.append({
                "k_asset": evaluation.asset_key.to_string(), "k_check": evaluation.check_name,
                "k_run": event.run_id, "k_partition": evaluation.partition,
                "v_status": (AssetCheckExecutionRecordStatus.SUCCEEDED if evaluation.passed
                             else AssetCheckExecutionRecordStatus.FAILED).value,
                "v_event": row["event"], "v_timestamp": _naive_utc(event.timestamp), "v_event_id": event_id,
                "v_materialization_id": (evaluation.target_materialization_data.storage_id
                                         if evaluation.target_materialization_data else None)})
        columns = {"execution_status": "v_status", "evaluation_event": "v_event",
                   "evaluation_event_timestamp": "v_timestamp", "evaluation_event_storage_id": "v_event_id",
                   "materialization_event_storage_id": "v_materialization_id"}
        keys = {"asset_key": "k_asset", "check_name": "k_check", "run_id": "k_run", "partition": "k_partition"}
        update = table.update().where(*(table.c[c] == bindparam(p) for c, p in keys.items())).values(
            {c: bindparam(p) for c, p in columns.items()})
        if conn.execute(update, params).rowcount == len(params):
            return
        for p in params:  # some had no planned row: find which, one at a time, as Dagster does
            if not conn.execute(update, p).rowcount:
                conn.execute(table.insert().values(
                    **{c: p[k] for c, k in {**keys, **columns}.items()}))

    @staticmethod
    def _insert_returning_ids(conn, rows: list[dict]) -> list[int]:
        # One statement for the batch (SQLAlchemy's "insertmanyvalues"), returning each row's id in
        # the order of the rows: the asset tables need them.
        result = conn.execute(SqlEventLogStorageTable.insert().returning(
            SqlEventLogStorageTable.c.id, sort_by_parameter_order=True), rows)
        return [row[0] for row in result]


class BatchedSqliteEventLogStorage(_BatchedAssetEvents, SqliteEventLogStorage):
    """Dagster's default SQLite event log storage (a database per run, mirrored asset events in
    ``index.db``), storing a batch in one transaction per database instead of two per event."""

    @classmethod
    def from_config_value(cls, inst_data, config_value) -> BatchedSqliteEventLogStorage:
        # The parent names its own class here, not ``cls``.
        return cls(inst_data=inst_data, **config_value)

    def _write(self, events: Sequence[EventLogEntry], index: Callable[[Any, list[dict], list[int]], None]) -> list[int]:
        rows = [self._event_to_row(e) for e in events]  # serialized once, not once per database
        with self.run_connection(events[0].run_id) as conn:
            conn.execute(SqlEventLogStorageTable.insert(), rows)
        with self.index_transaction() as conn:
            ids = self._insert_returning_ids(conn, rows)
            index(conn, rows, ids)
        return ids


class BatchedInMemoryEventLogStorage(_BatchedAssetEvents, InMemoryEventLogStorage):
    """The ephemeral instance's event log storage (one in-memory SQLite database), storing a batch
    in one transaction; watchers are told of each event as ``store_event`` tells them."""

    def _write(self, events: Sequence[EventLogEntry], index: Callable[[Any, list[dict], list[int]], None]) -> list[int]:
        rows = [self._event_to_row(e) for e in events]
        with self.index_transaction() as conn:
            ids = self._insert_returning_ids(conn, rows)
            index(conn, rows, ids)
        self._tell_watchers(events)
        return ids

    def _tell_watchers(self, events: Sequence[EventLogEntry]) -> None:
        for event in events:
            self._storage_id += 1
            for handler in list(self._handlers[event.run_id]):
                try:
                    handler(event, str(EventLogCursor.from_storage_id(self._storage_id)))
                except Exception:
                    logging.exception("Exception in callback for event watch on run %s.", event.run_id)


class SqliteRunStorage(_DagsterSqliteRunStorage):
    """Dagster's SQLite run storage (``history/runs.db``), unchanged."""

    @classmethod
    def from_config_value(cls, inst_data, config_value) -> SqliteRunStorage:
        # The parent builds its own class here, not ``cls``.
        return cls.from_local(inst_data=inst_data, **config_value)


class SqliteScheduleStorage(_DagsterSqliteScheduleStorage):
    """Dagster's SQLite schedule storage (``schedules/schedules.db``), unchanged."""

    @classmethod
    def from_config_value(cls, inst_data, config_value) -> SqliteScheduleStorage:
        return cls.from_local(inst_data=inst_data, **config_value)


def delete_dynamic_partitions(instance: DagsterInstance, name: str, keys: Sequence[str], chunk: int = 500) -> None:
    """Delete many keys of a dynamic partitions definition in one transaction. Dagster's public
    ``delete_dynamic_partition`` takes one key and commits each (on SQLite a few ms apiece: the
    working set retires thousands at a time); on a storage that is not Dagster's SQL one, it is used."""
    storage = instance.event_log_storage
    if not isinstance(storage, SqlEventLogStorage):
        for key in keys:
            instance.delete_dynamic_partition(name, key)
        return
    table = DynamicPartitionsTable
    with storage.index_connection() as conn:
        for start in range(0, len(keys), chunk):
            conn.execute(table.delete().where(and_(table.c.partitions_def_name == name,
                                                   table.c.partition.in_(list(keys[start:start + chunk])))))
