"""The dashboard's scenarios in a real browser (chromium), each leaving a screenshot."""

from __future__ import annotations

import csv
import io
import json
import re
import zipfile

import httpx
import pytest

from quire_assets.research.ids import _ID
from tests.api.conftest import pseudonym
from tests.cli.test_ingest_e2e import quire
from tests.web.conftest import CSP_FOR_PLAYWRIGHT, HTML_TEXT, log_in, snap

pytestmark = pytest.mark.browser


def api_count(server, key: str, level: str, where: dict) -> int:
    response = httpx.get(f"{server.url}/api/v1/{level}/count", params={"where": json.dumps(where)},
                         headers={"Authorization": f"Bearer {key}"})
    return response.json()["count"]


def shown_filter(page) -> dict:
    return json.loads(page.input_value("#raw"))


def settled(page, count: int | None = None) -> int:
    """The table has answered (and shows ``count``, if given); returns the count it shows."""
    page.wait_for_function("document.querySelector('#table').getAttribute('aria-busy') === 'false'")
    if count is not None:
        page.wait_for_function(f"document.querySelector('#summary').dataset.count === '{count}'")
    return int(page.get_attribute("#summary", "data-count"))


def test_log_in_with_a_key(browser, web_server, web_home):
    context = browser.new_context(viewport={"width": 1280, "height": 800}, bypass_csp=CSP_FOR_PLAYWRIGHT)
    page = context.new_page()
    page.goto(f"{web_server.url}/")
    assert "/login" in page.url
    page.fill("#key", "qk_nope_wrong")
    page.click("button[type=submit]")
    assert "unknown or revoked" in page.text_content(".error")
    page.fill("#key", web_home["keys"]["boss"])
    page.click("button[type=submit]")
    page.wait_for_selector(".tile")
    assert page.text_content(".tile[data-title='Total studies'] .value") == "8"
    cookie = next(c for c in context.cookies() if c["name"] == "quire_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    page.wait_for_selector(".chart .main-svg")
    snap(page, "overview")
    context.close()


def test_a_facet_and_a_range_give_the_apis_count(admin_page, web_server, web_home):
    page = admin_page
    page.goto(f"{web_server.url}/explore?level=series")
    settled(page)
    page.check("fieldset[data-field=modality] input[data-value='\"CT\"']")
    settled(page)
    page.fill("#max-slice_thickness", "1")
    page.press("#max-slice_thickness", "Tab")
    page.wait_for_function("document.querySelector('#raw').value.includes('slice_thickness')")
    where = shown_filter(page)
    assert where == {"modality": {"$in": ["CT"]}, "slice_thickness": {"$lte": 1}}
    expected = api_count(web_server, web_home["keys"]["boss"], "series", where)
    assert expected > 0
    assert settled(page, expected) == expected
    assert page.locator("#table tbody tr").count() == expected
    snap(page, "explore-facets")


def test_the_raw_document_round_trips_to_the_facets(admin_page, web_server, web_home):
    page = admin_page
    page.goto(f"{web_server.url}/explore?level=series")
    settled(page)
    page.fill("#raw", '{"manufacturer": {"$in": ["SIEMENS"]}, "num_instances": {"$gte": 9}}')
    page.click("#apply-raw")
    page.wait_for_function("document.querySelector(\"fieldset[data-field=manufacturer] input[data-value='\\\"SIEMENS\\\"']\")?.checked")
    assert page.input_value("#min-num_instances") == "9"
    where = {"manufacturer": {"$in": ["SIEMENS"]}, "num_instances": {"$gte": 9}}
    assert settled(page, api_count(web_server, web_home["keys"]["boss"], "series", where)) > 0
    page.fill("#raw", '{"modality": {"$where": "sleep(1)"}}')
    page.click("#apply-raw")
    page.wait_for_selector("#error:not([hidden])")
    assert "'$where' is not supported" in page.text_content("#error")
    snap(page, "explore-refused")


def test_description_words_are_a_facet_beside_free_text(admin_page, web_server, web_home):
    page = admin_page
    page.goto(f"{web_server.url}/explore?level=series")
    settled(page)
    page.check("fieldset[data-field='series_description-words'] input[data-value=thin]")
    page.wait_for_function("document.querySelector('#raw').value.includes('thin')")
    where = shown_filter(page)
    assert where == {"series_description": {"$regex": "(?=.*\\bthin\\b)", "$options": "i"}}
    thin = api_count(web_server, web_home["keys"]["boss"], "series", where)
    assert settled(page, thin) == thin > 0
    page.fill("#text", "0.6")
    page.press("#text", "Tab")
    page.wait_for_function("JSON.parse(document.querySelector('#raw').value).series_description.$regex.endsWith('.6)')")
    where = shown_filter(page)
    assert where["series_description"]["$regex"] == "(?=.*\\bthin\\b)(?=.*0\\.6)"
    assert settled(page, api_count(web_server, web_home["keys"]["boss"], "series", where)) > 0
    page.reload()  # the filter in the address sets the word facet and the text box again
    settled(page)
    page.wait_for_selector("fieldset[data-field='series_description-words'] input[data-value=thin]:checked")
    assert page.input_value("#text") == "0.6"
    snap(page, "explore-words")


def test_the_ask_box_hands_its_filter_to_explore(admin_page, web_server, web_home):
    page = admin_page
    page.goto(f"{web_server.url}/explore?level=studies")
    settled(page)
    page.fill("#ask", "thin-slice chest CTs from Siemens scanners")
    page.press("#ask", "Enter")
    page.wait_for_function("document.querySelector('#ask-answer').dataset.total !== undefined")
    where = shown_filter(page)
    assert where == {"slice_thickness": {"$lte": 1.5}, "body_part_examined": "CHEST", "modality": "CT",
                     "manufacturer": "SIEMENS"}
    assert page.get_attribute("[role=tab][data-level=series]", "aria-selected") == "true"
    expected = api_count(web_server, web_home["keys"]["boss"], "series", where)
    assert settled(page, expected) == expected == int(page.get_attribute("#ask-answer", "data-total"))
    assert "1.5 mm" in page.text_content("#ask-answer")
    page.wait_for_selector("fieldset[data-field=manufacturer] input[data-value='\"SIEMENS\"']:checked")
    snap(page, "ask")
    page.fill("#ask", "frobnicate the quux")
    page.press("#ask", "Enter")
    page.wait_for_selector("#error:not([hidden])")
    assert "thin-slice chest CTs" in page.text_content("#error")


def test_the_ask_box_answers_at_the_patients_level_and_an_error_leaves_no_stale_results(admin_page, web_server,
                                                                                        web_home):
    page = admin_page
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{web_server.url}/explore?level=series")
    settled(page)
    page.fill("#ask", "how many female patients have a CT study")  # the README's question, on this archive
    page.press("#ask", "Enter")
    page.wait_for_function("document.querySelector('[role=tab][data-level=patients]')"
                           ".getAttribute('aria-selected') === 'true'")
    where = shown_filter(page)
    assert where["patient_sex"] == "F"
    expected = api_count(web_server, web_home["keys"]["boss"], "patients", where)
    assert expected >= 1 and settled(page, expected) == expected
    assert page.locator("#table tbody tr").count() == expected
    assert page.get_attribute("#table thead th button", "title") == "patient_id"
    assert page.text_content("#table thead th").startswith("Patient")
    page.wait_for_selector("fieldset[data-field=patient_sex] input:checked")
    first = page.locator("#table tbody tr a").first
    patient = first.text_content()
    first.click()
    page.wait_for_selector("h1, nav.crumbs")
    assert f"Patient {patient}" in page.text_content("nav.crumbs")
    page.go_back()
    settled(page)
    # A filter the catalog refuses: the previous results leave the screen, the error is said.
    page.fill("#raw", json.dumps({"patient_sex": {"$where": "1"}}))
    page.click("#apply-raw")
    page.wait_for_selector("#error:not([hidden])")
    assert "$where" in page.text_content("#error")
    page.wait_for_function("document.querySelector('#table tbody').children.length === 0")
    assert page.text_content("#summary") == "" and page.locator("#facets fieldset").count() == 0
    snap(page, "ask-patients-then-error")
    assert errors == []


def test_a_partial_answer_is_a_visible_warning_and_counts_per_value_a_table(admin_page, web_server, web_home):
    page = admin_page
    page.goto(f"{web_server.url}/explore?level=studies")
    settled(page)
    page.fill("#ask", "CT series with blorp")
    page.press("#ask", "Enter")
    page.wait_for_selector("#ask-partial")
    assert page.is_visible("#ask-partial") and "blorp" in page.text_content("#ask-partial")
    # above the results it qualifies
    above = page.evaluate("document.querySelector('#ask-partial').compareDocumentPosition("
                          "document.querySelector('#table')) & Node.DOCUMENT_POSITION_FOLLOWING")
    assert above
    expected = api_count(web_server, web_home["keys"]["boss"], "series", {"modality": "CT"})
    assert settled(page, expected) == expected
    page.fill("#ask", "series per modality")
    page.press("#ask", "Enter")
    page.wait_for_selector("#ask-groups")
    assert not page.query_selector("#ask-partial")
    rows = [[c.text_content() for c in r.query_selector_all("td")] for r in page.query_selector_all("#ask-groups tbody tr")]
    assert rows == [["CT", str(expected)], ["DX", "1"]]
    snap(page, "ask-groups")


def test_cohort_export_save_and_job(admin_page, web_server, web_home):
    page = admin_page
    where = {"modality": "CT", "slice_thickness": {"$lt": 1}}
    page.goto(f"{web_server.url}/cohort?level=series&where=" + json.dumps(where))
    page.wait_for_function("/in this cohort/.test(document.querySelector('#cohort-count').textContent)")
    with page.expect_download() as download:
        page.click("#export-csv")
    with open(download.value.path(), encoding="utf-8") as saved:
        exported = list(csv.DictReader(saved))
    cli = quire("export", "series", "--where", json.dumps(where), "--format", "csv", env=web_home["env"],
                cwd=web_home["home"]).stdout
    assert exported == list(csv.DictReader(io.StringIO(cli))) and exported
    queried = json.loads(quire("query", "series", "--where", json.dumps(where), "--format", "json",
                               env=web_home["env"], cwd=web_home["home"]).stdout)
    assert {r["series_instance_uid"] for r in exported} == {s["series_instance_uid"] for s in queried}
    assert len(exported) == sum(s["num_instances"] for s in queried)  # one row per file of those series
    with page.expect_download() as download:
        page.click("#export-package")
    with zipfile.ZipFile(download.value.path()) as package:
        manifest = json.loads(package.read("quire-cohort/manifest.json"))
    assert manifest["query"]["where"] == where and set(manifest["series"]) == {s["series_instance_uid"] for s in queried}
    # The browser checks the id as the server does (a pattern valid under the v flag browsers use).
    pattern = page.get_attribute("#collection-id", "pattern")
    assert pattern.replace("\\-", "-") == _ID.pattern.strip("^$")
    for value, wrong in (("bad id!", True), ("-leading", True), ("thin-ct", False)):
        page.fill("#collection-id", value)
        assert page.eval_on_selector("#collection-id", "e => e.validity.patternMismatch") is wrong, value
    page.fill("#collection-name", "Thin CT")
    page.click("#save-form button[type=submit]")
    page.wait_for_selector("#message:not([hidden])")
    # The saved collection is in the studies' collections facet, under its name.
    page.goto(f"{web_server.url}/explore?level=studies")
    settled(page)
    page.wait_for_selector("fieldset[data-field=collection_ids] label:has-text('Thin CT')")
    tagged = api_count(web_server, web_home["keys"]["boss"], "studies", {"collection_ids": "thin-ct"})
    assert page.text_content("fieldset[data-field=collection_ids] label[title=thin-ct]") == f"Thin CT ({tagged})"
    assert tagged == len({r["accession_number"] for r in exported})
    page.go_back()
    page.wait_for_function("/in this cohort/.test(document.querySelector('#cohort-count').textContent)")
    collection = httpx.get(f"{web_server.url}/api/v1/collections/thin-ct",
                           headers={"Authorization": f"Bearer {web_home['keys']['boss']}"}).json()
    assert sorted(c["accession_numbers"][0] for c in collection["cases"]) == sorted({r["accession_number"]
                                                                                    for r in exported})
    page.fill("#job-name", "thin ct again")
    page.click("#submit-job")
    page.wait_for_selector("#message a")
    snap(page, "cohort")
    page.click("#message a")
    page.wait_for_selector("section.job[data-status=done]", timeout=120_000)
    job = page.locator("section.job[data-status=done]").first
    assert "thin ct again" in job.text_content() and "done" in job.locator("tbody").text_content()
    # Each row says what happened, and its run opens in the Dagster UI.
    from quire_assets.research.requests import OUTCOMES
    from tests.web.conftest import DAGSTER_URL

    assert set(job.locator("td.detail").all_text_contents()) == {OUTCOMES["done"]}
    runs = job.locator("tbody td a")
    assert runs.count() and all(h.startswith(f"{DAGSTER_URL}/runs/") for h in
                                [runs.nth(i).get_attribute("href") for i in range(runs.count())])
    snap(page, "jobs")
    # The job's collection is named after the job in the collections facet.
    page.goto(f"{web_server.url}/explore?level=studies")
    page.wait_for_selector("fieldset[data-field=collection_ids] label:has-text('thin ct again')")


def test_a_researcher_sees_the_phi_policy(alice_page, web_server):
    page = alice_page
    page.goto(f"{web_server.url}/explore?level=studies&where=" + json.dumps({"accession_number": "LIDC0001A"}))
    settled(page, 1)
    row = page.text_content("#table tbody tr")
    assert pseudonym("LIDC-IDRI-0001") in row and "LIDC-IDRI-0001" not in row
    page.click("#table tbody tr a")
    page.wait_for_selector("table.tags")
    tags = page.text_content("table.tags")
    assert "PatientName" not in tags and "patient_name" not in tags and "PatientBirthDate" not in tags
    assert pseudonym("LIDC-IDRI-0001") in tags
    facets = page.goto(f"{web_server.url}/explore?level=studies")
    assert facets.ok
    page.fill("#raw", '{"patient_name": "LIDC-IDRI-0001"}')
    page.click("#apply-raw")
    page.wait_for_selector("#error:not([hidden])")
    assert "PHI policy" in page.text_content("#error")
    snap(page, "researcher-phi")


def test_html_in_a_tag_is_shown_as_text(admin_page, web_server):
    page = admin_page
    page.goto(f"{web_server.url}/explore?level=series&where=" + json.dumps({"accession_number": "HTML0001"}))
    settled(page, 1)
    assert HTML_TEXT in page.text_content("#table tbody")
    assert page.locator("#table tbody b").count() == 0
    page.click("#table tbody tr a")
    page.wait_for_selector("table.tags")
    assert HTML_TEXT in page.text_content("table.tags")
    page.click("nav.crumbs a:has-text('Study')")  # up to the study, which holds the patient's name
    page.wait_for_selector("h1:has-text('Study')")
    assert "<img src=x onerror=alert(1)>" in page.text_content("table.tags")  # the admin sees the raw name
    assert page.evaluate("window.pwned") is None
    assert page.locator("table.tags img, table.tags b, table.tags script").count() == 0
    snap(page, "html-as-text")


def test_pages_fit_both_screens_and_the_empty_catalog_says_what_to_do(browser, sample_archive, tmp_path_factory,
                                                                       web_server, web_home):
    for width, height in ((1280, 800), (1920, 1080)):
        page = log_in(browser, web_server, web_home["keys"]["boss"], width, height)
        for path in ("/explore?level=series", "/integrity", "/jobs"):
            page.goto(f"{web_server.url}{path}")
            page.wait_for_load_state("networkidle")
            assert page.evaluate("document.documentElement.scrollWidth") <= width, path
            snap(page, f"{path.strip('/').split('?')[0]}-{width}")
        page.context.close()
    from tests.api.conftest import Server

    empty_home = tmp_path_factory.mktemp("empty-home")
    env = {**web_home["env"], "QUIRE_HOME": str(empty_home)}
    server = Server(env, empty_home, "--no-worker", "--open")
    try:
        context = browser.new_context(viewport={"width": 1280, "height": 800}, bypass_csp=CSP_FOR_PLAYWRIGHT)
        page = context.new_page()
        page.goto(f"{server.url}/explore")  # --open, no key issued yet: this machine is admin
        page.wait_for_function("document.querySelector('#summary').dataset.count === '0'")
        assert "run `quire ingest SOURCE`" in page.text_content("#summary")
        snap(page, "empty-catalog")
        context.close()
    finally:
        server.stop()


def test_the_session_cookie_needs_the_csrf_token_to_change_anything(web_server, web_home):
    with httpx.Client(base_url=web_server.url) as client:
        forged = client.post("/login", data={"key": web_home["keys"]["alice"], "csrf": "forged", "next": "/"})
        assert forged.status_code == 401 and "quire_session" not in client.cookies
        token = re.search(r'name="csrf" value="([^"]+)"', forged.text)[1]  # the form it shows again
        logged = client.post("/login", data={"key": web_home["keys"]["alice"], "csrf": token, "next": "/"})
        assert logged.status_code == 303 and "quire_session" in client.cookies
        assert client.get("/api/v1/researchers/me").json()["researcher_id"] == "alice"
        refused = client.post("/api/v1/jobs", json={"accessions": ["X"]})
        assert refused.status_code == 403 and "CSRF" in refused.json()["detail"]
        page = client.get("/jobs").text
        csrf = re.search(r'name="csrf-token" content="([^"]+)"', page)[1]
        assert client.post("/api/v1/jobs", json={"accessions": ["X"]}, headers={"X-CSRF-Token": csrf}).status_code == 202


def test_rows_not_found_are_fixed_and_resubmitted_from_the_jobs_page(admin_page, web_server, web_home):
    page = admin_page
    headers = {"Authorization": f"Bearer {web_home['keys']['boss']}"}
    job = httpx.post(f"{web_server.url}/api/v1/jobs", json={"accessions": ["LIDC0001A", "TYPO-0004"],
                                                            "name": "with a typo"}, headers=headers).json()
    page.goto(f"{web_server.url}/jobs")
    section = page.locator(f"section.job[data-job='{job['job_id']}'][data-status=partial]")
    section.wait_for(timeout=120_000)
    section.locator("details.retry summary").click()
    section.locator("input.retry-row").fill("LIDC0004A")
    section.locator("button.resubmit").click()
    page.wait_for_selector("#message:not([hidden])")
    retried = page.text_content("#message").removeprefix("Resubmitted as ").rstrip(".")
    assert retried.startswith("request-")
    done = page.locator(f"section.job[data-job='{retried}'][data-status=done]")
    done.wait_for(timeout=120_000)
    assert "LIDC0004A" in done.locator("tbody").text_content() and "TYPO" not in done.locator("tbody").text_content()
