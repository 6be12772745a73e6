"""The researcher's screens (issue 33) in chromium: the study list, human labels, detail pages
that show each value once, charts that filter, and pages that fit the screen."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlparse

import httpx
import pydicom
import pytest
from bs4 import BeautifulSoup

from quire_assets.dicom.records import snake_case
from tests.web.conftest import VIEWER_URL, log_in, snap
from tests.web.test_dashboard import api_count, settled

pytestmark = pytest.mark.browser


def api(server, key: str, path: str, **params) -> dict:
    return httpx.get(f"{server.url}{path}", params=params, headers={"Authorization": f"Bearer {key}"}).json()


def column(page, name: str) -> list[str]:
    return page.locator(f"#table tbody td[data-column={name}]").all_text_contents()


def test_the_study_list_leads_with_what_people_read_and_sorts(admin_page, web_server, web_home):
    page = admin_page
    page.goto(f"{web_server.url}/explore?level=studies")
    settled(page)
    heads = page.locator("#table thead th button")
    fields = [heads.nth(i).get_attribute("title") for i in range(heads.count())]
    assert fields[:8] == ["patient_id", "study_date", "accession_number", "study_description", "modalities",
                          "body_parts", "num_series", "num_instances"]
    assert [t.split(" ")[0] for t in heads.all_text_contents()[:4]] == ["Patient", "Date", "Accession", "Study"]
    key = web_home["keys"]["boss"]
    # Newest first, as a study list opens.
    newest = api(web_server, key, "/api/v1/studies", sort="study_date:desc", limit=25)["items"]
    assert column(page, "study_date") == [s["study_date"] for s in newest]
    assert column(page, "study_date") != sorted(column(page, "study_date"))
    lidc = api(web_server, key, "/api/v1/studies", where=json.dumps({"accession_number": "LIDC0001A"}))["items"][0]
    row = page.locator("#table tbody tr", has=page.locator("td[data-column=accession_number]", has_text="LIDC0001A"))
    assert row.locator("td[data-column=body_parts]").text_content() == "CHEST"
    assert row.locator("td[data-column=num_series]").text_content() == str(lidc["num_series"])
    # A click on a heading sorts by it, a second click the other way.
    page.click("#table thead button[data-column=accession_number]")
    settled(page)
    ascending = [s["accession_number"] or "" for s in api(web_server, key, "/api/v1/studies", sort="accession_number:asc",
                                                    limit=25)["items"]]
    page.wait_for_function(f"[...document.querySelectorAll('#table td[data-column=accession_number]')]"
                           f".map((td) => td.textContent)[0] === {json.dumps(ascending[0])}")
    assert column(page, "accession_number") == ascending
    page.click("#table thead button[data-column=accession_number]")
    page.wait_for_function(f"[...document.querySelectorAll('#table td[data-column=accession_number]')]"
                           f".map((td) => td.textContent)[0] === {json.dumps(ascending[-1])}")
    assert column(page, "accession_number") == ascending[::-1]
    # The study UID is last, shortened, with the whole in its tooltip and a button that copies it.
    uid_cell = row.locator("td[data-column=study_instance_uid]")
    assert uid_cell.locator(".uid").get_attribute("title") == lidc["study_instance_uid"]
    assert len(uid_cell.locator(".uid").text_content()) < 20
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    uid_cell.locator("button.copy").click()
    assert page.evaluate("navigator.clipboard.readText()") == lidc["study_instance_uid"]
    # Facets and ranges are labelled for people, the field name on hover; ranges say what is present.
    assert page.text_content("fieldset[data-field=modalities] legend") == "Modalities"
    page.click("[role=tab][data-level=series]")
    settled(page)
    assert page.get_attribute("fieldset[data-field=metadata\\.KVP] legend span", "title") == "metadata.KVP"
    page.wait_for_selector("fieldset[data-field=slice_thickness] .present:has-text('present:')")
    thickness = sorted(s["slice_thickness"] for s in api(web_server, key, "/api/v1/series", limit=1000)["items"]
                       if s.get("slice_thickness") is not None)
    assert page.get_attribute("#min-slice_thickness", "placeholder") == f"{thickness[0]:g}"
    assert page.get_attribute("#max-slice_thickness", "placeholder") == f"{thickness[-1]:g}"
    # A description's words keep their decimals ("0.625mm", not "625mm").
    words = page.locator("fieldset[data-field=series_description-words] input").evaluate_all(
        "boxes => boxes.map((b) => b.dataset.value)")
    assert "0.625mm" in words and "625mm" not in words
    snap(page, "study-list")


def test_detail_pages_show_each_value_once_and_instances_in_order(admin_page, web_server, web_home):
    page = admin_page
    page.goto(f"{web_server.url}/explore?level=studies&where=" + json.dumps({"accession_number": "LIDC0001A"}))
    settled(page, 1)
    page.click("#table tbody tr a")
    page.wait_for_selector("h1:has-text('Study')")
    study_uid = urlparse(page.url).path.split("/")[-1]
    assert page.get_attribute("#viewer-link", "href") == VIEWER_URL.replace("{study_instance_uid}", study_uid)

    def each_once() -> list[str]:
        fields = page.locator("table.tags th").evaluate_all("ths => ths.map((th) => th.dataset.field)")
        assert len(fields) == len(set(fields)) and fields
        own = {f for f in fields if "." not in f}
        assert [f for f in fields if f.startswith("metadata.") and snake_case(f[len("metadata."):]) in own] == []
        assert all(t.strip() for t in page.locator("table.tags td").all_text_contents())  # no empty value
        return fields

    fields = each_once()
    assert "accession_number" in fields and "metadata.AccessionNumber" not in fields
    assert page.text_content("th[data-field=study_date]") == "Date"
    # The patient is a link to their page, which lists their studies.
    page.click("nav.crumbs a:has-text('Patient')")
    page.wait_for_selector("h1:has-text('Patient LIDC-IDRI-0001')")
    each_once()
    page.click("table.children tbody tr a")
    page.wait_for_selector("h1:has-text('Study')")
    page.click("table.children tbody tr a")
    page.wait_for_selector("h1:has-text('Series')")
    each_once()
    # Instances by their number (the files' InstanceNumber), not by UID.
    series_uid = urlparse(page.url).path.split("/")[-1]
    files = [pydicom.dcmread(p, stop_before_pixels=True) for p in web_home["archive"].rglob("*.dcm")]
    mine = [ds for ds in files if ds.SeriesInstanceUID == series_uid]
    shown = [int(t) for t in page.locator("table.children td[data-column=instance_number]").all_text_contents()]
    assert shown == sorted(int(ds.InstanceNumber) for ds in mine) and len(shown) == 8
    by_uid = [int(ds.InstanceNumber) for ds in sorted(mine, key=lambda ds: ds.SOPInstanceUID)]
    assert by_uid != shown  # the order is not the UIDs' (else this would prove nothing)
    snap(page, "detail-series")
    page.click("table.children tbody tr a")
    page.wait_for_selector("h1:has-text('Instance 1')")
    fields = each_once()
    assert "sop_instance_uid" in fields and "metadata.SOPInstanceUID" not in fields
    shown_uid = page.locator("th[data-field=sop_instance_uid] + td .uid")
    first = next(ds for ds in mine if int(ds.InstanceNumber) == 1)
    assert shown_uid.get_attribute("title") == first.SOPInstanceUID
    assert page.text_content("th[data-field=sop_class_uid] + td .uid") == "CT Image Storage"
    assert "LIDC-IDRI-0001/" in page.text_content("ul.files")
    snap(page, "detail-instance")


def _bar(page, title: str, index: int = 0):
    """Click a chart's bar where it is drawn (plotly takes clicks on its plot area)."""
    chart = page.locator(f".chart[data-title='{title}']")
    chart.locator(".main-svg").first.wait_for()
    value = chart.evaluate(f"box => box.data[0].x[{index}]")
    chart.scroll_into_view_if_needed()
    box = chart.locator("g.point").nth(index).bounding_box()
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] - 3)
    return value


