"""The source interface: list files with a version, read a file's first bytes (or, for a PACS,
read a batch of instances at once)."""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

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
