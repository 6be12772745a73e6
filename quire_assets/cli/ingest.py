"""``quire ingest``: index the source, then catalog what changed, in Dagster runs."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from quire_assets.catalog import CatalogError, open_catalog
from quire_assets.catalog.locations import held_by
from quire_assets.cli.common import Progress, UserError, dagster_instance, whole_number
from quire_assets.settings import Settings
from quire_assets.sources.base import Selection

if TYPE_CHECKING:
    from quire_assets.sources import SourceIndex


def checked_source_uri(source: str) -> str:
    """The source as the index names it: a folder's absolute path, ``s3://…``, a PACS's URI."""
    from quire_assets.sources.registry import kind_of, source_from_uri

    if kind_of(source) == "s3":
        return source
    if kind_of(source) in ("dicomweb", "dimse"):
        return source_from_uri(source).uri  # the URI does not depend on credentials
    path = Path(source).expanduser()
    if path.is_file():
        raise UserError(f"source {source!r} is a file: name the folder that holds it (quire ingest "
                        f"{str(path.resolve().parent)!r}), a bucket or a PACS")
    if not path.is_dir():
        raise UserError(f"source folder {source!r} does not exist")
    return str(path.resolve())


def ingest(source: str, catalog_uri: str | None, workers: int | None = None, batch: int | None = None,
           quiet: bool = False, selection: Selection | None = None, settings: Settings | None = None) -> dict[str, Any]:
    """Index the source (of a PACS, the ``selection``), then catalog every partition the catalog
    does not hold yet. ``settings``: the command's (default: read from the environment here)."""
    start = time.perf_counter()
    from quire_assets.dicom.features import load_feature_sets
    from quire_assets.sources import SourceIndex
    from quire_assets.sources.index import default_workers
    from quire_assets.sources.registry import source_of

    settings = (settings or Settings.from_environ()).with_(catalog=catalog_uri)
    source_uri = checked_source_uri(source)
    catalog_uri = settings.catalog_uri
    try:
        open_catalog(catalog_uri, must_exist=True).close()
        created = None
    except CatalogError:  # none there yet: ingest is what makes one (a bad URI fails here, clearly)
        with open_catalog(catalog_uri) as catalog:
            created = getattr(catalog, "path", None)
    index = SourceIndex(source_of(settings, source_uri), settings.home_path, settings.fast_path)
    # Importing Dagster takes seconds of one core: it happens while the reader processes work.
    dagster_import = threading.Thread(target=importlib.import_module, args=("quire_assets.definitions",),
                                      name="import-dagster", daemon=True)
    try:
        refresh = index.refresh(load_feature_sets(settings.features or None), workers=workers, meanwhile=dagster_import.start,
                                progress=None if quiet else Progress("new or changed files read"), selection=selection)
    except BaseException:
        if created:  # nothing was written: leave no empty catalog behind for a reader to mistake
            for path in (created, *(created.with_name(created.name + x) for x in ("-wal", "-shm"))):
                path.unlink(missing_ok=True)
        raise
    if created and not quiet:
        print(f"created the catalog {catalog_uri}", file=sys.stderr)
    pending = index.pending(catalog_uri)
    setup_start = time.perf_counter()
    dagster_import.join()
    from quire_assets.definitions import build_definitions
    from quire_assets.orchestration import DEFAULT_BATCH, report_index_refresh, run_partitions
    from quire_assets.research.planning import request_partitions

    instance = dagster_instance(settings)
    with open_catalog(catalog_uri) as catalog:  # researcher requests not over yet keep their partitions
        in_use = request_partitions(catalog, source_uri)
    defs = build_definitions(settings, source_uri, catalog_uri)
    setup_s = time.perf_counter() - setup_start  # the rest of Dagster's import, the instance, the definitions

    def on_run(first: str, last: str, ok: bool) -> None:
        if not quiet:
            print(f"run {'ok' if ok else 'FAILED'}: partitions {first!r} .. {last!r}", file=sys.stderr)

    runs = run_partitions(defs, instance, pending, batch=batch or DEFAULT_BATCH, on_run=on_run,
                          weights=index.file_counts(), workers=workers or default_workers(),
                          keep=settings.partitions_kept, in_use=in_use)
    report_index_refresh(instance, index, refresh, runs.registered)
    summary = index.summary()
    skipped_kinds = index.skipped_kinds() if summary["skipped"] else []
    held = held_of(catalog_uri, source_uri)
    mismatch = mismatch_of(summary, held)
    differing: list[str] = []
    repaired: list[str] = []
    if mismatch and not runs.failed:
        # The catalog lost documents the index says it holds (edited, restored from a backup, a
        # writer stopped between runs): the accessions that differ are written again, now.
        repaired = partitions_differing(index, catalog_uri, source_uri)
        index.forget_cataloged(catalog_uri, repaired)
        repair = run_partitions(defs, instance, repaired, batch=batch or DEFAULT_BATCH, on_run=on_run,
                                weights=index.file_counts(), workers=workers or default_workers(),
                                keep=settings.partitions_kept, in_use=in_use)
        runs.run_ids.extend(repair.run_ids)
        runs.failed.extend(repair.failed)
        held = held_of(catalog_uri, source_uri)
        mismatch = mismatch_of(summary, held)
        differing = partitions_differing(index, catalog_uri, source_uri) if mismatch else []
    index.close()
    from quire_assets.timing import spent

    in_quire = sum(spent.values())
    # Runs overlap on several workers: Dagster's share is what the runs took, added up, less Quire's code.
    timings = {"index_s": refresh.seconds, "dagster_setup_s": setup_s, "runs_s": runs.seconds,
               "run_workers": runs.workers, "runs_busy_s": runs.busy_s, "in_quire_code_s": in_quire,
               "dagster_overhead_s": runs.busy_s - in_quire, **{f"{k}_s": v for k, v in spent.items()}}
    return {**summary, **held, "skipped_kinds": skipped_kinds, "source": source_uri, "index": summary, "mismatch": mismatch, "differing": differing, "repaired": len(repaired),
            "timings": timings, "read": refresh.read, "partitions": len(pending) + len(repaired), "runs": len(runs.run_ids),
            "failed_runs": runs.failed, "run_ids": runs.run_ids, "seconds": time.perf_counter() - start}


