"""``quire ingest`` from a real PACS (Orthanc) over DICOMweb and DIMSE, through the command line,
compared with the same files ingested from a folder."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from quire_assets.catalog import open_catalog
from quire_assets.catalog.base import LEVELS
from tests.cli.test_ingest_e2e import quire
from tests.pacs.conftest import PASSWORD, USER, dicom_files

# Where a file sits and how big it is: properties of a file, not of the instance in it.
FILE_FIELDS = {"uri", "uris", "locations", "size", "sources", "_id", "updated_at", "partition_version"}


def env_for(home: Path, **extra: str) -> dict:
    env = {**os.environ, "QUIRE_HOME": str(home), **extra}
    for name in ("QUIRE_CATALOG", "QUIRE_SOURCE", "QUIRE_PACS_USER", "QUIRE_PACS_PASSWORD", "QUIRE_PACS_TOKEN"):
        if name not in extra:
            env.pop(name, None)
    return env


def catalog_of(home: Path, without_transfer_syntax: bool = False) -> dict[str, dict]:
    """Every document by its key, without the file fields."""
    keys = {"patients": "patient_id", "studies": "study_instance_uid", "series": "series_instance_uid",
            "instances": "sop_instance_uid"}
    with open_catalog(f"sqlite:///{home}/catalog.db") as catalog:
        out = {}
        for level in LEVELS:
            for doc in catalog.find(level):
                doc = {k: v for k, v in doc.items() if k not in FILE_FIELDS}
                if without_transfer_syntax and "metadata" in doc:
                    doc["metadata"] = {k: v for k, v in doc["metadata"].items() if k != "TransferSyntaxUID"}
                out[f"{level}:{doc[keys[level]]}"] = doc
        return out


@pytest.fixture(scope="module")
def folder_catalog(tmp_path_factory, pacs_archive):
    """The PACS's files ingested from a folder (its DICOM files only: a PACS holds no XML)."""
    folder = tmp_path_factory.mktemp("pacs-folder")
    for path in dicom_files(pacs_archive):
        target = folder / path.relative_to(pacs_archive)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target)
    home = tmp_path_factory.mktemp("folder-home")
    quire("ingest", str(folder), env=env_for(home), cwd=home)
    return home


def differences(a: dict, b: dict) -> list[str]:
    out = [f"only in the folder's catalog: {k}" for k in a.keys() - b.keys()]
    out += [f"only in the PACS's catalog: {k}" for k in b.keys() - a.keys()]
    for key in a.keys() & b.keys():
        for field in a[key].keys() | b[key].keys():
            if a[key].get(field) != b[key].get(field):
                out.append(f"{key} {field}: {a[key].get(field)!r} != {b[key].get(field)!r}")
    return out


def test_dicomweb_catalog_equals_the_folder_catalog(pacs, folder_catalog, tmp_path):
    home = tmp_path / "home"
    proc = quire("ingest", pacs.dicomweb, env=env_for(home, QUIRE_PACS_USER=USER, QUIRE_PACS_PASSWORD=PASSWORD),
                 cwd=tmp_path)
    assert f"{len(pacs.files)} instances" in proc.stdout, proc.stdout
    # DICOM JSON carries no file meta information (PS3.18 F.2): the transfer syntax is not in it.
    folder = catalog_of(folder_catalog, without_transfer_syntax=True)
    web = catalog_of(home)
    assert sum(k.startswith("instances:") for k in web) == len(pacs.files)
    assert differences(folder, web) == []
    with open_catalog(f"sqlite:///{home}/catalog.db") as catalog:
        instance = catalog.find("instances", limit=1)[0]
        assert catalog.count("errors") == 0
    assert instance["uri"].startswith(f"{pacs.url}/dicom-web/studies/{instance['study_instance_uid']}/series/")
    assert instance["uri"].endswith(f"/instances/{instance['sop_instance_uid']}")


