"""What a running API serves and how: read from the environment, so ``quire serve``, uvicorn in
docker-compose and the tests start the same app the same way."""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import sys
import threading
from dataclasses import dataclass

from cryptography.fernet import Fernet, InvalidToken

from quire_assets.api.phi import PhiPolicy
from quire_assets.catalog import Catalog, default_catalog_uri, open_catalog

SALT_ENV = "QUIRE_PHI_SALT"
POLICY_ENV = "QUIRE_PHI_POLICY"
LOOPBACK_ENV = "QUIRE_API_LOOPBACK"


def ensure_salt() -> str:
    """``$QUIRE_PHI_SALT``; without one, a random salt for this process and the workers it starts."""
    salt = os.environ.get(SALT_ENV)
    if not salt:
        salt = os.environ[SALT_ENV] = secrets.token_hex(32)
        print(f"warning: {SALT_ENV} is not set: hashed patient IDs and page cursors change when the service "
              "restarts; set it to keep them stable", file=sys.stderr)
    return salt


@dataclass(frozen=True)
class Settings:
    catalog_uri: str
    source: str | None
    policy: PhiPolicy
    # Bound to loopback only (``quire serve`` says so): with no key defined yet, requests without a
    # key are this machine's own and are served as an admin's.
    loopback: bool

    @classmethod
    def from_env(cls) -> Settings:
        salt = ensure_salt()
        return cls(
            catalog_uri=os.environ.get("QUIRE_CATALOG") or default_catalog_uri(),
            source=os.environ.get("QUIRE_SOURCE") or None,
            policy=PhiPolicy.load(os.environ.get(POLICY_ENV), salt.encode()),
            loopback=os.environ.get(LOOPBACK_ENV) == "1",
        )

    def sealer(self, purpose: str) -> Sealer:
        return Sealer(self.policy.salt, purpose)


class Sealer:
    """Encrypted and authenticated tokens (Fernet, a key per purpose drawn from the deployment's
    secret). Page cursors are sealed because a cursor holds the last row's key, which can be a
    patient ID a researcher sees only hashed; the dashboard's session cookie holds an API key."""

    def __init__(self, secret: bytes, purpose: str):
        digest = hashlib.sha256(f"quire-{purpose}:".encode() + secret).digest()
        self.fernet = Fernet(base64.urlsafe_b64encode(digest))

    def seal(self, data: bytes) -> str:
        return self.fernet.encrypt(data).decode()

    def open(self, token: str) -> bytes | None:
        try:
            return self.fernet.decrypt(token.encode())
        except (InvalidToken, ValueError):
            return None


class Catalogs:
    """One catalog connection per thread (a SQLite connection serves one thread at a time; the
    API's routes run on a thread pool)."""

    def __init__(self, uri: str):
        self.uri = uri
        self.local = threading.local()
        self.lock = threading.Lock()
        self.opened: list[Catalog] = []

    def get(self) -> Catalog:
        catalog = getattr(self.local, "catalog", None)
        if catalog is None:
            catalog = self.local.catalog = open_catalog(self.uri)
            with self.lock:
                self.opened.append(catalog)
        return catalog

    def close(self) -> None:
        with self.lock:
            for catalog in self.opened:
                catalog.close()
            self.opened.clear()
