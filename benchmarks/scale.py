"""The cost of new accessions as Dagster's partition store grows: every accession kept registered
(before) beside the working set (``QUIRE_PARTITIONS_KEPT``, after), in one run.

    python benchmarks/scale.py [--registered 10000,100000,1000000] [--new 1000] [--before-max 100000]
    python benchmarks/scale.py --grow 10000,50000,100000

For each size N, a fresh ``DAGSTER_HOME`` (the Dagster UI's instance, written by ``quire``) is
given N accession partitions registered before (synthetic keys: an instance that has cataloged N
accessions), then ``quire ingest`` catalogs two batches of ``--new`` X-ray-shaped accessions (1 or
2 small DX images each): the first after N (with the working set, it also retires the N old keys,
once), the second the steady state. Then an unchanged rescan. Printed for each: seconds per 1,000
new accessions, the rescan, the keys registered afterwards, one read of every registered key (what
Dagster does dozens of times a run), and the ingest's peak RSS.

The archive is built fast from one template file written by pydicom, with fixed-length UIDs,
accession number and patient ID patched per file. The catalog and the source index hold only the
archive's accessions here: this isolates the Dagster side (83 % of a run's time at 200,000
registered accessions, ``../shared/measurements/scale-profile.md``). ``--grow`` grows one archive
of real accessions instead, so that the catalog and the source index grow too: after each stage,
the cost of 1,000 more, an unchanged rescan, and the bytes on disk per file.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

QUIRE = str(Path(sys.executable).with_name("quire"))
REPO = Path(__file__).resolve().parent.parent
ROOT = "1.2.826.0.1.3680043.9.77777"
DIGITS = 12  # the patched part of each placeholder: "1" and 11 digits (a UID component has no leading zero)
PLACEHOLDERS = {  # name: the template's value, the same length as every value patched in
    "study": f"{ROOT}.1.1{'0' * (DIGITS - 1)}",
    "series": f"{ROOT}.2.1{'0' * (DIGITS - 1)}",
    "sop": f"{ROOT}.3.1{'0' * (DIGITS - 1)}",
    "accession": f"XA1{'0' * (DIGITS - 1)}",
    "patient": f"PT1{'0' * (DIGITS - 1)}",
}


def template() -> bytes:
    """One small chest radiograph with placeholder identifiers (each of even length: no padding)."""
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    from quire_assets.dicom.sample import SeriesPlan, StudyPlan, write_series

    with tempfile.TemporaryDirectory() as folder:
        study = StudyPlan(patient_index=1, accession="X", date="2019-03-01", description="XR CHEST")
        study.series.append(SeriesPlan(1, "CHEST", "DX", 1, None, 0.139))
        write_series(Path(folder), study, study.series[0], 64, annotation=False)
        [path] = Path(folder).rglob("*.dcm")
        ds = pydicom.dcmread(path)
    assert all(len(v) % 2 == 0 for v in PLACEHOLDERS.values())
    ds.StudyInstanceUID, ds.SeriesInstanceUID = PLACEHOLDERS["study"], PLACEHOLDERS["series"]
    ds.SOPInstanceUID = PLACEHOLDERS["sop"]
    ds.AccessionNumber, ds.PatientID = PLACEHOLDERS["accession"], PLACEHOLDERS["patient"]
    meta = FileMetaDataset(ds.file_meta)
    meta.MediaStorageSOPInstanceUID = PLACEHOLDERS["sop"]
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    with tempfile.NamedTemporaryFile(suffix=".dcm") as fp:
        ds.save_as(fp.name, enforce_file_format=True)
        return Path(fp.name).read_bytes()


def write_batch(folder: Path, first: int, count: int, blob: bytes) -> int:
    """Accessions ``first`` .. ``first + count - 1``, 1 or 2 images each; returns the files written."""
    files = 0
    for a in range(first, first + count):
        where = folder / f"{a:08d}"
        where.mkdir(parents=True)
        number = f"1{a:0{DIGITS - 1}d}"
        one = blob
        for name in ("study", "series", "accession", "patient"):
            one = one.replace(PLACEHOLDERS[name].encode(), (PLACEHOLDERS[name][:-DIGITS] + number).encode())
        for image in range(1 + a % 2):
            sop = f"1{a * 2 + image:0{DIGITS - 1}d}"
            (where / f"{image}.dcm").write_bytes(one.replace(PLACEHOLDERS["sop"].encode(),
                                                             (PLACEHOLDERS["sop"][:-DIGITS] + sop).encode()))
            files += 1
    return files


def ingest(archive: Path, env: dict) -> tuple[float, int, str]:
    """``quire ingest``: seconds, peak RSS (KiB, of the command and its run processes, measured by a
    parent of its own), closing line."""
    parent = ("import resource, subprocess, sys; code = subprocess.run(sys.argv[1:]).returncode; "
              "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); sys.exit(code)")
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", parent, QUIRE, "ingest", str(archive)], env=env,
                         capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if out.returncode:
        sys.exit(f"quire ingest failed:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
    return seconds, int(out.stderr.strip().splitlines()[-1]), out.stdout.strip()


def registered(dagster_home: Path) -> tuple[int, float]:
    """Keys registered, and the seconds one read of them all takes (in a process of its own)."""
    code = ("import json, sys, time; from dagster import DagsterInstance; "
            "i = DagsterInstance.from_config(sys.argv[1]); t = time.perf_counter(); "
            "n = len(i.get_dynamic_partitions('accessions')); print(json.dumps([n, time.perf_counter() - t]))")
    out = subprocess.run([sys.executable, "-c", code, str(dagster_home)], capture_output=True, text=True, check=True)
    n, seconds = json.loads(out.stdout)
    return n, seconds


def preregister(dagster_home: Path, count: int) -> None:
    from dagster import DagsterInstance

    with DagsterInstance.from_config(str(dagster_home)) as instance:
        for start in range(0, count, 20_000):  # Dagster checks which exist with one SQL IN of them all
            instance.add_dynamic_partitions("accessions", [f"OLD{i:09d}" for i in range(start, min(count, start + 20_000))])


ASSET = {"k": {"path": ["catalog_entries"]}}
INGEST_ASSETS = [{"path": [name]} for name in ("dicom_files", "instance_records", "series_rollups", "study_rollups",
                                               "catalog_entries")]
# What the UI's pages ask for (the asset's overview, its partitions, its checks, a run, a backfill
# launched over every partition), as GraphQL queries of Dagster's schema.
UI_QUERIES = {
    "asset overview": ("""query($k: AssetKeyInput!) { assetNodeOrError(assetKey: $k) { __typename ... on AssetNode {
        partitionStats { numMaterialized numMaterializing numPartitions numFailed }
        assetMaterializations(limit: 1) { runId partition timestamp } } } }""", ASSET),
    "asset partitions": ("""query($k: AssetKeyInput!) { assetNodeOrError(assetKey: $k) { __typename ... on AssetNode {
        partitionKeysByDimension { name partitionKeys }
        assetPartitionStatuses { __typename ... on DefaultPartitionStatuses {
            materializedPartitions failedPartitions materializingPartitions } } } } }""", ASSET),
    "asset checks": ("""query($k: AssetKeyInput!) { assetNodeOrError(assetKey: $k) { __typename ... on AssetNode {
        assetChecksOrError { __typename ... on AssetChecks { checks { name
            executionForLatestMaterialization { status } } } } } } }""", ASSET),
    "a run": ("""query($id: ID!) { runOrError(runId: $id) { __typename ... on Run { id status
        stats { __typename ... on RunStatsSnapshot { stepsSucceeded } } } }
        logsForRun(runId: $id, limit: 1000) { __typename ... on EventConnection { events { __typename } } } }""", None),
    "backfill launch": ("""mutation($a: [AssetKeyInput!]) { launchPartitionBackfill(backfillParams: {
        assetSelection: $a, allPartitions: true}) { __typename ... on PythonError { message } } }""", {"a": INGEST_ASSETS}),
}


def ui_timings(env: dict, dagster_home: Path, repeats: int = 2) -> dict[str, float]:
    """The slowest of ``repeats`` answers to each of the UI's queries, from a dagster-webserver
    on this instance (the ``quire`` code location of ``workspace.yaml``)."""
    import requests
    from dagster import DagsterInstance

    with DagsterInstance.from_config(str(dagster_home)) as instance:
        run_id = instance.get_runs(limit=1)[0].run_id
    port = free_port()
    server = subprocess.Popen([str(Path(sys.executable).with_name("dagster-webserver")), "-h", "127.0.0.1", "-p",
                               str(port), "-w", str(REPO / "workspace.yaml")], cwd=REPO, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}/graphql"
    try:
        deadline = time.time() + 180
        while True:  # up once the code location has loaded
            try:
                if "quire" in requests.post(url, json={"query": "{ workspaceOrError { __typename ... on Workspace { "
                                                                 "locationEntries { name } } } }"}, timeout=10).text:
                    break
            except requests.ConnectionError:
                pass
            if time.time() > deadline:
                sys.exit("dagster-webserver did not start")
            time.sleep(1)
        slowest = {}
        for name, (query, variables) in UI_QUERIES.items():
            times = []
            for _ in range(repeats if name != "backfill launch" else 1):
                start = time.perf_counter()
                answer = requests.post(url, json={"query": query, "variables": variables or {"id": run_id}},
                                       timeout=900).json()
                times.append(time.perf_counter() - start)
                text = json.dumps(answer)
                if "errors" in answer or re.search(r'"__typename": "\w*(Error|NotFound)', text):
                    sys.exit(f"{name}: {text[:1000]}")
            slowest[name] = max(times)
        return slowest
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=60)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def measure(size: int, kept: int | None, new: int, blob: bytes, work: Path, with_ui: bool) -> dict:
    home, dagster_home, archive = work / "home", work / "dagster", work / "archive"
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUIRE_")}
    env.update(QUIRE_HOME=str(home), DAGSTER_HOME=str(dagster_home),
               QUIRE_PARTITIONS_KEPT=str(kept if kept is not None else 0))
    dagster_home.mkdir(parents=True)
    (archive / "empty").mkdir(parents=True)
    ingest(archive, env)  # writes the instance's dagster.yaml
    start = time.perf_counter()
    preregister(dagster_home, size)
    setup = time.perf_counter() - start
    write_batch(archive / "first", 0, new, blob)
    first, _, _ = ingest(archive, env)
    write_batch(archive / "second", new, new, blob)
    second, rss, line = ingest(archive, env)
    rescan, _, _ = ingest(archive, env)
    keys, read_all = registered(dagster_home)
    ui = ui_timings(env, dagster_home) if with_ui else {}
    return {"ui_s": ui, "registered_before": size, "kept": kept, "setup_s": setup, "first_per_1000_s": first * 1000 / new,
            "per_1000_s": second * 1000 / new, "rescan_s": rescan, "registered_after": keys,
            "read_all_keys_s": read_all, "peak_rss_mb": rss / 1024, "closing": line}


def grow(stages: list[int], new: int, kept: int, blob: bytes, work: Path) -> list[dict]:
    """One archive of real accessions grown in stages (the catalog and the source index grow with
    it): after each stage, the seconds for ``new`` more accessions, and an unchanged rescan."""
    home, dagster_home, archive = work / "home", work / "dagster", work / "archive"
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUIRE_")}
    env.update(QUIRE_HOME=str(home), DAGSTER_HOME=str(dagster_home), QUIRE_PARTITIONS_KEPT=str(kept))
    dagster_home.mkdir(parents=True)
    archive.mkdir()
    rows, total = [], 0
    for stage in stages:
        files = write_batch(archive / f"bulk-{stage}", total, stage - total, blob)
        bulk, _, _ = ingest(archive, env)
        total = stage
        write_batch(archive / f"probe-{stage}", total, new, blob)
        probe, rss, _ = ingest(archive, env)
        total += new
        rescan, _, _ = ingest(archive, env)
        on_disk = sum(p.stat().st_size for p in home.rglob("*") if p.is_file() and "storage" not in p.parts)
        listed = sum(1 for p in archive.rglob("*.dcm"))
        rows.append({"accessions": total, "files": listed, "bulk_files_per_s": files / bulk,
                     "per_1000_s": probe * 1000 / new, "rescan_s": rescan, "catalog_and_index_bytes_per_file": on_disk / listed,
                     "peak_rss_mb": rss / 1024})
        print(f"  grown to {total:,} accessions", file=sys.stderr)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--registered", default="10000,100000,1000000", help="sizes of the partition store")
    parser.add_argument("--new", type=int, default=1000, help="new accessions per batch")
    parser.add_argument("--kept", type=int, default=10_000, help="the working set (QUIRE_PARTITIONS_KEPT)")
    parser.add_argument("--before-max", type=int, default=100_000,
                        help="the largest size measured with every accession kept (1,000,000 takes many minutes)")
    parser.add_argument("--no-ui", action="store_true", help="leave out the Dagster UI's GraphQL timings")
    parser.add_argument("--grow", help="instead: grow one archive of real accessions through these sizes "
                                       "(e.g. 10000,50000,100000), the catalog and the index with it")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    blob = template()
    if args.grow:
        with tempfile.TemporaryDirectory(prefix="quire-grow-") as folder:
            grown = grow([int(s) for s in args.grow.split(",")], args.new, args.kept, blob, Path(folder))
        print(f"\nOne archive of X-ray accessions (1-2 DX images each) grown in stages, quire ingest with DAGSTER_HOME "
              f"and a working set of {args.kept:,}, {os.cpu_count()} cores")
        print(f"{'accessions':>11} {'files':>9} {'stage ingest files/s':>21} {'s / 1,000 new':>14} {'rescan s':>9} "
              f"{'catalog+index B/file':>21} {'peak RSS MB':>12}")
        for r in grown:
            print(f"{r['accessions']:>11,} {r['files']:>9,} {r['bulk_files_per_s']:>21,.0f} {r['per_1000_s']:>14.2f} "
                  f"{r['rescan_s']:>9.2f} {r['catalog_and_index_bytes_per_file']:>21,.0f} {r['peak_rss_mb']:>12.0f}")
        if args.json:
            args.json.write_text(json.dumps(grown, indent=1))
        return
    rows = []
    for size in (int(s) for s in args.registered.split(",")):
        for kept in (None, args.kept):
            if kept is None and size > args.before_max:
                rows.append({"registered_before": size, "kept": None, "skipped": True})
                continue
            with tempfile.TemporaryDirectory(prefix="quire-scale-") as folder:
                rows.append(measure(size, kept, args.new, blob, Path(folder), not args.no_ui))
            print(f"  measured {size:,} registered, {'working set ' + str(kept) if kept else 'every accession kept'}",
                  file=sys.stderr)
    print(f"\n{args.new:,} new X-ray accessions (1-2 DX images each) per batch, quire ingest with DAGSTER_HOME, "
          f"{os.cpu_count()} cores")
    header = (f"{'registered before':>18} {'partitions kept':>16} {'s / 1,000 new':>14} {'first batch':>12} "
              f"{'rescan s':>9} {'registered after':>17} {'read all keys s':>16} {'peak RSS MB':>12}")
    print(header)
    for r in rows:
        kept = f"{r['kept']:,}" if r["kept"] else "all (before)"
        if r.get("skipped"):
            print(f"{r['registered_before']:>18,} {kept:>16} {'not run (--before-max)':>30}")
            continue
        print(f"{r['registered_before']:>18,} {kept:>16} {r['per_1000_s']:>14.2f} {r['first_per_1000_s']:>12.2f} "
              f"{r['rescan_s']:>9.2f} {r['registered_after']:>17,} {r['read_all_keys_s']:>16.3f} {r['peak_rss_mb']:>12.0f}")
    ui_rows = [r for r in rows if r.get("ui_s")]
    if ui_rows:
        names = list(UI_QUERIES)
        print("\nThe Dagster UI's GraphQL queries on the same instances (the slowest of 2 answers, seconds; "
              "a backfill over every partition launched once)")
        print(f"{'registered before':>18} {'partitions kept':>16} " + " ".join(f"{n:>17}" for n in names))
        for r in ui_rows:
            kept = f"{r['kept']:,}" if r["kept"] else "all (before)"
            print(f"{r['registered_before']:>18,} {kept:>16} " + " ".join(f"{r['ui_s'][n]:>17.2f}" for n in names))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
