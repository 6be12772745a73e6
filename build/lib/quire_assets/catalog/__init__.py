"""The metadata catalog: one interface, an embedded SQLite default and MongoDB (no Dagster here)."""

from __future__ import annotations

from pathlib import Path

from quire_assets.catalog.base import (
    COLLECTIONS,
    KEYS,
    Catalog,
    CatalogError,
    default_catalog_uri,
    quire_home,
)
from quire_assets.catalog.filters import FilterError, validate_filter


def open_catalog(uri: str | None = None, must_exist: bool = False) -> Catalog:
    """Open the catalog at ``uri``: ``sqlite:///path``, ``mongodb://...`` or ``mongodb+srv://...``.

    Without a URI: ``$QUIRE_CATALOG``, else ``sqlite:///$QUIRE_HOME/catalog.db``. With
    ``must_exist`` (what reading needs), an embedded catalog that is not there is an error, and
    nothing is created: a mistyped path or another working directory never reads as an empty
    catalog.
    """
    uri = uri or default_catalog_uri()
    if uri.startswith("sqlite://"):
        from quire_assets.catalog.sqlite import SqliteCatalog

        path = uri.removeprefix("sqlite://")
        path = path.removeprefix("/") if path.startswith("//") else path
        if not path or path == "/":
            raise CatalogError(f"no file in the catalog URI {uri!r} (write sqlite:///path/catalog.db)")
        if must_exist and not Path(path).is_file():
            raise CatalogError(f"no catalog at {path}: run `quire ingest SOURCE` first, or name the catalog "
                               "with --catalog or QUIRE_CATALOG")
        return SqliteCatalog(path)
    if uri.startswith(("mongodb://", "mongodb+srv://")):
        from quire_assets.catalog.mongo import MongoCatalog

        return MongoCatalog.from_uri(uri)
    raise CatalogError(f"unknown catalog URI {uri.split('://')[0]!r}: use sqlite:///path or mongodb://host")


__all__ = [
    "COLLECTIONS",
    "KEYS",
    "Catalog",
    "CatalogError",
    "FilterError",
    "default_catalog_uri",
    "open_catalog",
    "quire_home",
    "validate_filter",
]
