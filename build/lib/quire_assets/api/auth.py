"""Who is calling: a researcher's key (``Authorization: Bearer KEY``), their role, and the view
of the catalog their role allows (the PHI policy for every key but an admin's)."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from quire_assets.api.phi import PhiPolicy
from quire_assets.catalog import Catalog
from quire_assets.catalog.researchers import keys_defined, verify_key

bearer = HTTPBearer(auto_error=False, description="A researcher's API key (`quire researchers add`)")


@dataclass(frozen=True)
class Caller:
    researcher_id: str
    admin: bool
    policy: PhiPolicy

    def view(self, doc: Any) -> Any:
        """What this caller may see of a document: raw for an admin, the PHI policy applied otherwise."""
        return doc if self.admin else self.policy.apply(doc)

    def check_visible(self, paths: Iterable[str], what: str) -> None:
        """Refuse filters, sorts and facets on fields the policy hides from this caller."""
        if self.admin:
            return
        for path in paths:
            action = self.policy.hidden(path)
            if action:
                raise HTTPException(403, f"{what}: {path!r} is hidden from your key by the PHI policy ({action})")

    def owns(self, doc: dict | None) -> bool:
        return doc is not None and (self.admin or doc.get("researcher_id") == self.researcher_id)


class KeyCache:
    """Keys already checked (scrypt takes ~50 ms): digest of the key → (researcher, stored hash).
    Each request still reads the researcher, so a revoked or replaced key stops at once, in every
    process."""

    def __init__(self) -> None:
        self.known: dict[str, tuple[str, str]] = {}
        self.lock = threading.Lock()

    def known_caller(self, catalog: Catalog, key: str, policy: PhiPolicy) -> Caller | None:
        """The caller of a key checked before and still the researcher's, else None."""
        with self.lock:
            known = self.known.get(hashlib.sha256(key.encode()).hexdigest())
        if known:
            doc = catalog.get("researchers", known[0])
            stored = ((doc or {}).get("key") or {}).get("hash", "")
            if doc and hmac.compare_digest(stored, known[1]):
                return Caller(doc["researcher_id"], bool(doc.get("admin")), policy)
        return None

    def caller(self, catalog: Catalog, key: str, policy: PhiPolicy) -> Caller | None:
        """The caller of a key, checked against its hash (and remembered), or None."""
        doc = verify_key(catalog, key)
        if doc is None:
            return None
        with self.lock:
            self.known[hashlib.sha256(key.encode()).hexdigest()] = (doc["researcher_id"], doc["key"]["hash"])
        return Caller(doc["researcher_id"], bool(doc.get("admin")), policy)


class ThreadCatalog:
    """The catalog of whichever thread uses it: handed to routes by a dependency that runs on the
    event loop (no thread hop per request), while each call reaches the calling thread's own
    connection (``Catalogs``)."""

    def __init__(self, catalogs: Any):
        self._catalogs = catalogs

    def __getattr__(self, name: str) -> Any:
        return getattr(self._catalogs.get(), name)


async def catalog(request: Request) -> Catalog:
    return request.app.state.thread_catalog


CatalogDep = Annotated[Catalog, Depends(catalog)]


SESSION_COOKIE = "quire_session"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def session(request: Request) -> dict | None:
    """The dashboard's session (``{"key", "csrf"}``) from its cookie, if it holds a valid one."""
    token = request.cookies.get(SESSION_COOKIE)
    data = request.app.state.sessions.open(token) if token else None
    try:
        found = json.loads(data) if data else None
    except ValueError:
        return None
    return found if isinstance(found, dict) and {"key", "csrf"} <= set(found) else None


def new_session(request: Request, key: str) -> tuple[str, str]:
    """A sealed session cookie value for an API key, and its CSRF token."""
    csrf = secrets.token_urlsafe(24)
    return request.app.state.sessions.seal(json.dumps({"key": key, "csrf": csrf}).encode()), csrf


async def caller(request: Request, cat: CatalogDep,
                 credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> Caller:
    """The key of ``Authorization: Bearer``, or of the dashboard's session cookie (then a request
    that changes something must carry the session's CSRF token in ``X-CSRF-Token``).

    Runs on the event loop: a known key costs one lookup by primary key; an unknown one is
    checked (scrypt) on a worker thread, so the loop never waits for it."""
    settings = request.app.state.settings
    key = credentials.credentials.strip() if credentials else None
    if key is None and (opened := session(request)):
        if request.method not in SAFE_METHODS and not hmac.compare_digest(
                request.headers.get("x-csrf-token", ""), opened["csrf"]):
            raise HTTPException(403, "this needs the page's CSRF token (X-CSRF-Token)")
        key = opened["key"]
    if key is None:
        if request.headers.get("authorization"):
            raise HTTPException(401, "the Authorization header takes: Bearer KEY",
                                headers={"WWW-Authenticate": "Bearer"})
        if settings.loopback and not keys_defined(cat):
            return Caller("local", True, settings.policy)
        raise HTTPException(401, "send Authorization: Bearer KEY (`quire researchers add` gives a key)",
                            headers={"WWW-Authenticate": "Bearer"})
    keys = request.app.state.keys
    found = keys.known_caller(cat, key, settings.policy)
    if found is None:
        found = await run_in_threadpool(keys.caller, request.app.state.thread_catalog, key, settings.policy)
    if found is None:
        raise HTTPException(401, "unknown or revoked key", headers={"WWW-Authenticate": "Bearer"})
    return found


CallerDep = Annotated[Caller, Depends(caller)]


async def admin(who: CallerDep) -> Caller:
    if not who.admin:
        raise HTTPException(403, "this needs an admin key")
    return who


AdminDep = Annotated[Caller, Depends(admin)]
