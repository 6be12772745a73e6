"""The dashboard's answer time on a catalog of 50,000 series: from a click on a facet to the table
rendered with its count, in Debian's chromium (Playwright), beside the same two API calls the page
makes, asked from Python.

    python benchmarks/dashboard.py [--series 50000] [--clicks 50] [--chromium /usr/bin/chromium]

Uses the catalog ``benchmarks/api.py`` builds (cached). Prints a table; nothing here is asserted.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.api import build_catalog, serving  # noqa: E402
from quire_assets.catalog import open_catalog  # noqa: E402
from quire_assets.research.researchers import add_researcher  # noqa: E402

FACET = "manufacturer"
VALUES = ["GE MEDICAL SYSTEMS", "SIEMENS", "Philips", "TOSHIBA"]


def summary(times: list[float]) -> tuple[float, float]:
    ordered = sorted(times)
    return statistics.median(ordered) * 1000, ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=50_000)
    parser.add_argument("--clicks", type=int, default=50)
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    catalog_path = build_catalog(args.series)
    with open_catalog(f"sqlite:///{catalog_path}") as catalog:
        catalog.delete("researchers", {})
        _, key = add_researcher(catalog, "bench", admin=True)
    clicks, api_times = [], []
    with serving(catalog_path) as server:
        url = server.url
        with server.client(key) as client:
            for i in range(args.clicks):
                where = json.dumps({FACET: {"$in": [VALUES[i % len(VALUES)]]}})
                start = time.perf_counter()
                client.get("/api/v1/series", params={"where": where, "limit": 25}).raise_for_status()
                client.get("/api/v1/series/count", params={"where": where}).raise_for_status()
                api_times.append(time.perf_counter() - start)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=args.chromium, args=["--no-sandbox"])
            # Playwright's waits evaluate strings, which the pages' Content-Security-Policy refuses
            page = browser.new_page(viewport={"width": 1280, "height": 800}, bypass_csp=True)
            page.goto(f"{url}/login")
            page.fill("#key", key)
            page.click("button[type=submit]")
            page.wait_for_url("**/")
            page.goto(f"{url}/explore?level=series")
            page.wait_for_function("document.querySelector('#summary').dataset.count")
            for i in range(args.clicks):
                value = VALUES[i % len(VALUES)]
                page.wait_for_selector(f"fieldset[data-field={FACET}] input")
                page.evaluate("delete document.querySelector('#summary').dataset.count")
                box = page.locator(f"fieldset[data-field={FACET}] input[data-value='{json.dumps(value)}']")
                start = time.perf_counter()
                box.click()
                page.wait_for_function("document.querySelector('#summary').dataset.count && "
                                       "document.querySelector('#table').getAttribute('aria-busy') === 'false'")
                clicks.append(time.perf_counter() - start)
                page.wait_for_load_state("networkidle")  # the facets' own answers, before the next click
                page.click("#clear")
                page.wait_for_function("document.querySelector('#table').getAttribute('aria-busy') === 'false'")
                page.wait_for_load_state("networkidle")
            browser.close()
    with open_catalog(f"sqlite:///{catalog_path}") as catalog:
        total = catalog.count("series")
    print(f"catalog: {total:,} series; facet {FACET}; {args.clicks} clicks\n")
    print(f"{'':58}  {'p50 ms':>8}  {'p95 ms':>8}")
    for label, times in (("the page's two API calls from Python (baseline)", api_times),
                         ("facet click → table and count rendered, chromium", clicks)):
        p50, p95 = summary(times)
        print(f"{label:58}  {p50:8.1f}  {p95:8.1f}")


if __name__ == "__main__":
    main()
