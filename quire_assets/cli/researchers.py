"""``quire researchers add|list|key|revoke``: who may use the API, with which key."""

from __future__ import annotations

import argparse
import json
import sys

from quire_assets.cli.common import UserError, format_table, open_catalog_of


def cmd_add(args: argparse.Namespace) -> int:
    from quire_assets.research.researchers import add_researcher

    with open_catalog_of(args, must_exist=False) as catalog:
        researcher, key = add_researcher(catalog, args.researcher_id, args.name, args.email, args.admin)
    role = "admin" if researcher["admin"] else "researcher"
    print(f"added {role} {researcher['researcher_id']}; the API key below is shown this once "
          "(only its hash is kept):", file=sys.stderr)
    print(key)
    return 0


def cmd_new_key(args: argparse.Namespace) -> int:
    from quire_assets.research.researchers import new_key

    print(new_key())
    return 0


def cmd_key(args: argparse.Namespace) -> int:
    from quire_assets.research.researchers import issue_key

    with open_catalog_of(args) as catalog:
        key = issue_key(catalog, args.researcher_id)
    print(f"new key for {args.researcher_id} (the old one no longer works), shown this once:", file=sys.stderr)
    print(key)
    return 0


def cmd_revoke(args: argparse.Namespace) -> int:
    from quire_assets.research.researchers import revoke_key

    with open_catalog_of(args) as catalog:
        revoke_key(catalog, args.researcher_id)
    print(f"revoked the key of {args.researcher_id}", file=sys.stderr)
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from quire_assets.research.researchers import public

    with open_catalog_of(args) as catalog:
        docs = [public(d) for d in catalog.find("researchers")]
    if args.format == "json":
        print(json.dumps(docs, ensure_ascii=False, indent=2))
    elif not docs:
        raise UserError("no researchers yet (`quire researchers add ID`)")
    else:
        print(format_table(docs, ["researcher_id", "name", "email", "admin", "key_id", "key_created_at",
                                  "key_revoked_at"]))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("researchers", help="researchers and their API keys")
    rsub = p.add_subparsers(dest="researchers_command", required=True)
    a = rsub.add_parser("add", help="add a researcher and print their API key (once)")
    a.add_argument("researcher_id")
    a.add_argument("--name")
    a.add_argument("--email")
    a.add_argument("--admin", action="store_true", help="sees everything, raw values included, and manages keys")
    a.add_argument("--catalog")
    a.set_defaults(func=cmd_add)
    k = rsub.add_parser("key", help="issue a new key (the old one stops working)")
    k.add_argument("researcher_id")
    k.add_argument("--catalog")
    k.set_defaults(func=cmd_key)
    r = rsub.add_parser("revoke", help="revoke a researcher's key")
    r.add_argument("researcher_id")
    r.add_argument("--catalog")
    r.set_defaults(func=cmd_revoke)
    n = rsub.add_parser("new-key", help="print a fresh key and store nothing (for QUIRE_ADMIN_KEY_FILE, "
                                        "the first admin's key of a deployment)")
    n.set_defaults(func=cmd_new_key)
    ls = rsub.add_parser("list", help="researchers, their roles and keys (never the keys themselves)")
    ls.add_argument("--format", choices=("table", "json"), default="table")
    ls.add_argument("--catalog")
    ls.set_defaults(func=cmd_list)
