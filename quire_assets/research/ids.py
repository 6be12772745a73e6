"""Identifiers of researchers, collections, cases and requests: the alphabet they are kept to, and
a researcher's own namespace of collection names."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from quire_assets.catalog.base import CatalogError

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$")
# A collection a researcher names through the API is kept as ``researcher~name``: each researcher's
# names are their own, so naming one never tells whether another researcher used it. ("~" is not
# in a name's alphabet, so the parts cannot be confused.)
NAMESPACE = "~"


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def check_id(kind: str, value: str) -> str:
    """An id in the ids' alphabet; a collection's may be a researcher's own (``owner~name``)."""
    parts = (value or "").split(NAMESPACE, 1) if kind == "collection" else [value or ""]
    if not all(_ID.match(part) for part in parts):
        raise CatalogError(f"{kind} {value!r}: use letters, digits and . _ @ - (at most 128)")
    return value


def own_collection_id(researcher_id: str, name: str) -> str:
    """Where a researcher's collection ``name`` is kept."""
    return f"{researcher_id}{NAMESPACE}{name}"


def shown_collection_id(researcher_id: str, collection_id: str) -> str:
    """A kept collection id as its researcher names it."""
    return collection_id.removeprefix(f"{researcher_id}{NAMESPACE}")
