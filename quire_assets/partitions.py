"""The accession partitions, shared by assets, jobs and sensors: the one way new ones are
registered, and the working set Dagster's partition store is kept to.

A partition key is the accession number verbatim. Studies without one are keyed
``no-accession:<StudyInstanceUID>``; files with neither (non-DICOM files, junk) share
``no-accession:other-files``. Both are longer than the 16 characters an AccessionNumber may hold.

**The working set.** Dagster reads every registered key of a dynamic partitions definition
whenever a run resolves its partition range (dozens of times a run), and its UI lists them all:
a run's cost grew with every accession ever cataloged (2.7 s per 1,000 new accessions at 10,000
registered, 5.6 s at 100,000). So the registered partitions are the accessions being cataloged
plus the ``keep`` newest others (``QUIRE_PARTITIONS_KEPT``); older ones that the catalog holds at
their current version are retired from Dagster's store and registered again (at the end of the
order) when a file of theirs changes or a researcher asks for them. The catalog and the source
index stay the record of every accession (``docs/dagster.md``).
"""

from collections.abc import Collection, Iterable, Sequence

from dagster import (
    AddDynamicPartitionsRequest,
    DagsterInstance,
    DeleteDynamicPartitionsRequest,
    DynamicPartitionsDefinition,
)

from quire_assets.runtime.storage import delete_dynamic_partitions
from quire_assets.util import chunks

accession_partitions = DynamicPartitionsDefinition(name="accessions")
# Keys per registration: Dagster checks which exist with one SQL ``IN`` of them all.
_REGISTER_CHUNK = 5_000


def registered_keys(instance: DagsterInstance) -> list[str]:
    """The accessions the instance has registered, in the order it learned them (runs cover
    ranges of it). Bounded by the working set, not by the archive."""
    return list(instance.get_dynamic_partitions(accession_partitions.name))


def unregistered(instance: DagsterInstance, keys: Iterable[str]) -> list[str]:
    """The keys the instance does not know yet, once each, in their order."""
    known = set(registered_keys(instance))
    return [k for k in dict.fromkeys(keys) if k not in known]


def register_partitions(instance: DagsterInstance, keys: Iterable[str]) -> list[str]:
    """Add the keys the instance does not know yet; returns them. For the command line and the
    ``source_index`` asset: a sensor returns ``registration_requests`` instead."""
    new = unregistered(instance, keys)
    for chunk in chunks(new, _REGISTER_CHUNK):
        instance.add_dynamic_partitions(accession_partitions.name, list(chunk))
    return new


def registration_requests(keys: list[str]) -> list[AddDynamicPartitionsRequest]:
    """A sensor's request to register ``keys`` (new to the instance), if there are any."""
    return [accession_partitions.build_add_request(keys)] if keys else []


def retirable(registered: Sequence[str], keep: int, needed: Collection[str]) -> list[str]:
    """The registered keys older than the ``keep`` newest, except the ``needed`` ones (not yet
    cataloged at their current version, or in a run not over yet). ``keep`` 0: none (keep all)."""
    if keep <= 0 or len(registered) <= keep:
        return []
    return [k for k in registered[:len(registered) - keep] if k not in needed]


def retire_partitions(instance: DagsterInstance, keep: int, needed: Collection[str]) -> list[str]:
    """Retire what ``retirable`` names from the instance (the command line, the ``source_index``
    asset); returns the keys retired."""
    old = retirable(registered_keys(instance), keep, needed) if keep > 0 else []  # no read when all are kept
    if old:
        delete_dynamic_partitions(instance, accession_partitions.name, old)
    return old


def retirement_requests(registered: Sequence[str], keep: int, needed: Collection[str]) -> list[DeleteDynamicPartitionsRequest]:
    """A sensor's request to retire what ``retirable`` names among the ``registered`` keys it read, if anything."""
    old = retirable(registered, keep, needed)
    return [accession_partitions.build_delete_request(old)] if old else []
