"""Each private Dagster hook ``quire_assets.runtime`` uses, checked by name against the installed
Dagster: a release that renames, re-signs or moves one fails here, saying which, before it can
change what the UI shows. (What the hooks *do* is compared with Dagster's stock behaviour in
``test_batched_events.py``: the same runs through the stock and the batched storages give the same
answers.)"""

from __future__ import annotations

import inspect

import pytest
from dagster import DagsterInstance, DagsterRunStatus, Definitions, asset, define_asset_job
from dagster._core.storage.event_log import InMemoryEventLogStorage, SqliteEventLogStorage

from quire_assets.runtime import instance as runtime_instance
from quire_assets.runtime import runs, storage

# Private members of Dagster's SQL event log storages that the batched storages call or override,
# with the parameters they are called with.
STORAGE_HOOKS = {
    "store_event": ["self", "event"],
    "store_event_batch": ["self", "events"],
    "_event_to_row": ["self", "event"],
    "run_connection": ["self", "run_id"],
    "index_transaction": ["self"],
    "index_connection": ["self"],
    "_store_asset_event_tags": ["self", "conn", "events", "event_ids"],
    "_store_asset_event": ["self", "conn", "event", "event_id"],
    "_store_asset_check_evaluation_planned": ["self", "event", "event_id"],
    # What ``_index_check_evaluations`` does for a batch, Dagster does per event here.
    "_update_asset_check_evaluation": ["self", "event", "event_id"],
}


@pytest.mark.parametrize("hook", sorted(STORAGE_HOOKS))
@pytest.mark.parametrize("stock", [SqliteEventLogStorage, InMemoryEventLogStorage])
def test_the_storage_hooks_exist_with_the_parameters_used(stock, hook):
    member = getattr(stock, hook, None)
    assert member is not None, f"Dagster's {stock.__name__} has no {hook} any more"
    assert list(inspect.signature(member).parameters) == STORAGE_HOOKS[hook], (
        f"Dagster's {stock.__name__}.{hook} changed its parameters")


def test_the_in_memory_storage_keeps_its_watchers_and_counter_where_they_are_used():
    stock = InMemoryEventLogStorage()
    assert isinstance(stock._handlers, dict) and isinstance(stock._storage_id, int)


def test_the_batched_storages_are_dagsters_own_classes():
    assert issubclass(storage.BatchedSqliteEventLogStorage, SqliteEventLogStorage)
    assert issubclass(storage.BatchedInMemoryEventLogStorage, InMemoryEventLogStorage)
    # The classes the dagster.yaml Quire writes names build themselves, not their parents.
    for ours in (storage.SqliteRunStorage, storage.SqliteScheduleStorage, storage.BatchedSqliteEventLogStorage):
        assert "from_config_value" in vars(ours)


def test_the_ephemeral_instance_is_dagsters_but_for_the_event_storage():
    ours, stock = runtime_instance.ephemeral_instance(), DagsterInstance.ephemeral()
    for part in ("run_storage", "compute_log_manager", "run_coordinator", "run_launcher"):
        assert type(getattr(ours, part)) is type(getattr(stock, part)), part
    assert isinstance(ours.event_log_storage, type(stock.event_log_storage))
    assert ours.is_ephemeral and stock.is_ephemeral


def test_range_tags_are_the_ones_dagster_resolves_a_runs_partitions_from():
    """A run tagged with ``range_tags`` covers that range for Dagster itself: its planned
    partitions are the range's (the tags' names are Dagster's backfill tags)."""
    from dagster import DynamicPartitionsDefinition

    partitions = DynamicPartitionsDefinition(name="letters")

    @asset(partitions_def=partitions)
    def lettered(context) -> None:
        context.log.info(str(context.partition_keys))

    job = Definitions(assets=[lettered], jobs=[define_asset_job("letters_job", [lettered])]
                      ).resolve_job_def("letters_job")
    instance = runtime_instance.ephemeral_instance()
    instance.add_dynamic_partitions("letters", ["a", "b", "c", "d"])
    run = instance.create_run_for_job(job, tags=runs.range_tags("b", "c"))
    assert runs.range_of(run.tags) == ("b", "c")
    assert runs.run_partition_keys(run.tags, ["a", "b", "c", "d"]) == ["b", "c"]
    assert runs.execute_located_run(instance, job, run) == DagsterRunStatus.SUCCESS
    materialized = instance.get_materialized_partitions(lettered.key)
    assert materialized == {"b", "c"}


