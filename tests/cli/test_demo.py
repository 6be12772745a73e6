"""``quire demo`` and ``quire sample-archive`` as a newcomer runs them."""

from __future__ import annotations

import os

from tests.cli.test_ingest_e2e import quire


def test_demo_runs_on_the_embedded_default(tmp_path):
    env = {**os.environ, "QUIRE_HOME": str(tmp_path / "home")}
    env.pop("DAGSTER_HOME", None)
    out = quire("demo", env=env, cwd=tmp_path).stdout
    assert "CT series thinner than 1.5 mm" in out and "(tmp" not in out
    # The showcase archive: every file accounted for, CT, MR and DX, the defects it was written with.
    from quire_assets.catalog import open_catalog

    with open_catalog(f"sqlite:///{tmp_path / 'home' / 'catalog.db'}") as catalog:
        instances = catalog.count("instances")
        assert {m for m, _ in catalog.value_counts("series", "modality")} == {"CT", "MR", "DX"}
        assert {f for f, _ in catalog.value_counts("series", "quality_flags")} >= {
            "missing_slices", "duplicate_positions", "damaged_files"}
        assert {"FLAIR", "T1w", "T2w", "DWI"} <= {t for t, _ in catalog.value_counts("series", "series_types")}
        assert len(catalog.value_counts("studies", "patient_sex")) >= 2
        years = {d[:4] for d in catalog.distinct("studies", "study_date")}
        errors = dict(catalog.value_counts("errors", "reason"))
    assert len(years) >= 5 and errors == {"skipped": 1, "truncated": 1}
    files = sum(1 for p in (tmp_path / "home" / "demo-archive").rglob("*") if p.is_file())
    assert f"{files:,} files, {instances:,} instances" in out and instances == files - 2


def test_sample_archive_command(tmp_path):
    out = quire("sample-archive", str(tmp_path / "x"), env=dict(os.environ), cwd=tmp_path).stdout
    assert "6 patients" in out
    assert (tmp_path / "x" / "LIDC-IDRI" / "LIDC-IDRI-0001").is_dir()
    assert (tmp_path / "x" / "metadata.csv").is_file()
    out = quire("sample-archive", str(tmp_path / "y"), "--showcase", "--studies", "12", env=dict(os.environ),
                cwd=tmp_path).stdout
    assert "12 studies" in out and (tmp_path / "y" / "README.txt").is_file()
    assert len({p.parts[-3] for p in (tmp_path / "y").rglob("*.dcm")}) == 12  # <year>/<accession>/<series>/n.dcm


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
