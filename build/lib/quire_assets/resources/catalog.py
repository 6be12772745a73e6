"""The catalog as a Dagster resource."""

from __future__ import annotations

from dagster import ConfigurableResource
from pydantic import Field

from quire_assets.catalog import Catalog, default_catalog_uri, open_catalog


class CatalogResource(ConfigurableResource):
    """``sqlite:///path/catalog.db`` or ``mongodb://...``; empty: ``$QUIRE_CATALOG`` or the embedded default.

    A MongoDB URI with a password belongs in an environment variable: ``EnvVar("QUIRE_CATALOG")``.
    """

    uri: str = Field(default="", description="Catalog URI; empty: $QUIRE_CATALOG or sqlite:///$QUIRE_HOME/catalog.db")

    def resolved_uri(self) -> str:
        return self.uri or default_catalog_uri()

    def open(self) -> Catalog:
        return open_catalog(self.resolved_uri())
