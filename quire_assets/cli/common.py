"""What the commands share: one-line errors, output formats, progress, filter and field checks."""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from quire_assets.catalog import Catalog, open_catalog
from quire_assets.catalog.fields import csv_cells, value_at
from quire_assets.catalog.filters import filter_from_json
from quire_assets.settings import Settings

if TYPE_CHECKING:
    from dagster import DagsterInstance

# Columns whose values are identifiers or locations: a cut one is useless, so tables never cut them.
WHOLE_COLUMNS = ("uid", "uri", "uris", "partition_key", "job_id", "path")


class UserError(Exception):
    """Bad input from the user: printed as one line, exit status 2."""


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return ", ".join(_cell(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _fitted(text: str, column: str, width: int) -> str:
    if len(text) <= width or column.endswith(WHOLE_COLUMNS):
        return text
    return text[: width - 1] + "…"  # marked: a cut value never passes for a whole one


def format_table(docs: Sequence[dict], columns: Sequence[str], width: int = 60) -> str:
    rows = [[_fitted(_cell(value_at(d, c)), c, width) for c in columns] for d in docs]
    widths = [max([len(c)] + [len(r[i]) for r in rows]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip(),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(lines)


def format_docs(docs: Sequence[dict], fmt: str, columns: Sequence[str], raw_csv: bool = False) -> str:
    """Documents as JSON, CSV (formula-like text neutralized unless ``raw_csv``) or a table."""
    if fmt == "json":
        return json.dumps(list(docs), ensure_ascii=False, indent=2)
    if fmt == "csv":
        out = io.StringIO()
        keys = list(columns) if columns else sorted({k for d in docs for k in d})
        writer = csv.writer(out)
        writer.writerow(keys)
        writer.writerows(csv_cells(d, keys, neutralize=not raw_csv) for d in docs)
        return out.getvalue().rstrip("\n")
    return format_table(docs, columns)


class Progress:
    """A progress line on stderr: redrawn on a terminal, a line every 10 s otherwise."""

    def __init__(self, label: str):
        self.label = label
        self.tty = sys.stderr.isatty()
        self.start = time.monotonic()
        self.last = 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if total == 0 or (done < total and now - self.last < (0.2 if self.tty else 10)):
            return
        self.last = now
        rate = done / max(now - self.start, 1e-6)
        line = f"{self.label}: {done:,} of {total:,} ({100 * done / total:.0f}%, {rate:,.0f} files/s)"
        if self.tty:
            print("\r" + line, end="\n" if done == total else "", file=sys.stderr, flush=True)
        else:
            print(line, file=sys.stderr, flush=True)


def parse_where(text: str | None) -> dict:
    return filter_from_json(text, "--where")


def whole_number(low: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"{value} is less than {low}")
        return value

    return parse


SORT_DIRECTIONS = {"": 1, "asc": 1, "1": 1, "desc": -1, "-1": -1}


def parse_sort(items: Sequence[str] | None) -> list[tuple[str, int]]:
    sort = []
    for item in items or []:
        field, _, direction = item.partition(":")
        if not field or direction.lower() not in SORT_DIRECTIONS:
            raise UserError(f"--sort {item!r}: write FIELD, FIELD:asc or FIELD:desc")
        sort.append((field, SORT_DIRECTIONS[direction.lower()]))
    return sort


def check_fields(catalog, level: str, paths: Sequence[str], what: str) -> None:
    """Refuse fields that no document of the level has, saying where they are instead."""
    from quire_assets.catalog.fields import refuse_unknown_fields

    refuse_unknown_fields(catalog, level, paths, what, hint="`quire fields {level}` lists the fields")


def columns_of(args: argparse.Namespace) -> list[str]:
    return [c.strip() for c in args.fields.split(",") if c.strip()] if args.fields else []


def selection(catalog, args: argparse.Namespace) -> dict:
    """``--where``, checked against the level's fields, narrowed to ``--collection`` if given."""
    from quire_assets.catalog.fields import filter_fields
    from quire_assets.research.collections import in_collection

    where = parse_where(args.where)
    check_fields(catalog, args.level, filter_fields(where), "--where")
    return in_collection(catalog, args.collection, where) if getattr(args, "collection", None) else where


def open_catalog_of(args: argparse.Namespace, must_exist: bool = True) -> Catalog:
    """The catalog a command names (``--catalog``, else the settings'), its reads bounded as set."""
    return open_catalog(args.catalog, must_exist=must_exist, regex_seconds=args.settings.regex_seconds)


def dagster_instance(settings: Settings) -> DagsterInstance:
    from quire_assets.runtime.instance import open_instance

    return open_instance(settings.dagster_home, announce=lambda path: print(
        f"wrote {path}: Dagster's default SQLite storage, with batched event writes", file=sys.stderr))
