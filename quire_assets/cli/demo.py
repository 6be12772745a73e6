"""``quire demo``: the showcase archive, ingest, and example queries on the embedded catalog."""

from __future__ import annotations

import argparse
import json
import shlex
from pathlib import Path

from quire_assets.catalog.fields import TABLE_COLUMNS
from quire_assets.cli.common import format_table, open_catalog_of
from quire_assets.cli.ingest import closing_line, ingest
from quire_assets.settings import Settings

DEMO_QUERIES = [
    ("CT series thinner than 1.5 mm", "series", {"modality": "CT", "slice_thickness": {"$lt": 1.5}}),
    ("MR series labelled FLAIR at 3 T", "series", {"series_types": "FLAIR", "magnetic_field_strength": 3.0}),
    ("Studies with more than one series", "studies", {"num_series": {"$gt": 1}}),
    ("Series whose headers show a defect", "series",
     {"quality_flags": {"$in": ["missing_slices", "duplicate_positions", "damaged_files"]}}),
]


def next_steps(catalog_uri: str, environment: Settings) -> str:
    """What to try next on the catalog the demo just built (each command reads this catalog)."""
    named = "" if catalog_uri == environment.catalog_uri else f" --catalog {shlex.quote(catalog_uri)}"
    dagster_home = environment.dagster_home
    ui = ("the Dagster UI shows this demo's runs: dagster dev -m quire_assets.definitions" if dagster_home else
          "for the Dagster UI to show the runs, set DAGSTER_HOME (a folder) before `quire ingest`, then: "
          "DAGSTER_HOME=... dagster dev -m quire_assets.definitions")
    return "\n".join([
        f"The catalog is {catalog_uri}. Try next:",
        f"  quire serve --open{named}      # the dashboard and the API on http://127.0.0.1:8000",
        f'  quire ask "CT series thinner than 1.5 mm"{named}',
        f"  quire report --out .{named}      # quire-report.html, offline",
        f"  quire query studies --where '{{\"num_series\": {{\"$gt\": 1}}}}'{named}",
        f"  {ui}"])


def cmd_demo(args: argparse.Namespace) -> int:
    from quire_assets.dicom.showcase import write_showcase_archive

    archive = Path(args.directory or args.settings.home_path / "demo-archive")
    if not (archive / "README.txt").exists():
        counts = write_showcase_archive(archive)
        print(f"wrote a showcase archive to {archive}: {counts['studies']} studies of CT, MR and DX")
    print(f"$ quire ingest {archive}")
    report = ingest(str(archive), args.catalog, settings=args.settings)
    print(closing_line(report))
    with open_catalog_of(args) as catalog:
        for title, level, flt in DEMO_QUERIES:
            docs = catalog.find(level, flt)
            print(f"\n{title}\n$ quire query {level} --where '{json.dumps(flt)}'")
            print(format_table(docs, TABLE_COLUMNS[level]))
    print("\n" + next_steps(args.catalog, args.environment))
    return 1 if report["failed_runs"] else 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="sample archive → ingest → example queries, on the embedded catalog")
    p.add_argument("--directory", help="where to write the sample archive (default: $QUIRE_HOME/demo-archive)")
    p.add_argument("--catalog")
    p.set_defaults(func=cmd_demo)