def test_dimse_catalog_equals_the_folder_catalog(pacs, folder_catalog, tmp_path):
    home = tmp_path / "home"
    proc = quire("ingest", pacs.dimse(), env=env_for(home), cwd=tmp_path)
    assert f"{len(pacs.files)} instances" in proc.stdout, proc.stdout
    # Every (SOP class, transfer syntax) pair is its own presentation context: nothing transcoded,
    # so even the transfer syntax equals the file's.
    assert differences(catalog_of(folder_catalog), catalog_of(home)) == []


def test_accessions_since_and_modality_select_studies(pacs, tmp_path):
    with_accession = {}
    import pydicom

    for path in pacs.files.values():
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        if ds.get("AccessionNumber"):
            with_accession.setdefault(str(ds.AccessionNumber), set()).add(str(ds.SOPInstanceUID))
    accession = sorted(with_accession)[0]
    for source in (pacs.dicomweb, pacs.dimse()):
        home = tmp_path / source.split(":")[0]
        env = env_for(home, QUIRE_PACS_USER=USER, QUIRE_PACS_PASSWORD=PASSWORD)
        quire("ingest", source, "--accessions", f"{accession},NOT-THERE", env=env, cwd=tmp_path)
        with open_catalog(f"sqlite:///{home}/catalog.db") as catalog:
            assert {d["sop_instance_uid"] for d in catalog.find("instances")} == with_accession[accession]
    bad = quire("ingest", pacs.dicomweb, "--accessions", "A*", env=env_for(tmp_path / "x"), cwd=tmp_path, check=False)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == ["error: accession number 'A*' cannot be asked for exactly "
                                               "(empty, too long, or holding *, ? or \\)"]


@pytest.mark.parametrize("case", ["stopped", "wrong_called_aet", "unknown_calling_aet", "bad_password", "no_password"])
def test_a_pacs_out_of_reach_is_one_clear_line(pacs, tmp_path, case):
    from tests.s3.conftest import free_port

    env = env_for(tmp_path / "home", QUIRE_PACS_USER=USER, QUIRE_PACS_PASSWORD=PASSWORD)
    source, expected = {
        "stopped": (f"dicomweb+http://127.0.0.1:{free_port()}/dicom-web", "cannot connect to the PACS (Connection refused)"),
        "wrong_called_aet": (pacs.dimse(called="NOT_THE_PACS"),
                             "the PACS rejected the association: Called AE title not recognised"),
        "unknown_calling_aet": (pacs.dimse(calling="STRANGER"),
                                "the PACS rejected the association: Calling AE title not recognised"),
        "bad_password": (pacs.dicomweb, "the PACS refused the credentials (HTTP 401)"),
        "no_password": (pacs.dicomweb, "the PACS refused the credentials (HTTP 401)"),
    }[case]
    if case == "bad_password":
        env["QUIRE_PACS_PASSWORD"] = "wrong"
    if case == "no_password":
        env.pop("QUIRE_PACS_USER")
        env.pop("QUIRE_PACS_PASSWORD")
    proc = quire("ingest", source, env=env, cwd=tmp_path, check=False)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ") and expected in lines[0], lines[0]
    assert "Traceback" not in proc.stderr and PASSWORD not in proc.stderr and "wrong" not in proc.stderr


def test_a_stopped_dimse_pacs_is_one_clear_line(tmp_path):
    from tests.s3.conftest import free_port

    proc = quire("ingest", f"dimse://PACS@127.0.0.1:{free_port()}", env=env_for(tmp_path / "home"), cwd=tmp_path,
                 check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"error: {proc.args[2]}?calling=QUIRE: cannot connect to the PACS (Connection refused)"]


def test_credentials_in_the_url_are_refused(tmp_path):
    proc = quire("ingest", "dicomweb+https://user:secret@pacs.example.org/dicom-web", env=env_for(tmp_path),
                 cwd=tmp_path, check=False)
    assert proc.returncode == 2
    assert "not in the URL" in proc.stderr and "secret" not in proc.stderr


def test_cli_help_names_the_pacs_uris():
    proc = subprocess.run([quire.__globals__["QUIRE"], "ingest", "--help"], capture_output=True, text=True)
    assert "dicomweb+https://host/path" in proc.stdout and "dimse://CALLED_AET@host:port" in proc.stdout
