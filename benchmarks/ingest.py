"""Ingest speed, side by side on the same files, with the floors and the seed's way as baselines.

    python benchmarks/ingest.py [--files 10000] [--accessions 200] [--json results.json]
    python benchmarks/ingest.py --shape dx [--accessions 5000]

Generates (and caches under benchmarks/.cache) a synthetic archive: LIDC-like full-size 512 KiB CT
slices (``--shape ct``, the default), or chest radiographs of 1 to 3 small DX images per accession
(``--shape dx``: most radiology exams, where the cost per accession partition dominates), then
measures, each method in its own process on a warm page cache:

- walk: os.scandir + stat only (the floor of any ingest);
- pydicom floor: dcmread(stop_before_pixels=True), one process;
- seed's way: full dcmread and one INSERT + commit per file into SQLite;
- dcmdump: dcmtk's parser over all files in one process, stopping before the pixel data;
- quire core: Quire's extraction of one record per file, one process (fast path and pydicom path);
- quire ingest: the `quire ingest` command end to end (index, Dagster runs, catalog), with an
  ephemeral Dagster instance and with a DAGSTER_HOME on the default SQLite storage; its
  ``--timings`` split the wall time into the index, Quire's code in the runs, and Dagster (runs
  overlap on one worker per core: their times are added up, then scaled to the runs' wall time).

For each: files/s, CPU seconds, bytes read per file (rchar from /proc/self/io, which includes
reaped children), and peak RSS. Nothing here is asserted; figures go in the table and the JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CACHE = HERE / ".cache"


def archive_for(files: int, accessions: int, matrix: int = 512) -> Path:
    from quire_assets.dicom.sample import SeriesPlan, StudyPlan, write_series

    root = CACHE / f"lidc-{files}-{accessions}-{matrix}"
    done = root / ".complete"
    if done.exists():
        return root
    shutil.rmtree(root, ignore_errors=True)
    per = max(1, files // accessions)
    start = time.perf_counter()
    written = 0
    for a in range(accessions):
        n = per if a < accessions - 1 else files - written
        study = StudyPlan(patient_index=a + 1, accession=f"LIDC{a + 1:05d}", date="2000-01-01",
                          description="CT CHEST")
        study.series.append(SeriesPlan(3000 + a, "CHEST", "CT", n, [0.625, 1.25, 2.5][a % 3], 0.7, a % 4))
        write_series(root, study, study.series[0], matrix)
        written += n
    done.write_text(json.dumps({"files": files, "accessions": accessions, "seconds": time.perf_counter() - start}))
    return root


def dx_archive_for(accessions: int) -> Path:
    """Chest radiographs as most radiology exams are: 1 to 3 small DX images (64×64, ~10 KiB) per
    accession, one series each (PA, then lateral, then a repeat)."""
    from quire_assets.dicom.sample import SeriesPlan, StudyPlan, write_series

    root = CACHE / f"dx-{accessions}"
    done = root / ".complete"
    if done.exists():
        return root
    shutil.rmtree(root, ignore_errors=True)
    start = time.perf_counter()
    for a in range(accessions):
        study = StudyPlan(patient_index=a + 1, accession=f"XR{a + 1:06d}", date="2019-03-01",
                          description="XR CHEST 2 VIEWS")
        study.series.append(SeriesPlan(1, "CHEST", "DX", 1 + a % 3, None, 0.139))
        write_series(root, study, study.series[0], 64, annotation=False)
    done.write_text(json.dumps({"accessions": accessions, "seconds": time.perf_counter() - start}))
    return root


LIDC_STUDIES, LIDC_FILES = 1_308, 244_527


def lidc_archive_for() -> Path:
    """LIDC-IDRI's size and shape: 1,308 CT studies and 244,527 files in NBIA's folder layout,
    without accession numbers (so 1,308 ``no-accession:`` partitions), small 16×16 slices."""
    from quire_assets.dicom.sample import SeriesPlan, StudyPlan, write_series

    root = CACHE / "lidc-full"
    done = root / ".complete"
    if done.exists():
        return root
    shutil.rmtree(root, ignore_errors=True)
    start = time.perf_counter()
    per, extra = divmod(LIDC_FILES, LIDC_STUDIES)
    for s in range(LIDC_STUDIES):
        study = StudyPlan(patient_index=s + 1, accession=None, date=f"2000-01-{1 + s % 28:02d}", description="CT CHEST")
        study.series.append(SeriesPlan(3000 + s, "CHEST", "CT", per + (s < extra), [0.625, 1.25, 2.5][s % 3], 0.7, s % 4))
        write_series(root, study, study.series[0], 16)
    done.write_text(json.dumps({"files": LIDC_FILES, "seconds": time.perf_counter() - start}))
    return root


def dicom_paths(root: Path) -> list[str]:
    return sorted(str(p) for p in root.rglob("*.dcm"))


def io_counters() -> dict[str, int]:
    out = {}
    with open("/proc/self/io") as fp:
        for line in fp:
            key, value = line.split(":")
            out[key] = int(value)
    return out


# ---- methods, each run in its own process --------------------------------------------------------


def m_walk(root: Path) -> int:
    from quire_assets.sources.local import LocalFiles

    return sum(1 for _ in LocalFiles(root).list())


def m_pydicom(root: Path) -> int:
    import pydicom

    paths = dicom_paths(root)
    for path in paths:
        pydicom.dcmread(path, stop_before_pixels=True)
    return len(paths)


def m_naive(root: Path) -> int:
    import pydicom

    paths = dicom_paths(root)
    with tempfile.TemporaryDirectory() as tmp:
        conn = sqlite3.connect(Path(tmp) / "seed.db")
        conn.execute("CREATE TABLE images (path TEXT, patient TEXT, study TEXT, series TEXT, sop TEXT, "
                     "modality TEXT, thickness TEXT, spacing TEXT)")
        for path in paths:
            ds = pydicom.dcmread(path)
            conn.execute("INSERT INTO images VALUES (?,?,?,?,?,?,?,?)", (
                path, str(ds.PatientID), ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID,
                ds.Modality, str(ds.get("SliceThickness")), str(ds.get("PixelSpacing"))))
            conn.commit()
    return len(paths)


def m_dcmdump(root: Path) -> int:
    exe = shutil.which("dcmdump")
    if not exe:
        raise FileNotFoundError("dcmdump (Debian package dcmtk) is not installed")
    paths = dicom_paths(root)
    list_file = Path(tempfile.mkstemp(suffix=".txt")[1])
    subprocess.run([exe, "-q", "+sb", "7fe0,0010", *paths], stdout=subprocess.DEVNULL, check=True)
    list_file.unlink()
    return len(paths)


def _core(root: Path, fast: bool) -> int:
    from quire_assets.dicom.features import load_feature_sets
    from quire_assets.dicom.records import extract_file

    features = load_feature_sets()
    paths = dicom_paths(root)
    for path in paths:
        extract_file(path, features, fast=fast)
    return len(paths)


def m_core_fast(root: Path) -> int:
    return _core(root, True)


def m_core_pydicom(root: Path) -> int:
    return _core(root, False)


TIMINGS: dict = {}
DISK: dict = {}


def _bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else (
        path.stat().st_size if path.exists() else 0)


def _ingest(root: Path, dagster_home: bool) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "QUIRE_HOME": str(Path(tmp) / "home")}
        env.pop("QUIRE_CATALOG", None)
        env.pop("DAGSTER_HOME", None)
        if dagster_home:
            env["DAGSTER_HOME"] = str(Path(tmp) / "dagster")
        out = subprocess.run([str(Path(sys.executable).with_name("quire")), "ingest", str(root), "--timings"],
                             env=env, capture_output=True, text=True, check=True)
        TIMINGS.update(json.loads(out.stderr.strip().splitlines()[-1]))
        home = Path(env["QUIRE_HOME"])
        DISK.update({"catalog": _bytes(home / "catalog.db"), "index": _bytes(home / "index"),
                     "storage": _bytes(home / "storage")})
    return len(dicom_paths(root))


def m_ingest_ephemeral(root: Path) -> int:
    return _ingest(root, False)


def m_ingest_sqlite(root: Path) -> int:
    return _ingest(root, True)


METHODS = {
    "walk (scandir + stat)": m_walk,
    "pydicom floor (1 process)": m_pydicom,
    "seed's way (full read, INSERT+commit)": m_naive,
    "dcmdump (dcmtk, 1 process)": m_dcmdump,
    "quire core, pydicom path (1 process)": m_core_pydicom,
    "quire core, fast path (1 process)": m_core_fast,
    "quire ingest, no DAGSTER_HOME": m_ingest_ephemeral,
    "quire ingest, DAGSTER_HOME (SQLite)": m_ingest_sqlite,
}


def run_one(name: str, root: Path) -> dict:
    before = io_counters()
    start = time.perf_counter()
    count = METHODS[name](root)
    seconds = time.perf_counter() - start
    after = io_counters()
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "method": name, "files": count, "seconds": seconds, "files_per_s": count / seconds,
        "cpu_s": own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime,
        "bytes_read_per_file": (after["rchar"] - before["rchar"]) / max(count, 1),
        "peak_rss_mb": max(own.ru_maxrss, kids.ru_maxrss) / 1024,
        "timings": dict(TIMINGS), "disk": dict(DISK),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", choices=["ct", "dx", "lidc"], default="ct",
                        help="lidc: LIDC-IDRI's 244,527 files (run it with --only ingest)")
    parser.add_argument("--files", type=int, default=10_000, help="CT only (a DX archive has ~2 per accession)")
    parser.add_argument("--accessions", type=int, help="default: 200 CT studies, 5,000 DX exams")
    parser.add_argument("--matrix", type=int, default=512)
    parser.add_argument("--only", nargs="*", help="run only methods whose name contains one of these words")
    parser.add_argument("--json", type=Path, help="write the figures here (compare between commits)")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--root", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one, args.root)))
        return
    if args.accessions is None:
        args.accessions = 200 if args.shape == "ct" else 5_000
    root = (archive_for(args.files, args.accessions, args.matrix) if args.shape == "ct"
            else dx_archive_for(args.accessions) if args.shape == "dx" else lidc_archive_for())
    if args.shape == "lidc":
        args.accessions = LIDC_STUDIES
    files = len(dicom_paths(root))
    m_walk(root)
    m_pydicom(root)  # warm the page cache once, so every method reads from memory
    rows = []
    for name in METHODS:
        if args.only and not any(word in name for word in args.only):
            continue
        proc = subprocess.run([sys.executable, __file__, "--one", name, "--root", str(root)],
                              capture_output=True, text=True)
        if proc.returncode:
            rows.append({"method": name, "error": (proc.stderr.strip().splitlines() or ["failed"])[-1]})
        else:
            rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        print(f"  measured {name}", file=sys.stderr)
    size = sum(os.path.getsize(p) for p in dicom_paths(root)[:100]) / 100
    what = "DX images" if args.shape == "dx" else "CT slices"
    print(f"\nIngest of {files:,} {what} ({size / 1024:.0f} KiB each) in {args.accessions:,} accessions, "
          f"{os.cpu_count()} cores, warm page cache")
    print(f"{'method':<40}{'files/s':>10}{'CPU s':>9}{'KiB read/file':>15}{'peak RSS MB':>13}")
    for r in rows:
        if "error" in r:
            print(f"{r['method']:<40}  {r['error']}")
            continue
        print(f"{r['method']:<40}{r['files_per_s']:>10,.0f}{r['cpu_s']:>9.1f}{r['bytes_read_per_file'] / 1024:>15,.1f}"
              f"{r['peak_rss_mb']:>13,.0f}")
    for r in rows:
        t = r.get("timings") or {}
        if t:
            wall = r["seconds"]
            setup = t["dagster_setup_s"]
            rest = wall - t["index_s"] - setup - t["runs_s"]
            # Runs overlap on several workers: Dagster's part of the runs' wall time is its part of
            # the time the runs took, added up.
            in_runs = t["runs_s"] * t["dagster_overhead_s"] / max(t["runs_busy_s"], 1e-9)
            print(f"  {r['method']}: wall {wall:.1f} s = index {t['index_s']:.1f} s + Dagster set-up {setup:.1f} s "
                  f"(import left after the header reads, instance) + runs {t['runs_s']:.1f} s on {t['run_workers']} worker(s) (added up "
                  f"{t['runs_busy_s']:.1f} s: Quire code {t['in_quire_code_s']:.1f} s, Dagster "
                  f"{t['dagster_overhead_s']:.1f} s) + start and exit {rest:.1f} s. Dagster's share of the wall "
                  f"time: {100 * in_runs / wall:.0f}% in runs, {100 * (in_runs + setup) / wall:.0f}% with its set-up")
        disk = r.get("disk") or {}
        if disk:
            per = {k: v / r["files"] for k, v in disk.items()}
            print(f"  {r['method']}: bytes per file on disk: catalog {per['catalog']:,.0f} + source index "
                  f"{per['index']:,.0f} = {per['catalog'] + per['index']:,.0f} (+ the IO manager's Parquet files "
                  f"{per['storage']:,.0f})")
    if args.json:
        args.json.write_text(json.dumps({"shape": args.shape, "files": files, "accessions": args.accessions,
                                         "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
