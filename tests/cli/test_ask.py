"""``quire ask`` in a subprocess: the filter said, the results printed, nonsense refused."""

from __future__ import annotations

import json

import pytest

from tests.cli.test_ingest_e2e import ingested_home, quire


@pytest.fixture(scope="module")
def home(sample_archive, tmp_path_factory):
    return ingested_home(sample_archive, tmp_path_factory)


def test_ask_prints_the_filter_and_the_results(home):
    env, cwd = home
    proc = quire("ask", "siemens series thinner than 1 mm", env=env, cwd=cwd)
    assert 'filter: {"manufacturer": "SIEMENS", "slice_thickness": {"$lt": 1}}' in proc.stderr
    assert proc.stdout.count("SIEMENS") == 2  # the two thin Siemens series
    answer = json.loads(quire("ask", "how many female patients", "--format", "json", env=env, cwd=cwd).stdout)
    assert answer["level"] == "patients" and answer["count"] and answer["total"] == 3
    csv_out = quire("ask", "the 2 thinnest series", "--format", "csv", env=env, cwd=cwd)
    assert len(csv_out.stdout.strip().splitlines()) == 3 and csv_out.stderr == ""


def test_nothing_understood_exits_non_zero_with_examples(home):
    env, cwd = home
    proc = quire("ask", "what is the meaning of life", env=env, cwd=cwd, check=False)
    assert proc.returncode == 2 and "thin-slice chest CTs" in proc.stderr and proc.stdout == ""
