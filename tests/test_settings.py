"""One typed object holds every setting: read from the environment once at an edge, passed down."""

from __future__ import annotations

import json
import os
from dataclasses import fields
from pathlib import Path

import pytest

from quire_assets.settings import (
    Settings,
    SettingsError,
    dagster_switches,
    handed_to_workers,
    shared_salt,
    with_credentials,
)
from tests.cli.test_ingest_e2e import quire


def test_unset_and_empty_variables_keep_the_defaults():
    assert Settings.from_environ({}) == Settings()
    assert Settings.from_environ({"QUIRE_EXECUTOR": "", "QUIRE_STATS_MIN_CELL": ""}) == Settings()
    assert Settings().executor == "in_process" and Settings().stats_min_cell == 5 and Settings().fast_path


def test_each_variable_sets_its_setting_with_its_type():
    read = Settings.from_environ({"QUIRE_HOME": "/data/quire", "QUIRE_FAST_PATH": "0", "QUIRE_REGEX_SECONDS": "0.5",
                                  "QUIRE_STATS_MIN_CELL": "11", "QUIRE_API_OPEN": "1", "DAGSTER_HOME": "/d"})
    assert read.home == "/data/quire" and read.home_path == Path("/data/quire")
    assert read.fast_path is False and read.regex_seconds == 0.5 and read.stats_min_cell == 11 and read.api_open
    assert read.catalog_uri == "sqlite:////data/quire/catalog.db" and read.dagster_home == "/d"
    assert Settings.from_environ({"QUIRE_CATALOG": "mongodb://h/db"}).catalog_uri == "mongodb://h/db"


@pytest.mark.parametrize("variable, value, kind", [("QUIRE_STATS_MIN_CELL", "five", "a whole number"),
                                                   ("QUIRE_REGEX_SECONDS", "soon", "a number"),
                                                   ("QUIRE_FAST_PATH", "maybe", "a yes/no")])
def test_a_bad_value_names_its_variable(variable, value, kind):
    with pytest.raises(SettingsError, match=f"{variable}='{value}' is not {kind}"):
        Settings.from_environ({variable: value})


