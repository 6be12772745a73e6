"""Link validation and repair through the API, on a catalog of its own: a wrong count is re-rolled
at once, an orphan's accession is ingested again by the job worker."""

from __future__ import annotations

import shutil
import time

import pytest

from quire_assets.catalog import open_catalog
from tests.api.conftest import SALT, Server, add_researcher
from tests.cli.test_ingest_e2e import ingested_home


@pytest.fixture(scope="module")
def broken(sample_archive, tmp_path_factory):
    archive = tmp_path_factory.mktemp("integrity-archive") / "archive"
    shutil.copytree(sample_archive, archive)
    env, home = ingested_home(archive, tmp_path_factory)
    env = {**env, "QUIRE_PHI_SALT": SALT}
    key = add_researcher(env, home, "root", "--admin")
    server = Server(env, home, "--source", str(archive))
    yield server, key, f"sqlite:///{home / 'catalog.db'}"
    server.stop()


def test_integrity_finds_and_repair_fixes(broken):
    server, key, uri = broken
    with server.client(key) as admin:
        assert admin.get("/api/v1/integrity").json()["ok"]
        with open_catalog(uri) as catalog:
            series = catalog.find("series", {"accession_number": "LIDC0001A"})[0]
            catalog.upsert("series", [{**series, "num_instances": 999}])
            study = catalog.find("studies", {"accession_number": "RAD/2019/0042"})[0]
            catalog.delete("studies", {"study_instance_uid": study["study_instance_uid"]})
        report = admin.get("/api/v1/integrity").json()
        assert not report["ok"]
        assert {"series_instance_uid": series["series_instance_uid"], "num_instances": 999,
                "present": series["num_instances"]} in report["count_mismatches"]
        assert report["totals"]["orphan_series"] == study["num_series"] and report["orphan_series"]
        repaired = admin.post("/api/v1/integrity/repair").json()
        assert repaired["recounted"]["series"] == 1 and repaired["orphans"] == study["num_series"]
        assert repaired["job_id"] and not repaired["after"]["count_mismatches"]
        assert not repaired["after"]["ok"]  # the orphans wait for their accession to be ingested again
        deadline = time.monotonic() + 120
        while admin.get(f"/api/v1/jobs/{repaired['job_id']}").json()["status"] in ("pending", "running"):
            assert time.monotonic() < deadline, "the repair job did not finish"
            time.sleep(0.5)
        assert admin.get(f"/api/v1/jobs/{repaired['job_id']}").json()["accessions"]["RAD/2019/0042"]["status"] == "done"
        assert admin.get("/api/v1/integrity").json()["ok"]
        assert admin.get(f"/api/v1/studies/{study['study_instance_uid']}").json()["num_series"] == study["num_series"]
