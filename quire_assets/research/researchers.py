"""Researchers and their API keys, kept in the catalog's ``researchers`` collection.

A key is shown once, when it is issued; the catalog keeps only a salted scrypt hash of it, so a
copy of the catalog gives no one access. A key reads ``qk_<key id>_<secret>``: the key id finds
the researcher without trying every hash.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from typing import Any

from quire_assets.catalog.base import Catalog, CatalogError
from quire_assets.research.ids import check_id, now

KEY_PREFIX = "qk"
KEY_SHAPE = re.compile(rf"{KEY_PREFIX}_[0-9a-f]{{8}}_[A-Za-z0-9_-]{{32,}}")
KEYS_ISSUED = "keys_issued"
# scrypt's interactive-login parameters (16 MiB, ~50 ms): checked once per key and process, then cached.
SCRYPT = {"n": 2**14, "r": 8, "p": 1, "dklen": 32}


def _digest(secret: str, salt: bytes) -> str:
    return hashlib.scrypt(secret.encode(), salt=salt, **SCRYPT).hex()


def public(doc: dict) -> dict:
    """What may be shown of a researcher: never the key's hash."""
    key = doc.get("key") or {}
    return {"researcher_id": doc["researcher_id"], "name": doc.get("name"), "email": doc.get("email"),
            "admin": bool(doc.get("admin")), "created_at": doc.get("created_at"),
            "key_id": key.get("key_id"), "key_created_at": key.get("created_at"),
            "key_revoked_at": doc.get("key_revoked_at")}


def new_key() -> str:
    """A fresh key, stored nowhere (``quire researchers new-key``, for a deployment's key file)."""
    return f"{KEY_PREFIX}_{secrets.token_hex(4)}_{secrets.token_urlsafe(32)}"


def issue_key(catalog: Catalog, researcher_id: str, key: str | None = None) -> str:
    """A new key for the researcher (the old one stops working): ``key`` (checked to be one, from
    a key file) or a fresh one; returns it, the only time it is seen."""
    key = key or new_key()
    if not KEY_SHAPE.fullmatch(key):
        raise CatalogError("not an API key: a key reads qk_<8 hex digits>_<at least 32 characters of A-Z a-z 0-9 _ ->"
                           " (`quire researchers new-key` makes one)")
    _, key_id, secret = key.split("_", 2)
    with catalog.transaction():
        doc = catalog.get("researchers", researcher_id)
        if doc is None:
            raise CatalogError(f"no researcher {researcher_id!r}")
        salt = secrets.token_bytes(16)
        doc["key"] = {"key_id": key_id, "salt": salt.hex(), "hash": _digest(secret, salt), "created_at": now()}
        doc.pop("key_revoked_at", None)
        catalog.upsert("researchers", [doc])
        catalog.set_meta(KEYS_ISSUED, {"at": doc["key"]["created_at"]})
    return key


def add_researcher(catalog: Catalog, researcher_id: str, name: str | None = None, email: str | None = None,
                   admin: bool = False, key: str | None = None) -> tuple[dict, str]:
    """Create a researcher (or complete one a job created) with a key (``key`` or a fresh one);
    returns (researcher, key)."""
    check_id("researcher", researcher_id)
    with catalog.transaction():
        doc = catalog.get("researchers", researcher_id) or {"researcher_id": researcher_id, "created_at": now()}
        if doc.get("key"):
            raise CatalogError(f"researcher {researcher_id!r} already has a key (`quire researchers key "
                               f"{researcher_id}` issues a new one)")
        doc.update({"name": name or doc.get("name") or researcher_id, "email": email or doc.get("email"),
                    "admin": admin})
        catalog.upsert("researchers", [doc])
        key = issue_key(catalog, researcher_id, key)
    return public(catalog.get("researchers", researcher_id)), key


def add_first_admin(catalog: Catalog, key: str, researcher_id: str = "admin") -> dict | None:
    """Issue ``key`` (a deployment's secret) to an admin when no key was ever issued for this
    catalog, so that a service can start keyed the first time; None, and nothing written, once a
    key was issued: the file then only ever held the first key (keys rotate with ``quire
    researchers key``)."""
    with catalog.transaction():
        if keys_ever_issued(catalog):
            return None
        researcher, _ = add_researcher(catalog, researcher_id, admin=True, key=key)
    return researcher


def revoke_key(catalog: Catalog, researcher_id: str) -> dict:
    with catalog.transaction():
        doc = catalog.get("researchers", researcher_id)
        if doc is None:
            raise CatalogError(f"no researcher {researcher_id!r}")
        if doc.get("key"):
            doc["key"] = None
            doc["key_revoked_at"] = now()
            catalog.upsert("researchers", [doc])
    return public(doc)


def key_id_of(key: str) -> str | None:
    prefix, _, rest = key.partition("_")
    key_id, _, secret = rest.partition("_")
    return key_id if prefix == KEY_PREFIX and key_id and secret else None


def verify_key(catalog: Catalog, key: str) -> dict | None:
    """The researcher holding this key, or None (unknown, malformed or revoked)."""
    key_id = key_id_of(key)
    if key_id is None:
        return None
    found = catalog.find("researchers", {"key.key_id": key_id}, limit=1)
    if not found:
        return None
    stored: dict[str, Any] = found[0]["key"]
    secret = key.split("_", 2)[2]
    if not hmac.compare_digest(_digest(secret, bytes.fromhex(stored["salt"])), stored["hash"]):
        return None
    return found[0]


def keys_defined(catalog: Catalog) -> bool:
    """Whether any researcher holds a key that works."""
    return catalog.count("researchers", {"key.key_id": {"$exists": True}}) > 0


def keys_ever_issued(catalog: Catalog) -> bool:
    """Whether a key was ever issued in this catalog (revoking every key does not undo it: an API
    that was once keyed never serves without a key again)."""
    return catalog.get_meta(KEYS_ISSUED) is not None or keys_defined(catalog)