def test_a_click_on_a_bar_filters_and_counts(admin_page, web_server, web_home):
    page = admin_page
    key = web_home["keys"]["boss"]
    page.goto(f"{web_server.url}/")
    page.wait_for_selector(".tile")
    before = page.text_content(".tile[data-title='Total studies'] .value")
    modality = _bar(page, "Modality distribution")
    page.wait_for_url("**where=**")
    query = parse_qs(urlparse(page.url).query)
    assert query["level"] == ["series"] and json.loads(query["where"][0]) == {"modality": modality}
    page.wait_for_selector(".tile")
    expected = api(web_server, key, "/api/v1/stats", level="series", where=json.dumps({"modality": modality}))
    after = page.text_content(".tile[data-title='Total studies'] .value")
    assert int(after) == expected["total_studies"] and after != before
    assert page.text_content("#filter-shown") == json.dumps({"modality": modality})
    # A second click narrows the same filter: the thickness of a numeric axis, as a number.
    thickness = _bar(page, "Slice thickness distribution")
    page.wait_for_function(f"location.search.includes({json.dumps('slice_thickness')})")
    where = json.loads(parse_qs(urlparse(page.url).query)["where"][0])
    assert where == {"modality": modality, "slice_thickness": thickness} and isinstance(thickness, float | int)
    page.wait_for_selector(".tile")
    series = api_count(web_server, key, "series", where)
    assert int(page.text_content(".tile[data-title='Total series'] .value")) == api(
        web_server, key, "/api/v1/stats", level="series", where=json.dumps(where))["total_series"] >= series > 0
    # Unreadable files have a chart of their own (an admin's).
    assert page.locator(".chart[data-title='Files not cataloged, by reason'] .main-svg").count()
    snap(page, "overview-filtered")


