"""The catalog as a Dagster resource."""

from __future__ import annotations

from pathlib import Path

from dagster import ConfigurableResource
from pydantic import Field

from quire_assets.catalog import Catalog, open_catalog
from quire_assets.settings import Settings, home_of, with_credentials


class CatalogResource(ConfigurableResource):
    """``sqlite:///path/catalog.db`` or ``mongodb://...``; empty: ``$QUIRE_CATALOG`` or the embedded default.

    A MongoDB URI with a password belongs in an environment variable: ``EnvVar("QUIRE_CATALOG")``.
    """

    uri: str = Field(default="", description="Catalog URI; empty: $QUIRE_CATALOG or sqlite:///$QUIRE_HOME/catalog.db")
    home: str = Field(default="", description="Quire's folder (the embedded catalog, reports); empty: $QUIRE_HOME")
    user: str = Field(default="", description="MongoDB user, URL-quoted into the URI; empty: none or the URI's")
    password: str = Field(default="", description="That user's password: an EnvVar")

    def resolved_uri(self) -> str:
        if not self.uri:
            return Settings.from_environ().with_(home=self.home or None).catalog_uri
        return with_credentials(self.uri, self.user, self.password)

    def reports_dir(self) -> Path:
        return home_of(self.home) / "reports"

    def open(self) -> Catalog:
        return open_catalog(self.resolved_uri())
