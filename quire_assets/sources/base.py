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


def source_from_uri(uri: str) -> FileSource:
    """``s3://bucket/prefix`` or a local directory."""
    if uri.startswith("s3://"):
        from quire_assets.sources.s3 import S3Files

        bucket, _, prefix = uri.removeprefix("s3://").partition("/")
        return S3Files(bucket=bucket, prefix=prefix)
    from quire_assets.sources.local import LocalFiles

    return LocalFiles(uri.removeprefix("file://"))
