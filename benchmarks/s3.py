"""Header-only S3 ingest vs downloading whole objects (the seed's way), on the same moto bucket
of full-size CT slices. moto's server runs in its own process on 127.0.0.1; a second process in
front of it adds a fixed latency to every request, as a real S3 region has (first-byte latency,
not bandwidth, is what concurrency hides).

    python benchmarks/s3.py [--objects 300] [--threads 16] [--latency-ms 0 20]

Prints objects/s and bytes transferred per object side by side; nothing is asserted.
"""

from __future__ import annotations

import argparse
import http.client
import os
import socket
import subprocess
import sys
import tempfile
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import boto3

from quire_assets.dicom.features import load_feature_sets
from quire_assets.dicom.records import extract
from quire_assets.dicom.sample import SeriesPlan, StudyPlan, write_series
from quire_assets.settings import home_of
from quire_assets.sources import SourceIndex
from quire_assets.sources.s3 import S3Files, make_client

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.s3.conftest import send_head  # noqa: E402 (the test proxies' answer, shared)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class CountingS3Files(S3Files):
    """Counts the bytes of every ranged GET body."""

    fetched = 0

    def fetcher(self, entry):
        inner = super().fetcher(entry)

        def fetch(n: int) -> bytes:
            data = inner(n)
            CountingS3Files.fetched += len(data)
            return data

        return fetch


def serve_latency_proxy(port: int, upstream: int, latency_ms: float) -> None:
    """Forward to moto after sleeping ``latency_ms`` (run in its own process)."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:
            pass

        def forward(self) -> None:
            time.sleep(latency_ms / 1000)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            conn = http.client.HTTPConnection("127.0.0.1", upstream)
            conn.request(self.command, self.path, body=body, headers=dict(self.headers.items()))
            response = conn.getresponse()
            data = response.read()
            send_head(self, response.status, response.getheaders(), len(data))
            if self.command != "HEAD":
                self.wfile.write(data)

        do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = forward

    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


def wait_for(port: int) -> None:
    for _ in range(200):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


def measure(endpoint: str, keys: list[str], threads: int, features) -> dict[str, float]:
    client = boto3.client("s3", endpoint_url=endpoint)
    # The seed's way: download each object whole, then parse it, one after another.
    start = time.perf_counter()
    downloaded = 0
    for key in keys:
        body = client.get_object(Bucket="bench", Key=key)["Body"].read()
        downloaded += len(body)
        extract(f"s3://bench/{key}", len(body), lambda n, b=body: b[:n], features)
    whole_s = time.perf_counter() - start
    # Quire: ranged GETs of the first 64 KiB, concurrent, records into the index.
    CountingS3Files.fetched = 0
    files = CountingS3Files("bench", "ct/", threads=threads,
                            client_factory=lambda: make_client(threads, endpoint_url=endpoint))
    with tempfile.TemporaryDirectory() as home:
        os.environ["QUIRE_HOME"] = home
        start = time.perf_counter()
        SourceIndex(files, home_of()).refresh(features)
        header_s = time.perf_counter() - start
    n = len(keys)
    return {"whole_rate": n / whole_s, "whole_kib": downloaded / n / 1024, "whole_s": whole_s,
            "header_rate": n / header_s, "header_kib": CountingS3Files.fetched / n / 1024, "header_s": header_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--objects", type=int, default=300)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--latency-ms", type=float, nargs="+", default=[0.0, 20.0])
    parser.add_argument("--serve-proxy", nargs=3, type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_proxy:
        port, upstream, latency = args.serve_proxy
        serve_latency_proxy(int(port), int(upstream), latency)
        return
    os.environ.update({"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
                       "AWS_DEFAULT_REGION": "us-east-1"})
    os.environ.pop("AWS_ENDPOINT_URL", None)
    moto_port = free_port()
    children = [subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(moto_port)],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        wait_for(moto_port)
        moto = f"http://127.0.0.1:{moto_port}"
        client = boto3.client("s3", endpoint_url=moto)
        client.create_bucket(Bucket="bench")
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            per_series = 50
            for s in range(max(1, args.objects // per_series)):
                study = StudyPlan(patient_index=s + 1, accession=f"BENCH{s:04d}", date="2004-05-06",
                                  description="CT")
                study.series.append(SeriesPlan(5000 + s, "CT", "CT", per_series, 1.25, 0.7))
                write_series(tmp / "archive", study, study.series[0], 512, annotation=False)
            paths = sorted((tmp / "archive").rglob("*.dcm"))
            keys = []
            for path in paths:
                keys.append(f"ct/{path.relative_to(tmp / 'archive').as_posix()}")
                client.put_object(Bucket="bench", Key=keys[-1], Body=path.read_bytes())
            size = sum(p.stat().st_size for p in paths) / len(paths)
        features = load_feature_sets()
        rows = []
        for latency in args.latency_ms:
            endpoint = moto
            if latency:
                port = free_port()
                children.append(subprocess.Popen([sys.executable, __file__, "--serve-proxy", str(port),
                                                  str(moto_port), str(latency)]))
                wait_for(port)
                endpoint = f"http://127.0.0.1:{port}"
            rows.append((latency, measure(endpoint, keys, args.threads, features)))
    finally:
        for child in children:
            child.terminate()
    print(f"\nS3 ingest of {len(keys)} full-size CT slices ({size / 1024:.0f} KiB each), moto on 127.0.0.1")
    print(f"{'latency':>8}  {'method':<42}{'objects/s':>11}{'KiB/object':>12}{'seconds':>9}")
    for latency, m in rows:
        print(f"{latency:>6.0f}ms  {'whole objects, one at a time (seed)':<42}{m['whole_rate']:>11,.1f}"
              f"{m['whole_kib']:>12,.1f}{m['whole_s']:>9.2f}")
        print(f"{latency:>6.0f}ms  {f'header-only ranged GETs, {args.threads} threads':<42}{m['header_rate']:>11,.1f}"
              f"{m['header_kib']:>12,.1f}{m['header_s']:>9.2f}")


if __name__ == "__main__":
    main()
