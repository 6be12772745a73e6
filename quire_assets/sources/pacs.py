"""What the two PACS sources (DICOMweb, DIMSE) share: the study → series → instance walk, the
instance URIs, and records made from a PACS's answers.

A PACS is a database, not a folder: it is asked (QIDO-RS or C-FIND) for studies, their series
with an instance count, and a series' instances. The index keeps every instance as a file entry
whose URI names it (``…/studies/{uid}/series/{uid}/instances/{uid}``), so a study or series whose
instance count matches what the index holds is not asked about again: re-running a job asks
only for what changed.
"""

from __future__ import annotations

import re
from abc import abstractmethod
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date

from quire_assets.dicom.features import FeatureSets
from quire_assets.sources.base import FileEntry, FileSource, Selection, SourceError

# The version of an instance entry: a PACS gives no file time or ETag; an instance under a SOP
# Instance UID does not change (a corrected image gets a new UID).
PACS_VERSION = "pacs"
_INSTANCE_PATH = re.compile(r"/studies/([^/]+)/series/([^/]+)/instances/([^/]+)$")


@dataclass(frozen=True)
class Study:
    uid: str
    instances: int | None  # NumberOfStudyRelatedInstances, when the PACS says it


@dataclass(frozen=True)
class Series:
    uid: str
    instances: int | None  # NumberOfSeriesRelatedInstances


def instance_path(uri: str) -> tuple[str, str, str]:
    """(study, series, SOP instance UID) of a PACS instance URI."""
    match = _INSTANCE_PATH.search(uri)
    if match is None:
        raise ValueError(f"not a PACS instance URI: {uri}")
    return match.group(1), match.group(2), match.group(3)


def dicom_date(text: str) -> str:
    """``YYYY-MM-DD`` or ``YYYYMMDD`` → ``YYYYMMDD`` (a clear ValueError otherwise)."""
    try:
        return date.fromisoformat(text.strip()).strftime("%Y%m%d")
    except ValueError:
        raise ValueError(f"not a date: {text!r} (write YYYY-MM-DD)") from None


def exact_accession(accession: str) -> bool:
    """Whether a PACS can be asked for this accession number exactly. QIDO and C-FIND read ``*`` and
    ``?`` as wildcards and ``\\`` as a value separator: such a value would widen the query."""
    value = accession.strip()
    return bool(value) and len(value) <= 64 and not any(c in value for c in "*?\\")


def safe_accession(accession: str) -> str:
    """An accession number as a query value: matched exactly, never as a pattern (refused otherwise)."""
    if not exact_accession(accession):
        raise SourceError(f"accession number {accession!r} cannot be asked for exactly (empty, too long, or "
                          "holding *, ? or \\)")
    return accession.strip()


class PacsSource(FileSource):
    """A PACS: listed by queries, read a series at a time."""

    queryable = True
    parallelism = "threads"
    threads = 4

    @abstractmethod
    def studies(self, selection: Selection) -> Iterator[Study]:
        """The studies a selection names (all studies for the whole selection)."""

    @abstractmethod
    def series(self, study_uid: str) -> list[Series]:
        """A study's series."""

    @abstractmethod
    def instances(self, study_uid: str, series_uid: str) -> list[str]:
        """A series' SOP Instance UIDs."""

    @abstractmethod
    def read_series(self, study_uid: str, series_uid: str, entries: Sequence[FileEntry],
                    features: FeatureSets) -> list[dict]:
        """The records of some instances of one series, in the order of ``entries``."""

    def instance_uri(self, study_uid: str, series_uid: str, sop_uid: str) -> str:
        return f"{self.uri.partition('?')[0]}/studies/{study_uid}/series/{series_uid}/instances/{sop_uid}"

    def list(self) -> Iterator[FileEntry]:
        return self.listing(list, None)

    def listing(self, known: Callable[[], list[FileEntry]], selection: Selection | None = None) -> Iterator[FileEntry]:
        by_study: dict[str, list[FileEntry]] = defaultdict(list)
        by_series: dict[str, list[FileEntry]] = defaultdict(list)
        for entry in known():
            study, series, _ = instance_path(entry.uri)
            by_study[study].append(entry)
            by_series[series].append(entry)
        for study in self.studies(selection or Selection()):
            if study.instances is not None and study.instances == len(by_study.get(study.uid, ())):
                yield from by_study[study.uid]  # nothing changed in this study: not asked about again
                continue
            for series in self.series(study.uid):
                held = by_series.get(series.uid, [])
                if series.instances is not None and series.instances == len(held):
                    yield from held
                    continue
                for sop_uid in self.instances(study.uid, series.uid):
                    yield FileEntry(self.instance_uri(study.uid, series.uid, sop_uid), 0, PACS_VERSION)

    def batches(self, entries: list[FileEntry], size: int) -> list[list[FileEntry]]:
        """One task per series: the PACS answers for a series in one request."""
        groups: dict[tuple[str, str], list[FileEntry]] = defaultdict(list)
        for entry in entries:
            study, series, _ = instance_path(entry.uri)
            groups[study, series].append(entry)
        return list(groups.values())

    def extract_batch(self, entries: Sequence[FileEntry], features: FeatureSets, first_bytes: int,
                      fast: bool) -> list[dict]:
        records: list[dict] = []
        for (study, series), group in _by_series(entries):
            records.extend(self.read_series(study, series, group, features))
        return records


def _by_series(entries: Iterable[FileEntry]) -> list[tuple[tuple[str, str], list[FileEntry]]]:
    """Consecutive entries of one series together, keeping their order."""
    out: list[tuple[tuple[str, str], list[FileEntry]]] = []
    for entry in entries:
        study, series, _ = instance_path(entry.uri)
        if out and out[-1][0] == (study, series):
            out[-1][1].append(entry)
        else:
            out.append(((study, series), [entry]))
    return out
