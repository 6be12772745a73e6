"""The source interface: list files with a version, read a file's first bytes."""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from quire_assets.dicom.header import LOCAL_PREFIX


class SourceError(Exception):
    """A source that cannot be listed or read at all (missing folder, bucket, credentials)."""


@dataclass(frozen=True)
class FileEntry:
    uri: str
    size: int
    version: str  # changes when the file changes: mtime+size locally, the ETag on S3


class FileSource(ABC):
    """A DICOM archive: a folder, or a bucket and prefix."""

    uri: str

    @abstractmethod
    def list(self) -> Iterator[FileEntry]:
        """Every file under the source (not only DICOM ones: every file is accounted for)."""

    @abstractmethod
    def fetcher(self, entry: FileEntry) -> Callable[[int], bytes]:
        """``fetch(n)``: the first ``n`` bytes of the file."""

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
    """What a source URI names: ``kind`` "s3" (``bucket`` and ``prefix``) or "local" (``root``)."""

    kind: str
    root: str = ""
    bucket: str = ""
    prefix: str = ""


def parse_source_uri(uri: str) -> SourceLocation:
    """``s3://bucket/prefix``, ``file:///folder`` or a folder: the one parser of source URIs (the
    Dagster resources and the command line both go through it)."""
    if uri.startswith("s3://"):
        bucket, _, prefix = uri.removeprefix("s3://").partition("/")
        return SourceLocation("s3", bucket=bucket, prefix=prefix)
    return SourceLocation("local", root=uri.removeprefix("file://"))


def source_from_uri(uri: str) -> FileSource:
    """``s3://bucket/prefix`` or a local directory."""
    where = parse_source_uri(uri)
    if where.kind == "s3":
        from quire_assets.sources.s3 import S3Files

        return S3Files(bucket=where.bucket, prefix=where.prefix)
    from quire_assets.sources.local import LocalFiles

    return LocalFiles(where.root)
