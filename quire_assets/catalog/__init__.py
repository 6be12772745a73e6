"""The metadata catalog: one interface, an embedded SQLite default and MongoDB (no Dagster here)."""

from __future__ import annotations

from pathlib import Path

from quire_assets.catalog.base import (
    COLLECTIONS,
    KEYS,
    Catalog,
    CatalogError,
)
from quire_assets.catalog.filters import FilterError, validate_filter


def open_catalog(uri: str, must_exist: bool = False, regex_seconds: float | None = None) -> Catalog:
    """Open the catalog at ``uri``: ``sqlite:///path``, ``mongodb://...`` or ``mongodb+srv://...``.

    With ``must_exist`` (what reading needs), an embedded catalog that is not there is an error, and
    nothing is created: a mistyped path or another working directory never reads as an empty
    catalog. ``regex_seconds`` bounds the ``$regex`` conditions of each query (default 5 s).
    """
    catalog = _open(uri, must_exist)
    if regex_seconds is not None:
        catalog.regex_seconds = regex_seconds
    return catalog


def _open(uri: str, must_exist: bool) -> Catalog:
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
    "open_catalog",
    "validate_filter",
]
