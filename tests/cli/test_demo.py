"""``quire demo`` and ``quire sample-archive`` as a newcomer runs them."""

from __future__ import annotations

import os

from tests.cli.test_ingest_e2e import quire


def test_demo_runs_on_the_embedded_default(tmp_path):
    env = {**os.environ, "QUIRE_HOME": str(tmp_path / "home")}
    env.pop("DAGSTER_HOME", None)
    out = quire("demo", env=env, cwd=tmp_path).stdout
    assert "CT series thinner than 1.5 mm from GE scanners" in out
    assert "GE MEDICAL SYSTEMS" in out and "LightSpeed16" in out
    assert "79 instances" in out and "(tmp" not in out
    assert (tmp_path / "home" / "catalog.db").is_file()


def test_sample_archive_command(tmp_path):
    out = quire("sample-archive", str(tmp_path / "x"), env=dict(os.environ), cwd=tmp_path).stdout
    assert "6 patients" in out
    assert (tmp_path / "x" / "LIDC-IDRI" / "LIDC-IDRI-0001").is_dir()
    assert (tmp_path / "x" / "metadata.csv").is_file()


def test_demo_ends_by_naming_next_commands_that_work_on_what_it_built(tmp_path):
    import shlex

    env = {**os.environ, "QUIRE_HOME": str(tmp_path / "home")}
    env.pop("DAGSTER_HOME", None)
    env.pop("QUIRE_CATALOG", None)
    out = quire("demo", env=env, cwd=tmp_path).stdout
    steps = out.split("Try next:", 1)[1].strip().splitlines()
    commands = [shlex.split(line.split("  #", 1)[0]) for line in steps if line.strip().startswith("quire ")]
    assert [c[1] for c in commands] == ["serve", "ask", "report", "query"]
    assert "dagster dev -m quire_assets.definitions" in steps[-1] and "DAGSTER_HOME" in steps[-1]
    for command in commands[1:]:  # `quire serve` runs until stopped: tests/api start it
        proc = quire(*command[1:], env=env, cwd=tmp_path)
        assert proc.returncode == 0 and proc.stdout.strip(), command
    assert (tmp_path / "quire-report.html").is_file()
