"""Reading a PACS: DICOMweb metadata vs DIMSE C-GET vs retrieving whole instances, side by side.

    python benchmarks/pacs.py [--patients 80] [--slices 16] [--matrix 512] [--threads 8]

A real Orthanc (Debian's ``orthanc`` and ``orthanc-dicomweb``) on 127.0.0.1, loaded once with a
sample archive of CT series (80 patients × 16 slices: 2,001 instances of 512×512, about 0.5 MB
each, cached under benchmarks/.cache). Each way makes the records of every instance, from an
empty index, through the same ``SourceIndex`` refresh (listing included):

- DICOMweb metadata: what Quire does (QIDO-RS, then one WADO-RS metadata request per series);
- DIMSE C-GET: what Quire does over DIMSE (C-FIND, then C-GET of a series into memory);
- whole instances over WADO-RS, one request each, as tools that retrieve images to extract
  their metadata do (the baseline);
- and the same files from a local folder, for scale.

Bytes are counted by the sources themselves (response bodies; Orthanc's HTTP compression is off,
so they are the bytes on the wire). Prints a table; nothing here is asserted.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from quire_assets.dicom.features import FeatureSets, load_feature_sets  # noqa: E402
from quire_assets.dicom.records import record_or_error  # noqa: E402
from quire_assets.dicom.sample import write_sample_archive  # noqa: E402
from quire_assets.sources import SourceIndex  # noqa: E402
from quire_assets.sources.base import FileEntry  # noqa: E402
from quire_assets.sources.dicomweb import DicomWebFiles  # noqa: E402
from quire_assets.sources.dimse import DimseFiles  # noqa: E402
from quire_assets.sources.local import LocalFiles  # noqa: E402
from quire_assets.sources.pacs import instance_path  # noqa: E402
from tests.pacs.conftest import CALLED_AET, CALLING_AET, PASSWORD, USER, dicom_files, start_orthanc  # noqa: E402

CACHE = Path(__file__).parent / ".cache"


class WholeInstances(DicomWebFiles):
    """The baseline: every instance retrieved whole (WADO-RS, pixel data included) and parsed."""

    def read_series(self, study_uid: str, series_uid: str, entries: Sequence[FileEntry],
                    features: FeatureSets) -> list[dict]:
        records = []
        for entry in entries:
            with self._asking():
                dataset = self.client.retrieve_instance(study_uid, series_uid, instance_path(entry.uri)[2])
            records.append(record_or_error(entry.uri, dataset, features, True, None))
        return records

    def batches(self, entries: list[FileEntry], size: int) -> list[list[FileEntry]]:
        return [[e] for e in entries]  # one request per instance, `threads` in flight


def loaded_pacs(patients: int, slices: int, matrix: int) -> tuple[Path, Path]:
    """(the Orthanc directory, the archive folder), loading Orthanc once per size."""
    base = CACHE / f"pacs-{patients}x{slices}x{matrix}"
    archive, orthanc = base / "archive", base / "orthanc"
    if (base / "loaded").exists():
        return orthanc, archive
    write_sample_archive(archive, patients=patients, slices=slices, matrix=matrix)
    orthanc.mkdir(parents=True, exist_ok=True)
    process, http_port, _ = start_orthanc(orthanc)
    try:
        files = dicom_files(archive)
        with requests.Session() as session, ThreadPoolExecutor(4) as pool:
            def load(path: Path) -> None:
                session.post(f"http://127.0.0.1:{http_port}/instances", data=path.read_bytes(), auth=(USER, PASSWORD),
                             timeout=60).raise_for_status()
            list(pool.map(load, files))
        (base / "loaded").write_text(str(len(files)))
    finally:
        process.terminate()
        process.wait()
    return orthanc, archive


def measure(name: str, source_factory: Callable[[], object], features: FeatureSets, threads: int,
            baseline_bytes: float) -> dict:
    source = source_factory()
    with tempfile.TemporaryDirectory() as home:
        start = time.perf_counter()
        with SourceIndex(source, Path(home)) as index:
            result = index.refresh(features, workers=threads)
            summary = index.summary()
        seconds = time.perf_counter() - start
    received = getattr(source, "received", None)
    n = summary["instances"]
    per = received / n if received is not None else None
    return {"way": name, "instances": n, "errors": summary["errors"], "seconds": seconds, "per_s": n / seconds,
            "bytes_per_instance": per, "share": (per / baseline_bytes) if per is not None else None,
            "read": result.read}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", type=int, default=80)
    parser.add_argument("--slices", type=int, default=16)
    parser.add_argument("--matrix", type=int, default=512)
    parser.add_argument("--threads", type=int, default=8, help="requests / associations in flight")
    args = parser.parse_args()
    orthanc, archive = loaded_pacs(args.patients, args.slices, args.matrix)
    files = dicom_files(archive)
    mean_size = sum(p.stat().st_size for p in files) / len(files)
    features = load_feature_sets()
    process, http_port, dicom_port = start_orthanc(orthanc)
    base = f"http://127.0.0.1:{http_port}/dicom-web"
    try:
        rows = [
            measure("DICOMweb: QIDO + WADO-RS series metadata (Quire)",
                    lambda: DicomWebFiles(base, USER, PASSWORD, threads=args.threads), features, args.threads,
                    mean_size),
            measure("DIMSE: C-FIND + C-GET of series, in memory (Quire)",
                    lambda: DimseFiles("127.0.0.1", dicom_port, CALLED_AET, CALLING_AET, threads=args.threads),
                    features, args.threads, mean_size),
            measure("whole instances, WADO-RS one by one (baseline)",
                    lambda: WholeInstances(base, USER, PASSWORD, threads=args.threads), features, args.threads,
                    mean_size),
            measure("the same files from a local folder (for scale)", lambda: LocalFiles(archive), features,
                    os.cpu_count() or 1, mean_size),
        ]
    finally:
        process.terminate()
        process.wait()
    print(f"\n{len(files):,} instances of {args.matrix}×{args.matrix} on Orthanc 1.10 (127.0.0.1), mean file "
          f"{mean_size / 1024:,.0f} KiB, {args.threads} requests/associations in flight, {os.cpu_count()} cores\n")
    print("| way | instances | errors | s | instances/s | KiB received per instance | of the instance |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        per = f"{r['bytes_per_instance'] / 1024:,.1f}" if r["bytes_per_instance"] is not None else "–"
        share = f"{100 * r['share']:.1f} %" if r["share"] is not None else "–"
        print(f"| {r['way']} | {r['instances']:,} | {r['errors']} | {r['seconds']:.1f} | {r['per_s']:,.0f} | {per} "
              f"| {share} |")


if __name__ == "__main__":
    main()
