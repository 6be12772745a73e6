"""Quire's one door into Dagster's internals: nothing else in ``quire_assets`` imports ``dagster._*``
or ``dagster_celery``'s modules.

- ``storage``: event log storages that store a batch of events in one transaction (Dagster's own
  classes with ``store_event_batch`` rewritten), and Dagster's SQLite run and schedule storages
  under Quire's names, for the ``dagster.yaml`` Quire writes.
- ``instance``: the instance runs write to (``DAGSTER_HOME``'s, or an ephemeral one).
- ``runs``: runs created with the ``quire`` code location's origin and executed in this process,
  and the partition-range tags of a run.
- ``celery``: the Celery app of the workers, built as dagster-celery's executor builds its own.

Each private hook used here has a contract test in ``tests/runtime``: a Dagster release that
changes one fails there, by name, before it changes what the UI shows.
"""
