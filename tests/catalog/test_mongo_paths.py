"""The MongoDB catalog's own paths: opening it from a URI (the password URL-quoted in, never shown
again), a server that cannot be reached or a URI that cannot be read (one clear error, no
password), and the write lease that ``transaction`` holds. mongomock stands in for the server
(``mongomock_ng.patch`` answers pymongo's own ``MongoClient``), so the URI is parsed, and the
client made, by pymongo."""

from __future__ import annotations

import os
import socket

import mongomock_ng
import pytest

from quire_assets.catalog import CatalogError, open_catalog
from quire_assets.catalog import mongo as mongo_module
from quire_assets.settings import Settings, with_credentials
from tests.cli.test_ingest_e2e import quire

PASSWORD = "S3cr:t@/%x"


def test_a_uri_with_its_credentials_opens_the_catalog_and_never_shows_the_password():
    settings = Settings.from_environ({"QUIRE_CATALOG": "mongodb://db.example:27017/quire_site?authSource=admin",
                                      "QUIRE_CATALOG_USER": "quire", "QUIRE_CATALOG_PASSWORD": PASSWORD})
    # (mongomock's server forgets its data when its last client closes: both stay open.)
    with mongomock_ng.patch(servers=(("db.example", 27017),)), open_catalog(settings.catalog_uri) as catalog, \
            open_catalog(settings.catalog_uri) as again:
        assert catalog.db.name == "quire_site"
        assert catalog.uri == "mongodb://quire:***@db.example:27017/quire_site?authSource=admin"
        catalog.upsert("series", [{"series_instance_uid": "1.2", "modality": "CT"}])
        assert [d["modality"] for d in again.find("series")] == ["CT"]  # the same server and database


@pytest.mark.parametrize("uri", [
    "mongodb://quire:S3CRET@db:99999/q", "mongodb://quire:S3C@RET@db/q", "mongodb://quire:S3CRET@/q",
    "mongodb://quire:S3CRET@db/q?authMechanism=NOPE", "mongodb+srv://quire:S3CRET@db:27017/q"])
def test_a_uri_that_cannot_be_read_is_one_error_without_the_password(uri):
    with pytest.raises(CatalogError, match="cannot open the MongoDB catalog") as caught:
        open_catalog(uri)
    assert "S3C" not in str(caught.value)


def test_a_server_that_cannot_be_reached_is_one_line_without_the_password(tmp_path):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    uri = with_credentials(f"mongodb://127.0.0.1:{port}/q", "quire", PASSWORD)
    env = {**os.environ, "QUIRE_HOME": str(tmp_path)}
    proc = quire("query", "series", "--catalog", uri + "?serverSelectionTimeoutMS=300", env=env, cwd=tmp_path,
                 check=False)
    assert proc.returncode == 2, proc.stderr
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith(f"error: cannot reach the MongoDB catalog at mongodb://quire:***@127.0.0.1:{port}/q")
    assert "Connection refused" in line and "S3cr" not in proc.stderr + proc.stdout


def test_the_write_lease_is_one_writers_at_a_time_and_released_on_error(monkeypatch):
    monkeypatch.setattr(mongo_module, "LOCK_WAIT_SECONDS", 0.3)
    with mongomock_ng.patch(servers=(("db.example", 27017),)):
        first, second = (open_catalog("mongodb://db.example/lease") for _ in range(2))
        with pytest.raises(RuntimeError, match="stopped mid-write"), first.transaction():
            with first.transaction():  # re-entrant in its holder
                first.upsert("series", [{"series_instance_uid": "1.1"}])
            with pytest.raises(CatalogError, match="another process has been writing the catalog"), \
                    second.transaction():
                pass
            raise RuntimeError("stopped mid-write")
        with second.transaction():  # released by the error
            second.upsert("series", [{"series_instance_uid": "1.2"}])
        assert sorted(d["series_instance_uid"] for d in first.find("series")) == ["1.1", "1.2"]