def test_the_report_of_a_filter_draws_under_the_pages_security_policy(browser, web_server, web_home):
    page = log_in(browser, web_server, web_home["keys"]["alice"], bypass_csp=False)
    refused: list[str] = []
    page.on("console", lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None)
    page.goto(f"{web_server.url}/?level=series&where=" + json.dumps({"modality": "CT"}))
    page.wait_for_selector(".tile")
    page.click("#report-link")
    page.wait_for_selector("section.chart .main-svg")
    soup = BeautifulSoup(page.content(), "html.parser")
    assert page.locator("section.chart").count() == page.locator("section.chart:has(.main-svg)").count() > 5
    assert "not shown to research keys" in soup.select_one("#summary").text  # a researcher's errors stay hidden
    assert soup.select_one("section.comparison") and soup.select_one("section.cross-tab")
    assert refused == [] and not page.errors
    snap(page, "report")
    page.context.close()


PAGES = ["/", "/explore?level=studies", "/explore?level=series", "/explore?level=instances", "/explore?level=patients",
         "/cohort?level=series", "/jobs", "/integrity"]


@pytest.mark.parametrize("width, height", [(1280, 800), (1440, 900)])
def test_no_page_scrolls_sideways_and_no_uid_wraps(browser, web_server, web_home, width, height):
    page = log_in(browser, web_server, web_home["keys"]["boss"], width, height)
    study = api(web_server, web_home["keys"]["boss"], "/api/v1/studies",
                where=json.dumps({"accession_number": "LIDC0001A"}))["items"][0]
    series = api(web_server, web_home["keys"]["boss"], f"/api/v1/studies/{study['study_instance_uid']}/series")["items"][0]
    instance = api(web_server, web_home["keys"]["boss"],
                   f"/api/v1/series/{series['series_instance_uid']}/instances")["items"][0]
    details = [f"/patients/{study['patient_id']}", f"/studies/{study['study_instance_uid']}",
               f"/series/{series['series_instance_uid']}", f"/instances/{instance['sop_instance_uid']}"]
    for path in [*PAGES, *details]:
        page.goto(f"{web_server.url}{path}")
        page.wait_for_load_state("networkidle")
        assert page.evaluate("document.documentElement.scrollWidth") <= width, path
        assert page.evaluate("[...document.querySelectorAll('.table-wrap')]"
                             ".filter((w) => w.scrollWidth > w.clientWidth + 1).length") == 0, path
        # A UID is one line: shortened, never wrapped; and none is shown whole in a table cell.
        assert page.evaluate("[...document.querySelectorAll('.uid')].filter((u) => u.getClientRects().length > 1)"
                             ".length") == 0, path
        assert page.evaluate(r"[...document.querySelectorAll('td')].filter((td) => "
                             r"/\d+(\.\d+){3,}\d*/.test(td.textContent) && /^[\d.]{25,}$/.test(td.textContent.trim()))"
                             ".length") == 0, path
        assert page.evaluate("[...document.querySelectorAll('#table td, table.children td')].filter((td) => "
                             "td.getClientRects()[0].height > 2 * parseFloat(getComputedStyle(td).lineHeight) + 10)"
                             ".length") == 0, path
    assert not page.errors, page.errors
    page.context.close()
