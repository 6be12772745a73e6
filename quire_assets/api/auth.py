"""Who is calling: a researcher's key (``Authorization: Bearer KEY``), their role, and the catalog
their role reads: the identifiable one for an admin, the research view (the PHI policy applied when
it was written) for every other key."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import secrets
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated

from anyio import CapacityLimiter, to_thread
from fastapi import Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from quire_assets.catalog import Catalog
from quire_assets.catalog.policy import PhiPolicy
from quire_assets.research.researchers import key_id_of, keys_ever_issued, verify_key

bearer = HTTPBearer(auto_error=False, description="A researcher's API key (`quire researchers add`)")


@dataclass(frozen=True)
class Caller:
    researcher_id: str
    admin: bool
    policy: PhiPolicy

    def check_visible(self, paths: Iterable[str], what: str) -> None:
        """Refuse, by name, filters, sorts and facets on fields the policy drops (the research view
        does not hold them, so they could only match nothing: the refusal says why). Hashed fields
        are there as pseudonyms, and are filtered and sorted as such. Decided from the policy and
        the name alone, never from data."""
        if self.admin:
            return
        for path in paths:
            if self.policy.hidden(path) == "drop":
                raise HTTPException(403, f"{what}: {path!r} is not among the fields the PHI policy shows your key")

    def owns(self, doc: dict | None) -> bool:
        return doc is not None and (self.admin or doc.get("researcher_id") == self.researcher_id)


FAILURE_WINDOW = 60  # seconds
MAX_FAILURES = 10  # failed keys per key id, and per client, in that window


def _digest_of(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class KeyCache:
    """Keys already checked (scrypt takes ~50 ms): digest of the key → (researcher, stored hash).
    Each request still reads the researcher, so a revoked or replaced key stops at once, in every
    process."""

    def __init__(self) -> None:
        self.known: dict[str, tuple[str, str]] = {}
        self.lock = threading.Lock()
        # Failed checks: a key that failed is refused without scrypt for a while, and a key id or a
        # client with too many failures is told to wait, so unknown keys cannot keep the API busy.
        self.rejected: dict[str, float] = {}
        self.failures: dict[str, deque[float]] = {}
        self.limiter: CapacityLimiter | None = None  # scrypt's own thread, apart from the routes'

    def refusal(self, key: str, client: str) -> HTTPException | None:
        """Why a key is refused before it is checked, if it is."""
        now = time.monotonic()
        with self.lock:
            if self.rejected.get(_digest_of(key), 0) > now:
                return HTTPException(401, "unknown or revoked key", headers={"WWW-Authenticate": "Bearer"})
            for who in (f"key:{key_id_of(key)}", f"client:{client}"):
                recent = self.failures.get(who)
                while recent and recent[0] < now - FAILURE_WINDOW:
                    recent.popleft()
                if recent and len(recent) >= MAX_FAILURES:
                    return HTTPException(429, f"too many failed keys from this client or for this key id: wait "
                                              f"{FAILURE_WINDOW} s", headers={"Retry-After": str(FAILURE_WINDOW)})
        return None

    def failed(self, key: str, client: str) -> None:
        now = time.monotonic()
        with self.lock:
            if len(self.rejected) > 10_000:
                self.rejected = {k: t for k, t in self.rejected.items() if t > now}
            self.rejected[_digest_of(key)] = now + FAILURE_WINDOW
            for who in (f"key:{key_id_of(key)}", f"client:{client}"):
                self.failures.setdefault(who, deque()).append(now)

    async def checked(self, request: Request, key: str) -> dict | None:
        """The researcher of a key, checked (scrypt) on its own thread, throttled as above."""
        client = request.client.host if request.client else ""
        if refused := self.refusal(key, client):
            raise refused
        self.limiter = self.limiter or CapacityLimiter(1)
        found = await to_thread.run_sync(self.researcher, request.app.state.thread_catalog, key, limiter=self.limiter)
        if found is None:
            self.failed(key, client)
        return found

    def known_caller(self, catalog: Catalog, key: str, policy: PhiPolicy) -> Caller | None:
        """The caller of a key checked before and still the researcher's, else None."""
        with self.lock:
            known = self.known.get(_digest_of(key))
        if known:
            doc = catalog.get("researchers", known[0])
            stored = ((doc or {}).get("key") or {}).get("hash", "")
            if doc and hmac.compare_digest(stored, known[1]):
                return Caller(doc["researcher_id"], bool(doc.get("admin")), policy)
        return None

    def researcher(self, catalog: Catalog, key: str) -> dict | None:
        """The researcher of a key, checked against its hash (and remembered), or None."""
        doc = verify_key(catalog, key)
        if doc is not None:
            with self.lock:
                self.known[_digest_of(key)] = (doc["researcher_id"], doc["key"]["hash"])
        return doc



async def catalog(request: Request) -> Catalog:
    """The identifiable catalog: for finding keys, never handed to a researcher's route."""
    return request.app.state.thread_catalog


IdentifiedCatalogDep = Annotated[Catalog, Depends(catalog)]


SESSION_COOKIE = "quire_session"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


