"""``quire``: the command line, a thin client over the core and the Dagster jobs, one module per
command (each adds its own subcommand with ``register``)."""

from __future__ import annotations

import argparse
import gc
import os
import signal
import sys
from collections.abc import Sequence
from typing import NoReturn

from quire_assets.ask import AskError
from quire_assets.catalog import CatalogError, FilterError
from quire_assets.cli import ask, demo, jobs, query, report, researchers, sample_archive, serve
from quire_assets.cli import ingest as ingest_command
from quire_assets.cli.common import UserError
from quire_assets.cli.ingest import ingest
from quire_assets.dicom.features import FeatureSetError
from quire_assets.settings import Settings, SettingsError
from quire_assets.sources.base import SourceError

__all__ = ["build_parser", "console", "ingest", "main"]
COMMANDS = [sample_archive, ingest_command, query, ask, report, jobs, researchers, serve, demo]


class OneLineParser(argparse.ArgumentParser):
    """argparse, with its errors on one line (and exit status 2), as every other error here."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    from importlib.metadata import version

    parser = OneLineParser(prog="quire", description="Catalog DICOM archives with Dagster.")
    parser.add_argument("--version", action="version", version=f"quire {version('quire')}")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        # The command's edge: the environment is read here, once; a command's options override it.
        args.environment = Settings.from_environ()
        args.settings = args.environment.with_(catalog=getattr(args, "catalog", None))
        if hasattr(args, "catalog"):
            args.catalog = args.settings.catalog_uri
        return args.func(args)
    except (UserError, FilterError, CatalogError, FeatureSetError, SourceError, AskError, SettingsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: what was written stays; the same command again goes on from there", file=sys.stderr)
        return 130


def console() -> int:
    """The ``quire`` command. After the work, the final garbage collections of a process about to
    exit are skipped (``gc.freeze``): with Dagster loaded they took 0.6 s, measured; the OS frees
    the memory anyway. A reader that stops reading (``quire query ... | head``) ends the command
    quietly, with the status of a process ended by SIGPIPE."""
    try:
        code = main()
        sys.stdout.flush()
    except BrokenPipeError:
        # What is left in the buffer goes nowhere, so the interpreter's own flush at exit is quiet too.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 128 + signal.SIGPIPE
    gc.freeze()
    return code


if __name__ == "__main__":
    sys.exit(console())
