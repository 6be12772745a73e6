"""The command line says no clearly: every bad input is one line on stderr and exit status 2,
never a traceback, and what it prints is whole (no silently cut UIDs or paths)."""

from __future__ import annotations

import json

import pytest

from tests.cli.test_ingest_e2e import ingested_home, quire


@pytest.fixture(scope="module")
def ingested(sample_archive, tmp_path_factory):
    return ingested_home(sample_archive, tmp_path_factory)


@pytest.mark.parametrize("args, says", [
    (["query", "studies", "--sort", "study_dat"], "--sort: no studies document has a field 'study_dat'"),
    (["query", "studies", "--sort", "study_date:down"], "--sort 'study_date:down': write FIELD, FIELD:asc or FIELD:desc"),
    (["query", "studies", "--limit", "-1"], "argument --limit: -1 is less than 0"),
    (["query", "studies", "--limit", "ten"], "argument --limit: 'ten' is not a whole number"),
    (["query", "series", "--fields", "modality,metadata.NoSuchKeyword"], "--fields: no series document has a field "
                                                                          "'metadata.NoSuchKeyword'"),
    (["query", "series", "--where", '{"study_date": {"$gte": "2000-01-01"}}'],
     "--where: no series document has a field 'study_date' (studies documents have it)"),
    (["query", "series", "--where", '{"$or": [{"modality": "CT"}, {"modalitty": "MR"}]}'],
     "no series document has a field 'modalitty'"),
    (["report", "--where", '{"modality": "CT"}'], "--where (on studies): no studies document has a field 'modality' "
                                                  "(series documents have it)"),
    (["report", "--out", "/proc/no-such-place"], "cannot write the report to /proc/no-such-place"),
    (["ingest", "{archive}", "--workers", "-2"], "argument --workers: -2 is less than 1"),
    (["ingest", "{archive}", "--batch", "0"], "argument --batch: 0 is less than 1"),
    (["count", "series", "--where", "{not json"], "--where is not valid JSON"),
    (["query", "nope"], "argument level: invalid choice: 'nope'"),
    (["ingest", "{archive}/metadata.csv"], "is a file: name the folder that holds it"),
])
def test_bad_input_is_one_line_and_exit_2(ingested, sample_archive, args, says):
    env, home = ingested
    args = [a.replace("{archive}", str(sample_archive)) for a in args]
    proc = quire(*args, env=env, cwd=home, check=False)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ") and says in lines[0], lines[0]
    assert "Traceback" not in proc.stderr


def test_dotted_fields_count_and_fields(ingested):
    env, home = ingested
    rows = quire("query", "series", "--fields", "series_instance_uid,metadata.KVP", "--format", "csv",
                 "--where", '{"modality": "CT"}', env=env, cwd=home).stdout.splitlines()
    assert rows[0] == "series_instance_uid,metadata.KVP" and len(rows) > 5
    assert {r.split(",")[1] for r in rows[1:]} == {"120.0", "140.0"}  # the KVP of each series, not blanks
    counted = quire("count", "series", "--where", '{"modality": "CT"}', env=env, cwd=home).stdout.strip()
    assert int(counted) == len(rows) - 1
    fields = quire("fields", "series", env=env, cwd=home).stdout.split()
    assert {"modality", "slice_thickness", "metadata.KVP", "series_instance_uid"} <= set(fields)
    assert quire("--version", env=env, cwd=home).stdout.startswith("quire ")


def test_tables_keep_uids_and_paths_whole_and_mark_any_cut(ingested):
    env, home = ingested
    docs = json.loads(quire("query", "errors", "--format", "json", env=env, cwd=home).stdout)
    table = quire("query", "errors", "--fields", "uri,detail", env=env, cwd=home).stdout
    for doc in docs:
        assert doc["uri"] in table  # a path is never cut
        if len(doc["detail"]) > 60:
            assert doc["detail"][:59] + "…" in table
    instances = quire("query", "instances", "--fields", "sop_instance_uid,uri", "--limit", "3", env=env, cwd=home).stdout
    for doc in json.loads(quire("query", "instances", "--limit", "3", "--format", "json", env=env, cwd=home).stdout):
        assert doc["sop_instance_uid"] in instances and doc["uri"] in instances


def test_a_reader_that_stops_reading_ends_the_command_quietly(sample_archive, tmp_path_factory):
    """Issue 28: `quire query ... | head` ended in a BrokenPipeError traceback."""
    import subprocess

    from tests.cli.test_ingest_e2e import QUIRE, ingested_home

    env, home = ingested_home(sample_archive, tmp_path_factory)
    proc = subprocess.Popen([QUIRE, "query", "instances", "--format", "json"], env=env, cwd=home,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout.readline().strip() == b"["
    proc.stdout.close()  # as `head -1` does: more than a pipe's buffer is still to come
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141
    assert stderr == ""
