"""What the research view costs: building it whole, following a re-ingest of 1 % of the
accessions, and what logging the catalog's writes adds to ``replace_partitions``, each beside its
baseline in the same run (a catalog that logs nothing; reading the catalog whole).

    python benchmarks/research_view.py [--accessions 2000] [--instances 20]

Documents are the shape a CT accession has (one study, one series, ``--instances`` instances with
their metadata), written into a fresh SQLite catalog in a temporary folder. Prints a table; nothing
here is asserted.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from quire_assets.catalog.policy import PhiPolicy
from quire_assets.catalog.sqlite import SqliteCatalog
from quire_assets.catalog.view import open_view, rebuild, sync


def accession(i: int, instances: int) -> tuple[list, list, list]:
    study, series = f"1.2.{i}", f"1.3.{i}"
    key = f"ACC{i:07d}"
    meta = {"PatientID": f"MRN{i % 997:06d}", "PatientName": f"NAME^{i}", "PatientBirthDate": "1950-01-01",
            "StudyDate": "2020-01-01", "AccessionNumber": key}
    docs = [{"sop_instance_uid": f"1.4.{i}.{n}", "series_instance_uid": series, "study_instance_uid": study,
             "accession_number": key, "partition_key": key, "uri": f"/archive/MRN{i % 997:06d}/{n}.dcm",
             "uris": [f"/archive/MRN{i % 997:06d}/{n}.dcm"], "instance_number": n, "oddities": [],
             "metadata": {"SOPInstanceUID": f"1.4.{i}.{n}", "InstanceNumber": n, "SliceLocation": -n * 1.25,
                          "ImagePositionPatient": [0.0, 0.0, -n * 1.25], "KVP": 120.0}} for n in range(instances)]
    ser = [{"series_instance_uid": series, "study_instance_uid": study, "accession_number": key, "partition_key": key,
            "patient_id": meta["PatientID"], "modality": "CT", "slice_thickness": 1.25, "num_instances": instances,
            "metadata": {"Modality": "CT", "SliceThickness": 1.25, "Manufacturer": "GE MEDICAL SYSTEMS"}}]
    st = [{"study_instance_uid": study, "accession_number": key, "partition_key": key, "patient_id": meta["PatientID"],
           "patient_name": meta["PatientName"], "study_date": "2020-01-01", "num_series": 1,
           "num_instances": instances, "metadata": meta}]
    return docs, ser, st


def write(catalog: SqliteCatalog, keys: range, instances: int) -> float:
    start = time.perf_counter()
    for first in range(keys.start, keys.stop, 100):
        batch = [accession(i, instances) for i in range(first, min(first + 100, keys.stop))]
        catalog.replace_partitions([f"ACC{i:07d}" for i in range(first, min(first + 100, keys.stop))],
                                   [d for b in batch for d in b[0]], [d for b in batch for d in b[1]],
                                   [d for b in batch for d in b[2]], [])
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accessions", type=int, default=2000)
    parser.add_argument("--instances", type=int, default=20)
    args = parser.parse_args()
    policy = PhiPolicy.load(None, b"benchmark-secret")
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        plain = SqliteCatalog(Path(folder) / "plain.db")
        plain.logs_changes = False
        logged = SqliteCatalog(Path(folder) / "catalog.db")
        everything = range(args.accessions)
        rows.append(("catalog write, all accessions", write(plain, everything, args.instances),
                     write(logged, everything, args.instances), "s: no log vs with the write log"))
        start = time.perf_counter()
        for level in ("patients", "studies", "series", "instances"):
            logged.find(level)
        read_all = time.perf_counter() - start
        view = open_view(logged, policy)
        start = time.perf_counter()
        rebuild(logged, view, policy)
        rows.append(("research view built whole", read_all, time.perf_counter() - start,
                     "s: reading the catalog whole vs building the view"))
        again = range(0, args.accessions, 100)  # 1 % of the accessions re-ingested
        written = write(logged, range(0), args.instances)
        for i in again:
            written += write(logged, range(i, i + 1), args.instances)
        start = time.perf_counter()
        sync(logged, view, policy)
        rows.append((f"{len(again)} accessions re-ingested, then the view follows", written,
                     time.perf_counter() - start, "s: the re-ingest vs the view's sync"))
        instances = logged.count("instances")
        for closing in (plain, logged, view):
            closing.close()
    print(f"{args.accessions:,} accessions, {instances:,} instances")
    print(f"| {'what':<55} | {'baseline':>9} | {'measured':>9} | ratio | figures |")
    print(f"|{'-' * 57}|{'-' * 11}|{'-' * 11}|-------|---------|")
    for what, base, measured, unit in rows:
        print(f"| {what:<55} | {base:>9.2f} | {measured:>9.2f} | {measured / base:>5.2f} | {unit} |")


if __name__ == "__main__":
    main()
