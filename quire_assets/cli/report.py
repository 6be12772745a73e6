"""``quire report``: the summary statistics as an offline HTML page."""

from __future__ import annotations

import argparse

from quire_assets.cli.common import UserError, check_fields, open_catalog_of, parse_where


def cmd_report(args: argparse.Namespace) -> int:
    from quire_assets.catalog.fields import filter_fields
    from quire_assets.report import catalog_report, write_report

    where = parse_where(args.where)
    if args.collection:
        where = {"$and": [where, {"collection_ids": args.collection}]} if where else {"collection_ids": args.collection}
    with open_catalog_of(args) as catalog:
        check_fields(catalog, "studies", filter_fields(where), "--where (on studies)")
        if args.collection and not catalog.count("studies", {"collection_ids": args.collection}):
            raise UserError(f"--collection: no study is in a collection {args.collection!r}")
        stats, page = catalog_report(catalog, where, collection=args.collection,
                                     plotly="inline" if args.self_contained else "")
    try:
        path = write_report(page, args.out, linked=not args.self_contained)
    except OSError as exc:
        raise UserError(f"cannot write the report to {args.out}: {exc.strerror or exc}") from exc
    print(f"{path}: {stats['total_studies']:,} studies, {stats['total_instances']:,} instances, "
          f"{stats['total_images']:,} images (frames), {stats['average_images_per_study']:g} images per study")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="an offline HTML report: summary, charts, cross-tabs, quality; a cohort beside the whole catalog")
    p.add_argument("--out", default=".", help="folder to write quire-report.html to")
    p.add_argument("--where", help="restrict to studies matching this filter, e.g. '{\"collection_ids\": \"cohort-1\"}'")
    p.add_argument("--collection", help="restrict to a collection's studies; the report is named after it")
    p.add_argument("--self-contained", action="store_true",
                   help="inline plotly.js in the page (about 5 MB) instead of writing it beside the report")
    p.add_argument("--catalog")
    p.set_defaults(func=cmd_report)
