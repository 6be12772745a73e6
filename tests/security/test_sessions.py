"""Issue 27's finding 8: the dashboard's session and the headers of every page, against a real
``quire serve`` and, for the Content-Security-Policy, a real browser that enforces it."""

from __future__ import annotations

import json
import re

import httpx

from quire_assets.api.auth import SESSION_COOKIE
from quire_assets.web.pages import LOGIN_COOKIE


def _log_in(server, key: str) -> httpx.Client:
    client = httpx.Client(base_url=server.url, timeout=30)
    form = client.get("/login")
    token = re.search(r'name="csrf" value="([^"]+)"', form.text).group(1)
    done = client.post("/login", data={"key": key, "csrf": token, "next": "/explore"})
    assert done.status_code == 303 and SESSION_COOKIE in client.cookies
    return client


def test_the_session_cookie_is_opaque_and_ends_at_logout(server, api_home):
    key = api_home["keys"]["alice"]
    client = _log_in(server, key)
    cookie = client.cookies[SESSION_COOKIE]
    assert key not in cookie and key.split("_", 2)[2] not in cookie  # not the key, sealed or not
    assert client.get("/api/v1/studies/count").status_code == 200
    page = client.get("/explore").text
    csrf = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)
    assert client.post("/logout", data={"csrf": csrf}).status_code == 303
    with httpx.Client(base_url=server.url, timeout=30, cookies={SESSION_COOKIE: cookie}) as replay:
        assert replay.get("/api/v1/studies/count").status_code == 401  # the old cookie opens nothing
    # A new key for the researcher ends the sessions opened with the old one.
    from tests.cli.test_ingest_e2e import quire

    client = _log_in(server, api_home["keys"]["bob"])
    assert client.get("/api/v1/studies/count").status_code == 200
    new_key = quire("researchers", "key", "bob", env=api_home["env"], cwd=api_home["home"]).stdout.strip()
    api_home["keys"]["bob"] = new_key
    assert client.get("/api/v1/studies/count").status_code == 401


def test_login_csrf_from_another_page_of_this_host_is_refused(server, api_home):
    # An attacker's page on another port of this host can set cookies for it, and post a form: with
    # a nonce and token of its own choosing (the old double-submit check took any matching pair).
    with httpx.Client(base_url=server.url, timeout=30, cookies={LOGIN_COOKIE: "attacker-nonce"}) as victim:
        forged = victim.post("/login", data={"key": api_home["keys"]["alice"], "csrf": "attacker-nonce"})
        assert forged.status_code == 401 and SESSION_COOKIE not in victim.cookies


def test_every_page_says_it_may_not_be_framed_or_sniffed(server, api_home):
    with server.client(api_home["keys"]["alice"]) as client:
        for path in ("/login", "/api/v1/studies", "/docs", "/openapi.json", "/static/quire.js", "/nope"):
            headers = client.get(path).headers
            assert headers["x-frame-options"] == "DENY", path
            assert "frame-ancestors 'none'" in headers["content-security-policy"], path
            assert "script-src 'self'" in headers["content-security-policy"], path
            assert headers["x-content-type-options"] == "nosniff" and headers["referrer-policy"] == "no-referrer"


def test_the_api_docs_load_no_script_from_elsewhere(server):
    docs = httpx.get(f"{server.url}/docs").text
    scripts = re.findall(r'<script[^>]*src="([^"]+)"', docs) + re.findall(r'href="([^"]+)"', docs)
    assert scripts and all(s.startswith("/static/") for s in scripts)
    assert "<script>" not in docs  # nothing inline either
    for src in scripts:
        assert httpx.get(f"{server.url}{src}").status_code == 200, src


def test_pages_work_under_their_content_security_policy(server, api_home):
    """The Overview's charts, Explore's table and /docs, in Chromium with the policy enforced: no
    violation reported, and each page shows what it is for."""
    from playwright.sync_api import sync_playwright

    from tests.web.conftest import chromium_path

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox"])
        try:
            page = browser.new_context().new_page()
            violations: list[str] = []
            page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
            page.goto(f"{server.url}/login")
            page.fill("#key", api_home["keys"]["alice"])
            page.click("button[type=submit]")
            page.wait_for_url("**/")
            page.wait_for_selector(".main-svg", timeout=30_000)  # plotly drew a chart
            page.goto(f"{server.url}/explore")
            page.wait_for_selector("#table[aria-busy=false] tbody tr", timeout=30_000)
            page.goto(f"{server.url}/docs")
            page.wait_for_selector(".swagger-ui .opblock", timeout=30_000)
            assert violations == []
        finally:
            browser.close()


def test_the_dashboards_opening_requests_name_no_field_the_policy_drops(strict_server, api_home):
    """Explore opens its study list sorted and asks for facets and ranges: under a policy that drops
    study dates, none of those requests may name a dropped field (the page would open on a 403)."""
    client = _log_in(strict_server, api_home["keys"]["alice"])
    page = client.get("/explore").text
    config = json.loads(re.search(r'id="quire-config">(.*?)</script>', page, re.S).group(1))
    assert config["sort"]["studies"] is None  # study_date is dropped by the strict policy
    for level, sort in config["sort"].items():
        if sort:
            answer = client.get(f"/api/v1/{level}", params={"sort": sort, "limit": 1})
            assert answer.status_code == 200, (level, sort, answer.text)
    for level, spec in config["filters"].items():
        for field in [*spec["facets"], *(r[0] for r in spec["ranges"])]:
            answer = client.get(f"/api/v1/{level}/distinct/{field}", params={"limit": 1})
            assert answer.status_code == 200, (level, field, answer.text)
    client.close()
