"""``quire report``: the five charts, with figures that match the sample archive, and no network."""

from __future__ import annotations

import json
import os
import re
from collections import Counter, defaultdict

import pydicom

from quire_assets.cli import ingest
from tests.cli.test_ingest_e2e import quire


def charts(html: str) -> dict[str, list[dict]]:
    """Section title → the plotly traces drawn in it."""
    found = {}
    decoder = json.JSONDecoder()
    for m in re.finditer(r'<section class="chart" data-title="([^"]+)">(.*?)</section>', html, re.S):
        body = m.group(2)
        call = re.search(r'newPlot\(\s*"[^"]+",\s*', body)
        traces, _ = decoder.raw_decode(body[call.end():])
        found[m.group(1)] = traces
    return found


def expected_from_files(archive):
    studies, series_thickness, sex = set(), {}, {}
    slices = 0
    for path in archive.rglob("*.dcm"):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        slices += 1
        studies.add(ds.StudyInstanceUID)
        if "SliceThickness" in ds:
            series_thickness[ds.SeriesInstanceUID] = f"{float(ds.SliceThickness):g}"
        sex[ds.PatientID] = ds.PatientSex
    return len(studies), slices, Counter(series_thickness.values()), Counter(sex.values())


def test_report_html(sample_archive, tmp_path, monkeypatch):
    monkeypatch.setenv("QUIRE_HOME", str(tmp_path / "home"))
    assert not ingest(str(sample_archive), None, quiet=True)["failed_runs"]
    env = {**os.environ, "QUIRE_HOME": str(tmp_path / "home")}
    out = quire("report", "--out", str(tmp_path / "report"), env=env, cwd=tmp_path)
    assert "7 studies" in out.stdout
    html = (tmp_path / "report" / "quire-report.html").read_text()
    found = charts(html)
    n_studies, n_slices, thickness, sexes = expected_from_files(sample_archive)
    assert found["Total studies"][0]["value"] == n_studies == 7
    assert found["Total slices"][0]["value"] == n_slices
    assert found["Average slices per study"][0]["value"] == round(n_slices / n_studies, 2)
    bars = found["Slice thickness distribution"][0]
    assert dict(zip(bars["x"], bars["y"], strict=True)) == dict(thickness)
    pie = found["Sex distribution"][0]
    assert dict(zip(pie["labels"], pie["values"], strict=True)) == dict(sexes)
    # Offline: plotly.js is inlined, no script comes from the network.
    assert not re.search(r"<script[^>]+src=", html)
    assert not re.search(r"<link[^>]+href=[\"']https?:", html)
    assert "Plotly.newPlot" in html and len(html) > 1_000_000  # the library itself is inlined
    assert html.count("<section") >= 10


def test_report_restricted_to_a_collection(sample_archive, tmp_path, monkeypatch):
    monkeypatch.setenv("QUIRE_HOME", str(tmp_path / "home"))
    ingest(str(sample_archive), None, quiet=True)
    from quire_assets.catalog import open_catalog

    with open_catalog() as catalog:
        catalog.add_to_collection("cohort", ["LIDC0001A", "RAD/2019/0042"])
    env = {**os.environ, "QUIRE_HOME": str(tmp_path / "home")}
    quire("report", "--out", str(tmp_path), "--where", '{"collection_ids": "cohort"}', env=env, cwd=tmp_path)
    found = charts((tmp_path / "quire-report.html").read_text())
    assert found["Total studies"][0]["value"] == 2
    per_study = defaultdict(int)
    for path in sample_archive.rglob("*.dcm"):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        per_study[ds.AccessionNumber] += 1
    assert found["Total slices"][0]["value"] == per_study["LIDC0001A"] + per_study["RAD/2019/0042"]