def held_of(catalog_uri: str, source_uri: str) -> dict[str, int]:
    """What the catalog holds of this source, which the closing line reports (the index only says
    what was read); every document names the sources that hold it."""
    with open_catalog(catalog_uri) as catalog:
        held = {level: catalog.count(level, held_by(source_uri)) for level in ("instances", "series", "studies")}
        skipped = {**held_by(source_uri), "reason": "skipped"}
        held["skipped"] = catalog.count("errors", skipped)
        held["errors"] = catalog.count("errors", held_by(source_uri)) - held["skipped"]
        return held


def mismatch_of(summary: dict[str, int], held: dict[str, int]) -> dict[str, tuple[int, int]]:
    """Level → (what the index read, what the catalog holds), where they differ."""
    return {k: (summary[k], v) for k, v in held.items() if summary[k] != v}


def partitions_differing(index: SourceIndex, catalog_uri: str, source_uri: str) -> list[str]:
    """The accessions whose instances or errors in the catalog are not what their files make."""
    made = index.documents_per_partition()
    with open_catalog(catalog_uri) as catalog:
        held = {level: dict(catalog.value_counts(level, "partition_key", held_by(source_uri)))
                for level in ("instances", "errors")}
    return sorted(k for k, counts in made.items()
                  if any(counts[level] != held[level].get(k, 0) for level in ("instances", "errors")))


def closing_line(report: dict[str, Any]) -> str:
    """What an ingest found: files, what they make, and the files that make nothing, errors (DICOM
    that cannot be read) apart from skipped files (not DICOM by their name)."""
    skipped = (f", {report['skipped']:,} skipped (not DICOM: {', '.join(report['skipped_kinds'])})"
               if report["skipped"] else "")
    return (f"{report['files']:,} files, {report['instances']:,} instances, {report['series']:,} series, "
            f"{report['studies']:,} studies, {report['errors']:,} errors{skipped}, {report['seconds']:.1f} s")


