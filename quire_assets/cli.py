"""``quire``: the command line, a thin client over the core and the Dagster jobs."""

from __future__ import annotations

import argparse
import csv
import gc
import importlib
import io
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from quire_assets.catalog import CatalogError, FilterError, default_catalog_uri, open_catalog, quire_home
from quire_assets.catalog.fields import LEVELS
from quire_assets.dicom.features import FeatureSetError
from quire_assets.sources.base import SourceError

# Columns whose values are identifiers or locations: a cut one is useless, so tables never cut them.
WHOLE_COLUMNS = ("uid", "uri", "uris", "partition_key", "job_id", "path")
TABLE_COLUMNS = {
    "patients": ["patient_id", "patient_name", "patient_sex", "patient_birth_date", "num_studies", "num_instances"],
    "studies": ["accession_number", "patient_id", "study_date", "study_description", "modalities", "num_series",
                "num_instances"],
    "series": ["accession_number", "modality", "manufacturer", "manufacturer_model_name", "slice_thickness",
               "pixel_spacing", "num_instances", "series_description"],
    "instances": ["accession_number", "sop_instance_uid", "instance_number", "uri"],
    "errors": ["reason", "uri", "detail"],
    "jobs": ["job_id", "researcher_id", "name", "status", "num_accessions", "created_at"],
}


class UserError(Exception):
    """Bad input from the user: printed as one line, exit status 2."""


# ---- output -------------------------------------------------------------------------------------


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


def value_at(doc: dict, path: str) -> Any:
    """The value at a dotted path (``metadata.KVP``), or None."""
    node: Any = doc
    for part in path.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


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


def format_docs(docs: Sequence[dict], fmt: str, columns: Sequence[str]) -> str:
    if fmt == "json":
        return json.dumps(list(docs), ensure_ascii=False, indent=2)
    if fmt == "csv":
        out = io.StringIO()
        keys = list(columns) if columns else sorted({k for d in docs for k in d})
        writer = csv.writer(out)
        writer.writerow(keys)
        for d in docs:
            values = [value_at(d, k) for k in keys]
            writer.writerow([json.dumps(v, ensure_ascii=False) if isinstance(v, list | dict)
                             else ("" if v is None else v) for v in values])
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
        line = f"{self.label}: {done:,}/{total:,} files ({100 * done / total:.0f}%, {rate:,.0f} files/s)"
        if self.tty:
            print("\r" + line, end="\n" if done == total else "", file=sys.stderr, flush=True)
        else:
            print(line, file=sys.stderr, flush=True)


# ---- commands -----------------------------------------------------------------------------------


