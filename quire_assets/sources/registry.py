"""Source URIs: which kind of source a URI names, and the one factory of its ``FileSource``.

A kind of source is its own module, with an ``open_source(uri, options)`` that parses its URIs,
plus one line in ``KINDS``. The module is imported only when its kind is named (boto3 alone takes
about 2 s): the command line, the Dagster resource and the API all go through ``source_from_uri``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field

from quire_assets.settings import Settings
from quire_assets.sources.base import FileSource

# kind: (the URI prefixes that name it, the module that reads it). Anything else is a folder.
KINDS: dict[str, tuple[tuple[str, ...], str]] = {
    "s3": (("s3://",), "quire_assets.sources.s3"),
    "dicomweb": (("dicomweb+http://", "dicomweb+https://"), "quire_assets.sources.dicomweb"),
    "dimse": (("dimse://",), "quire_assets.sources.dimse"),
    "local": (("file://",), "quire_assets.sources.local"),
}


@dataclass(frozen=True)
class SourceOptions:
    """What a URI does not say: a DICOMweb PACS's credentials (``QUIRE_PACS_*``: user and password,
    or a bearer token, and a CA bundle for its TLS), and the requests in flight (0: the kind's default)."""

    username: str = ""
    password: str = field(default="", repr=False)
    token: str = field(default="", repr=False)
    ca_bundle: str = ""
    threads: int = 0


def kind_of(uri: str) -> str:
    """"s3", "dicomweb", "dimse" or "local" (a folder, with or without ``file://``)."""
    return next((kind for kind, (prefixes, _) in KINDS.items() if uri.startswith(prefixes)), "local")


def source_from_uri(uri: str, options: SourceOptions | None = None) -> FileSource:
    """A folder, ``s3://bucket/prefix``, ``dicomweb+http(s)://host/path`` (with the credentials in
    ``options``) or ``dimse://CALLED_AET@host:port?calling=OUR_AET``, opened by its kind's module."""
    module = importlib.import_module(KINDS[kind_of(uri)][1])
    return module.open_source(uri, options or SourceOptions())


def source_options(settings: Settings) -> SourceOptions:
    """The settings' PACS credentials."""
    return SourceOptions(settings.pacs_user, settings.pacs_password, settings.pacs_token, settings.pacs_ca_bundle)


def source_of(settings: Settings, uri: str | None = None) -> FileSource:
    """The source ``uri`` names (default: the settings'), with the settings' PACS credentials."""
    return source_from_uri(uri or settings.source, source_options(settings))