def test_a_located_run_names_the_quire_code_location_and_executes(sample_archive):
    """What the UI lists a run under: its origin's code location and repository, as the webserver
    records them; and the run executes in this process."""
    from quire_assets.definitions import build_definitions
    from quire_assets.settings import Settings

    defs = build_definitions(Settings.from_environ(), str(sample_archive))
    job = defs.resolve_job_def("report_job")
    instance = runtime_instance.ephemeral_instance()
    run = runs.create_located_run(instance, job, {"quire/test": "1"})
    origin = run.remote_job_origin
    assert origin.location_name == runs.CODE_LOCATION == "quire"
    assert origin.repository_origin.repository_name == "__repository__"
    assert run.job_code_origin.repository_origin.code_pointer.module == runs.DEFINITIONS_MODULE
    assert run.job_code_origin.repository_origin.code_pointer.fn_name == runs.DEFINITIONS_ATTRIBUTE
    assert run.tags["quire/test"] == "1"
    assert runs.execute_located_run(instance, job, run) == DagsterRunStatus.SUCCESS


def test_the_celery_workers_listen_where_the_executor_sends():
    celery = pytest.importorskip("quire_assets.runtime.celery", reason="dagster-celery is the celery extra")
    from dagster_celery.config import DEFAULT_CONFIG

    from quire_assets.settings import Settings

    settings = Settings(celery_broker="redis://127.0.0.1:1/0", celery_backend="redis://127.0.0.1:1/1",
                        celery_visibility_timeout=600)
    app, task = celery.worker_app(settings)
    assert app.conf.broker_url == settings.celery_broker and app.conf.result_backend == settings.celery_backend
    assert task.name == "execute_plan"  # the task the executor sends each step to
    config = celery.executor_config(settings)
    for key, value in config["config_source"].items():
        assert app.conf[key] == value, key
    for key in DEFAULT_CONFIG:
        assert key in app.conf
    assert celery.configured_executor(settings).name == "celery"


@pytest.mark.parametrize("kind", ["sqlite", "ephemeral"])
def test_deleting_many_dynamic_partitions_does_what_dagsters_one_by_one_does(kind, tmp_path):
    """``storage.delete_dynamic_partitions`` writes Dagster's partitions table itself: the keys left,
    and their order, are those Dagster's own ``delete_dynamic_partition`` leaves."""
    keys = [f"K{i:03d}" for i in range(1200)]
    gone = keys[3:1100:2] + ["never-registered"]

    def opened(name):
        if kind == "ephemeral":
            return runtime_instance.ephemeral_instance()
        (tmp_path / name).mkdir()
        return DagsterInstance.local_temp(str(tmp_path / name))

    with opened("ours") as ours, opened("stock") as stock:
        for instance in (ours, stock):
            instance.add_dynamic_partitions("accessions", keys)
            instance.add_dynamic_partitions("other", keys[:5])
        storage.delete_dynamic_partitions(ours, "accessions", gone, chunk=100)
        for key in gone:
            stock.delete_dynamic_partition("accessions", key)
        left = list(ours.get_dynamic_partitions("accessions"))
        assert left == list(stock.get_dynamic_partitions("accessions")) and len(left) == len(keys) - (len(gone) - 1)
        assert list(ours.get_dynamic_partitions("other")) == keys[:5]  # another definition's keys untouched
        ours.add_dynamic_partitions("accessions", ["K003"])  # registered again: at the end of the order
        assert list(ours.get_dynamic_partitions("accessions"))[-1] == "K003"