def _parse_where(text: str | None) -> dict:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(f"--where is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise UserError("--where takes a JSON object, e.g. '{\"modality\": \"CT\"}'")
    return value


def cmd_sample_archive(args: argparse.Namespace) -> int:
    from quire_assets.dicom.sample import write_sample_archive

    counts = write_sample_archive(args.directory, patients=args.patients, slices=args.slices, matrix=args.matrix)
    print(f"wrote a sample archive to {args.directory}: {counts['patients']} patients, {counts['studies']} studies, "
          f"{counts['series']} series, {counts['instances']} DICOM files, {counts['other_files']} other files")
    return 0


def _dagster_instance():
    from quire_assets.instance import open_instance

    return open_instance(announce=lambda path: print(
        f"wrote {path}: Dagster's default SQLite storage, with batched event writes", file=sys.stderr))


def _source_uri(source: str) -> str:
    if source.startswith("s3://"):
        return source
    path = Path(source).expanduser()
    if not path.is_dir():
        raise UserError(f"source folder {source!r} does not exist")
    return str(path.resolve())


def report_index_refresh(instance, index, refresh, new_partitions: Sequence[str]) -> None:
    """The index was refreshed here rather than by the ``source_index`` asset: tell Dagster, so the
    asset shows this refresh (with the metadata the asset reports) instead of "never materialized"."""
    from dagster import AssetMaterialization

    from quire_assets.assets.catalog_assets import source_index_metadata

    instance.report_runless_asset_event(AssetMaterialization(
        "source_index", metadata=source_index_metadata(index.summary(), refresh, len(new_partitions)),
        description="The source index, refreshed by the quire command."))


def ingest(source: str, catalog_uri: str | None, workers: int | None = None, batch: int | None = None,
           quiet: bool = False) -> dict[str, Any]:
    """Index the source, then catalog every partition the catalog does not hold yet."""
    start = time.perf_counter()
    from quire_assets.dicom.features import load_feature_sets
    from quire_assets.sources import SourceIndex, source_from_uri
    from quire_assets.sources.index import default_workers

    source_uri = _source_uri(source)
    catalog_uri = catalog_uri or default_catalog_uri()
    try:
        open_catalog(catalog_uri, must_exist=True).close()
        created = None
    except CatalogError:  # none there yet: ingest is what makes one (a bad URI fails here, clearly)
        with open_catalog(catalog_uri) as catalog:
            created = getattr(catalog, "path", None)
    index = SourceIndex(source_from_uri(source_uri))
    # Importing Dagster takes seconds of one core: it happens while the reader processes work.
    dagster_import = threading.Thread(target=importlib.import_module, args=("quire_assets.definitions",),
                                      name="import-dagster", daemon=True)
    try:
        refresh = index.refresh(load_feature_sets(), workers=workers, meanwhile=dagster_import.start,
                                progress=None if quiet else Progress("reading headers"))
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
    from quire_assets.orchestration import DEFAULT_BATCH, register_partitions, run_partitions

    instance = _dagster_instance()
    report_index_refresh(instance, index, refresh, register_partitions(instance, index.partition_keys()))
    defs = build_definitions(source_uri, catalog_uri)
    setup_s = time.perf_counter() - setup_start  # the rest of Dagster's import, the instance, the definitions

    def on_run(first: str, last: str, ok: bool) -> None:
        if not quiet:
            print(f"run {'ok' if ok else 'FAILED'}: partitions {first!r} .. {last!r}", file=sys.stderr)

    runs = run_partitions(defs, instance, pending, batch=batch or DEFAULT_BATCH, on_run=on_run,
                          weights=index.file_counts(), workers=workers or default_workers())
    summary = index.summary()
    index.close()
    from quire_assets.timing import spent

    in_quire = sum(spent.values())
    # Runs overlap on several workers: Dagster's share is what the runs took, added up, less Quire's code.
    timings = {"index_s": refresh.seconds, "dagster_setup_s": setup_s, "runs_s": runs.seconds,
               "run_workers": runs.workers, "runs_busy_s": runs.busy_s, "in_quire_code_s": in_quire,
               "dagster_overhead_s": runs.busy_s - in_quire, **{f"{k}_s": v for k, v in spent.items()}}
    return {**summary, "timings": timings, "read": refresh.read, "partitions": len(pending), "runs": len(runs.run_ids),
            "failed_runs": runs.failed, "run_ids": runs.run_ids, "seconds": time.perf_counter() - start}


def cmd_ingest(args: argparse.Namespace) -> int:
    if args.features:
        os.environ["QUIRE_FEATURES"] = args.features
    report = ingest(args.source, args.catalog, workers=args.workers, batch=args.batch)
    if args.timings:
        print(json.dumps(report["timings"]), file=sys.stderr)
    print(f"{report['files']:,} files, {report['instances']:,} instances, {report['series']:,} series, "
          f"{report['studies']:,} studies, {report['errors']:,} errors, {report['seconds']:.1f} s "
          f"({report['read']:,} files read, {report['partitions']:,} accessions cataloged in {report['runs']} run(s))")
    if report["failed_runs"]:
        print(f"error: {len(report['failed_runs'])} run(s) failed: {', '.join(report['failed_runs'])} "
              "(see them in the Dagster UI with the same DAGSTER_HOME)", file=sys.stderr)
        return 1
    return 0


SORT_DIRECTIONS = {"": 1, "asc": 1, "1": 1, "desc": -1, "-1": -1}


def _parse_sort(items: Sequence[str] | None) -> list[tuple[str, int]]:
    sort = []
    for item in items or []:
        field, _, direction = item.partition(":")
        if not field or direction.lower() not in SORT_DIRECTIONS:
            raise UserError(f"--sort {item!r}: write FIELD, FIELD:asc or FIELD:desc")
        sort.append((field, SORT_DIRECTIONS[direction.lower()]))
    return sort


def check_fields(catalog, level: str, paths: Sequence[str], what: str) -> None:
    """Refuse fields that no document of the level has, saying where they are instead."""
    from quire_assets.catalog.fields import unknown_fields

    unknown = unknown_fields(catalog, level, paths)
    if unknown:
        path, elsewhere = next(iter(unknown.items()))
        hint = f" ({', '.join(elsewhere)} documents have it)" if elsewhere else ""
        more = f" and {len(unknown) - 1} more" if len(unknown) > 1 else ""
        raise UserError(f"{what}: no {level} document has a field {path!r}{hint}{more}; "
                        f"`quire fields {level}` lists the fields")


def _columns(args: argparse.Namespace) -> list[str]:
    return [c.strip() for c in args.fields.split(",") if c.strip()] if args.fields else []


def _selection(catalog, args: argparse.Namespace) -> dict:
    """``--where``, checked against the level's fields, narrowed to ``--collection`` if given."""
    from quire_assets.catalog.cohort import in_collection
    from quire_assets.catalog.fields import filter_fields

    where = _parse_where(args.where)
    check_fields(catalog, args.level, filter_fields(where), "--where")
    return in_collection(catalog, args.collection, where) if getattr(args, "collection", None) else where


def cmd_query(args: argparse.Namespace) -> int:
    sort = _parse_sort(args.sort)
    with open_catalog(args.catalog, must_exist=True) as catalog:
        where = _selection(catalog, args)
        check_fields(catalog, args.level, [f for f, _ in sort], "--sort")
        check_fields(catalog, args.level, _columns(args), "--fields")
        docs = catalog.find(args.level, where, sort=sort, limit=args.limit)
    columns = _columns(args) or TABLE_COLUMNS.get(args.level, [])
    print(format_docs(docs, args.format, columns if args.format != "json" else []))
    if args.format == "table":
        print(f"({len(docs)} {args.level})", file=sys.stderr)
    return 0


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
    print(f"{report['files']:,} files, {report['instances']:,} instances, {report['series']:,} series, "
          f"{report['studies']:,} studies, {report['errors']:,} errors, {report['seconds']:.1f} s")
    with open_catalog(args.catalog) as catalog:
        for title, level, flt in DEMO_QUERIES:
            docs = catalog.find(level, flt)
            print(f"\n{title}\n$ quire query {level} --where '{json.dumps(flt)}'")
            print(format_table(docs, TABLE_COLUMNS[level]))
    print(f"\nThe catalog is {args.catalog or default_catalog_uri()}. Explore the assets with `dagster dev`.")
    return 1 if report["failed_runs"] else 0


def cmd_count(args: argparse.Namespace) -> int:
    with open_catalog(args.catalog, must_exist=True) as catalog:
        print(catalog.count(args.level, _selection(catalog, args)))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from quire_assets.catalog.cohort import EXPORT_COLUMNS, cohort_files

    with open_catalog(args.catalog, must_exist=True) as catalog:
        rows = list(cohort_files(catalog, args.level, _selection(catalog, args)))
    text = format_docs(rows, args.format, EXPORT_COLUMNS) + "\n"
    if args.out:
        try:
            Path(args.out).write_text(text, encoding="utf-8")
        except OSError as exc:
            raise UserError(f"cannot write {args.out}: {exc.strerror or exc}") from exc
        print(f"{Path(args.out).resolve()}: {len(rows):,} files", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def cmd_fields(args: argparse.Namespace) -> int:
    from quire_assets.catalog.fields import level_fields

    with open_catalog(args.catalog, must_exist=True) as catalog:
        print("\n".join(level_fields(catalog, args.level)))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from quire_assets.catalog.fields import filter_fields
    from quire_assets.catalog.stats import summary_statistics
    from quire_assets.report import write_report

    where = _parse_where(args.where)
    with open_catalog(args.catalog, must_exist=True) as catalog:
        check_fields(catalog, "studies", filter_fields(where), "--where (on studies)")
        stats = summary_statistics(catalog, where)
        about = {"catalog": catalog.uri, "source": ", ".join(map(str, catalog.distinct("studies", "source", where)))
                 or "(none)"}
    try:
        path = write_report(stats, args.out, where or None, about)
    except OSError as exc:
        raise UserError(f"cannot write the report to {args.out}: {exc.strerror or exc}") from exc
    print(f"{path}: {stats['total_studies']:,} studies, {stats['total_slices']:,} slices, "
          f"{stats['average_slices_per_study']:g} slices per study")
    return 0


def _read_accessions(args: argparse.Namespace) -> list[str]:
    from quire_assets.catalog.jobs import parse_accessions

    if args.accessions_file:
        try:
            text = Path(args.accessions_file).read_text(encoding="utf-8-sig")
        except OSError as exc:
            raise UserError(f"cannot read {args.accessions_file}: {exc.strerror}") from exc
        accessions = parse_accessions(text)
        if not accessions:
            raise UserError(f"{args.accessions_file}: no accession numbers (one per line, or a CSV with an "
                            "AccessionNumber column)")
        return accessions
    return parse_accessions(args.accessions.replace(",", "\n"))


def _print_job(job: dict, fmt: str) -> None:
    if fmt == "json":
        print(json.dumps(job, ensure_ascii=False, indent=2))
        return
    print(f"job {job['job_id']} ({job['name']}) for {job['researcher_id']}: {job['status']}, "
          f"collection {job['collection_id']}")
    rows = [{"accession": a, **state} for a, state in job["accessions"].items()]
    print(format_table(rows, ["accession", "status", "run_id", "detail"]))


def run_job_in_foreground(catalog, job: dict, source: str, catalog_uri: str, quiet: bool = False) -> dict:
    """``--wait``: the sensors' logic and the same runs, executed here without a daemon."""
    from quire_assets.definitions import build_definitions
    from quire_assets.dicom.features import load_feature_sets
    from quire_assets.orchestration import execute_run_requests, register_partitions
    from quire_assets.partitions import accession_partitions
    from quire_assets.sensors import apply_updates, plan_researcher_jobs, record_run_outcome
    from quire_assets.sources import SourceIndex, source_from_uri

    index = SourceIndex(source_from_uri(source))
    refresh = index.refresh(load_feature_sets(), progress=None if quiet else Progress("reading headers"))
    instance = _dagster_instance()
    existing = list(instance.get_dynamic_partitions(accession_partitions.name))
    plan = plan_researcher_jobs(catalog, index, existing, job_ids=[job["job_id"]])
    apply_updates(catalog, plan)
    report_index_refresh(instance, index, refresh, register_partitions(instance, plan.new_keys))
    index.close()
    defs = build_definitions(source, catalog_uri)
    results = execute_run_requests(defs, instance, plan.run_requests)
    ordered = list(instance.get_dynamic_partitions(accession_partitions.name))
    for result in results:
        run = instance.get_run_by_id(result.run_id)
        record_run_outcome(catalog, run, ordered, result.success,
                           None if result.success else f"run {result.run_id} failed")
    return catalog.get("jobs", job["job_id"])


def cmd_jobs_submit(args: argparse.Namespace) -> int:
    from quire_assets.catalog.jobs import submit_job

    accessions = _read_accessions(args)
    source = args.source or os.environ.get("QUIRE_SOURCE")
    source = _source_uri(source) if source else None
    if args.wait and not source:
        raise UserError("--wait needs the archive: give --source (a folder or s3://bucket/prefix) or set QUIRE_SOURCE")
    catalog_uri = args.catalog or default_catalog_uri()
    with open_catalog(catalog_uri) as catalog:
        job = submit_job(catalog, args.researcher, accessions, name=args.name, collection=args.collection,
                         source=source)
        if args.wait:
            job = run_job_in_foreground(catalog, job, source, catalog_uri, quiet=args.format == "json")
        elif args.format != "json":
            print("submitted: the researcher_jobs sensor (dagster dev, or the daemon) will run it; "
                  f"`quire jobs show {job['job_id']}` follows it", file=sys.stderr)
    _print_job(job, args.format)
    # Accessions absent from the archive are an answer, not an error; a failed run is.
    return 1 if any(state["status"] == "failed" for state in job["accessions"].values()) else 0


def cmd_jobs_list(args: argparse.Namespace) -> int:
    with open_catalog(args.catalog, must_exist=True) as catalog:
        flt = {"researcher_id": args.researcher} if args.researcher else {}
        jobs = catalog.find("jobs", flt, sort=[("created_at", -1)])
    if args.format == "json":
        print(json.dumps(jobs, ensure_ascii=False, indent=2))
    else:
        print(format_table(jobs, TABLE_COLUMNS["jobs"]))
    return 0


def cmd_jobs_show(args: argparse.Namespace) -> int:
    with open_catalog(args.catalog, must_exist=True) as catalog:
        job = catalog.get("jobs", args.job_id)
    if job is None:
        raise UserError(f"no job {args.job_id!r} (see `quire jobs list`)")
    _print_job(job, args.format)
    return 0


# ---- parser -------------------------------------------------------------------------------------


class OneLineParser(argparse.ArgumentParser):
    """argparse, with its errors on one line (and exit status 2), as every other error here."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {self.prog}: {message} (see {self.prog} --help)\n")


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


def build_parser() -> argparse.ArgumentParser:
    from importlib.metadata import version

    parser = OneLineParser(prog="quire", description="Catalog DICOM archives with Dagster.")
    parser.add_argument("--version", action="version", version=f"quire {version('quire')}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("sample-archive", help="write a small synthetic LIDC-IDRI-shaped archive")
    p.add_argument("directory")
    p.add_argument("--patients", type=whole_number(1), default=6)
    p.add_argument("--slices", type=whole_number(1), default=8, help="slices per CT series")
    p.add_argument("--matrix", type=whole_number(8), default=16, help="rows and columns of each image (512: full size)")
    p.set_defaults(func=cmd_sample_archive)

    p = sub.add_parser("ingest", help="catalog everything under a folder or s3://bucket/prefix")
    p.add_argument("source")
    p.add_argument("--catalog", help="catalog URI (default: $QUIRE_CATALOG or sqlite:///$QUIRE_HOME/catalog.db)")
    p.add_argument("--workers", type=whole_number(1), help="parallel header readers and Dagster runs (default: one per core)")
    p.add_argument("--batch", type=whole_number(1), help="accessions per Dagster run (default: 2,500)")
    p.add_argument("--features", help="a folder with your own study.txt / series.txt / instance.txt")
    p.add_argument("--timings", action="store_true", help="print where the time went (JSON, on stderr)")
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("query", help="query the catalog with a MongoDB filter document")
    p.add_argument("level", choices=LEVELS)
    p.add_argument("--where", help='a MongoDB filter, e.g. \'{"modality": "CT", "slice_thickness": {"$lt": 1.5}}\'')
    p.add_argument("--limit", type=whole_number(0), default=0, help="at most this many (default 0: all)")
    p.add_argument("--sort", action="append", help="FIELD, FIELD:asc or FIELD:desc (repeatable)")
    p.add_argument("--fields", help="comma-separated columns for table and csv output, dotted paths too "
                                    "(metadata.KVP)")
    p.add_argument("--format", choices=("table", "json", "csv"), default="table")
    p.add_argument("--collection", help="only the studies of this collection (and their series and instances)")
    p.add_argument("--catalog")
    p.set_defaults(func=cmd_query)

    p = sub.add_parser("count", help="how many documents of a level match a filter")
    p.add_argument("level", choices=LEVELS)
    p.add_argument("--where", help="a MongoDB filter, as for query")
    p.add_argument("--collection", help="only the studies of this collection (and their series and instances)")
    p.add_argument("--catalog")
    p.set_defaults(func=cmd_count)

    p = sub.add_parser("export", help="a cohort's files: one row per file with its accession, patient and UIDs")
    p.add_argument("level", choices=("studies", "series", "instances"))
    p.add_argument("--where", help="a MongoDB filter on that level, as for query")
    p.add_argument("--collection", help="only the studies of this collection (and their series and instances)")
    p.add_argument("--format", choices=("csv", "json"), default="csv")
    p.add_argument("--out", help="write here instead of standard output")
    p.add_argument("--catalog")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("fields", help="the fields of a level's documents (for --where, --sort and --fields)")
    p.add_argument("level", choices=LEVELS)
    p.add_argument("--catalog")
    p.set_defaults(func=cmd_fields)

    p = sub.add_parser("report", help="an offline HTML report of summary statistics with plotly charts")
    p.add_argument("--out", default=".", help="folder to write quire-report.html to")
    p.add_argument("--where", help="restrict to studies matching this filter, e.g. '{\"collection_ids\": \"cohort-1\"}'")
    p.add_argument("--catalog")
    p.set_defaults(func=cmd_report)

    jobs = sub.add_parser("jobs", help="researcher jobs: accession lists extracted as partitioned runs")
    jobs_sub = jobs.add_subparsers(dest="jobs_command", required=True)
    p = jobs_sub.add_parser("submit", help="submit a job")
    p.add_argument("--researcher", required=True)
    p.add_argument("--name")
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--accessions", help="A,B,C")
    group.add_argument("--accessions-file", help="one per line, or a CSV with an AccessionNumber column")
    p.add_argument("--collection", help="collection the job's studies join (default: one named after the job)")
    p.add_argument("--source", help="the archive (default: $QUIRE_SOURCE)")
    p.add_argument("--wait", action="store_true", help="run it now, in the foreground, and print the final job")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.add_argument("--catalog")
    p.set_defaults(func=cmd_jobs_submit)
    p = jobs_sub.add_parser("list", help="list jobs")
    p.add_argument("--researcher")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.add_argument("--catalog")
    p.set_defaults(func=cmd_jobs_list)
    p = jobs_sub.add_parser("show", help="one job, with the status of each accession")
    p.add_argument("job_id")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.add_argument("--catalog")
    p.set_defaults(func=cmd_jobs_show)

    p = sub.add_parser("demo", help="sample archive → ingest → example queries, on the embedded catalog")
    p.add_argument("--directory", help="where to write the sample archive (default: $QUIRE_HOME/demo-archive)")
    p.add_argument("--catalog")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (UserError, FilterError, CatalogError, FeatureSetError, SourceError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def console() -> int:
    """The ``quire`` command. After the work, the final garbage collections of a process about to
    exit are skipped (``gc.freeze``): with Dagster loaded they took 0.6 s, measured; the OS frees
    the memory anyway."""
    code = main()
    gc.freeze()
    return code


if __name__ == "__main__":
    sys.exit(console())


