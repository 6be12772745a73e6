"""``quire jobs submit|retry|list|show``: researcher requests (accession lists run as partitioned runs)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from quire_assets.catalog.fields import TABLE_COLUMNS
from quire_assets.cli.common import Progress, UserError, dagster_instance, format_table, open_catalog_of
from quire_assets.cli.ingest import checked_source_uri


def _read_accessions(args: argparse.Namespace) -> list[str]:
    from quire_assets.research.requests import parse_accessions

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


def cmd_jobs_submit(args: argparse.Namespace) -> int:
    from quire_assets.research.requests import submit_request

    accessions = _read_accessions(args)
    source = args.source or args.settings.source
    source = checked_source_uri(source) if source else None
    if args.wait and not source:
        raise UserError("--wait needs the archive: give --source (a folder or s3://bucket/prefix) or set QUIRE_SOURCE")
    with open_catalog_of(args, must_exist=False) as catalog:
        job = submit_request(catalog, args.researcher, accessions, name=args.name, collection=args.collection,
                             source=source)
        job = _run_or_announce(args, catalog, job, source)
    _print_request(job, args.format)
    # Accessions absent from the archive are an answer, not an error; a failed run is.
    return 1 if any(state["status"] == "failed" for state in job["accessions"].values()) else 0


def _run_or_announce(args: argparse.Namespace, catalog, job: dict, source: str | None) -> dict:
    """With ``--wait``, run the request here and return it as it ended; else say who will run it."""
    if args.wait:
        from quire_assets.orchestration import run_requests_here

        settings = args.settings.with_(source=source)
        run_requests_here(settings, catalog, [job["job_id"]], dagster_instance(settings),
                          progress=None if args.format == "json" else Progress("new or changed files read"))
        return catalog.get("jobs", job["job_id"])
    if args.format != "json":
        print("submitted: the researcher_requests sensor (dagster dev, or the daemon) will run it; "
              f"`quire jobs show {job['job_id']}` follows it", file=sys.stderr)
    return job


def cmd_jobs_retry(args: argparse.Namespace) -> int:
    from quire_assets.catalog import CatalogError
    from quire_assets.research.requests import retry_request

    corrections = {}
    for fix in args.fix or []:
        old, sep, new = fix.partition("=")
        if not sep or not old.strip() or not new.strip():
            raise UserError(f"--fix {fix!r}: write OLD=NEW")
        corrections[old.strip()] = new.strip()
    with open_catalog_of(args) as catalog:
        original = catalog.get("jobs", args.job_id)
        if original is None:
            raise UserError(f"no job {args.job_id!r} (see `quire jobs list`)")
        if original["status"] in ("pending", "running"):
            raise UserError(f"job {args.job_id!r} is {original['status']}: retry it once it is over")
        try:
            job = retry_request(catalog, original, corrections, args.name)
        except CatalogError as exc:
            raise UserError(str(exc)) from exc
        source = job.get("source") or args.settings.source or None
        if args.wait and not source:
            raise UserError("--wait needs the archive: set QUIRE_SOURCE")
        job = _run_or_announce(args, catalog, job, checked_source_uri(source) if source else None)
    _print_request(job, args.format)
    return 1 if any(state["status"] == "failed" for state in job["accessions"].values()) else 0


def cmd_jobs_list(args: argparse.Namespace) -> int:
    with open_catalog_of(args) as catalog:
        flt = {"researcher_id": args.researcher} if args.researcher else {}
        jobs = catalog.find("jobs", flt, sort=[("created_at", -1)])
    if args.format == "json":
        print(json.dumps(jobs, ensure_ascii=False, indent=2))
    else:
        print(format_table(jobs, TABLE_COLUMNS["jobs"]))
    return 0


def cmd_jobs_show(args: argparse.Namespace) -> int:
    with open_catalog_of(args) as catalog:
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
    p = jobs_sub.add_parser("retry", help="resubmit the rows of a job that were not found or failed, corrected")
    p.add_argument("job_id")
    p.add_argument("--fix", action="append", metavar="OLD=NEW",
                   help="ask for NEW instead of the row OLD (repeatable); the other rows are asked again as they were")
    p.add_argument("--name")
    p.add_argument("--wait", action="store_true", help="run it now, in the foreground, and print the final job")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.add_argument("--catalog")
    p.set_defaults(func=cmd_jobs_retry)

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
