"""Catalog backends for the contract suite: SQLite, mongomock, and a real MongoDB when
``QUIRE_TEST_MONGO_URI`` is set (no MongoDB server can be installed on the CI machines)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import mongomock_ng
import pytest

from quire_assets.catalog import open_catalog
from quire_assets.catalog.mongo import MongoCatalog

NO_SERVER = pytest.mark.skipif(not os.environ.get("QUIRE_TEST_MONGO_URI"),
                               reason="no MongoDB server here: QUIRE_TEST_MONGO_URI=mongodb://... runs this on one")


def backends(*left_out: str) -> list:
    """The backends as test parameters, less ``left_out``: a real MongoDB is always among them,
    shown as skipped (with the reason) where no server is configured, never silently absent."""
    return [pytest.param(kind, marks=NO_SERVER) if kind == "mongodb" else kind
            for kind in ("sqlite", "mongomock", "mongodb") if kind not in left_out]


BACKENDS = backends()


def make_catalog(kind: str, tmp_path):
    if kind == "sqlite":
        return open_catalog(f"sqlite:///{tmp_path / 'catalog.db'}")
    if kind == "mongomock":
        return MongoCatalog(mongomock_ng.MongoClient(), "quire_test")
    from pymongo import MongoClient

    client = MongoClient(os.environ["QUIRE_TEST_MONGO_URI"])
    return MongoCatalog(client, f"quire_test_{uuid.uuid4().hex[:8]}")


def discard(cat, kind: str) -> None:
    """Close a test catalog; on a real MongoDB its test database is dropped too."""
    if kind == "mongodb":
        cat.client.drop_database(cat.db.name)
    cat.close()


@contextmanager
def backend_catalog(kind: str, tmp_path) -> Iterator:
    """An empty catalog of one backend, discarded after use."""
    cat = make_catalog(kind, tmp_path)
    try:
        yield cat
    finally:
        discard(cat, kind)


@pytest.fixture(params=BACKENDS)
def catalog(request, tmp_path):
    with backend_catalog(request.param, tmp_path) as cat:
        yield cat


@pytest.fixture(params=BACKENDS)
def catalog_factory(request, tmp_path):
    """Makes several empty catalogs of one backend, for comparing two ways of writing."""
    made = []

    def make():
        folder = tmp_path / f"catalog{len(made)}"
        folder.mkdir()
        cat = make_catalog(request.param, folder)
        if request.param == "mongomock":
            cat = MongoCatalog(cat.client, f"quire_test_{len(made)}")
        made.append(cat)
        return cat

    yield make
    for cat in made:
        discard(cat, request.param)
