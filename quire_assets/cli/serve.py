"""``quire serve``: the researcher API under uvicorn, with its job worker."""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys
from pathlib import Path

from quire_assets.catalog import Catalog, CatalogError, open_catalog
from quire_assets.cli.common import UserError, whole_number
from quire_assets.cli.ingest import checked_source_uri

LOOPBACK_NAMES = ("localhost", "ip6-localhost")


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host in LOOPBACK_NAMES


def first_admin(catalog: Catalog, key_file: str) -> None:
    """The first admin from a key file (a deployment's secret), so that a new deployment starts
    keyed instead of refusing to start; a file that cannot be read or holds no key stops it."""
    from quire_assets.research.researchers import add_first_admin

    try:
        key = Path(key_file).read_text().strip()
        admin = add_first_admin(catalog, key)
    except OSError as exc:
        raise UserError(f"the admin key file {key_file} cannot be read: {exc.strerror}") from None
    except CatalogError as exc:
        raise UserError(f"the admin key file {key_file}: {exc}") from None
    if admin:
        print(f"issued the key in {key_file} to admin {admin['researcher_id']} (the first key of this catalog)",
              file=sys.stderr)


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from quire_assets.catalog.policy import DEFAULT_POLICY, PhiPolicy, PolicyError
    from quire_assets.research.researchers import keys_ever_issued
    from quire_assets.settings import handed_to_workers, shared_salt

    catalog_uri = args.catalog
    source = args.source or args.settings.source
    source = checked_source_uri(source) if source else None
    loopback = is_loopback(args.host)
    try:
        open_catalog(catalog_uri, must_exist=True).close()
    except CatalogError:  # none yet: the service makes an empty one (researchers and jobs can come first)
        print(f"no catalog at {catalog_uri} yet: creating an empty one (`quire ingest` fills it)", file=sys.stderr)
    with open_catalog(catalog_uri) as catalog:
        if args.settings.admin_key_file:
            first_admin(catalog, args.settings.admin_key_file)
        keys = keys_ever_issued(catalog)
    if args.open and not loopback:
        raise UserError(f"--open serves without a key: only on a loopback address, not {args.host}")
    if not keys and not args.open:
        raise UserError("no API key has been issued for this catalog: add one (`quire researchers add ID --admin`), "
                        "or try the API from this machine alone with `quire serve --open`")
    try:
        policy = PhiPolicy.load(args.phi_policy, b"")
    except PolicyError as exc:
        raise UserError(str(exc)) from None
    if not args.settings.phi_salt:
        print(f"warning: {args.settings.variable('phi_salt')} is not set: hashed patient IDs and page cursors "
              "change when the service restarts; set it to keep them stable", file=sys.stderr)
    # One salt for this process and those it starts (uvicorn's workers, the job worker).
    settings = shared_salt(args.settings.with_(
        catalog=catalog_uri, source=source or "", phi_policy=os.path.abspath(args.phi_policy) if args.phi_policy else None,
        api_open=args.open))
    print(f"Quire API on http://{args.host}:{args.port} (OpenAPI docs at /docs), catalog {catalog_uri}", file=sys.stderr)
    listed = ", ".join(f"{k} {a}" for k, a in policy.rules.items() if a != "keep")
    print(f"PHI policy: {args.phi_policy or DEFAULT_POLICY} (fields not listed: {policy.default}; {listed}); "
          "researchers read a research view written with it", file=sys.stderr)
    if args.open and not keys:
        print("--open: requests without a key from this machine are served as an admin's until the first key "
              "is issued (`quire researchers add ID --admin`); never again after that", file=sys.stderr)
    worker = None
    if args.no_worker or not source:
        print("job worker: off; jobs wait for the Dagster daemon's researcher_requests sensor"
              + ("" if source or args.no_worker else " (no --source or QUIRE_SOURCE to run them from)"), file=sys.stderr)
    else:
        from quire_assets.api.worker import start_worker

        worker = start_worker(settings)
        print(f"job worker: on, running jobs against {source}", file=sys.stderr)
    try:
        served = {"host": args.host, "port": args.port, "log_level": args.log_level,
                  "access_log": args.log_level in ("info", "debug")}
        if args.workers == 1:
            from quire_assets.server import create_app

            uvicorn.run(create_app(settings), **served)
        else:  # uvicorn's workers import the app themselves: they read these settings from their environment
            handed_to_workers(settings)
            uvicorn.run("quire_assets.server:create_app", factory=True, workers=args.workers, **served)
    finally:
        if worker:
            process, stop = worker
            stop.set()
            process.join(timeout=30)
            if process.is_alive():
                process.terminate()
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="the researcher REST API (FastAPI under uvicorn) and its job worker")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=whole_number(0), default=8000)
    p.add_argument("--catalog")
    p.add_argument("--source", help="the archive jobs are extracted from (default: $QUIRE_SOURCE)")
    p.add_argument("--phi-policy", help="the PHI policy file (default: quire_assets/catalog/phi-policy.toml: an "
                                        "allow-list; PatientID hashed; names, birth dates and file locations hidden)")
    p.add_argument("--open", action="store_true",
                   help="on a loopback address, serve this machine's requests without a key as an admin's until "
                        "the first key is issued for the catalog (never after)")
    p.add_argument("--workers", type=whole_number(1), default=1, help="uvicorn worker processes (default 1)")
    p.add_argument("--no-worker", action="store_true",
                   help="leave jobs to the Dagster daemon's researcher_requests sensor (docker-compose)")
    p.add_argument("--log-level", default="warning", choices=("critical", "error", "warning", "info", "debug"))
    p.set_defaults(func=cmd_serve)
