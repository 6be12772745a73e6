"""The catalog as a Dagster resource."""

from __future__ import annotations

from pathlib import Path

from dagster import ConfigurableResource
from pydantic import Field

from quire_assets.catalog import Catalog, open_catalog
from quire_assets.settings import Settings, home_of


class CatalogResource(ConfigurableResource):
    """``sqlite:///path/catalog.db`` or ``mongodb://...``; empty: ``$QUIRE_CATALOG`` or the embedded default.

    A MongoDB URI with a password belongs in an environment variable: ``EnvVar("QUIRE_CATALOG")``.
    """

    uri: str = Field(default="", description="Catalog URI; empty: $QUIRE_CATALOG or sqlite:///$QUIRE_HOME/catalog.db")
    home: str = Field(default="", description="Quire's folder (the embedded catalog, reports); empty: $QUIRE_HOME")

    def resolved_uri(self) -> str:
        return self.uri or Settings.from_environ().with_(home=self.home or None).catalog_uri

    def reports_dir(self) -> Path:
        return home_of(self.home) / "reports"

    def open(self) -> Catalog:
        return open_catalog(self.resolved_uri())
