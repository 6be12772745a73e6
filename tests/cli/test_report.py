"""``quire report``: figures that match the files, a summary in words, cross-tabs, a quality
section, a cohort beside the whole catalog; read with an HTML parser, as a browser would."""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter, defaultdict

import pydicom
import pytest
from bs4 import BeautifulSoup

from quire_assets.catalog.stats import suppress_small_table
from quire_assets.cli import ingest
from quire_assets.dicom.vendors import manufacturer_family
from tests.cli.test_ingest_e2e import quire
from tests.conftest import PYDICOM_TEST_FILES


def charts(soup: BeautifulSoup) -> dict[str, list[dict]]:
    """Section title → the plotly traces drawn in it."""
    return {s["data-title"]: json.loads(s.find("script", class_="figure").string)["data"]
            for s in soup.select("section.chart")}


def tiles(soup: BeautifulSoup) -> dict[str, float]:
    """Tile title → its number, from the row of tiles at the top."""
    return {t["data-title"]: float(t.select_one(".value").text.replace(",", "")) for t in soup.select("div.tile")}


def table(section) -> dict[str, dict[str, str]]:
    """A table as row header → column header → cell text."""
    columns = [th.text for th in section.select("thead th")][1:]
    return {tr.th.text: dict(zip(columns, [td.text for td in tr.find_all("td")], strict=True))
            for tr in section.select("tbody tr")}


def from_files(archive):
    """What the report must say, read from the files with pydicom."""
    studies, patients, series = set(), {}, {}
    instances = images = 0
    for path in archive.rglob("*.dcm"):
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except pydicom.errors.InvalidDicomError:
            continue
        instances += 1
        images += int(ds.get("NumberOfFrames") or 1)
        studies.add(ds.StudyInstanceUID)
        patients[ds.PatientID] = ds.get("PatientSex")
        series[ds.SeriesInstanceUID] = (ds.Modality, manufacturer_family(ds.get("Manufacturer")) or "unknown",
                                        f"{float(ds.SliceThickness):g}" if ds.get("SliceThickness") else None)
    return {"studies": len(studies), "instances": instances, "images": images, "patients": patients,
            "series": series}


@pytest.fixture(scope="module")
def reported(sample_archive, tmp_path_factory):
    """The sample archive, a multi-frame instance (images are frames) and a file that is not DICOM."""
    tmp = tmp_path_factory.mktemp("report")
    archive = tmp / "archive"
    shutil.copytree(sample_archive, archive)
    shutil.copy(PYDICOM_TEST_FILES / "SC_rgb_rle_2frame.dcm", archive / "two-frames.dcm")
    (archive / "notes.dcm").write_bytes(b"not a DICOM file at all" * 20)
    # A CT series with a slice gone from its middle: a quality flag to report.
    series = next(d for d in sorted(archive.rglob("*MM-*")) if len(list(d.glob("*.dcm"))) >= 5)
    sorted(series.glob("*.dcm"))[3].unlink()
    env = {**os.environ, "QUIRE_HOME": str(tmp / "home")}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("QUIRE_HOME", str(tmp / "home"))
        assert not ingest(str(archive), None, quiet=True)["failed_runs"]
    return {"tmp": tmp, "archive": archive, "env": env, "truth": from_files(archive)}


