"""Keys and roles: no key, a wrong key, a revoked key; another researcher's jobs and collections;
admin-only routes; the refusal to serve a network address with no key defined."""

from __future__ import annotations

import pytest

from tests.api.conftest import Server, add_researcher
from tests.cli.test_ingest_e2e import quire


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer qk_0000_wrong"}, {"Authorization": "Basic abc"},
                                     {"Authorization": "Bearer"}])
def test_no_valid_key_is_401(server, headers):
    with server.client() as anonymous:
        response = anonymous.get("/api/v1/studies", headers=headers)
    assert response.status_code == 401 and response.json()["error"] == "unauthorized"
    assert response.headers["www-authenticate"] == "Bearer"


def test_health_needs_no_key(server):
    with server.client() as anonymous:
        assert anonymous.get("/health").json()["status"] == "ok"


def test_another_researchers_job_and_collection_are_not_there(alice, bob, admin):
    job = alice.post("/api/v1/jobs", json={"accessions": ["NOT-IN-ARCHIVE"]}).json()
    assert bob.get(f"/api/v1/jobs/{job['job_id']}").status_code == 404
    assert job["job_id"] not in {j["job_id"] for j in bob.get("/api/v1/jobs").json()}
    assert alice.get(f"/api/v1/jobs/{job['job_id']}").status_code == 200
    assert admin.get(f"/api/v1/jobs/{job['job_id']}").json()["researcher_id"] == "alice"
    alice.post("/api/v1/collections", json={"collection_id": "alice-private", "cases": [
        {"accession_numbers": ["LIDC0001A"]}]}).raise_for_status()
    for path in ("/api/v1/collections/alice-private", "/api/v1/collections/alice-private/studies"):
        assert bob.get(path).status_code == 404
    assert bob.get("/api/v1/studies", params={"collection": "alice-private"}).status_code == 404
    assert "alice-private" not in {c["collection_id"] for c in bob.get("/api/v1/collections").json()}
    assert bob.post("/api/v1/collections/alice-private/cases", json={"cases": [
        {"accession_numbers": ["X"]}]}).status_code == 404
    # An admin finds it under the id it is kept by: its researcher's own namespace.
    assert admin.get("/api/v1/collections/alice~alice-private").json()["researcher_id"] == "alice"


@pytest.mark.parametrize(("method", "path", "body"), [
    ("POST", "/api/v1/researchers", {"researcher_id": "eve"}),
    ("POST", "/api/v1/researchers/bob/key", None),
    ("DELETE", "/api/v1/researchers/bob/key", None),
    ("POST", "/api/v1/integrity/repair", None),
])
def test_admin_routes_refuse_researchers(alice, method, path, body):
    response = alice.request(method, path, json=body)
    assert response.status_code == 403 and response.json()["error"] == "forbidden"


def test_researchers_see_themselves_admins_everyone(alice, admin):
    assert [r["researcher_id"] for r in alice.get("/api/v1/researchers").json()] == ["alice"]
    everyone = {r["researcher_id"] for r in admin.get("/api/v1/researchers").json()}
    assert {"alice", "bob", "boss"} <= everyone
    me = alice.get("/api/v1/researchers/me").json()
    assert me["researcher_id"] == "alice" and me["name"] == "Alice" and not me["admin"]
    assert "hash" not in str(admin.get("/api/v1/researchers").json())


def test_revoked_keys_stop_at_once(server, admin, api_home):
    created = admin.post("/api/v1/researchers", json={"researcher_id": "carol", "name": "Carol"})
    assert created.status_code == 201
    key = created.json()["key"]
    with server.client(key) as carol:
        assert carol.get("/api/v1/studies/count").status_code == 200
        admin.delete("/api/v1/researchers/carol/key").raise_for_status()
        assert carol.get("/api/v1/studies/count").status_code == 401
    renewed = admin.post("/api/v1/researchers/carol/key").json()["key"]
    with server.client(renewed) as carol:
        assert carol.get("/api/v1/studies/count").status_code == 200
        # Revoked by the command line, in another process: the server stops the key too.
        quire("researchers", "revoke", "carol", env=api_home["env"], cwd=api_home["home"])
        assert carol.get("/api/v1/studies/count").status_code == 401
    assert admin.post("/api/v1/researchers", json={"researcher_id": "alice"}).status_code == 409


def test_researchers_command_lists_without_secrets(api_home):
    listed = quire("researchers", "list", env=api_home["env"], cwd=api_home["home"]).stdout
    assert "boss" in listed and "alice" in listed
    for key in api_home["keys"].values():
        assert key not in listed and key.split("_", 2)[2] not in listed  # the secret may hold "_"


def test_keyless_admin_only_when_asked_from_this_machine_and_never_once_keyed(sample_archive, tmp_path_factory):
    """Finding 7 of issue 27: revoking the last key reopened a keyless admin API; a proxy on the same
    host made every client local."""
    from tests.cli.test_ingest_e2e import ingested_home

    env, home = ingested_home(sample_archive, tmp_path_factory)
    refused = quire("serve", "--port", "1", env=env, cwd=home, check=False)
    assert refused.returncode == 2 and "no API key has been issued" in refused.stderr
    refused = quire("serve", "--open", "--host", "0.0.0.0", "--port", "1", env=env, cwd=home, check=False)
    assert refused.returncode == 2 and "only on a loopback address" in refused.stderr
    open_server = Server(env, home, "--no-worker", "--open")
    try:
        with open_server.client() as local:
            assert local.get("/api/v1/studies/count").json()["count"] == 7  # this machine, served as admin
            for header in ("X-Forwarded-For", "Forwarded", "X-Real-IP"):
                proxied = local.get("/api/v1/studies/count", headers={header: "203.0.113.9"})
                assert proxied.status_code == 401, header  # through a proxy: not this machine
            add_researcher(env, home, "first", "--admin")
            assert local.get("/api/v1/studies/count").status_code == 401  # a key exists now: keys only
            quire("researchers", "revoke", "first", env=env, cwd=home)
            assert local.get("/api/v1/studies/count").status_code == 401  # and for good
            assert local.post("/api/v1/researchers", json={"researcher_id": "intruder", "admin": True}).status_code == 401
    finally:
        open_server.stop()
