"""The source interface: list files with a version, read a file's first bytes (or, for a PACS,
read a batch of instances at once)."""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

from quire_assets.dicom.features import FeatureSets
from quire_assets.dicom.header import LOCAL_PREFIX
from quire_assets.dicom.records import extract


class SourceError(Exception):
    """A source that cannot be listed or read at all (missing folder, bucket, credentials)."""


@dataclass(frozen=True)
class FileEntry:
    uri: str
    size: int
    version: str  # changes when the file changes: mtime+size locally, the ETag on S3


@dataclass(frozen=True)
class Selection:
    """Part of a PACS to list: the studies with these accession numbers, of studies since a date
    (``YYYYMMDD``), with a modality. Folders and buckets are always listed whole."""

    accessions: tuple[str, ...] = ()
    since: str = ""
    modality: str = ""

    @property
    def whole(self) -> bool:
        return not (self.accessions or self.since or self.modality)


class FileSource(ABC):
    """A DICOM archive: a folder, a bucket and prefix, or a PACS."""

    uri: str
    # A PACS is asked for the accessions a researcher wants; a folder or a bucket is listed whole.
    queryable = False

    @abstractmethod
    def list(self) -> Iterator[FileEntry]:
        """Every file under the source (not only DICOM ones: every file is accounted for)."""

    @abstractmethod
    def fetcher(self, entry: FileEntry) -> Callable[[int], bytes]:
        """``fetch(n)``: the first ``n`` bytes of the file."""

    def listing(self, known: Callable[[], list[FileEntry]], selection: Selection | None = None) -> Iterator[FileEntry]:
        """The files of ``selection`` (everything by default). ``known()`` gives the index's entries: a
        source that can tell a group of files unchanged without listing it (a PACS, from its
        instance counts) yields those entries again as they are."""
        if selection is not None and not selection.whole:
            raise SourceError(f"{self.uri}: only a PACS can be asked for accessions, dates or modalities; "
                              "a folder or a bucket is read whole")
        return self.list()

    def batches(self, entries: list[FileEntry], size: int) -> list[list[FileEntry]]:
        """The entries in tasks for the readers (a PACS groups them by series)."""
        return [entries[i : i + size] for i in range(0, len(entries), size)]

    def extract_batch(self, entries: Sequence[FileEntry], features: FeatureSets, first_bytes: int,
                      fast: bool) -> list[dict]:
        """The records of some files, one per entry, in order (a PACS reads a series in one request)."""
        return [extract(e.uri, e.size, self.fetcher(e), features, first_bytes, fast=fast) for e in entries]

    @property
    def key(self) -> str:
        """A short stable name for this source (names its index file)."""
        return hashlib.sha1(self.uri.encode()).hexdigest()[:16]

    # Processes, or threads where reads wait on the network rather than the CPU.
    parallelism = "processes"
    # Bytes read first from each file (more only when a header runs past them). Local reads are
    # cheap to repeat, so they start small; a ranged GET costs a round trip, so S3 starts at 64 KiB.
    first_bytes = LOCAL_PREFIX


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


def source_from_uri(uri: str) -> FileSource:
    """A folder, ``s3://bucket/prefix``, or a PACS (``dicomweb+http(s)://…``, ``dimse://…``; its
    credentials from the environment)."""
    where = parse_source_uri(uri)
    if where.kind == "s3":
        from quire_assets.sources.s3 import S3Files

        return S3Files(bucket=where.bucket, prefix=where.prefix)
    if where.kind == "dicomweb":
        from quire_assets.sources.dicomweb import DicomWebFiles

        return DicomWebFiles.from_env(where.url)
    if where.kind == "dimse":
        from quire_assets.sources.dimse import DimseFiles

        return DimseFiles(where.host, where.port, where.called_aet, where.calling_aet)
    from quire_assets.sources.local import LocalFiles

    return LocalFiles(where.root)
