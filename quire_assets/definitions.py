"""``defs``: the one place assets, jobs, resources and sensors are wired.

Nothing happens at import: Dagster calls ``defs`` (``@definitions``) when it loads the code
location, and ``build_definitions`` reads nothing but the ``Settings`` it is given. The source and
the catalog are ``QUIRE_SOURCE`` and ``QUIRE_CATALOG`` (``docs/configuration.md``); a value that
came from the environment stays an ``EnvVar``, read at run time, so a URI with a password never
lands in the definitions or the UI.
"""

from __future__ import annotations

from dagster import Definitions, EnvVar, definitions

from quire_assets.assets import all_assets, catalog_checks
from quire_assets.jobs import asset_jobs
from quire_assets.resources import CatalogResource, DicomSource, LocalDicomSource, PartitionedParquetIOManager
from quire_assets.sensors import all_sensors
from quire_assets.settings import Settings, dagster_switches
from quire_assets.sources.registry import parse_source_uri

DEFAULT_SOURCE = "archive"
# The DICOMweb resource's secret fields, by setting.
_PACS_SECRETS = (("username", "pacs_user"), ("password", "pacs_password"), ("token", "pacs_token"),
                 ("ca_bundle", "pacs_ca_bundle"))


def source_resource(settings: Settings, source_uri: str | None = None) -> DicomSource:
    """The source resource for a folder, an ``s3://`` URI or a PACS (default: ``QUIRE_SOURCE``)."""
    from_env = source_uri is None and settings.is_set("source")
    uri = source_uri if source_uri is not None else (settings.source or DEFAULT_SOURCE)
    common = {"feature_sets_dir": settings.features, "home": str(settings.home_path), "fast_path": settings.fast_path}
    where = parse_source_uri(uri)
    if where.kind == "dicomweb":
        from quire_assets.resources.pacs import DicomWebSource

        # Credentials stay EnvVars: read at run time, never in the definitions or the UI.
        secrets = {field: EnvVar(settings.variable(name)) for field, name in _PACS_SECRETS if settings.is_set(name)}
        return DicomWebSource(url=where.url, **secrets, **common)
    if where.kind == "dimse":
        from quire_assets.resources.pacs import DimseSource

        return DimseSource(host=where.host, port=where.port, called_aet=where.called_aet,
                           calling_aet=where.calling_aet, **common)
    if where.kind == "s3":
        from quire_assets.resources.s3 import S3DicomSource

        return S3DicomSource(bucket=where.bucket, prefix=where.prefix, **common)
    # A folder named in the environment stays an EnvVar: read at run time, never stored in the definitions.
    return LocalDicomSource(root=EnvVar(settings.variable("source")) if from_env else where.root, **common)


def catalog_resource(settings: Settings, catalog_uri: str | None = None) -> CatalogResource:
    home = str(settings.home_path)
    if catalog_uri:
        return CatalogResource(uri=catalog_uri, home=home)
    if settings.is_set("catalog"):
        return CatalogResource(uri=EnvVar(settings.variable("catalog")), home=home)
    return CatalogResource(uri=settings.catalog_uri, home=home)


def build_definitions(settings: Settings, source_uri: str | None = None, catalog_uri: str | None = None) -> Definitions:
    """The definitions for ``settings``, with the source and catalog URIs a command names, if any."""
    return Definitions(
        assets=all_assets,
        asset_checks=catalog_checks,
        jobs=asset_jobs(settings),
        sensors=all_sensors,
        resources={
            "source": source_resource(settings, source_uri),
            "catalog": catalog_resource(settings, catalog_uri),
            "parquet_io_manager": PartitionedParquetIOManager(base_dir=str(settings.home_path / "storage")),
        },
    )


@definitions
def defs() -> Definitions:
    """The code location's definitions, from the environment of the process that loads them (the
    code server, the webserver, ``dagster job execute``), with Dagster's two switches for runs
    over partition ranges set there (``settings.dagster_switches``)."""
    settings = Settings.from_environ()
    dagster_switches(settings)
    return build_definitions(settings)