def test_the_report_says_what_the_files_hold(reported):
    tmp, env, truth = reported["tmp"], reported["env"], reported["truth"]
    out = quire("report", "--out", "report", env=env, cwd=tmp)  # a relative folder
    # The path printed is where the report is, whatever the working directory.
    assert out.stdout.startswith(f"{tmp / 'report' / 'quire-report.html'}: 8 studies, {truth['instances']} "
                                 f"instances, {truth['images']} images (frames)")
    soup = BeautifulSoup((tmp / "report" / "quire-report.html").read_text(), "html.parser")
    numbers = tiles(soup)
    assert numbers["Total studies"] == truth["studies"] == 8
    assert numbers["Total instances"] == truth["instances"]
    assert numbers["Total images (frames)"] == truth["images"] == truth["instances"] + 1
    assert numbers["Average images per study"] == round(truth["images"] / truth["studies"], 2)
    assert list(numbers) == ["Total studies", "Total series", "Total instances", "Total images (frames)",
                             "Total patients", "Average images per study"]
    # The summary says it in words first.
    summary = soup.select_one("#summary").text
    assert summary.startswith(f"{len(truth['patients'])} patients, 8 studies, {len(truth['series'])} series and "
                              f"{truth['images']} images (frames, in {truth['instances']} instances).")
    modalities = Counter(m for m, _, _ in truth["series"].values())
    top = modalities.most_common(1)[0]
    assert f"Modalities: {top[0]} ({top[1]} series)" in summary
    skipped = sum(1 for p in reported["archive"].rglob("*") if p.is_file() and p.suffix != ".dcm")
    assert (f"{skipped + 1} files were not cataloged: {skipped} skipped (not a DICOM file type) and 1 not DICOM."
            in summary) and skipped
    # Slice thickness on a numeric axis, the values the files hold.
    bars = charts(soup)["Slice thickness distribution"][0]
    assert {f"{x:g}": y for x, y in zip(bars["x"], bars["y"], strict=True)} == dict(
        Counter(t for _, _, t in truth["series"].values() if t))
    pie = charts(soup)["Sex distribution"][0]
    words = {"M": "male", "F": "female"}
    assert dict(zip(pie["labels"], pie["values"], strict=True)) == {
        words[k]: v for k, v in Counter(truth["patients"].values()).items()}
    # Cross-tabs: series by modality and manufacturer, as the files say.
    crossed = table(soup.select_one('section.cross-tab[data-name="modality_by_manufacturer"]'))
    expected = defaultdict(Counter)
    for modality, family, _ in truth["series"].values():
        expected[modality][family] += 1
    assert {m: {f: int(n) for f, n in row.items() if n} for m, row in crossed.items()} == {
        m: dict(c) for m, c in expected.items()}
    assert soup.select_one('section.cross-tab[data-name="thickness_by_scanner"] tbody tr')
    # The quality section: complete volumes and flags as the catalog holds them, and the file not read.
    from quire_assets.catalog import open_catalog

    with open_catalog(f"sqlite:///{tmp / 'home' / 'catalog.db'}") as catalog:
        complete = catalog.count("series", {"complete_volume": True})
        flagged = catalog.count("series", {"quality_flags": "missing_slices"})
    quality = soup.select_one("section.quality")
    assert f"Complete volumes: {complete} (" in quality.text and complete > 0
    assert table(quality.select_one("table.flags"))["missing_slices"] == {"series": str(flagged)} and flagged == 1
    assert "quality flags: missing_slices (1 series)" in summary
    assert table(quality.select_one("table.errors")) == {"not DICOM": {"files": "1"},
                                                          "skipped (not a DICOM file type)": {"files": str(skipped)}}
    # The header says what was summarized, from where, and when.
    header = soup.header.text
    assert "catalog.db" in header and str(reported["archive"]) in header and "none (the whole catalog)" in header
    assert soup.title.text == "Quire summary statistics" and not soup.select("section.comparison")
    # plotly.js and the drawing script are beside the page, not on the network; no inline code.
    sources = [s["src"] for s in soup.find_all("script", src=True)]
    assert sources == ["plotly.min.js", "report.js"]
    assert (tmp / "report" / "plotly.min.js").stat().st_size > 1_000_000 and (tmp / "report" / "report.js").is_file()
    assert all(s.get("type") == "application/json" for s in soup.find_all("script", src=False))
    assert not soup.find("link", href=lambda h: h and h.startswith("http"))


