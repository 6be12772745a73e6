"""``quire serve`` over the PACS's files as a folder (the same files the session's Orthanc holds),
with an admin's key and a researcher's, for DICOMweb's clients."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from dicomweb_client.api import DICOMwebClient

from tests.api.conftest import SALT, Server, add_researcher
from tests.cli.test_ingest_e2e import ingested_home
from tests.s3.conftest import free_port, moto_server  # noqa: F401 (a fixture: the bucket's S3 server)


@dataclass
class Quire:
    server: Server
    env: dict
    home: Path
    archive: Path
    keys: dict[str, str]

    @property
    def dicomweb(self) -> str:
        return f"{self.server.url}/dicomweb"

    def client(self, who: str) -> DICOMwebClient:
        """dicomweb-client, the Python DICOMweb client of the field, with ``who``'s key."""
        return DICOMwebClient(self.dicomweb, session=self.session(who))

    def session(self, who: str) -> requests.Session:
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {self.keys[who]}"
        return session


@pytest.fixture(scope="session")
def quire_dicomweb(pacs_archive, tmp_path_factory) -> Quire:
    env, home = ingested_home(pacs_archive, tmp_path_factory)
    env = {**env, "QUIRE_PHI_SALT": SALT}
    keys = {"boss": add_researcher(env, home, "boss", "--admin"), "alice": add_researcher(env, home, "alice")}
    port = free_port()
    env["QUIRE_PUBLIC_URL"] = f"http://127.0.0.1:{port}"
    server = Server(env, home, port=port)
    try:
        yield Quire(server, env, home, pacs_archive, keys)
    finally:
        server.stop()
