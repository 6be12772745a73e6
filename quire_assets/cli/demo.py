"""``quire demo``: sample archive, ingest, and example queries on the embedded catalog."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from quire_assets.catalog import default_catalog_uri, open_catalog, quire_home
from quire_assets.catalog.fields import TABLE_COLUMNS
from quire_assets.cli.common import format_table
from quire_assets.cli.ingest import closing_line, ingest

DEMO_QUERIES = [
    ("CT series thinner than 1.5 mm from GE scanners", "series",
     {"modality": "CT", "slice_thickness": {"$lt": 1.5}, "manufacturer": {"$regex": "^GE", "$options": "i"}}),
    ("Studies with more than one series", "studies", {"num_series": {"$gt": 1}}),
    ("Series with pixel spacing under 0.7 mm", "series", {"pixel_spacing": {"$lt": 0.7}}),
    ("Studies without an accession number (partition no-accession:<StudyInstanceUID>)", "studies",
     {"accession_number": None}),
]


def cmd_demo(args: argparse.Namespace) -> int:
    from quire_assets.dicom.sample import write_sample_archive

    archive = Path(args.directory or quire_home() / "demo-archive")
    if not (archive / "metadata.csv").exists():
        write_sample_archive(archive)
        print(f"wrote a sample LIDC-IDRI-shaped archive to {archive}")
    print(f"$ quire ingest {archive}")
    report = ingest(str(archive), args.catalog)
    print(closing_line(report))
    with open_catalog(args.catalog) as catalog:
        for title, level, flt in DEMO_QUERIES:
            docs = catalog.find(level, flt)
            print(f"\n{title}\n$ quire query {level} --where '{json.dumps(flt)}'")
            print(format_table(docs, TABLE_COLUMNS[level]))
    print(f"\nThe catalog is {args.catalog or default_catalog_uri()}. Explore the assets with `dagster dev`.")
    return 1 if report["failed_runs"] else 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="sample archive → ingest → example queries, on the embedded catalog")
    p.add_argument("--directory", help="where to write the sample archive (default: $QUIRE_HOME/demo-archive)")
    p.add_argument("--catalog")
    p.set_defaults(func=cmd_demo)
