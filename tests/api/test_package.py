"""`GET /api/v1/{level}/package`: the cohort as a versioned package, as `quire export --package`
writes it; for a researcher's key, written from the research view with the policy in its manifest."""

from __future__ import annotations

import io
import json
import zipfile

import pandas as pd

from tests.api.conftest import pseudonym

CT = json.dumps({"modality": "CT"})


def _package(client, **params) -> dict:
    response = client.get("/api/v1/series/package", params={"where": CT, **params})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        return {name.split("/", 1)[1]: archive.read(name) for name in archive.namelist()}


def test_a_researchers_package_is_the_research_view(alice, admin):
    files = _package(alice, instances="true")
    assert set(files) == {"series.parquet", "instances.parquet", "README.md", "manifest.json"}
    manifest = json.loads(files["manifest.json"])
    assert manifest["phi_policy"]["applied"] is True and manifest["phi_policy"]["rules"]["PatientName"] == "drop"
    series = pd.read_parquet(io.BytesIO(files["series.parquet"]))
    instances = pd.read_parquet(io.BytesIO(files["instances.parquet"]))
    assert "PatientName" not in series.columns and "PatientBirthDate" not in series.columns
    assert "uri" not in instances.columns
    raw = _package(admin)
    raw_series = pd.read_parquet(io.BytesIO(raw["series.parquet"]))
    assert set(raw_series["SeriesInstanceUID"]) == set(series["SeriesInstanceUID"]) and len(series) > 3
    ids = dict(zip(raw_series["SeriesInstanceUID"], raw_series["PatientID"], strict=True))
    assert all(row["PatientID"] == pseudonym(ids[row["SeriesInstanceUID"]]) for row in series.to_dict("records"))
    assert json.loads(raw["manifest.json"])["phi_policy"]["applied"] is False
    assert "could not be read: not listed for a researcher's key" in files["README.md"].decode()
    assert manifest["shortfall"]["errors"] is None


def test_refusals(alice):
    hidden = alice.get("/api/v1/series/package", params={"where": json.dumps({"patient_name": "x"})})
    assert hidden.status_code == 403 and "patient_name" in hidden.text
    missing = alice.get("/api/v1/series/package", params={"collection": "not-mine"})
    assert missing.status_code == 404
