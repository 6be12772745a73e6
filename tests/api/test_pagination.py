"""Cursor pages stay exact while another process ingests into the same catalog: walking the pages
over and over during a real ``quire ingest`` (one Dagster run per accession, so its writes spread
over seconds), every row that was there before appears exactly once in each walk, none twice."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.api.conftest import SALT, Server, add_researcher
from tests.cli.test_ingest_e2e import QUIRE, ingested_home
from tests.conftest import pydicom_files


@pytest.fixture(scope="module")
def busy(sample_archive, tmp_path_factory):
    archive = tmp_path_factory.mktemp("paging-archive") / "archive"
    shutil.copytree(sample_archive, archive)
    env, home = ingested_home(archive, tmp_path_factory)
    env = {**env, "QUIRE_PHI_SALT": SALT}
    key = add_researcher(env, home, "pager", "--admin")
    other = tmp_path_factory.mktemp("pydicom-archive")
    for i, path in enumerate(pydicom_files()):
        shutil.copy(path, other / f"{i:03d}-{path.name}")
    server = Server(env, home, "--no-worker")
    yield server, key, env, home, other
    server.stop()


def _walk(client, limit: int) -> tuple[list[str], int, int]:
    """The keys of one walk through the instance pages, and the catalog's count before and after it."""
    start = client.get("/api/v1/instances/count").json()["count"]
    keys, cursor = [], None
    while True:
        body = client.get("/api/v1/instances", params={"limit": limit, "fields": "uri",
                                                       **({"cursor": cursor} if cursor else {})}).json()
        keys += [d["sop_instance_uid"] for d in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            return keys, start, client.get("/api/v1/instances/count").json()["count"]


def test_pages_miss_nothing_and_repeat_nothing_during_an_ingest(busy):
    server, key, env, home, other = busy
    with server.client(key) as client:
        before, _, _ = _walk(client, 1000)
        assert len(before) == len(set(before)) == 79
        ingest = subprocess.Popen([QUIRE, "ingest", str(other), "--batch", "1", "--workers", "1"], env=env, cwd=home,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        walks = overlapping = 0
        while ingest.poll() is None:
            keys, start, end = _walk(client, 7)
            walks += 1
            overlapping += start != end
            assert len(keys) == len(set(keys)), "a row came twice"
            assert set(before) <= set(keys), f"rows missed: {sorted(set(before) - set(keys))[:5]}"
        assert ingest.returncode == 0, ingest.stderr.read()[-2000:]
        after, start, end = _walk(client, 7)
        assert start == end == len(after) == len(set(after)) > len(before)
    assert overlapping >= 1, f"no walk overlapped the ingest's writes ({walks} walks)"
