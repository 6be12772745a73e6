"""The first admin key from a file (a deployment's secret, ``QUIRE_ADMIN_KEY_FILE``): a new
deployment's ``quire serve`` starts keyed instead of refusing to start, and the file never becomes
a second way in once a key was issued."""

from __future__ import annotations

import os

import httpx

from tests.api.conftest import Server
from tests.cli.test_ingest_e2e import quire


def _env(tmp_path, key_file) -> dict:
    env = {**os.environ, "QUIRE_HOME": str(tmp_path / "home"), "QUIRE_ADMIN_KEY_FILE": str(key_file)}
    env.pop("QUIRE_CATALOG", None)
    return env


def test_a_new_catalog_takes_its_first_admin_from_the_key_file(tmp_path):
    key = quire("researchers", "new-key", env=os.environ.copy(), cwd=tmp_path).stdout.strip()
    assert key != quire("researchers", "new-key", env=os.environ.copy(), cwd=tmp_path).stdout.strip()
    key_file = tmp_path / "quire_admin_key"
    key_file.write_text(key + "\n")
    env = _env(tmp_path, key_file)
    server = Server(env, tmp_path)
    try:
        with server.client(key) as client:
            me = client.get("/api/v1/researchers/me").json()
            assert (me["researcher_id"], me["admin"]) == ("admin", True)
            # Rotation: a new key for the admin; the file's key stops working, and a restart does not revive it.
            rotated = client.post("/api/v1/researchers/admin/key").json()["key"]
        assert httpx.get(f"{server.url}/api/v1/researchers/me", headers={"Authorization": f"Bearer {key}"}).status_code == 401
    finally:
        server.stop()
    server = Server(env, tmp_path)
    try:
        assert httpx.get(f"{server.url}/api/v1/researchers/me", headers={"Authorization": f"Bearer {key}"}).status_code == 401
        with server.client(rotated) as client:
            assert client.get("/api/v1/researchers/me").json()["researcher_id"] == "admin"
    finally:
        server.stop()
    listed = quire("researchers", "list", "--format", "json", env=env, cwd=tmp_path).stdout
    assert key.split("_", 2)[2] not in listed and rotated.split("_", 2)[2] not in listed


def test_a_key_file_that_holds_no_key_stops_the_service_and_says_why(tmp_path):
    key_file = tmp_path / "quire_admin_key"
    key_file.write_text("changeme\n")
    proc = quire("serve", "--port", "0", env=_env(tmp_path, key_file), cwd=tmp_path, check=False)
    assert proc.returncode == 2 and f"the admin key file {key_file}: not an API key" in proc.stderr
    assert "changeme" not in proc.stderr
    proc = quire("serve", "--port", "0", env=_env(tmp_path, tmp_path / "missing"), cwd=tmp_path, check=False)
    assert proc.returncode == 2 and f"the admin key file {tmp_path / 'missing'} cannot be read" in proc.stderr
