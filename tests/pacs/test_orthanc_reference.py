"""A real PACS as the reference (issue 18, item 1): every one of pydicom's test files that
Debian's Orthanc accepts is cataloged by ``quire ingest`` of the same folder with the study,
series and accession number Orthanc indexed it under."""

from __future__ import annotations

import shutil

import requests

from quire_assets.catalog import open_catalog
from tests.cli.test_ingest_e2e import quire
from tests.conftest import PYDICOM_TEST_FILES, pydicom_files
from tests.pacs.conftest import PASSWORD, USER, start_orthanc
from tests.resilience.test_kill_and_resume import _env


def test_every_file_orthanc_accepts_is_cataloged_as_orthanc_indexed_it(tmp_path):
    folder = tmp_path / "files"
    shutil.copytree(PYDICOM_TEST_FILES, folder)
    (tmp_path / "orthanc").mkdir()
    process, http_port, _ = start_orthanc(tmp_path / "orthanc")
    url, auth = f"http://127.0.0.1:{http_port}", (USER, PASSWORD)
    indexed: dict[str, dict] = {}  # file → what Orthanc holds for it
    refused = []
    try:
        for path in pydicom_files():
            response = requests.post(f"{url}/instances", data=path.read_bytes(), auth=auth, timeout=60)
            if response.status_code != 200:
                refused.append(path.name)
                continue
            tags = requests.get(f"{url}/instances/{response.json()['ID']}/tags?simplify", auth=auth, timeout=60).json()
            indexed[str(folder / path.relative_to(PYDICOM_TEST_FILES))] = tags
    finally:
        process.terminate()
        process.wait(timeout=60)
    assert len(indexed) >= 140, refused  # Orthanc refuses the files that are not DICOM, and a few more

    home = tmp_path / "home"
    quire("ingest", str(folder), env=_env(home), cwd=tmp_path)
    with open_catalog(f"sqlite:///{home}/catalog.db") as catalog:
        by_file = {uri: doc for doc in catalog.find("instances") for uri in doc["uris"]}
        errors = {doc["uri"]: doc for doc in catalog.find("errors")}
    differences = []
    for file, tags in sorted(indexed.items()):
        doc = by_file.get(file)
        if doc is None:
            differences.append((file, "not an instance", errors.get(file, {}).get("reason")))
            continue
        ours = (doc["study_instance_uid"], doc["series_instance_uid"], doc["accession_number"])
        theirs = (tags["StudyInstanceUID"], tags["SeriesInstanceUID"], tags.get("AccessionNumber") or None)
        if ours != theirs:
            differences.append((file, ours, theirs))
    assert differences == []
