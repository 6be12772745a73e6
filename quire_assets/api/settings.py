"""What a running API serves and how (``Service``), made from the ``Settings`` the app factory is
given: ``quire serve``, uvicorn in docker-compose and the tests start the same app the same way."""

from __future__ import annotations

import base64
import hashlib
import secrets
import sys
import threading
from dataclasses import dataclass, field
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

from quire_assets.catalog import Catalog, open_catalog
from quire_assets.catalog.columnar import FollowedCopy
from quire_assets.catalog.policy import PhiPolicy
from quire_assets.catalog.view import (
    ResearchCatalog,
    drop_other_views,
    open_view,
    shown_levels,
    sync,
    view_key,
)
from quire_assets.dicom.features import FeatureSets, load_feature_sets
from quire_assets.settings import Settings
from quire_assets.sources.registry import SourceOptions, source_options


@dataclass(frozen=True)
class Service:
    catalog_uri: str
    source: str | None
    policy: PhiPolicy
    # ``quire serve --open`` on loopback: until the first key is issued, a request without a key
    # from this machine (not through a proxy) is served as an admin's.
    open: bool
    # What one researcher may cost and keep: a read's seconds, statistics' smallest cell, pending
    # jobs, collections.
    query_seconds: float = 10.0
    regex_seconds: float = 5.0
    min_cell: int = 5
    max_pending_jobs: int = 20
    max_collections: int = 500
    threads: int = 2
    columnar: bool = True
    ask_translator: str = ""
    ask_synonyms: str = ""
    # DICOMweb: which level holds each attribute, and how instances are read from their sources.
    features: FeatureSets = field(default_factory=load_feature_sets)
    source_options: SourceOptions = field(default_factory=SourceOptions)
    public_url: str = ""
    cors_origins: tuple[str, ...] = ()
    # The dashboard's links out: a viewer for a study, the Dagster UI for a run.
    viewer_url: str = ""
    dagster_url: str = ""

    @classmethod
    def of(cls, settings: Settings) -> Service:
        """The service ``settings`` describe. Without a PHI salt, pseudonyms and page cursors hold
        until the process ends (``quire serve`` gives its workers one: ``settings.shared_salt``)."""
        if not settings.phi_salt:
            print(f"warning: {settings.variable('phi_salt')} is not set: hashed patient IDs and page cursors change "
                  "when the service restarts; set it to keep them stable", file=sys.stderr)
        salt = settings.phi_salt or secrets.token_hex(32)
        return cls(
            catalog_uri=settings.catalog_uri, source=settings.source or None,
            policy=PhiPolicy.load(settings.phi_policy or None, salt.encode()), open=settings.api_open,
            query_seconds=settings.query_seconds, regex_seconds=settings.regex_seconds,
            min_cell=settings.stats_min_cell, max_pending_jobs=settings.max_pending_jobs,
            max_collections=settings.max_collections, threads=settings.api_threads, columnar=settings.columnar,
            ask_translator=settings.ask_translator, ask_synonyms=settings.ask_synonyms,
            features=load_feature_sets(settings.features or None), source_options=source_options(settings), public_url=settings.public_url,
            cors_origins=tuple(o.strip().rstrip("/") for o in settings.cors_origins.split(",") if o.strip()),
            viewer_url=settings.viewer_url, dagster_url=settings.dagster_url.rstrip("/"))

    def sealer(self, purpose: str) -> Sealer:
        return Sealer(self.policy.salt, purpose)


class Sealer:
    """Encrypted and authenticated tokens (Fernet, a key per purpose drawn from the deployment's
    secret). Page cursors are sealed: a cursor holds the last row's key, and names its caller and
    query."""

    def __init__(self, secret: bytes, purpose: str):
        digest = hashlib.sha256(f"quire-{purpose}:".encode() + secret).digest()
        self.fernet = Fernet(base64.urlsafe_b64encode(digest))

    def seal(self, data: bytes) -> str:
        return self.fernet.encrypt(data).decode()

    def open(self, token: str, ttl: int | None = None) -> bytes | None:
        """What a token holds, if this deployment sealed it (within ``ttl`` seconds)."""
        try:
            return self.fernet.decrypt(token.encode(), ttl=ttl)
        except (InvalidToken, ValueError):
            return None


class Catalogs:
    """One connection per thread to the catalog and to its research view (a SQLite connection
    serves one thread at a time; the API's routes run on a thread pool), and the view kept up with
    the catalog's writes."""

    def __init__(self, uri: str, policy: PhiPolicy, read_seconds: float | None = None, regex_seconds: float = 5.0,
                 columnar: bool = True):
        self.uri, self.policy, self.read_seconds, self.regex_seconds = uri, policy, read_seconds, regex_seconds
        self.local = threading.local()
        self.lock = threading.Lock()
        self.sync_lock = threading.Lock()
        self.synced = -1  # the view's position in the catalog's write log
        self.opened: list[Catalog] = []
        levels = [level for level in ("patients", "studies", "series") if level in shown_levels(policy)]
        self.columns = FollowedCopy(self.get, self.view, levels,
                                    lambda level, key: view_key(policy, level, key)) if columnar else None

    def _opened(self, catalog: Catalog) -> Catalog:
        with self.lock:
            self.opened.append(catalog)
        return catalog

    def get(self) -> Catalog:
        """The identifiable catalog: admins' reads, everyone's researchers, collections and jobs."""
        catalog = getattr(self.local, "catalog", None)
        if catalog is None:
            catalog = self.local.catalog = self._opened(open_catalog(self.uri, regex_seconds=self.regex_seconds))
        return catalog

    def view(self) -> Catalog:
        """The research view written with the policy applied: researchers' reads."""
        view = getattr(self.local, "view", None)
        if view is None:
            view = self.local.view = self._opened(open_view(self.get(), self.policy))
            view.read_seconds = self.read_seconds  # researchers' reads are bounded
            view.regex_seconds = self.regex_seconds
        return view

    def open_view(self) -> list[str]:
        """At start: the view of this policy and secret built (whole, if it is new) before any
        request is served; the views of other policies removed. Returns the removed ones."""
        dropped = drop_other_views(self.get(), self.policy)
        self.refresh()
        return dropped

    def refresh(self) -> None:
        """Copy what the catalog wrote since the last look into the view (one query when nothing
        was written); a request that finds a copy under way waits for it, so it reads what was
        written before it came."""
        if self.synced < 0 or self.get().last_change() > self.synced:
            with self.sync_lock:
                self.synced = sync(self.get(), self.view(), self.policy)
        if self.columns is not None:
            self.columns.follow(self.synced)

    def close(self) -> None:
        if self.columns is not None:
            self.columns.close()
        with self.lock:
            for catalog in reversed(self.opened):
                catalog.close()
            self.opened.clear()


class ThreadCatalog:
    """The catalog of whichever thread uses it: handed to routes by a dependency that runs on the
    event loop (no thread hop per request), while each call reaches the calling thread's own
    connection (``Catalogs``)."""

    def __init__(self, connection: Any):
        self._connection = connection

    def __getattr__(self, name: str) -> Any:
        return getattr(self._connection(), name)


def research_catalog(catalogs: Catalogs) -> ResearchCatalog:
    """What researchers' requests read through, on any thread."""
    return ResearchCatalog(ThreadCatalog(catalogs.get), ThreadCatalog(catalogs.view),  # type: ignore[arg-type]
                           catalogs.policy, catalogs.columns)
