"""A $regex that backtracks catastrophically is stopped by its time budget (QUIRE_REGEX_SECONDS)
and refused in one line, on the SQLite catalog, through the CLI, and on a real MongoDB when
QUIRE_TEST_MONGO_URI is set (maxTimeMS). mongomock matches with Python's `re` in process and
cannot be stopped, so it only checks that ordinary patterns still work with the bound in place."""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from quire_assets.catalog import FilterError, open_catalog
from tests.catalog.conftest import BACKENDS, backends, make_catalog
from tests.cli.test_ingest_e2e import QUIRE

# (a|aa)+$ against 40 a's and a '!': exponentially many ways to fail, hours in a backtracking engine.
EVIL = {"series_description": {"$regex": "^(a|aa)+$"}}
VICTIM = "a" * 40 + "!"


def _fill(catalog) -> None:
    catalog.upsert("series", [{"series_instance_uid": f"1.{i}", "series_description": VICTIM if i % 2 else "CHEST"}
                              for i in range(20)])


# mongomock matches with Python's re in process: no server-side time bound to test there.
@pytest.mark.parametrize("kind", backends("mongomock"))
def test_a_backtracking_regex_is_stopped_and_refused(kind, tmp_path):
    catalog = make_catalog(kind, tmp_path)
    catalog.regex_seconds = 0.5  # what open_catalog sets from QUIRE_REGEX_SECONDS (the CLI test below)
    _fill(catalog)
    for read in (lambda: catalog.find("series", EVIL), lambda: catalog.count("series", EVIL)):
        start = time.monotonic()
        with pytest.raises(FilterError, match=r"\$regex ran longer than 0.5 s"):
            read()
        assert time.monotonic() - start < 10
    # The catalog still answers, and an ordinary pattern matches as before.
    assert catalog.count("series", {"series_description": {"$regex": "^CH", "$options": "i"}}) == 10


@pytest.mark.parametrize("kind", BACKENDS)
def test_ordinary_patterns_work_under_the_bound(kind, tmp_path):
    catalog = make_catalog(kind, tmp_path)
    _fill(catalog)
    assert len(catalog.find("series", {"series_description": {"$regex": "!$"}})) == 10
    assert catalog.count("series", {"series_description": {"$regex": "chest", "$options": "i"}}) == 10


def test_the_cli_refuses_it_in_one_line(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    with open_catalog(f"sqlite:///{home / 'catalog.db'}") as catalog:
        _fill(catalog)
    env = {**os.environ, "QUIRE_HOME": str(home), "QUIRE_REGEX_SECONDS": "0.5"}
    env.pop("QUIRE_CATALOG", None)
    proc = subprocess.run([QUIRE, "query", "series", "--where", '{"series_description": {"$regex": "^(a|aa)+$"}}'],
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: the query's $regex ran longer than 0.5 s (a pattern that backtracks, such as (a|aa)+, on long values): "
        "simplify the pattern"]
