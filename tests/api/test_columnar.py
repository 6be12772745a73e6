"""``quire serve`` answers a researcher's counts and facets from the columnar copy (QUIRE_COLUMNAR,
the default) exactly as a server that reads only the research view does, on the same catalog, and
never from a copy behind the catalog: a re-ingest shows in the very next answer."""

from __future__ import annotations

import json
import shutil
import time

import httpx
import pytest

from quire_assets.web.pages import FILTERS
from tests.api.conftest import SALT, Server, add_researcher
from tests.cli.test_ingest_e2e import ingested_home, quire

WHERES = [{}, {"modality": "CT"}, {"modality": {"$in": ["CT", "MR"]}, "slice_thickness": {"$lt": 2}},
          {"$or": [{"manufacturer_family": "GE"}, {"series_types": "axial"}]}, {"complete_volume": {"$ne": True}}]


@pytest.fixture(scope="module")
def columnar_home(sample_archive, tmp_path_factory):
    archive = tmp_path_factory.mktemp("columnar-archive") / "archive"
    shutil.copytree(sample_archive, archive)
    env, home = ingested_home(archive, tmp_path_factory)
    env = {**env, "QUIRE_PHI_SALT": SALT}
    return {"env": env, "home": home, "archive": archive, "key": add_researcher(env, home, "carol")}


def _ready(server: Server, key: str) -> None:
    deadline = time.monotonic() + 60
    with server.client(key) as client:
        while client.get("/health").json()["columnar"] != "ready":
            client.get("/api/v1/series/count")  # a request brings the copy to the view's position
            assert time.monotonic() < deadline, "the columnar copy did not become ready"
            time.sleep(0.1)


def _answers(client: httpx.Client) -> dict:
    answers = {}
    for where in WHERES:
        params = {"where": json.dumps(where)}
        answers[f"series count {where}"] = client.get("/api/v1/series/count", params=params).json()
        for sort in ("num_instances:asc", "slice_thickness:desc", "series_description:asc"):
            answers[f"series page {sort} {where}"] = client.get(
                "/api/v1/series", params={**params, "sort": sort, "limit": 7}).json()["items"]
        for field in FILTERS["series"]["facets"]:
            answers[f"series {field} {where}"] = client.get(f"/api/v1/series/distinct/{field}", params=params).json()
    for field in FILTERS["studies"]["facets"]:
        answers[f"studies {field}"] = client.get(f"/api/v1/studies/distinct/{field}").json()
    answers["studies count"] = client.get("/api/v1/studies/count").json()
    return answers


def test_the_copys_answers_are_the_views_and_follow_a_reingest(columnar_home, pacs_archive):
    env, home, key = columnar_home["env"], columnar_home["home"], columnar_home["key"]
    with_copy = Server(env, home)
    without = Server({**env, "QUIRE_COLUMNAR": "0"}, home)
    try:
        with without.client(key) as client:
            assert client.get("/health").json()["columnar"] == "off"
        _ready(with_copy, key)
        with with_copy.client(key) as fast, without.client(key) as plain:
            before = _answers(plain)
            assert _answers(fast) == before
            assert before["series count {}"]["count"] > 0

            # New studies are cataloged: the next answer of the server with the copy holds them.
            quire("ingest", str(pacs_archive), env=env, cwd=home)
            after = _answers(plain)
            assert after["studies count"]["count"] > before["studies count"]["count"]
            assert _answers(fast) == after
            _ready(with_copy, key)
            assert _answers(fast) == after
    finally:
        with_copy.stop()
        without.stop()
