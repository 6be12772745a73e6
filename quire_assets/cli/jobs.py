"""``quire jobs submit|list|show``: researcher requests (accession lists run as partitioned runs)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from quire_assets.catalog import default_catalog_uri, open_catalog
from quire_assets.cli.common import TABLE_COLUMNS, Progress, UserError, dagster_instance, format_table
from quire_assets.cli.ingest import checked_source_uri, report_index_refresh


def _read_accessions(args: argparse.Namespace) -> list[str]:
    from quire_assets.catalog.requests import parse_accessions

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


def _print_request(job: dict, fmt: str) -> None:
    if fmt == "json":
        print(json.dumps(job, ensure_ascii=False, indent=2))
        return
    print(f"job {job['job_id']} ({job['name']}) for {job['researcher_id']}: {job['status']}, "
          f"collection {job['collection_id']}")
    rows = [{"accession": a, **state} for a, state in job["accessions"].items()]
    print(format_table(rows, ["accession", "status", "run_id", "detail"]))


def run_request_in_foreground(catalog, job: dict, source: str, catalog_uri: str, quiet: bool = False) -> dict:
    """``--wait``: the sensors' logic and the same runs, executed here without a daemon."""
    from quire_assets.definitions import build_definitions
    from quire_assets.dicom.features import load_feature_sets
    from quire_assets.orchestration import execute_run_requests, register_partitions
    from quire_assets.partitions import accession_partitions
    from quire_assets.sensors import apply_updates, plan_requests, record_run_outcome
    from quire_assets.sources import SourceIndex, source_from_uri

    index = SourceIndex(source_from_uri(source))
    refresh = index.refresh(load_feature_sets(), progress=None if quiet else Progress("reading headers"))
    instance = dagster_instance()
    existing = list(instance.get_dynamic_partitions(accession_partitions.name))
    plan = plan_requests(catalog, index, existing, job_ids=[job["job_id"]])
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
    from quire_assets.catalog.requests import submit_request

    accessions = _read_accessions(args)
    source = args.source or os.environ.get("QUIRE_SOURCE")
    source = checked_source_uri(source) if source else None
    if args.wait and not source:
        raise UserError("--wait needs the archive: give --source (a folder or s3://bucket/prefix) or set QUIRE_SOURCE")
    catalog_uri = args.catalog or default_catalog_uri()
    with open_catalog(catalog_uri) as catalog:
        job = submit_request(catalog, args.researcher, accessions, name=args.name, collection=args.collection,
                             source=source)
        if args.wait:
            job = run_request_in_foreground(catalog, job, source, catalog_uri, quiet=args.format == "json")
        elif args.format != "json":
            print("submitted: the researcher_requests sensor (dagster dev, or the daemon) will run it; "
                  f"`quire jobs show {job['job_id']}` follows it", file=sys.stderr)
    _print_request(job, args.format)
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
    _print_request(job, args.format)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
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
