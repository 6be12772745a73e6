"""The DICOM source as one Dagster resource: whichever source its URI names (``sources.registry``)."""

from __future__ import annotations

from collections.abc import Callable

from dagster import ConfigurableResource
from pydantic import Field

from quire_assets.dicom.features import FeatureSets, load_feature_sets
from quire_assets.settings import home_of
from quire_assets.sources import FileSource, SourceIndex, SourceOptions, source_from_uri
from quire_assets.sources.base import Selection
from quire_assets.sources.index import RefreshResult


class DicomSource(ConfigurableResource):
    """Where the archive lives, how it is read, and its incremental index.

    A PACS's credentials are ``EnvVar``s (``QUIRE_PACS_USER``, ...); an S3 bucket's come from the
    AWS chain (``AWS_ACCESS_KEY_ID``, a profile, an instance role; ``AWS_ENDPOINT_URL`` for MinIO).
    """

    uri: str = Field(description="A folder, s3://bucket/prefix, dicomweb+https://host/path or "
                                 "dimse://CALLED_AET@host:port?calling=OUR_AET")
    username: str = Field(default="", description="A DICOMweb PACS's basic auth user, e.g. EnvVar('QUIRE_PACS_USER')")
    password: str = Field(default="", description="Its password, e.g. EnvVar('QUIRE_PACS_PASSWORD')")
    token: str = Field(default="", description="A bearer token instead, e.g. EnvVar('QUIRE_PACS_TOKEN')")
    ca_bundle: str = Field(default="", description="A CA certificate file for the PACS's TLS; verification is always on")
    threads: int = Field(default=0, description=(
        "Requests in flight at most (S3, a PACS); 0: the kind's default (16 S3, 8 DICOMweb, 4 DIMSE)"))
    feature_sets_dir: str = Field(
        default="", description="A folder with study.txt / series.txt / instance.txt; empty: built-in sets")
    workers: int = Field(default=0, description="Parallel readers; 0: one per core (processes) or 8 per core (S3)")
    first_bytes: int = Field(default=0, description=(
        "Bytes read first from each file, more only if needed; 0: the source's default (16 KiB local, 64 KiB S3)"))
    home: str = Field(default="", description="Quire's folder, where the source index lives; empty: $QUIRE_HOME")
    fast_path: bool = Field(default=True, description="Read headers with Quire's fast path (off: pydicom reads all)")
    partitions_kept: int = Field(default=10_000, description=(
        "Accession partitions kept registered besides those being cataloged (QUIRE_PARTITIONS_KEPT); 0: all"))

    def files(self) -> FileSource:
        """The Dagster-free source this resource configures."""
        return source_from_uri(self.uri, SourceOptions(self.username, self.password, self.token, self.ca_bundle,
                                                       self.threads))

    def features(self) -> FeatureSets:
        return load_feature_sets(self.feature_sets_dir or None)

    def index(self, files: FileSource | None = None) -> SourceIndex:
        """The index of this source (or of ``files``, this source already opened)."""
        return SourceIndex(files or self.files(), home_of(self.home), self.fast_path)

    def refresh(self, index: SourceIndex, progress: Callable[[int, int], None] | None = None,
                selection: Selection | None = None) -> RefreshResult:
        """``index`` brought up to date with this resource's feature sets and read settings."""
        return index.refresh(self.features(), workers=self.workers or None, progress=progress,
                             first_bytes=self.first_bytes or None, selection=selection)
