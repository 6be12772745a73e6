"""``defs``: the one place assets, jobs, resources and sensors are wired.

The source and the catalog come from the environment: ``QUIRE_SOURCE`` (a folder,
``s3://bucket/prefix``, ``dicomweb+https://host/path`` or ``dimse://AET@host:port?calling=AET``) and ``QUIRE_CATALOG`` (a catalog URI; by default the embedded SQLite
catalog under ``$QUIRE_HOME``). Both are read through ``EnvVar`` at run time, so a URI with a
password never lands in the definitions or the UI.
"""

from __future__ import annotations

import os

from dagster import Definitions, EnvVar

from quire_assets.assets import all_assets, catalog_checks
from quire_assets.instance import enable_event_batches
from quire_assets.jobs import all_jobs
from quire_assets.resources import CatalogResource, DicomSource, LocalDicomSource, PartitionedParquetIOManager
from quire_assets.sensors import all_sensors
from quire_assets.sources.base import parse_source_uri

DEFAULT_SOURCE = "archive"
PLANNED_EVENTS_SETTING = "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS"

# When a run starts, Dagster logs a "materialization planned" event per asset *and partition*:
# a run over 500 accessions writes 2,500 of them before any work (half of Dagster's share of an
# ingest, measured). With this, Dagster's own switch for runs over a partition range, it logs one
# per asset holding the range. The cost: partitions of a *failed* run show as missing rather than
# failed in the UI (the run, and a researcher job, still show the failure). It acts in the process
# that creates runs: here for `quire` and `dagster job execute`; the webserver and daemon get it
# from their environment (docker-compose.yml, README). Set it to "false" to keep per-partition events.
os.environ.setdefault(PLANNED_EVENTS_SETTING, "true")
# And a run's materializations of one output reach the event log storage as one batch, which
# Quire's SQLite storage and dagster-postgres write in one transaction (quire_assets/instance.py).
enable_event_batches()


def source_resource(source_uri: str | None = None) -> DicomSource:
    """The source resource for a folder, an ``s3://`` URI or a PACS (default: ``$QUIRE_SOURCE``)."""
    uri = source_uri if source_uri is not None else os.environ.get("QUIRE_SOURCE", DEFAULT_SOURCE)
    from_env = source_uri is None and "QUIRE_SOURCE" in os.environ
    where = parse_source_uri(uri)
    if where.kind == "dicomweb":
        from quire_assets.resources.pacs import DicomWebSource

        # Credentials stay EnvVars: read at run time, never in the definitions or the UI.
        secrets = {field: EnvVar(name) for field, name in (("username", "QUIRE_PACS_USER"),
                   ("password", "QUIRE_PACS_PASSWORD"), ("token", "QUIRE_PACS_TOKEN"),
                   ("ca_bundle", "QUIRE_PACS_CA_BUNDLE")) if os.environ.get(name)}
        return DicomWebSource(url=where.url, **secrets)
    if where.kind == "dimse":
        from quire_assets.resources.pacs import DimseSource

        return DimseSource(host=where.host, port=where.port, called_aet=where.called_aet,
                           calling_aet=where.calling_aet)
    if where.kind == "s3":
        from quire_assets.resources.s3 import S3DicomSource

        return S3DicomSource(bucket=where.bucket, prefix=where.prefix)
    # A folder named in the environment stays an EnvVar: read at run time, never stored in the definitions.
    return LocalDicomSource(root=EnvVar("QUIRE_SOURCE") if from_env else where.root)


def catalog_resource(catalog_uri: str | None = None) -> CatalogResource:
    if catalog_uri:
        return CatalogResource(uri=catalog_uri)
    if "QUIRE_CATALOG" in os.environ:
        return CatalogResource(uri=EnvVar("QUIRE_CATALOG"))
    return CatalogResource()


def build_definitions(source_uri: str | None = None, catalog_uri: str | None = None) -> Definitions:
    return Definitions(
        assets=all_assets,
        asset_checks=catalog_checks,
        jobs=all_jobs,
        sensors=all_sensors,
        resources={
            "source": source_resource(source_uri),
            "catalog": catalog_resource(catalog_uri),
            "parquet_io_manager": PartitionedParquetIOManager(),
        },
    )


defs = build_definitions()
