"""The accession partitions, shared by assets, jobs and sensors, and the one way new ones are registered.

A partition key is the accession number verbatim. Studies without one are keyed
``no-accession:<StudyInstanceUID>``; files with neither (non-DICOM files, junk) share
``no-accession:other-files``. Both are longer than the 16 characters an AccessionNumber may hold.
"""

from collections.abc import Iterable

from dagster import AddDynamicPartitionsRequest, DagsterInstance, DynamicPartitionsDefinition

accession_partitions = DynamicPartitionsDefinition(name="accessions")


def registered_keys(instance: DagsterInstance) -> list[str]:
    """Every accession the instance knows, in the order it learned them (runs cover ranges of it)."""
    return list(instance.get_dynamic_partitions(accession_partitions.name))


def unregistered(instance: DagsterInstance, keys: Iterable[str]) -> list[str]:
    """The keys the instance does not know yet, once each, in their order."""
    known = set(registered_keys(instance))
    return [k for k in dict.fromkeys(keys) if k not in known]


def register_partitions(instance: DagsterInstance, keys: Iterable[str]) -> list[str]:
    """Add the keys the instance does not know yet; returns them. For the command line and the
    ``source_index`` asset: a sensor returns ``registration_requests`` instead."""
    new = unregistered(instance, keys)
    if new:
        instance.add_dynamic_partitions(accession_partitions.name, new)
    return new


def registration_requests(keys: list[str]) -> list[AddDynamicPartitionsRequest]:
    """A sensor's request to register ``keys`` (new to the instance), if there are any."""
    return [accession_partitions.build_add_request(keys)] if keys else []
