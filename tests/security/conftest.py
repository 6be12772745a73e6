"""A hostile researcher against a real ``quire serve``: the default policy on the sample archive
(the API tests' server), and a stricter policy on a copy of the same catalog. Every test computes
the raw hidden values as an admin first, then looks for them in every byte a researcher is given."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator

import httpx
import pytest

from tests.api.conftest import Server, admin, alice, api_home, bob, server  # noqa: F401  (the API tests' server)

STRICT_POLICY = """
[policy]
default = "drop"
[fields]
PatientID = "hash"
AccessionNumber = "hash"
StudyInstanceUID = "keep"
SeriesInstanceUID = "keep"
SOPInstanceUID = "keep"
Modality = "keep"
SliceThickness = "keep"
SeriesDescription = "keep"
"""
# What the strict policy hides beyond the default one.
STRICT_HIDDEN = ("PatientSex", "PatientAge", "StudyDate", "StudyDescription")


def raw_values(docs: Iterable[dict], keywords: Iterable[str]) -> set[str]:
    """Every value of these keywords (and their snake_case copies) in raw documents, as text."""
    from quire_assets.dicom.records import snake_case

    names = {*keywords, *(snake_case(k) for k in keywords)}
    found: set[str] = set()

    def walk(node) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in names and value not in (None, "", []):
                    found.update(str(v) for v in (value if isinstance(value, list) else [value]))
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(list(docs))
    return found


def leaks(response: httpx.Response, secrets: Iterable[str]) -> list[str]:
    """The hidden values that appear anywhere in a response: body, headers, error message."""
    text = response.text + json.dumps(dict(response.headers))
    return sorted(s for s in secrets if s and s in text)


@pytest.fixture(scope="session")
def raw(api_home) -> dict[str, list[dict]]:  # noqa: F811
    from quire_assets.catalog import open_catalog

    with open_catalog(f"sqlite:///{api_home['catalog']}") as catalog:
        return {level: catalog.find(level) for level in ("patients", "studies", "series", "instances", "errors")}


@pytest.fixture(scope="session")
def hidden(raw) -> set[str]:
    """What the default policy hides, as an admin reads it: names, birth dates, raw patient IDs,
    every file path and its folders named by patient ID."""
    values = raw_values(raw["studies"] + raw["patients"], ("PatientName", "PatientBirthDate", "PatientID"))
    values |= {u for d in raw["instances"] for u in d.get("uris", [])}
    values |= {s for d in raw["instances"] for s in d.get("sources", [])}
    assert values >= {loc["uri"] for d in raw["instances"] for loc in d["locations"]}
    return {v for v in values if len(v) >= 4}


@pytest.fixture(scope="session")
def strict_server(api_home, tmp_path_factory) -> Iterator[Server]:  # noqa: F811
    """``quire serve --phi-policy strict.toml`` on a copy of the catalog (one policy per catalog)."""
    home = tmp_path_factory.mktemp("strict-home")
    with sqlite3.connect(api_home["catalog"]) as source, sqlite3.connect(home / "catalog.db") as copy:
        source.backup(copy)
    policy = home / "strict.toml"
    policy.write_text(STRICT_POLICY)
    env = {**api_home["env"], "QUIRE_HOME": str(home), "QUIRE_CATALOG": f"sqlite:///{home / 'catalog.db'}"}
    srv = Server(env, home, "--no-worker", "--phi-policy", str(policy))
    yield srv
    srv.stop()


@pytest.fixture
def strict_alice(strict_server, api_home) -> Iterator[httpx.Client]:  # noqa: F811
    with strict_server.client(api_home["keys"]["alice"]) as client:
        yield client


@pytest.fixture(scope="session")
def strict_hidden(raw, hidden) -> set[str]:
    values = raw_values(raw["studies"], STRICT_HIDDEN) | raw_values(raw["studies"], ("AccessionNumber",))
    return hidden | {v for v in values if len(v) >= 4}
