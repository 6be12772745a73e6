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


def test_a_partial_answer_says_so_first_and_exits_3(home):
    env, cwd = home
    proc = quire("ask", "CT series with blorp", env=env, cwd=cwd, check=False)
    assert proc.returncode == 3
    assert proc.stderr.splitlines()[0] == "partial answer: not used: blorp"
    assert proc.stdout.count("CT") >= 9  # the answer is still there, for a pipe
    as_json = quire("ask", "CT series with blorp", "--format", "json", env=env, cwd=cwd, check=False)
    assert as_json.returncode == 3 and json.loads(as_json.stdout)["partial"] is True


@pytest.mark.parametrize("question", ["female patients over sixty-ish 60 blorp", "studies per 5 widgets",
                                      "series with 3 frobnicators"])
def test_a_word_that_changes_the_question_is_refused_with_what_was_understood(home, question):
    env, cwd = home
    proc = quire("ask", question, env=env, cwd=cwd, check=False)
    assert proc.returncode == 2 and proc.stdout == ""
    assert "which change what the question asks, so it is not answered" in proc.stderr


def test_counts_per_group_and_which_questions_are_small_tables(home):
    env, cwd = home
    proc = quire("ask", "how many studies per patient", env=env, cwd=cwd)
    assert "counted per: patient_id" in proc.stderr
    rows = dict(line.split() for line in proc.stdout.splitlines()[2:])
    assert rows["LIDC-IDRI-0003"] == "2" and sum(map(int, rows.values())) == 7
    which = json.loads(quire("ask", "which scanners are in the catalog", "--format", "json", env=env, cwd=cwd).stdout)
    assert which["group_by"] == "manufacturer_model_name" and which["num_groups"] == 5
    assert {g["value"]: g["count"] for g in which["groups"]}["Sensation 16"] == 4
