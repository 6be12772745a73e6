"""Quire's DICOMweb: QIDO-RS latency on a catalog of 50,000 series beside the same question through
the researcher API, and WADO-RS retrieval throughput beside Orthanc's own DICOMweb on the same files.

    python benchmarks/dicomweb.py [--series 50000] [--requests 200] [--files 400] [--accessions 8]

QIDO: ``benchmarks/api.py``'s catalog (cached), asked with a researcher's key by one client, one
request after the other; each query beside the API route that answers the same question (the
baseline: same server, same view, JSON without DICOM's shape).

WADO: ``--files`` CT slices of 512×512 (``benchmarks/ingest.py``'s archive) in ``--accessions``
series, loaded into a real Orthanc (Debian's, with its DICOMweb plugin) and ingested into Quire
from the folder; every series retrieved whole (``multipart/related; application/dicom``) from
Orthanc, from Quire with an admin's key (the files as stored) and with a researcher's (each file
de-identified on the way). Prints tables; nothing here is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.* and benchmarks.*

from benchmarks.api import build_catalog, serving  # noqa: E402
from benchmarks.ingest import archive_for  # noqa: E402
from quire_assets.catalog import open_catalog  # noqa: E402
from quire_assets.research.researchers import add_researcher  # noqa: E402

QUIRE = str(Path(sys.executable).with_name("quire"))


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered) * 1000, ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))] * 1000


def timed(session: requests.Session, url: str, params: dict, n: int) -> tuple[float, float, int]:
    for _ in range(10):
        rows = session.get(url, params=params, timeout=60)
        rows.raise_for_status()
    times = []
    for _ in range(n):
        start = time.perf_counter()
        session.get(url, params=params, timeout=60).raise_for_status()
        times.append(time.perf_counter() - start)
    body = rows.json()
    count = len(body) if isinstance(body, list) else body.get("count", 0)
    return (*percentiles(times), count)


def qido(series: int, n: int) -> None:
    catalog_path = build_catalog(series)
    with open_catalog(f"sqlite:///{catalog_path}") as catalog:
        catalog.delete("researchers", {})
        _, key = add_researcher(catalog, "bench")
        study = catalog.find("studies", limit=1, skip=series // 6)[0]["study_instance_uid"]
        one_series = catalog.find("series", limit=1, skip=series // 2)[0]["series_instance_uid"]
    pairs = [
        ("CT series, limit 100", "/dicomweb/series", {"Modality": "CT", "limit": "100"},
         "/api/v1/series", {"where": json.dumps({"modality": "CT"}), "limit": "100"}),
        ("studies in a year, limit 100", "/dicomweb/studies", {"StudyDate": "20000101-20001231", "limit": "100"},
         "/api/v1/studies", {"where": json.dumps({"study_date": {"$gte": "2000-01-01", "$lte": "2000-12-31"}}),
                             "limit": "100"}),
        ("the series of one study", f"/dicomweb/studies/{study}/series", {},
         f"/api/v1/studies/{study}/series", {}),
        ("one series by UID", "/dicomweb/series", {"SeriesInstanceUID": one_series},
         "/api/v1/series", {"where": json.dumps({"series_instance_uid": one_series})}),
        ("CT series of 2000 (a study key on series)", "/dicomweb/series",
         {"Modality": "CT", "StudyDate": "20000101-20001231", "limit": "100"},
         "/api/v1/series", {"where": json.dumps({"modality": "CT"}), "limit": "100"}),
    ]
    print(f"QIDO-RS on {series:,} series, {n} sequential requests each, a researcher's key; {os.cpu_count()} cores")
    print(f"{'':44}  {'QIDO p50':>9} {'p95 ms':>7} {'rows':>5}   {'API p50':>8} {'p95 ms':>7} {'rows':>5}")
    with serving(catalog_path) as server:
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {key}"
        for label, path, params, api_path, api_params in pairs:
            q = timed(session, server.url + path, params, n)
            a = timed(session, server.url + api_path, api_params, n)
            print(f"{label:44}  {q[0]:9.1f} {q[1]:7.1f} {q[2]:5}   {a[0]:8.1f} {a[1]:7.1f} {a[2]:5}")
    print("(the last row's API baseline asks the series filter alone: the API has no study-date key on series)\n")


def _multipart_bytes(session: requests.Session, url: str, **kwargs) -> int:
    response = session.get(url, headers={"Accept": 'multipart/related; type="application/dicom"'}, timeout=600,
                           **kwargs)
    response.raise_for_status()
    return len(response.content)


def wado(files: int, accessions: int) -> None:
    from tests.api.conftest import Server
    from tests.api.conftest import add_researcher as add_key
    from tests.pacs.conftest import PASSWORD, USER, dicom_files, start_orthanc

    archive = archive_for(files, accessions)
    work = Path(tempfile.mkdtemp())
    (work / "orthanc").mkdir()
    process, http_port, _ = start_orthanc(work / "orthanc")
    try:
        orthanc = f"http://127.0.0.1:{http_port}"
        paths = dicom_files(archive)
        with requests.Session() as loader:
            for path in paths:
                loader.post(f"{orthanc}/instances", data=path.read_bytes(), auth=(USER, PASSWORD)).raise_for_status()
        home = work / "home"
        env = {**os.environ, "QUIRE_HOME": str(home), "QUIRE_PHI_SALT": "benchmark"}
        env.pop("QUIRE_CATALOG", None)
        subprocess.run([QUIRE, "ingest", str(archive)], env=env, check=True, capture_output=True)
        keys = {"admin": add_key(env, home, "boss", "--admin"), "researcher": add_key(env, home, "alice")}
        server = Server(env, home)
        try:
            with open_catalog(f"sqlite:///{home / 'catalog.db'}") as catalog:
                series = [(s["study_instance_uid"], s["series_instance_uid"]) for s in catalog.find("series")]
            total_bytes = sum(p.stat().st_size for p in paths)
            print(f"WADO-RS: {len(paths)} CT files of 512×512 ({total_bytes / 1e6:.0f} MB) in {len(series)} series, "
                  "each series retrieved whole, one after the other")
            print(f"{'':44}  {'seconds':>8}  {'MB/s':>7}  {'files/s':>8}  {'MB received':>11}")
            rows = []
            with requests.Session() as session:
                start = time.perf_counter()
                got = sum(_multipart_bytes(session, f"{orthanc}/dicom-web/studies/{st}/series/{se}",
                                           auth=(USER, PASSWORD)) for st, se in series)
                rows.append(("Orthanc 1.10 DICOMweb (baseline)", time.perf_counter() - start, got))
            for who in ("admin", "researcher"):
                with requests.Session() as session:
                    session.headers["Authorization"] = f"Bearer {keys[who]}"
                    start = time.perf_counter()
                    got = sum(_multipart_bytes(session, f"{server.url}/dicomweb/studies/{st}/series/{se}")
                              for st, se in series)
                    label = ("Quire, an admin's key (files as stored)" if who == "admin"
                             else "Quire, a researcher's key (de-identified)")
                    rows.append((label, time.perf_counter() - start, got))
            for label, seconds, got in rows:
                print(f"{label:44}  {seconds:8.2f}  {total_bytes / 1e6 / seconds:7.1f}  {len(paths) / seconds:8.0f}  "
                      f"{got / 1e6:11.1f}")
        finally:
            server.stop()
    finally:
        process.terminate()
        process.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=50_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--files", type=int, default=400)
    parser.add_argument("--accessions", type=int, default=8)
    parser.add_argument("--only", choices=["qido", "wado"])
    args = parser.parse_args()
    if args.only != "wado":
        qido(args.series, args.requests)
    if args.only != "qido":
        wado(args.files, args.accessions)


if __name__ == "__main__":
    main()
