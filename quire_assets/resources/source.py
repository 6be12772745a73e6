"""The DICOM source as a Dagster resource: an abstract ``DicomSource`` with one subclass per kind."""

from __future__ import annotations

from abc import ABC, abstractmethod

from dagster import ConfigurableResource
from pydantic import Field

from quire_assets.dicom.features import FeatureSets, load_feature_sets
from quire_assets.settings import home_of
from quire_assets.sources import FileSource, SourceIndex


class DicomSource(ConfigurableResource, ABC):
    """Where the archive lives, how it is read, and its incremental index."""

    feature_sets_dir: str = Field(
        default="", description="A folder with study.txt / series.txt / instance.txt; empty: built-in sets")
    workers: int = Field(default=0, description="Parallel readers; 0: one per core (processes) or 8 per core (S3)")
    first_bytes: int = Field(default=0, description=(
        "Bytes read first from each file, more only if needed; 0: the source's default (16 KiB local, 64 KiB S3)"))
    home: str = Field(default="", description="Quire's folder, where the source index lives; empty: $QUIRE_HOME")
    fast_path: bool = Field(default=True, description="Read headers with Quire's fast path (off: pydicom reads all)")

    @abstractmethod
    def files(self) -> FileSource:
        """The Dagster-free source this resource configures."""

    def features(self) -> FeatureSets:
        return load_feature_sets(self.feature_sets_dir or None)

    def index(self, files: FileSource | None = None) -> SourceIndex:
        """The index of this source (or of ``files``, this source already opened)."""
        return SourceIndex(files or self.files(), home_of(self.home), self.fast_path)


class LocalDicomSource(DicomSource):
    """A folder on this machine (or a mounted share)."""

    root: str = Field(description="The archive's top folder")

    def files(self) -> FileSource:
        from quire_assets.sources.local import LocalFiles

        return LocalFiles(self.root)