def selection_of(args: argparse.Namespace) -> Selection | None:
    """``--accessions`` / ``--accessions-file`` / ``--since`` / ``--modality``: the part of a PACS to read."""
    from quire_assets.sources.pacs import dicom_date

    accessions = [a.strip() for a in (args.accessions or "").split(",") if a.strip()]
    if args.accessions_file:
        try:
            text = Path(args.accessions_file).read_text(encoding="utf-8")
        except OSError as exc:
            raise UserError(f"--accessions-file {args.accessions_file}: {exc.strerror}") from None
        accessions += [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]
    try:
        since = dicom_date(args.since) if args.since else ""
    except ValueError as exc:
        raise UserError(f"--since: {exc}") from None
    selection = Selection(tuple(dict.fromkeys(accessions)), since, (args.modality or "").strip())
    return None if selection.whole else selection


def cmd_ingest(args: argparse.Namespace) -> int:
    report = ingest(args.source, args.catalog, workers=args.workers, batch=args.batch, selection=selection_of(args),
                    settings=args.settings.with_(features=args.features))
    if args.timings:
        print(json.dumps(report["timings"]), file=sys.stderr)
    print(closing_line(report) + f" ({report['read']:,} files read, {report['partitions']:,} accessions cataloged "
          f"in {report['runs']} run(s)"
          + (f"; {report['repaired']:,} written again: the catalog had lost their documents" if report["repaired"] else "")
          + ")")
    if not report["instances"] and not report["failed_runs"]:
        print(f"note: {report['source']} holds no file at all" if not report["files"] else
              f"note: no DICOM file in {report['source']}: each of its {report['files']:,} files is skipped or an "
              "error (`quire query errors` lists them with the reason)", file=sys.stderr)
    if report["mismatch"] and not report["failed_runs"]:
        differences = ", ".join(f"{k}: {i:,} in the index, {c:,} in the catalog" for k, (i, c) in report["mismatch"].items())
        where = report["differing"]
        print(f"note: the catalog does not hold what this source's files make ({differences}), even after "
              f"writing the accessions that differed again; "
              + (f"{len(where):,} accession(s) differ: {', '.join(where[:5])}{' ...' if len(where) > 5 else ''}"
                 if where else "no single accession differs: a document is claimed by another accession "
                 "(see the check unique_sop_instance_uids in the Dagster UI)"), file=sys.stderr)
    if report["failed_runs"]:
        print(f"error: {len(report['failed_runs'])} run(s) failed: {', '.join(report['failed_runs'])} "
              "(see them in the Dagster UI with the same DAGSTER_HOME)", file=sys.stderr)
        return 1
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ingest", help="catalog a folder, s3://bucket/prefix, or a PACS (DICOMweb or DIMSE)")
    p.add_argument("source")
    p.add_argument("--catalog", help="catalog URI (default: $QUIRE_CATALOG or sqlite:///$QUIRE_HOME/catalog.db)")
    p.add_argument("--workers", type=whole_number(1), help="parallel header readers and Dagster runs (default: one per core)")
    p.add_argument("--batch", type=whole_number(1), help="accessions per Dagster run (default: 2,500)")
    p.add_argument("--features", help="a folder with your own study.txt / series.txt / instance.txt")
    pacs = p.add_argument_group("a PACS source (dicomweb+https://host/path or dimse://CALLED_AET@host:port"
                                "?calling=OUR_AET): what to ask it for; by default every study")
    pacs.add_argument("--accessions", help="accession numbers, comma-separated")
    pacs.add_argument("--accessions-file", help="a text file with one accession number per line")
    pacs.add_argument("--since", help="studies from this date on (YYYY-MM-DD)")
    pacs.add_argument("--modality", help="studies with this modality (CT, MR, ...)")
    p.add_argument("--timings", action="store_true", help="print where the time went (JSON, on stderr)")
    p.set_defaults(func=cmd_ingest)
