"""``quire ask "QUESTION"``: a question in plain words, answered with the filter it became."""

from __future__ import annotations

import argparse
import json
import sys

from quire_assets.catalog.fields import TABLE_COLUMNS
from quire_assets.cli.common import format_docs, open_catalog_of


def cmd_ask(args: argparse.Namespace) -> int:
    from quire_assets.ask import get_translator, run

    with open_catalog_of(args) as catalog:
        translator = get_translator(args.settings.ask_translator, args.settings.ask_synonyms)
        translation = translator(args.question, catalog, args.level)
        answer = run(translation, catalog)
    # A partial answer (words not used, none that would change the question) is said first, on
    # stderr, and ends in exit status 3: a script sees it, a pipe still gets the answer.
    partial = 3 if answer["partial"] else 0
    if partial:
        print(f"partial answer: not used: {', '.join(answer['unrecognized'])}", file=sys.stderr)
    if args.format == "json":
        print(json.dumps(answer, ensure_ascii=False, indent=2, default=str))
        return partial
    said = [f"level: {answer['level']}", f"filter: {json.dumps(answer['filter'], ensure_ascii=False)}"]
    if answer["group_by"]:
        said.append(f"counted per: {answer['group_by']}")
    if answer["sort"]:
        order = ", ".join(f"{f} {'desc' if d < 0 else 'asc'}" for f, d in answer["sort"])
        said.append(f"sort: {order}")
    if answer["limit"]:
        said.append(f"limit: {answer['limit']}")
    said += [f"note: {n}" for n in answer["notes"]]
    if args.explain or args.format != "csv":
        print("\n".join(said), file=sys.stderr)
    if answer["group_by"]:
        rows = [{answer["group_by"]: g["value"], answer["level"]: g["count"]} for g in answer["groups"]]
        print(format_docs(rows, args.format, [answer["group_by"], answer["level"]]))
        if args.format == "table":
            print(f"({answer['num_groups']} values, {answer['total']} {answer['level']})", file=sys.stderr)
        return partial
    if answer["count"]:
        print(answer["total"])
        return partial
    print(format_docs(answer["results"], args.format, TABLE_COLUMNS.get(answer["level"], [])))
    if args.format == "table":
        shown = len(answer["results"])
        print(f"({shown} of {answer['total']} {answer['level']})", file=sys.stderr)
    return partial


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ask", help="ask the catalog in plain words; shows the filter it became")
    p.add_argument("question", help='e.g. "thin-slice chest CTs from GE scanners"')
    p.add_argument("--level", choices=("auto", "patients", "studies", "series", "instances"), default="auto")
    p.add_argument("--format", choices=("table", "json", "csv"), default="table")
    p.add_argument("--explain", action="store_true", help="say how the question was read, for csv output too")
    p.add_argument("--catalog")
    p.set_defaults(func=cmd_ask)
