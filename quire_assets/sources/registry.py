"""Source URIs: the one parser, and the one factory of the ``FileSource`` each kind names.

A kind of source is its own module (``local``, ``s3``, ``dicomweb``, ``dimse``) plus its lines here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote, urlsplit

from quire_assets.settings import Settings
from quire_assets.sources.base import FileSource, SourceError


@dataclass(frozen=True)
class SourceLocation:
    """What a source URI names: ``kind`` "s3" (``bucket`` and ``prefix``), "local" (``root``),
    "dicomweb" (``url``, the service's http(s) base) or "dimse" (``host``, ``port``, the AE titles)."""

    kind: str
    root: str = ""
    bucket: str = ""
    prefix: str = ""
    url: str = ""
    host: str = ""
    port: int = 0
    called_aet: str = ""
    calling_aet: str = ""


DEFAULT_CALLING_AET = "QUIRE"


def parse_source_uri(uri: str) -> SourceLocation:
    """``s3://bucket/prefix``, ``dicomweb+https://host/path``, ``dimse://CALLED_AET@host:port?calling=OUR_AET``,
    ``file:///folder`` or a folder: the one parser of source URIs (the Dagster resources and the
    command line both go through it)."""
    if uri.startswith("s3://"):
        bucket, _, prefix = uri.removeprefix("s3://").partition("/")
        return SourceLocation("s3", bucket=bucket, prefix=prefix)
    if uri.startswith(("dicomweb+http://", "dicomweb+https://")):
        return SourceLocation("dicomweb", url=uri.removeprefix("dicomweb+"))
    if uri.startswith("dimse://"):
        parts = urlsplit(uri)
        calling = parse_qs(parts.query).get("calling", [DEFAULT_CALLING_AET])[0]
        try:
            port = parts.port
        except ValueError:
            port = None
        if not parts.username or not parts.hostname or not port or parts.path not in ("", "/"):
            raise SourceError(f"a DIMSE source is dimse://CALLED_AET@host:port?calling=OUR_AET, not {uri!r}")
        return SourceLocation("dimse", host=parts.hostname, port=port, called_aet=unquote(parts.username),
                              calling_aet=calling)
    return SourceLocation("local", root=uri.removeprefix("file://"))


@dataclass(frozen=True)
class Credentials:
    """A DICOMweb PACS's credentials (``QUIRE_PACS_*``): user and password, or a bearer token, and
    a CA bundle for its TLS."""

    username: str = ""
    password: str = field(default="", repr=False)
    token: str = field(default="", repr=False)
    ca_bundle: str = ""


def source_from_uri(uri: str, credentials: Credentials | None = None) -> FileSource:
    """A folder, ``s3://bucket/prefix``, or a PACS (``dicomweb+http(s)://…`` with ``credentials``,
    ``dimse://…``). Each kind's module is imported only when its kind is named (boto3 alone takes
    about 2 s)."""
    where = parse_source_uri(uri)
    if where.kind == "s3":
        from quire_assets.sources.s3 import S3Files

        return S3Files(bucket=where.bucket, prefix=where.prefix)
    if where.kind == "dicomweb":
        from quire_assets.sources.dicomweb import DicomWebFiles

        c = credentials or Credentials()
        return DicomWebFiles(where.url, c.username, c.password, c.token, c.ca_bundle)
    if where.kind == "dimse":
        from quire_assets.sources.dimse import DimseFiles

        return DimseFiles(where.host, where.port, where.called_aet, where.calling_aet)
    from quire_assets.sources.local import LocalFiles

    return LocalFiles(where.root)


def source_of(settings: Settings, uri: str | None = None) -> FileSource:
    """The source ``uri`` names (default: the settings'), with the settings' PACS credentials."""
    return source_from_uri(uri or settings.source, Credentials(
        settings.pacs_user, settings.pacs_password, settings.pacs_token, settings.pacs_ca_bundle))
