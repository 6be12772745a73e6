"""Bad input is answered 400/404/413/422 with ``{"error", "detail"}`` naming what was wrong, never a
500; and read routes leave the catalog as it was."""

from __future__ import annotations

import json

import pytest

from quire_assets.catalog import COLLECTIONS

DEEP = "[" * 40 + "]" * 40


@pytest.mark.parametrize(("method", "path", "kwargs", "status", "says"), [
    ("GET", "/api/v1/series", {"params": {"where": "{not json"}}, 400, "not valid JSON"),
    ("GET", "/api/v1/series", {"params": {"where": "[1]"}}, 400, "JSON object"),
    ("GET", "/api/v1/series", {"params": {"where": '{"study_date": "2020-01-01"}'}}, 400,
     "no series document has a field 'study_date' (studies documents have it)"),
    ("GET", "/api/v1/series", {"params": {"where": '{"$where": "sleep(1)"}'}}, 400, "'$where' is not supported"),
    ("GET", "/api/v1/series", {"params": {"where": '{"modality": {"$function": 1}}'}}, 400, "'$function'"),
    ("GET", "/api/v1/series", {"params": {"where": json.dumps({"modality": {"$in": DEEP}}).replace(
        f'"{DEEP}"', DEEP)}}, 400, "deeper than 32"),
    ("GET", "/api/v1/series", {"params": {"where": "[" * 3000 + "]" * 3000}}, 400, ""),
    ("POST", "/api/v1/series/search", {"json": {"where": {"modality": {"$in": list(range(10_001))}}}}, 400,
     "at most 10,000 values"),
    ("GET", "/api/v1/series", {"params": {"where": json.dumps({"modality": {"$regex": "a" * 1001}})}}, 400,
     "at most 1,000 characters"),
    ("GET", "/api/v1/series", {"params": {"where": json.dumps({"modality": {"$regex": "("}})}}, 400, "bad $regex"),
    ("GET", "/api/v1/series", {"params": {"sort": "metadata.KVP"}}, 400, "single-valued"),
    ("GET", "/api/v1/series", {"params": {"sort": "modality:sideways"}}, 400, "FIELD:asc"),
    ("GET", "/api/v1/series", {"params": {"fields": "no_such_field"}}, 400, "no_such_field"),
    ("GET", "/api/v1/series", {"params": {"limit": 0}}, 422, ""),
    ("GET", "/api/v1/series", {"params": {"limit": 10_001}}, 422, ""),
    ("GET", "/api/v1/series", {"params": {"limit": "many"}}, 422, ""),
    ("GET", "/api/v1/series", {"params": {"cursor": "forged"}}, 400, "cursor"),
    ("GET", "/api/v1/series", {"params": {"format": "xml"}}, 422, ""),
    ("GET", "/api/v1/scans", {}, 404, "/api/v1/scans"),
    ("GET", "/api/v1/scans/count", {}, 404, ""),
    ("GET", "/api/v1/series/distinct/no.such", {}, 400, "no.such"),
    ("POST", "/api/v1/series/search", {"content": b"{bad json", "headers": {"content-type": "application/json"}},
     422, ""),
    ("POST", "/api/v1/series/search", {"json": {"limit": -5}}, 422, ""),
    ("POST", "/api/v1/series/search", {"content": b"[" * 200_000, "headers": {"content-type": "application/json"}},
     400, "parsing the body"),
    ("POST", "/api/v1/series/search", {"content": b" " * (1024 * 1024 + 1),
                                       "headers": {"content-type": "application/json"}}, 413, "1,048,576"),
    ("POST", "/api/v1/series/search", {"content": iter([b" " * 700_000, b" " * 700_000]),  # chunked: no length
                                       "headers": {"content-type": "application/json"}}, 413, "1,048,576"),
    ("POST", "/api/v1/jobs", {"json": {"accessions": []}}, 422, ""),
    ("POST", "/api/v1/jobs", {"content": b"# nothing here\n", "headers": {"content-type": "text/csv"}}, 422, ""),
    ("POST", "/api/v1/jobs", {"content": b"\xff\xfe", "headers": {"content-type": "text/csv"}}, 400, "UTF-8"),
    ("POST", "/api/v1/jobs", {"content": b"x", "headers": {"content-type": "application/xml"}}, 415, ""),
    ("POST", "/api/v1/collections", {"json": {"collection_id": "../etc", "cases": []}}, 422, ""),
    ("DELETE", "/api/v1/studies", {}, 405, ""),
])
def test_refusals_are_clear_and_never_500(admin, method, path, kwargs, status, says):
    response = admin.request(method, path, **kwargs)
    assert response.status_code == status, response.text[:500]
    body = response.json()
    assert set(body) == {"error", "detail"} and body["error"]
    assert says in str(body["detail"])


def test_read_routes_never_write(admin, alice, api_home):
    import sqlite3

    def dump() -> str:
        with sqlite3.connect(api_home["catalog"]) as conn:
            # The documents (the write log a research view takes is bookkeeping, not the catalog).
            tables = [t for (t,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
                      if t in COLLECTIONS]
            return json.dumps({t: conn.execute(f'SELECT k, doc FROM "{t}" ORDER BY k').fetchall() for t in tables})

    before = dump()
    for client in (admin, alice):
        for path, params in [("/api/v1/studies", {}), ("/api/v1/series", {"format": "csv"}),
                             ("/api/v1/instances", {"format": "ndjson"}), ("/api/v1/series/count", {}),
                             ("/api/v1/series/distinct/modality", {}), ("/api/v1/stats", {}), ("/api/v1/report", {}),
                             ("/api/v1/integrity", {}), ("/api/v1/studies/files", {}), ("/api/v1/jobs", {}),
                             ("/api/v1/collections", {}), ("/api/v1/researchers", {})]:
            assert client.get(path, params=params).status_code == 200, path
    assert dump() == before
