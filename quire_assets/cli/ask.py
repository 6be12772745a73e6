"""``quire ask "QUESTION"``: a question in plain words, answered with the filter it became."""

from __future__ import annotations

import argparse
import json
import sys

from quire_assets.catalog import open_catalog
from quire_assets.catalog.fields import TABLE_COLUMNS
from quire_assets.cli.common import format_docs


def cmd_ask(args: argparse.Namespace) -> int:
    from quire_assets.ask import get_translator, run

    with open_catalog(args.catalog, must_exist=True) as catalog:
        translation = get_translator()(args.question, catalog, args.level)
        answer = run(translation, catalog)
    if args.format == "json":
        print(json.dumps(answer, ensure_ascii=False, indent=2, default=str))
        return 0
    said = [f"level: {answer['level']}", f"filter: {json.dumps(answer['filter'], ensure_ascii=False)}"]
    if answer["sort"]:
        order = ", ".join(f"{f} {'desc' if d < 0 else 'asc'}" for f, d in answer["sort"])
        said.append(f"sort: {order}")
    if answer["limit"]:
        said.append(f"limit: {answer['limit']}")
    said += [f"note: {n}" for n in answer["notes"]]
    if answer["unrecognized"]:
        said.append(f"not understood: {', '.join(answer['unrecognized'])}")
    if args.explain or args.format != "csv":
        print("\n".join(said), file=sys.stderr)
    if answer["count"]:
        print(answer["total"])
        return 0
    print(format_docs(answer["results"], args.format, TABLE_COLUMNS.get(answer["level"], [])))
    if args.format == "table":
        shown = len(answer["results"])
        print(f"({shown} of {answer['total']} {answer['level']})", file=sys.stderr)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ask", help="ask the catalog in plain words; shows the filter it became")
    p.add_argument("question", help='e.g. "thin-slice chest CTs from GE scanners"')
    p.add_argument("--level", choices=("auto", "patients", "studies", "series", "instances"), default="auto")
    p.add_argument("--format", choices=("table", "json", "csv"), default="table")
    p.add_argument("--explain", action="store_true", help="say how the question was read, for csv output too")
    p.add_argument("--catalog")
    p.set_defaults(func=cmd_ask)