SESSION_SECONDS = 8 * 3600


def session(request: Request) -> dict | None:
    """The dashboard's session (``researcher_id``, ``key_id``, ``csrf``) its cookie names, if it has
    not expired or been ended."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token or len(token) > 200:
        return None
    # The catalog keeps a digest of the cookie: a copy of the catalog opens no session.
    found = request.app.state.thread_catalog.get("sessions", _digest_of(token))
    return found if found and found.get("expires", 0) > time.time() else None


def new_session(request: Request, researcher: dict) -> str:
    """A new session of a researcher whose key was just checked: an opaque cookie value, the
    session kept server side until it expires, the key changes or the researcher logs out."""
    catalog = request.app.state.thread_catalog
    token, now = secrets.token_urlsafe(32), time.time()
    catalog.delete("sessions", {"expires": {"$lt": now}})
    catalog.upsert("sessions", [{"session_id": _digest_of(token), "researcher_id": researcher["researcher_id"],
                                 "key_id": researcher["key"]["key_id"], "csrf": secrets.token_urlsafe(24),
                                 "expires": now + SESSION_SECONDS}])
    return token


def end_session(request: Request) -> None:
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        request.app.state.thread_catalog.delete("sessions", {"session_id": _digest_of(token)})


def session_caller(cat: Catalog, opened: dict, policy: PhiPolicy) -> Caller | None:
    """The caller of a session while its researcher still holds the key it was opened with."""
    doc = cat.get("researchers", opened["researcher_id"])
    if doc and (doc.get("key") or {}).get("key_id") == opened["key_id"]:
        return Caller(doc["researcher_id"], bool(doc.get("admin")), policy)
    return None


FORWARDED = (b"forwarded", b"x-forwarded-for", b"x-forwarded-host", b"x-forwarded-proto", b"x-real-ip")


def from_this_machine(request: Request) -> bool:
    """A client connected from loopback, not through a proxy (a proxy on this machine would make
    every client it forwards look local)."""
    host = request.client.host if request.client else ""
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
    return loopback and not any(name in FORWARDED for name, _ in request.scope.get("headers", []))


def basic_key(request: Request) -> str | None:
    """The key sent as HTTP Basic's password (any user name): many DICOMweb clients (OHIF's image
    loader, Weasis, Orthanc's DICOMweb client) can send Basic credentials but no other header."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        _, colon, password = base64.b64decode(value.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return password.strip() or None if colon else None


async def caller(request: Request, cat: IdentifiedCatalogDep,
                 credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> Caller:
    """The key of ``Authorization: Bearer`` (or Basic's password), or of the dashboard's session cookie (then a request
    that changes something must carry the session's CSRF token in ``X-CSRF-Token``).

    Runs on the event loop: a known key costs one lookup by primary key; an unknown one is
    checked (scrypt) on a worker thread, so the loop never waits for it."""
    settings = request.app.state.settings
    key = credentials.credentials.strip() if credentials else basic_key(request)
    if key is None and (opened := session(request)):
        if request.method not in SAFE_METHODS and not hmac.compare_digest(
                request.headers.get("x-csrf-token", ""), opened["csrf"]):
            raise HTTPException(403, "this needs the page's CSRF token (X-CSRF-Token)")
        if found := session_caller(cat, opened, settings.policy):
            return found
    if key is None:
        if request.headers.get("authorization"):
            raise HTTPException(401, "the Authorization header takes: Bearer KEY (or Basic, the key as password)",
                                headers={"WWW-Authenticate": "Bearer"})
        if settings.open and from_this_machine(request) and not keys_ever_issued(cat):
            return Caller("local", True, settings.policy)
        raise HTTPException(401, "send Authorization: Bearer KEY (`quire researchers add` gives a key)",
                            headers={"WWW-Authenticate": "Bearer"})
    keys = request.app.state.keys
    if found := keys.known_caller(cat, key, settings.policy):
        return found
    doc = await keys.checked(request, key)
    if doc is None:
        raise HTTPException(401, "unknown or revoked key", headers={"WWW-Authenticate": "Bearer"})
    return Caller(doc["researcher_id"], bool(doc.get("admin")), settings.policy)


CallerDep = Annotated[Caller, Depends(caller)]


def catalog_for(request: Request, who: Caller) -> Catalog:
    """The catalog a caller reads: the identifiable one for an admin; for anyone else the research
    view (brought up to the catalog's writes first) with their own researchers, collections and
    jobs. Runs on a worker thread (it may copy writes into the view)."""
    state = request.app.state
    if who.admin:
        return state.thread_catalog
    state.catalogs.refresh()
    return state.research_catalog


async def callers_catalog(request: Request, who: CallerDep) -> Catalog:
    return await run_in_threadpool(catalog_for, request, who)


# What every route reads through: the boundary is the catalog a route is handed.
CatalogDep = Annotated[Catalog, Depends(callers_catalog)]


async def admin(who: CallerDep) -> Caller:
    if not who.admin:
        raise HTTPException(403, "this needs an admin key")
    return who


AdminDep = Annotated[Caller, Depends(admin)]
