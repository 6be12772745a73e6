"""``quire query``, ``count``, ``fields`` and ``export``: reading the catalog."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from quire_assets.catalog.base import QUERY_LEVELS
from quire_assets.catalog.fields import TABLE_COLUMNS, filter_fields
from quire_assets.cli.common import (
    UserError,
    check_fields,
    columns_of,
    format_docs,
    open_catalog_of,
    parse_sort,
    parse_where,
    selection,
    whole_number,
)


def cmd_query(args: argparse.Namespace) -> int:
    sort = parse_sort(args.sort)
    with open_catalog_of(args) as catalog:
        where = selection(catalog, args)
        check_fields(catalog, args.level, [f for f, _ in sort], "--sort")
        check_fields(catalog, args.level, columns_of(args), "--fields")
        docs = catalog.find(args.level, where, sort=sort, limit=args.limit)
    columns = columns_of(args) or TABLE_COLUMNS.get(args.level, [])
    print(format_docs(docs, args.format, columns if args.format != "json" else [], args.raw_csv))
    if args.format == "table":
        print(f"({len(docs)} {args.level})", file=sys.stderr)
    return 0


def cmd_count(args: argparse.Namespace) -> int:
    with open_catalog_of(args) as catalog:
        print(catalog.count(args.level, selection(catalog, args)))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from quire_assets.research.exports import EXPORT_COLUMNS, cohort_files

    if args.from_manifest:
        return _changes_since(args)
    if args.snapshot or args.package:
        return _package(args)
    if args.dcm2bids:
        return _dcm2bids(args)
    if not args.level:
        raise UserError("export needs a level (studies, series or instances), --snapshot DIR or --from MANIFEST")
    with open_catalog_of(args) as catalog:
        rows = list(cohort_files(catalog, args.level, selection(catalog, args)))
    text = format_docs(rows, args.format, EXPORT_COLUMNS, args.raw_csv) + "\n"
    if args.out:
        try:
            Path(args.out).write_text(text, encoding="utf-8")
        except OSError as exc:
            raise UserError(f"cannot write {args.out}: {exc.strerror or exc}") from exc
        print(f"{Path(args.out).resolve()}: {len(rows):,} files", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def _package(args: argparse.Namespace) -> int:
    from quire_assets.research.exports import write_package

    if args.package and not args.level:
        raise UserError("--package needs a level: quire export series --where ... --package DIR")
    folder = Path(args.snapshot or args.package)
    if folder.exists() and any(folder.iterdir()):
        raise UserError(f"{folder} is not empty: a package goes into a new or empty folder")
    with open_catalog_of(args) as catalog:
        if args.level:
            check_fields(catalog, args.level, filter_fields(parse_where(args.where)), "--where")
        try:
            package = write_package(catalog, folder, level=args.level or "series", where=parse_where(args.where),
                                    collection=args.collection, instances=args.instances,
                                    snapshot=bool(args.snapshot))
        except OSError as exc:
            raise UserError(f"cannot write {folder}: {exc.strerror or exc}") from exc
    counts, short = package.manifest["counts"], package.manifest["shortfall"]
    print(f"{folder.resolve()}: {', '.join(package.files)}", file=sys.stderr)
    print(f"{counts['studies']:,} studies, {counts['series']:,} series, {counts['instances']:,} instances; "
          f"not found {len(short['not_found'])}, excluded {len(short['excluded'])}, errors {len(short['errors'] or [])}, "
          f"damaged {len(short['damaged'])}, conflicts {len(short['conflicts'])}", file=sys.stderr)
    return 0


def _dcm2bids(args: argparse.Namespace) -> int:
    import json

    from quire_assets.dicom.series_types import dcm2bids_config
    from quire_assets.research.exports import selected_series
    from quire_assets.util import chunks

    if not args.level:
        raise UserError("--dcm2bids needs a level: quire export series --where ... --dcm2bids FILE")
    with open_catalog_of(args) as catalog:
        keys = selected_series(catalog, args.level, selection(catalog, args))
        series = [d for chunk in chunks(keys) for d in catalog.find(
            "series", {"series_instance_uid": {"$in": list(chunk)}},
            projection=["series_instance_uid", "accession_number", "series_number", "series_description",
                        "series_types"])]
    config = dcm2bids_config(series)
    try:
        Path(args.dcm2bids).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot write {args.dcm2bids}: {exc.strerror or exc}") from exc
    print(f"{Path(args.dcm2bids).resolve()}: {len(config['descriptions'])} of {len(series)} series sorted by their "
          "labels (derived series and series without a BIDS label are left out)", file=sys.stderr)
    return 0


def _changes_since(args: argparse.Namespace) -> int:
    import json

    from quire_assets.research.exports import changes_since

    try:
        manifest = json.loads(Path(args.from_manifest).read_text(encoding="utf-8"))
    except OSError as exc:
        raise UserError(f"cannot read {args.from_manifest}: {exc.strerror or exc}") from exc
    except ValueError as exc:
        raise UserError(f"{args.from_manifest} is not a package manifest (not JSON: {exc})") from exc
    if not isinstance(manifest, dict) or "series" not in manifest or "query" not in manifest:
        raise UserError(f"{args.from_manifest} is not a package manifest (written by quire export --package)")
    with open_catalog_of(args) as catalog:
        changes = changes_since(catalog, manifest)
    if args.format == "json":
        print(json.dumps(changes, indent=1))
    else:
        for what, keys in changes.items():
            print(f"{what}: {len(keys)}")
            for key in keys:
                print(f"  {key}")
    return 0


def cmd_fields(args: argparse.Namespace) -> int:
    from quire_assets.catalog.fields import level_fields

    with open_catalog_of(args) as catalog:
        print("\n".join(level_fields(catalog, args.level)))
    return 0


def add_raw_csv(p: argparse.ArgumentParser) -> None:
    p.add_argument("--raw-csv", action="store_true",
                   help="write text beginning with = + - @ as it is (by default it is prefixed with ' so that a "
                        "spreadsheet does not run it as a formula)")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("query", help="query the catalog with a MongoDB filter document")
    p.add_argument("level", choices=QUERY_LEVELS)
    p.add_argument("--where", help='a MongoDB filter, e.g. \'{"modality": "CT", "slice_thickness": {"$lt": 1.5}}\'')
    p.add_argument("--limit", type=whole_number(0), default=0, help="at most this many (default 0: all)")
    p.add_argument("--sort", action="append", help="FIELD, FIELD:asc or FIELD:desc (repeatable)")
    p.add_argument("--fields", help="comma-separated columns for table and csv output, dotted paths too "
                                    "(metadata.KVP)")
    p.add_argument("--format", choices=("table", "json", "csv"), default="table")
    p.add_argument("--collection", help="only the studies of this collection (and their series and instances)")
    add_raw_csv(p)
    p.add_argument("--catalog")
    p.set_defaults(func=cmd_query)

    p = sub.add_parser("count", help="how many documents of a level match a filter")
    p.add_argument("level", choices=QUERY_LEVELS)
    p.add_argument("--where", help="a MongoDB filter, as for query")
    p.add_argument("--collection", help="only the studies of this collection (and their series and instances)")
    p.add_argument("--catalog")
    p.set_defaults(func=cmd_count)

    p = sub.add_parser("export", help="a cohort's files (one row per file with its accession, patient and UIDs), or "
                                      "a versioned package of it as Parquet (--package, --snapshot, --from)")
    p.add_argument("level", nargs="?", choices=("studies", "series", "instances"))
    p.add_argument("--where", help="a MongoDB filter on that level, as for query")
    p.add_argument("--collection", help="only the studies of this collection (and their series and instances)")
    p.add_argument("--format", choices=("csv", "json"), default="csv",
                   help="the file list's format (csv or json); for --from, json or a plain list (csv)")
    p.add_argument("--out", help="write here instead of standard output")
    p.add_argument("--package", metavar="DIR", help="write the cohort to DIR as series.parquet (one row per series, "
                                                    "study and patient attributes joined), README.md and manifest.json")
    p.add_argument("--snapshot", metavar="DIR", help="write the whole catalog to DIR the same way")
    p.add_argument("--instances", action="store_true", help="with --package or --snapshot: instances.parquet too")
    p.add_argument("--dcm2bids", metavar="FILE", help="write a dcm2bids configuration sorting the cohort's series "
                                                     "by their series-type labels (T1w, T2w, FLAIR, DWI, BOLD ...)")
    p.add_argument("--from", dest="from_manifest", metavar="MANIFEST",
                   help="a package's manifest.json: the series its question selects now that were added, removed "
                        "or changed since it was written")
    add_raw_csv(p)
    p.add_argument("--catalog")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("fields", help="the fields of a level's documents (for --where, --sort and --fields)")
    p.add_argument("level", choices=QUERY_LEVELS)
    p.add_argument("--catalog")
    p.set_defaults(func=cmd_fields)