def test_the_command_refuses_a_bad_value_in_one_line(tmp_path):
    proc = quire("count", "series", env={**os.environ, "QUIRE_REGEX_SECONDS": "soon"}, cwd=tmp_path, check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == ["error: QUIRE_REGEX_SECONDS='soon' is not a number"]


def test_secrets_are_not_in_the_repr_and_is_set_says_whether_one_is_given():
    settings = Settings(pacs_password="hunter2", phi_salt="s3cret", catalog="mongodb://u:pw@h/db")
    assert "hunter2" not in repr(settings) and "s3cret" not in repr(settings) and "pw@" not in repr(settings)
    assert settings.is_set("pacs_password") and not settings.is_set("pacs_token")


def test_settings_handed_to_worker_processes_read_back_the_same():
    settings = Settings(catalog="sqlite:////x/c.db", source="/archive", api_open=True, stats_min_cell=9,
                        phi_salt="abc")
    environ = {"QUIRE_SOURCE": "/elsewhere", "QUIRE_MAX_COLLECTIONS": "7", "PATH": "/bin"}
    handed_to_workers(settings, environ)
    assert Settings.from_environ(environ) == settings
    assert environ["PATH"] == "/bin" and "QUIRE_MAX_COLLECTIONS" not in environ  # a default is not written


def test_a_salt_is_drawn_once_and_kept():
    salted = shared_salt(Settings())
    assert len(salted.phi_salt) == 64 and shared_salt(salted) is salted
    assert shared_salt(Settings()).phi_salt != salted.phi_salt


def test_dagster_switches_keep_an_explicit_setting():
    environ = {"DAGSTER_EVENT_BATCH_SIZE": "0"}
    dagster_switches(Settings(), environ)
    assert environ == {"DAGSTER_EVENT_BATCH_SIZE": "0", "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS": "true"}


def test_every_setting_has_a_variable_and_a_meaning():
    variables = [f.metadata["variable"] for f in fields(Settings)]
    assert len(variables) == len(set(variables))
    assert all(f.metadata["meaning"].endswith(".") for f in fields(Settings))


def test_settings_from_the_environment_reach_the_core(sample_archive, tmp_path):
    """Two settings the pure core used to read from the environment itself, given to it by the
    command now: QUIRE_FEATURES reaches the header reader, a site's synonym file reaches ``ask``."""
    features = tmp_path / "features"
    features.mkdir()
    (features / "series.txt").write_text("SeriesInstanceUID\nModality\nSeriesDescription\nSliceThickness\n")
    env = {**os.environ, "QUIRE_HOME": str(tmp_path / "home"), "QUIRE_FEATURES": str(features)}
    env.pop("QUIRE_CATALOG", None)
    quire("ingest", str(sample_archive), "--workers", "1", env=env, cwd=tmp_path)
    series = json.loads(quire("query", "series", "--format", "json", env=env, cwd=tmp_path).stdout)
    assert series and all("KVP" not in s["metadata"] and "ConvolutionKernel" not in s["metadata"] for s in series)
    assert any("SeriesDescription" in s["metadata"] for s in series)

    own = tmp_path / "mine.toml"
    own.write_text('[[phrase]]\nwords = ["lidc thin"]\nconcept = "slice_thickness"\nop = "$lt"\nvalue = 1\n')
    asked = quire("ask", "lidc thin series", "--format", "json", env={**env, "QUIRE_ASK_SYNONYMS": str(own)}, cwd=tmp_path)
    assert json.loads(asked.stdout)["filter"] == {"slice_thickness": {"$lt": 1}}
    without = quire("ask", "lidc thin series", "--format", "json", env=env, cwd=tmp_path, check=False)
    assert without.returncode != 0 or json.loads(without.stdout)["filter"] != {"slice_thickness": {"$lt": 1}}


def test_catalog_credentials_are_url_quoted_into_the_uri():
    from pymongo.uri_parser import parse_uri

    password = "p@ss:w/rd%40?#&x"
    settings = Settings.from_environ({"QUIRE_CATALOG": "mongodb://db:27017/quire?authSource=admin",
                                      "QUIRE_CATALOG_USER": "qu:ire", "QUIRE_CATALOG_PASSWORD": password})
    parsed = parse_uri(settings.catalog_uri)
    assert (parsed["username"], parsed["password"], parsed["database"]) == ("qu:ire", password, "quire")
    assert password not in repr(settings)
    # Handed on (uvicorn's workers read the assembled URI with the same two variables): unchanged.
    assert with_credentials(settings.catalog_uri, "qu:ire", password) == settings.catalog_uri
    with pytest.raises(SettingsError, match="keep one of the two"):
        with_credentials("mongodb://other:pw@db/quire", "qu:ire", password)
    with pytest.raises(SettingsError, match="mongodb:// catalog"):
        _ = Settings.from_environ({"QUIRE_CATALOG_USER": "quire", "QUIRE_CATALOG_PASSWORD": "x"}).catalog_uri


def test_the_catalog_resource_reads_its_credentials_at_run_time(monkeypatch):
    from pymongo.uri_parser import parse_uri

    from quire_assets.definitions import catalog_resource

    environ = {"QUIRE_CATALOG": "mongodb://db/quire", "QUIRE_CATALOG_USER": "quire", "QUIRE_CATALOG_PASSWORD": "a@b/c"}
    resource = catalog_resource(Settings.from_environ(environ))
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    resolved = resource.process_config_and_initialize()  # as a run does: the EnvVars read now
    assert parse_uri(resolved.resolved_uri())["password"] == "a@b/c"
    assert "a@b/c" not in repr(resource.__dict__)  # an EnvVar in the definitions, not the password
