"""The OHIF viewer (its standalone bundle from the npm registry, ``@ohif/viewer``, served from this
machine) over Quire's DICOMweb, in Debian's chromium driven by Playwright: the study list is the
catalog's as a researcher may see it, and opening a study draws its first image from frames Quire
read from the cataloged folder.

The bundle is fetched by ``.ci/run`` (``npm pack``) into ``.cache/ohif``; served from another
origin than Quire's, it reads DICOMweb through ``QUIRE_CORS_ORIGINS`` with a researcher's key.
OHIF 2's standalone bundle sends a key only as the access token of its signed-in (OpenID Connect)
user, so the page signs that user in with the key.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from tests.api.conftest import Server
from tests.s3.conftest import free_port
from tests.web.conftest import chromium_path

ROOT = Path(__file__).resolve().parents[2]
OHIF_VERSION = "4.12.51"
OHIF_BUNDLE = ROOT / ".cache" / "ohif" / f"ohif-viewer-{OHIF_VERSION}.tgz"
ARTIFACTS = ROOT / "test-artifacts" / "dicomweb"
CT_SMALL_STUDY = "1.3.6.1.4.1.5962.1.2.1.20040119072730.12322"  # pydicom's CT_small.dcm, a real CT slice

PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>OHIF over Quire</title></head>
<body><div id="root"></div>
<script src="/app-config.js"></script>
<script src="/index.umd.js" crossorigin></script>
<script>
window.OHIFViewer.installViewer(window.config, 'root', function () {});
(function signIn() {
  if (!window.store) { return setTimeout(signIn, 10); }
  window.store.dispatch({type: 'redux-oidc/USER_FOUND', payload: {access_token: '%(key)s', profile: {}}});
})();
</script></body></html>"""

CONFIG = """window.config = {
  routerBasename: '/', extensions: [], showStudyList: true, filterQueryParam: false,
  servers: {dicomWeb: [{name: 'Quire', qidoRoot: '%(root)s', wadoRoot: '%(root)s', wadoUriRoot: '%(root)s',
    qidoSupportsIncludeField: true, imageRendering: 'wadors', thumbnailRendering: 'wadors',
    enableStudyLazyLoad: true, supportsFuzzyMatching: false}]},
};"""


class ViewerSite(SimpleHTTPRequestHandler):
    """OHIF's files; any other path is its single page (the viewer routes in the browser)."""

    def log_message(self, *args) -> None:
        pass

    def send_head(self):
        if not (Path(self.directory) / self.path.lstrip("/").split("?")[0]).is_file():
            self.path = "/index.html"
        return super().send_head()


@pytest.fixture(scope="module")
def ohif_dist(tmp_path_factory) -> Path:
    if not OHIF_BUNDLE.exists():
        message = (f"OHIF's bundle is not here: `npm pack @ohif/viewer@{OHIF_VERSION}` in {OHIF_BUNDLE.parent} "
                   "(.ci/run does it)")
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    folder = tmp_path_factory.mktemp("ohif")
    with tarfile.open(OHIF_BUNDLE) as bundle:
        bundle.extractall(folder, filter="data")
    return folder / "package" / "dist"


@pytest.fixture(scope="module")
def viewer(quire_dicomweb, ohif_dist, tmp_path_factory):
    """OHIF on one loopback port, Quire (a copy of the session's catalog, allowing OHIF's origin) on
    another: the viewer's URL and Quire's server."""
    site = tmp_path_factory.mktemp("ohif-site")
    port = free_port()
    home = tmp_path_factory.mktemp("ohif-quire")
    shutil.copy(quire_dicomweb.home / "catalog.db", home / "catalog.db")
    quire_port = free_port()
    quire_url = f"http://127.0.0.1:{quire_port}"
    env = {**quire_dicomweb.env, "QUIRE_HOME": str(home), "QUIRE_PUBLIC_URL": quire_url,
           "QUIRE_CORS_ORIGINS": f"http://127.0.0.1:{port}"}
    server = Server(env, home, port=quire_port)
    shutil.copy(ohif_dist / "index.umd.js", site / "index.umd.js")
    (site / "index.html").write_text(PAGE % {"key": quire_dicomweb.keys["alice"]})
    (site / "app-config.js").write_text(CONFIG % {"root": f"{quire_url}/dicomweb"})
    httpd = ThreadingHTTPServer(("127.0.0.1", port), partial(ViewerSite, directory=str(site)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}", server
    finally:
        httpd.shutdown()
        server.stop()


def test_only_the_named_origin_may_read_dicomweb(viewer):
    site, server = viewer
    for origin, allowed in ((site, True), ("http://127.0.0.1:1", False)):
        preflight = requests.options(f"{server.url}/dicomweb/studies", timeout=30, headers={
            "Origin": origin, "Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "authorization"})
        assert (preflight.headers.get("access-control-allow-origin") == origin) is allowed
        assert "access-control-allow-credentials" not in preflight.headers
    api = requests.options(f"{server.url}/api/v1/studies", timeout=30, headers={
        "Origin": site, "Access-Control-Request-Method": "GET"})
    assert "access-control-allow-origin" not in api.headers  # the API stays same-origin


def test_ohif_lists_the_studies_and_draws_an_image(viewer, quire_dicomweb):
    from playwright.sync_api import sync_playwright

    site, _ = viewer
    frames: list[int] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.on("response", lambda r: frames.append(r.status) if "/frames/" in r.url else None)
            page.goto(site)
            page.get_by_text("RAD/2019/0042").wait_for(timeout=60_000)
            listed = page.inner_text("body")
            # The catalog's 22 studies, as alice may see them: pseudonyms, no names.
            assert "LIDC-IDRI-0002" not in listed and "CompressedSamples" not in listed
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "ohif-study-list.png"))
            page.goto(f"{site}/viewer/{CT_SMALL_STUDY}")
            canvas = page.locator("canvas.cornerstone-canvas").first
            canvas.wait_for(timeout=60_000)
            # Drawn: the canvas holds the CT slice's many grey levels, not one background colour.
            page.wait_for_function("""() => {
                const canvas = document.querySelector('canvas.cornerstone-canvas');
                if (!canvas || !canvas.width) return false;
                const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
                const levels = new Set();
                for (let i = 0; i < data.length; i += 4) levels.add(data[i]);
                return levels.size > 50;
            }""", timeout=60_000)
            shown = page.inner_text("body")
            page.screenshot(path=str(ARTIFACTS / "ohif-viewer.png"))
        finally:
            browser.close()
    assert frames and set(frames) == {200}
    assert "CompressedSamples" not in shown  # CT_small's PatientName, hidden from alice
