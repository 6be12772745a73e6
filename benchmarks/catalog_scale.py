"""The researcher's catalog at a million series and five million instances: the API's answers and a
dashboard facet click, with the columnar copy (``QUIRE_COLUMNAR``, the default) beside the document
store alone, on the same catalog, in one run.

    python benchmarks/catalog_scale.py [--series 1000000] [--per-series 5] [--requests 40] [--clicks 20]

The catalog is made once (cached under benchmarks/.cache, about 25 minutes at a million series):
the showcase archive's real documents at every level, cloned with new UIDs, accession numbers,
patients and dates, so that fields, labels and quality flags keep their real combinations. Its
research view (the default policy) is written with it, so that the server starts on it.

Timed through ``quire serve`` with a researcher's key, each request ``--requests`` times after one
untimed: a filter's count, a sorted page of 100, the facet counts of every facet the Explore page
shows for series and studies, and a dashboard facet click in chromium (from the click to the table
and its count drawn). Prints p50 and p95 per row; nothing here is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.api import serving  # noqa: E402
from quire_assets.catalog import open_catalog  # noqa: E402
from quire_assets.catalog.policy import PhiPolicy  # noqa: E402
from quire_assets.catalog.view import open_view, sync  # noqa: E402
from quire_assets.research.researchers import add_researcher  # noqa: E402
from quire_assets.web.pages import FILTERS  # noqa: E402

CACHE = Path(__file__).parent / ".cache"
QUIRE = str(Path(sys.executable).with_name("quire"))
SALT = "benchmark"
BATCH = 20_000
FILTER = {"modality": "CT", "manufacturer_family": "GE", "slice_thickness": {"$lt": 1.5}}
SORT = "slice_thickness:asc"


def _templates() -> dict[str, list[dict]]:
    work = Path(tempfile.mkdtemp())
    try:
        env = {**os.environ, "QUIRE_HOME": str(work / "home")}
        subprocess.run([QUIRE, "sample-archive", str(work / "archive"), "--showcase"], env=env, check=True,
                       capture_output=True)
        subprocess.run([QUIRE, "ingest", str(work / "archive")], env=env, check=True, capture_output=True)
        with open_catalog(f"sqlite:///{work / 'home' / 'catalog.db'}") as sample:
            return {level: sample.find(level) for level in ("patients", "studies", "series", "instances")}
    finally:
        shutil.rmtree(work)


def _uid(kind: int, n: int) -> str:
    return f"1.2.826.0.1.3680043.10.{kind}.{n}"


def build(n_series: int, per_series: int) -> Path:
    """A catalog of ``n_series`` series (3 a study, 2 studies a patient), ``per_series`` instances
    each, and its research view."""
    path = CACHE / f"catalog-scale-{n_series}-{per_series}" / "catalog.db"
    if path.exists():
        return path
    t = _templates()
    instances_of: dict[str, list[dict]] = {}
    for i in t["instances"]:
        instances_of.setdefault(i["series_instance_uid"], []).append(i)
    series_t = [s for s in t["series"] if len(instances_of.get(s["series_instance_uid"], [])) >= 1]
    rng = random.Random(30)
    path.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with open_catalog(f"sqlite:///{path}") as catalog:
        docs: dict[str, list[dict]] = {"patients": [], "studies": [], "series": [], "instances": []}

        def flush(force: bool = False) -> None:
            if force or sum(len(v) for v in docs.values()) >= BATCH:
                with catalog.transaction():
                    for level, batch in docs.items():
                        catalog.upsert(level, batch)
                        batch.clear()

        for s in range(n_series):
            st, pt = s // 3, s // 6
            study_uid, series_uid = _uid(1, st), _uid(2, s)
            accession, patient = f"ACC{st:08d}", f"PAT{pt:07d}"
            if s % 6 == 0:
                p = rng.choice(t["patients"])
                docs["patients"].append({**p, "patient_id": patient, "patient_name": f"SCALE^{pt}"})
            if s % 3 == 0:
                d = rng.choice(t["studies"])
                date = f"{rng.randint(2005, 2024)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
                docs["studies"].append({**d, "study_instance_uid": study_uid, "accession_number": accession,
                                        "partition_key": accession, "patient_id": patient,
                                        "patient_name": f"SCALE^{pt}", "study_date": date,
                                        "metadata": {**d.get("metadata", {}), "StudyInstanceUID": study_uid,
                                                     "AccessionNumber": accession, "PatientID": patient}})
            x = rng.choice(series_t)
            docs["series"].append({**x, "series_instance_uid": series_uid, "study_instance_uid": study_uid,
                                   "accession_number": accession, "partition_key": accession, "patient_id": patient,
                                   "num_instances": per_series,
                                   "metadata": {**x.get("metadata", {}), "SeriesInstanceUID": series_uid}})
            pool = instances_of[x["series_instance_uid"]]
            for n in range(per_series):
                i = pool[n % len(pool)]
                sop = _uid(3, s * per_series + n)
                uri = f"/archive/{accession}/{s}/{n + 1}.dcm"
                docs["instances"].append({**i, "sop_instance_uid": sop, "series_instance_uid": series_uid,
                                          "study_instance_uid": study_uid, "accession_number": accession,
                                          "partition_key": accession, "instance_number": n + 1, "uri": uri,
                                          "uris": [uri], "locations": [{**i["locations"][0], "uri": uri}],
                                          "metadata": {**i.get("metadata", {}), "SOPInstanceUID": sop}})
            flush()
            if s and s % 100_000 == 0:
                print(f"  {s:,} series written ({time.perf_counter() - start:.0f} s)", flush=True)
        flush(force=True)
        policy = PhiPolicy.load(None, SALT.encode())
        view = open_view(catalog, policy)
        sync(catalog, view, policy, lambda line: print(f"  {line}", flush=True))
        view.close()
    print(f"  built in {time.perf_counter() - start:.0f} s", flush=True)
    return path


def _timed(client, path: str, params: dict, n: int) -> list[float]:
    """Seconds per answer, after one untimed; a refusal (a read past QUIRE_QUERY_SECONDS) counts as
    infinite, so that it shows in the p95 rather than being dropped."""
    times = []
    for i in range(n + 1):
        started = time.perf_counter()
        response = client.get(path, params=params)
        took = time.perf_counter() - started
        if response.status_code != 200:
            assert "seconds" in response.text, response.text  # only a time limit is an expected refusal
            took = float("inf")
        if i:
            times.append(took)
    return times


def api_rows(server, key: str, n: int) -> list[tuple[str, list[float]]]:
    where = json.dumps(FILTER)
    rows = []
    with server.client(key) as client:
        rows.append(("series: a filter's count", _timed(client, "/api/v1/series/count", {"where": where}, n)))
        rows.append(("series: the whole catalog's count", _timed(client, "/api/v1/series/count", {}, n)))
        rows.append(("series: a sorted page of 100 under the filter", _timed(
            client, "/api/v1/series", {"where": where, "sort": SORT, "limit": 100}, n)))
        rows.append(("series: a sorted page of 100, no filter", _timed(
            client, "/api/v1/series", {"sort": "series_description:asc", "limit": 100}, n)))
        for level in ("series", "studies"):
            facets = []
            for field in FILTERS[level]["facets"]:
                if client.get(f"/api/v1/{level}/distinct/{field}", params={"limit": 1}).status_code == 403:
                    continue  # a field the policy keeps from researchers: the page does not show it
                times = _timed(client, f"/api/v1/{level}/distinct/{field}",
                               {"where": where if level == "series" else "{}", "limit": 25}, n)
                rows.append((f"{level}: facet {field}", times))
                facets.append(times)
            rows.append((f"{level}: all {len(facets)} facets, one after the other",
                         [sum(t) for t in zip(*facets, strict=True)]))
    return rows


def click_rows(server, key: str, clicks: int, chromium: str) -> list[tuple[str, list[float]]]:
    from playwright.sync_api import sync_playwright

    values = ["CT", "MR", "DX"]
    times, table = [], []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        # Playwright's waits evaluate strings, which the pages' Content-Security-Policy refuses
        page = browser.new_page(viewport={"width": 1280, "height": 800}, bypass_csp=True)
        page.goto(f"{server.url}/login")
        page.fill("#key", key)
        page.click("button[type=submit]")
        page.wait_for_url("**/")
        page.goto(f"{server.url}/explore?level=series")
        inflight: set = set()
        page.on("request", lambda request: inflight.add(request))
        page.on("requestfinished", lambda request: inflight.discard(request))
        page.on("requestfailed", lambda request: inflight.discard(request))

        def drawn(started: float = 0.0) -> None:
            """Until the table and its count are drawn, then until every request the page made (the
            facets', the range hints') is answered."""
            page.wait_for_function("document.querySelector('#summary').dataset.count && "
                                   "document.querySelector('#table').getAttribute('aria-busy') === 'false'",
                                   timeout=120_000)
            if started:
                table.append(time.perf_counter() - started)
            while inflight:
                page.wait_for_timeout(2)

        drawn()
        for i in range(clicks):
            value = values[i % len(values)]
            page.wait_for_selector("fieldset[data-field=modality] input", timeout=120_000)
            page.evaluate("delete document.querySelector('#summary').dataset.count")
            box = page.locator(f"fieldset[data-field=modality] input[data-value='{json.dumps(value)}']")
            started = time.perf_counter()
            box.click()
            drawn(started)
            times.append(time.perf_counter() - started)
            page.click("#clear")
            drawn()
        browser.close()
    return [("dashboard: a modality click until the table and its count are drawn", table),
            ("dashboard: the same click until every facet and range hint is drawn", times)]


def _rss_mb(pid: int) -> float:
    """Resident memory of the server and its children (uvicorn's worker), MB."""
    pids, total = [pid], 0
    while pids:
        current = pids.pop()
        status = Path(f"/proc/{current}/status").read_text()
        total += int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:")))
        for task in Path(f"/proc/{current}/task").iterdir():
            pids += [int(c) for c in (task / "children").read_text().split()]
    return total / 1024


def p50_p95(times: list[float]) -> tuple[float, float]:
    ordered = sorted(times)
    return statistics.median(ordered) * 1000, ordered[min(len(ordered) - 1, round(len(ordered) * 0.95) - 1)] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=1_000_000)
    parser.add_argument("--per-series", type=int, default=5)
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--clicks", type=int, default=20)
    parser.add_argument("--baseline-requests", type=int, default=3,
                        help="requests a row for the document store alone (its facets take seconds each)")
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    parser.add_argument("--only-build", action="store_true")
    args = parser.parse_args()
    path = build(args.series, args.per_series)
    if args.only_build:
        return
    with open_catalog(f"sqlite:///{path}") as catalog:
        catalog.delete("researchers", {})
        _, key = add_researcher(catalog, "bench")
        counts = {level: catalog.count(level) for level in ("studies", "series", "instances")}
    on_disk = sum(p.stat().st_size for p in path.parent.iterdir() if p.is_file())
    print(f"catalog: {counts['studies']:,} studies, {counts['series']:,} series, {counts['instances']:,} instances; "
          f"catalog and research view on disk {on_disk / counts['instances']:,.0f} bytes per instance")
    print(f"filter {json.dumps(FILTER)}; {args.requests} requests a row; {os.cpu_count()} cores\n")
    results: dict[str, dict[str, list[float]]] = {}
    for label, columnar in (("document store (before)", "0"), ("columnar copy", "1")):
        os.environ["QUIRE_COLUMNAR"] = columnar
        os.environ["QUIRE_PHI_SALT"] = SALT
        requests, clicks = (args.requests, args.clicks) if columnar == "1" else (args.baseline_requests,
                                                                                  min(args.clicks, 3))
        with serving(path) as server:
            if columnar == "1":
                started = time.perf_counter()
                with server.client(key) as client:  # the copy is built in the background at start
                    while client.get("/health").json().get("columnar") != "ready":
                        client.get("/api/v1/series/count")
                        time.sleep(1)
                rss = _rss_mb(server.proc.pid)
                print(f"columnar copy built in the background in {time.perf_counter() - started:.0f} s; "
                      f"the server's RSS then {rss:,.0f} MB")
            rows = api_rows(server, key, requests)
            if clicks:
                rows += click_rows(server, key, clicks, args.chromium)
        results[label] = dict(rows)
    labels = list(results)
    print(f"{'':82}" + "".join(f"  {label[:22]:>22}" for label in labels))
    print(f"{'p50 / p95 ms':82}" + "".join(f"  {'':>22}" for _ in labels))
    for row in results[labels[0]]:
        cells = []
        for label in labels:
            p50, p95 = p50_p95(results[label][row])
            cells.append(f"{p50:10.1f} / {p95:9.1f}")
        print(f"{row:82}" + "".join(f"  {c:>22}" for c in cells))


if __name__ == "__main__":
    main()
