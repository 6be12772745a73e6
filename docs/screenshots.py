"""The screenshots in docs/, taken from a real ingest in headless Chromium.

    pip install -e ".[docs]"; apt-get install chromium
    python docs/screenshots.py [--chromium /usr/bin/chromium]

Writes the showcase archive (``quire sample-archive --showcase``), runs ``quire ingest`` with a DAGSTER_HOME, starts ``dagster dev`` on
127.0.0.1 over that instance, and captures: ingest_job's Runs tab, catalog_entries' page for one
accession partition, catalog_entries' checks, and the page ``quire report`` writes; then starts
``quire serve --open`` on the same catalog and captures the dashboard's pages.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, seconds: float) -> None:
    """Until ``url`` answers (a server just started), for at most ``seconds``."""
    deadline = time.time() + seconds
    while True:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except OSError:
            if time.time() > deadline:
                raise
            time.sleep(0.5)


def quire(*args: str, env: dict) -> None:
    subprocess.run([str(BIN / "quire"), *args], env=env, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / "archive"
        env = {**os.environ, "QUIRE_HOME": str(Path(tmp) / "quire"), "DAGSTER_HOME": str(Path(tmp) / "dagster"),
               "QUIRE_SOURCE": str(archive), "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS": "true"}
        env.pop("QUIRE_CATALOG", None)
        quire("sample-archive", str(archive), "--showcase", env=env)
        first = sorted(p.name for p in archive.glob("*/*") if p.is_dir())[0]  # <year>/<accession>
        quire("ingest", str(archive), "--workers", "2", "--batch", "4", env=env)
        quire("report", "--out", str(Path(tmp) / "report"), env=env)
        # What the summary_refresh sensor does after ingests, done now: the whole-catalog check.
        subprocess.run([str(BIN / "dagster"), "job", "execute", "-m", "quire_assets.definitions", "-j", "report_job"],
                       cwd=ROOT, env=env, check=True, capture_output=True)
        port = free_port()
        server = subprocess.Popen([str(BIN / "dagster"), "dev", "-h", "127.0.0.1", "-p", str(port), "-w",
                                   str(ROOT / "workspace.yaml")], cwd=ROOT, env=env, start_new_session=True,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{port}"
        try:
            wait_for(f"{base}/server_info", 120)
            pages = {
                "dagster-job-runs.png": f"{base}/locations/quire/jobs/ingest_job/runs",
                "dagster-partition.png": f"{base}/assets/catalog_entries?view=partitions&partition={first}",
                "dagster-checks.png": f"{base}/assets/catalog_entries?view=checks",
                "report.png": (Path(tmp) / "report" / "quire-report.html").as_uri(),
            }
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=args.chromium, args=["--no-sandbox"])
                page = browser.new_page(viewport={"width": 1440, "height": 900})
                for name, url in pages.items():
                    page.goto(url, wait_until="networkidle")
                    skip = page.get_by_role("button", name="Skip")  # the UI's first-visit newsletter dialog
                    if skip.count():
                        skip.click()
                    if name == "dagster-checks.png":  # a per-accession check, with its partitions
                        page.get_by_text("every_file_accounted_for").first.click()
                        page.wait_for_load_state("networkidle")
                        page.get_by_text("Partitions", exact=True).last.click()  # the check's, not the asset's
                        page.wait_for_load_state("networkidle")
                        page.get_by_text(first, exact=True).filter(visible=True).last.click()  # one accession's verdict
                        page.wait_for_load_state("networkidle")
                    page.wait_for_timeout(2500)  # the UI renders after its last GraphQL answer
                    page.screenshot(path=str(DOCS / name), full_page=name == "report.png")
                    print(f"wrote docs/{name}")
                dashboard(browser, env)
                browser.close()
        finally:
            os.killpg(server.pid, 15)
            server.wait(timeout=60)


DASHBOARD = {"dashboard-overview.png": "/", "dashboard-explore.png": "/explore?level=studies",
             "dashboard-series.png": "/explore?level=series",
             "dashboard-cohort.png": '/cohort?level=series&where={"series_types":"FLAIR"}', "dashboard-jobs.png": "/jobs",
             "dashboard-integrity.png": "/integrity"}


def dashboard(browser, env: dict) -> None:
    """The dashboard's pages, served by ``quire serve --open`` over the catalog just ingested."""
    port = free_port()
    server = subprocess.Popen([str(BIN / "quire"), "serve", "--open", "--port", str(port), "--no-worker"], env=env,
                              start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(f"{base}/health", 60)
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        for name, path in DASHBOARD.items():
            page.goto(base + path, wait_until="networkidle")
            page.wait_for_timeout(1500)  # charts draw after the page's API calls
            page.screenshot(path=str(DOCS / name))
            print(f"wrote docs/{name}")
        # A series page: each value once, grouped; its instances by number.
        page.goto(base + "/explore?level=series&where=" + '{"modality":"CT"}', wait_until="networkidle")
        page.click("#table tbody tr a")
        page.wait_for_load_state("networkidle")
        page.screenshot(path=str(DOCS / "dashboard-detail.png"), full_page=True)
        print("wrote docs/dashboard-detail.png")
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=60)


if __name__ == "__main__":
    main()
