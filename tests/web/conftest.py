"""The dashboard in a real browser: Debian's chromium driven by Playwright, against a real
``quire serve`` over the sample archive plus one study whose tags hold HTML."""

from __future__ import annotations

import shutil
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import generate_uid

from tests.api.conftest import SALT, Server, add_researcher
from tests.cli.test_ingest_e2e import ingested_home

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "dashboard"
VIEWER_URL = "http://127.0.0.1:9/viewer?StudyInstanceUIDs={study_instance_uid}"
DAGSTER_URL = "http://127.0.0.1:9/dagster"
HTML_TEXT = '<script>window.pwned = 1</script><b>bold</b> & "quotes"'


def chromium_path() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    assert found, "the dashboard tests need Debian's chromium (apt-get install chromium; .ci/run installs it)"
    return found


def _html_study(archive: Path) -> None:
    """A copy of one sample file as a study of its own, its descriptions and name holding HTML."""
    source = sorted(archive.rglob("*.dcm"))[0]
    ds = pydicom.dcmread(source)
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = generate_uid(), generate_uid(), generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.AccessionNumber = "HTML0001"
    ds.SeriesDescription = HTML_TEXT
    ds.StudyDescription = HTML_TEXT
    ds.PatientName = "<img src=x onerror=alert(1)>"
    ds.PatientID = "HTML-PATIENT"
    (archive / "html").mkdir()
    ds.save_as(archive / "html" / "1.dcm")


@pytest.fixture(scope="session")
def web_home(sample_archive, tmp_path_factory) -> dict:
    archive = tmp_path_factory.mktemp("web-archive") / "archive"
    shutil.copytree(sample_archive, archive)
    _html_study(archive)
    env, home = ingested_home(archive, tmp_path_factory)
    env = {**env, "QUIRE_PHI_SALT": SALT}
    keys = {name: add_researcher(env, home, name, *flags) for name, flags in (("boss", ("--admin",)), ("alice", ()))}
    return {"env": env, "home": home, "archive": archive, "keys": keys}


@pytest.fixture(scope="session")
def web_server(web_home):
    env = {**web_home["env"], "QUIRE_VIEWER_URL": VIEWER_URL, "QUIRE_DAGSTER_URL": DAGSTER_URL}
    server = Server(env, web_home["home"], "--source", str(web_home["archive"]))
    yield server
    server.stop()


# Playwright's string predicates (wait_for_function) are evaluated in the page, which the dashboard's
# Content-Security-Policy (script-src 'self') refuses: these scenarios let Playwright past it.
# tests/security/test_sessions.py loads the pages with the policy enforced.
CSP_FOR_PLAYWRIGHT = True


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox"])
        yield chromium
        chromium.close()


def log_in(browser, server: Server, key: str, width: int = 1280, height: int = 800, bypass_csp: bool = CSP_FOR_PLAYWRIGHT):
    """A new browser context, logged in through the login form with ``key``."""
    context = browser.new_context(viewport={"width": width, "height": height}, accept_downloads=True,
                                  bypass_csp=bypass_csp)
    page = context.new_page()
    page.errors = []
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    page.goto(f"{server.url}/explore")
    page.fill("#key", key)
    page.click("button[type=submit]")
    page.wait_for_url("**/explore**")
    return page


def snap(page, name: str) -> None:
    """Each scenario leaves a screenshot in test-artifacts/dashboard."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


@pytest.fixture
def admin_page(browser, web_server, web_home):
    page = log_in(browser, web_server, web_home["keys"]["boss"])
    yield page
    assert not page.errors, page.errors  # no script error on any page of the scenario
    page.context.close()


@pytest.fixture
def alice_page(browser, web_server, web_home):
    page = log_in(browser, web_server, web_home["keys"]["alice"])
    yield page
    assert not page.errors, page.errors
    page.context.close()