def test_a_self_contained_report_inlines_its_scripts(reported):
    tmp = reported["tmp"]
    quire("report", "--out", "alone", "--self-contained", env=reported["env"], cwd=tmp)
    soup = BeautifulSoup((tmp / "alone" / "quire-report.html").read_text(), "html.parser")
    assert not soup.find_all("script", src=True) and not (tmp / "alone" / "plotly.min.js").exists()
    code = [s.string for s in soup.find_all("script") if s.get("type") != "application/json"]
    assert len(code) == 2 and len(code[0]) > 1_000_000 and "Plotly.newPlot" in code[1]


def test_a_collection_report_names_the_cohort_beside_the_whole_catalog(reported):
    tmp, env = reported["tmp"], reported["env"]
    from quire_assets.catalog import open_catalog

    with open_catalog(f"sqlite:///{tmp / 'home' / 'catalog.db'}") as catalog:
        catalog.add_to_collection("cohort", ["LIDC0001A", "RAD/2019/0042"])
        catalog.upsert("collections", [{"collection_id": "cohort", "researcher_id": "boss", "name": "Two studies"}])
    quire("report", "--out", "cohort", "--collection", "cohort", env=env, cwd=tmp)
    soup = BeautifulSoup((tmp / "cohort" / "quire-report.html").read_text(), "html.parser")
    assert soup.h1.text == "Quire report: Two studies" and "Two studies" in soup.header.dl.text
    assert tiles(soup)["Total studies"] == 2
    per_study = Counter(pydicom.dcmread(p, stop_before_pixels=True).AccessionNumber
                        for p in reported["archive"].rglob("*.dcm") if p.name != "notes.dcm")
    assert tiles(soup)["Total instances"] == per_study["LIDC0001A"] + per_study["RAD/2019/0042"]
    beside = table(soup.select_one("section.comparison"))
    assert beside["Total studies"] == {"cohort": "2", "whole catalog": "8"}
    assert beside["Total instances"]["whole catalog"] == str(reported["truth"]["instances"])
    # The cohort's own files were all read: the unreadable file belongs to no accession of it.
    assert "Every file read was cataloged." in soup.select_one("#summary").text
    refused = quire("report", "--collection", "nobody", env=env, cwd=tmp, check=False)
    assert refused.returncode != 0 and "no study is in a collection 'nobody'" in refused.stderr


def test_a_report_with_nothing_to_chart_says_so(reported):
    tmp = reported["tmp"]
    quire("report", "--out", "none", "--where", '{"collection_ids": "nobody"}', env=reported["env"], cwd=tmp)
    soup = BeautifulSoup((tmp / "none" / "quire-report.html").read_text(), "html.parser")
    assert soup.select_one("p.empty").text.startswith("No studies match this filter") and not charts(soup)
    assert tiles(soup)["Total studies"] == 0 and not soup.find_all("script", src=True)


def test_small_cells_of_a_cross_tab_cannot_be_worked_out_from_the_margins():
    table = {"CT": {"GE": 9, "Siemens": 1, "Philips": 6}, "MR": {"GE": 7, "Siemens": 8}, "DX": {"Agfa": 2}}
    shown = suppress_small_table(table, 5)
    withheld = {(r, c) for r, cols in shown.items() for c, n in cols.items() if n is None}
    assert ("CT", "Siemens") in withheld and ("DX", "Agfa") in withheld
    for axis in (0, 1):  # no row or column holds exactly one withheld cell beside shown ones
        lines = defaultdict(list)
        for r, cols in table.items():
            for c in cols:
                lines[(r, c)[axis]].append((r, c) in withheld)
        assert all(sum(line) != 1 or len(line) == 1 for line in lines.values()), lines
    assert {(r, c): n for r, cols in shown.items() for c, n in cols.items() if n is not None} == {
        (r, c): n for r, cols in table.items() for c, n in cols.items() if (r, c) not in withheld}
    assert suppress_small_table(table, 0) == table

