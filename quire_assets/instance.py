"""Where a ``dagster.yaml`` written by an earlier ``quire`` finds the batched event log storage
(``module: quire_assets.instance``): an instance's history must keep opening. New files name
``quire_assets.runtime.storage``."""

from quire_assets.runtime.storage import BatchedSqliteEventLogStorage

__all__ = ["BatchedSqliteEventLogStorage"]
