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
from quire_assets.resources import CatalogResource, DicomSource, PartitionedParquetIOManager
from quire_assets.sensors import all_sensors
from quire_assets.settings import Settings, dagster_switches

DEFAULT_SOURCE = "archive"
# The source resource's secret fields, by setting (a DICOMweb PACS's credentials).
_PACS_SECRETS = (("username", "pacs_user"), ("password", "pacs_password"), ("token", "pacs_token"),
                 ("ca_bundle", "pacs_ca_bundle"))


def source_resource(settings: Settings, source_uri: str | None = None) -> DicomSource:
    """The source resource for a folder, an ``s3://`` URI or a PACS (default: ``QUIRE_SOURCE``).

    A URI or credential that came from the environment stays an ``EnvVar``: read at run time,
    never stored in the definitions or shown in the UI."""
    if source_uri is not None:
        uri = source_uri
    else:
        uri = EnvVar(settings.variable("source")) if settings.is_set("source") else DEFAULT_SOURCE
    secrets = {field: EnvVar(settings.variable(name)) for field, name in _PACS_SECRETS if settings.is_set(name)}
    return DicomSource(uri=uri, **secrets, feature_sets_dir=settings.features, home=str(settings.home_path),
                       fast_path=settings.fast_path, partitions_kept=settings.partitions_kept)


def catalog_resource(settings: Settings, catalog_uri: str | None = None) -> CatalogResource:
    home = str(settings.home_path)
    if catalog_uri:
        return CatalogResource(uri=catalog_uri, home=home)
    if settings.is_set("catalog"):
        credentials = {name.removeprefix("catalog_"): EnvVar(settings.variable(name))
                       for name in ("catalog_user", "catalog_password") if settings.is_set(name)}
        return CatalogResource(uri=EnvVar(settings.variable("catalog")), home=home, **credentials)
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
