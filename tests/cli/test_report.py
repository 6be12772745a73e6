"""``quire report``: the five charts, with figures that match the sample archive, and no network."""

from __future__ import annotations

import json
import os
import re
import shutil
from collections import Counter, defaultdict

import pydicom

from quire_assets.cli import ingest
from quire_assets.settings import Settings
from tests.cli.test_ingest_e2e import quire
from tests.conftest import PYDICOM_TEST_FILES


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


def tiles(html: str) -> dict[str, float]:
    """Tile title → its number, from the row of tiles at the top."""
    return {t: float(v.replace(",", "")) for t, v in re.findall(
        r'<div class="tile" data-title="([^"]+)"><span class="value">([^<]+)</span>', html)}


def expected_from_files(archive):
    studies, series_thickness, sex = set(), {}, {}
    instances = images = 0
    for path in archive.rglob("*.dcm"):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        instances += 1
        images += int(ds.get("NumberOfFrames") or 1)
        studies.add(ds.StudyInstanceUID)
        if "SliceThickness" in ds:
            series_thickness[ds.SeriesInstanceUID] = f"{float(ds.SliceThickness):g}"
        sex[ds.PatientID] = ds.PatientSex
    return len(studies), instances, images, Counter(series_thickness.values()), Counter(sex.values())


def test_report_html(sample_archive, tmp_path, monkeypatch):
    monkeypatch.setenv("QUIRE_HOME", str(tmp_path / "home"))
    archive = tmp_path / "archive"  # the sample archive and a multi-frame instance: images are frames
    shutil.copytree(sample_archive, archive)
    shutil.copy(PYDICOM_TEST_FILES / "SC_rgb_rle_2frame.dcm", archive / "two-frames.dcm")
    assert not ingest(str(archive), None, quiet=True)["failed_runs"]
    env = {**os.environ, "QUIRE_HOME": str(tmp_path / "home")}
    out = quire("report", "--out", "report", env=env, cwd=tmp_path)  # a relative folder
    # The path printed is where the report is, whatever the working directory.
    assert out.stdout.startswith(f"{tmp_path / 'report' / 'quire-report.html'}: 8 studies, 80 instances, "
                                 "81 images (frames)")
    html = (tmp_path / "report" / "quire-report.html").read_text()
    found = charts(html)
    numbers = tiles(html)
    n_studies, n_instances, n_images, thickness, sexes = expected_from_files(archive)
    assert numbers["Total studies"] == n_studies == 8
    assert numbers["Total instances"] == n_instances
    assert numbers["Total images (frames)"] == n_images == n_instances + 1
    assert numbers["Average images per study"] == round(n_images / n_studies, 2)
    assert list(numbers) == ["Total studies", "Total series", "Total instances", "Total images (frames)",
                             "Total patients", "Average images per study"]
    bars = found["Slice thickness distribution"][0]
    assert dict(zip(bars["x"], bars["y"], strict=True)) == dict(thickness)
    pie = found["Sex distribution"][0]
    words = {"M": "male", "F": "female"}
    assert dict(zip(pie["labels"], pie["values"], strict=True)) == {words[k]: v for k, v in sexes.items()}
    # What the headers say of the series' quality, as the catalog holds it.
    from quire_assets.catalog import open_catalog

    with open_catalog(f"sqlite:///{tmp_path / 'home' / 'catalog.db'}") as catalog:
        complete = catalog.count("series", {"complete_volume": True})
        flagged = catalog.count("series", {"quality_flags": "vr_oddities"})
    volumes = found["Complete volumes"][0]
    assert dict(zip(volumes["x"], volumes["y"], strict=True))["complete volume"] == complete > 0
    quality = dict(zip(found["Quality flags (a series may have several)"][0]["x"],
                       found["Quality flags (a series may have several)"][0]["y"], strict=True))
    assert quality.get("vr_oddities", 0) == flagged
    # The header says what was summarized, from where, and when.
    header = html.split("</header>")[0]
    assert "catalog.db" in header and str(archive) in header and "none (the whole catalog)" in header
    assert re.search(r"<dt>generated</dt><dd>\d{4}-\d\d-\d\d \d\d:\d\d UTC</dd>", header)
    # Count axes show whole numbers.
    assert html.count('"tickformat":",d"') == len(found) - 1  # every bar chart (not the pie)
    # Offline: plotly.js is inlined, no script comes from the network.
    assert not re.search(r"<script[^>]+src=", html)
    assert not re.search(r"<link[^>]+href=[\"']https?:", html)
    assert "Plotly.newPlot" in html and len(html) > 1_000_000  # the library itself is inlined
    assert html.count("<section") >= 10


def test_report_restricted_to_a_collection(sample_archive, tmp_path, monkeypatch):
    monkeypatch.setenv("QUIRE_HOME", str(tmp_path / "home"))
    ingest(str(sample_archive), None, quiet=True)
    from quire_assets.catalog import open_catalog

    with open_catalog(Settings.from_environ().catalog_uri) as catalog:
        catalog.add_to_collection("cohort", ["LIDC0001A", "RAD/2019/0042"])
    env = {**os.environ, "QUIRE_HOME": str(tmp_path / "home")}
    quire("report", "--out", str(tmp_path), "--where", '{"collection_ids": "cohort"}', env=env, cwd=tmp_path)
    html = (tmp_path / "quire-report.html").read_text()
    found = tiles(html)
    assert found["Total studies"] == 2
    assert 'on studies: {&quot;collection_ids&quot;: &quot;cohort&quot;}' in html
    per_study = defaultdict(int)
    for path in sample_archive.rglob("*.dcm"):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        per_study[ds.AccessionNumber] += 1
    assert found["Total instances"] == per_study["LIDC0001A"] + per_study["RAD/2019/0042"]


def test_report_with_nothing_to_chart_says_so(sample_archive, tmp_path, monkeypatch):
    monkeypatch.setenv("QUIRE_HOME", str(tmp_path / "home"))
    ingest(str(sample_archive), None, quiet=True)
    env = {**os.environ, "QUIRE_HOME": str(tmp_path / "home")}
    quire("report", "--out", str(tmp_path), "--where", '{"collection_ids": "nobody"}', env=env, cwd=tmp_path)
    html = (tmp_path / "quire-report.html").read_text()
    assert '<p class="empty">No studies match this filter' in html and not charts(html)
    assert tiles(html)["Total studies"] == 0
