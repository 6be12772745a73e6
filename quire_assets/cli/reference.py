"""``docs/cli.md``: every ``quire`` command's ``--help``, written from the parser itself
(``python -m quire_assets.cli.reference > docs/cli.md``; a test keeps the two the same)."""

from __future__ import annotations

import argparse
import functools

from quire_assets.cli import build_parser

# --help wraps to the terminal's width: the page is written at one width wherever it is made.
WIDTH = 100


def _subcommands(parser: argparse.ArgumentParser) -> list[tuple[str, argparse.ArgumentParser]]:
    found = []
    for action in parser._actions:  # argparse keeps its subparsers here; it has no public accessor
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.append((name, sub))
    return found


def _help(parser: argparse.ArgumentParser) -> str:
    formatter = parser.formatter_class
    parser.formatter_class = functools.partial(formatter, width=WIDTH)
    try:
        return parser.format_help().rstrip()
    finally:
        parser.formatter_class = formatter


def markdown() -> str:
    parser = build_parser()
    lines = ["# The `quire` command", "",
             "Every command's `--help`, written from the parser (`python -m quire_assets.cli.reference > docs/cli.md`).",
             "What the commands do with files and catalogs is in [ingest.md](ingest.md); the environment they read,",
             "in [configuration.md](configuration.md).", "", "```text", _help(parser), "```"]
    queue = [(f"quire {name}", sub) for name, sub in _subcommands(parser)]
    while queue:
        title, sub = queue.pop(0)
        lines += ["", f"## `{title}`", "", "```text", _help(sub), "```"]
        queue[:0] = [(f"{title} {name}", child) for name, child in _subcommands(sub)]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(markdown(), end="")
