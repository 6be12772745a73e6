"""A PACS as the Dagster source resource: DICOMweb or DIMSE. Credentials are ``EnvVar``s."""

from __future__ import annotations

from pydantic import Field

from quire_assets.resources.source import DicomSource
from quire_assets.sources import FileSource


class DicomWebSource(DicomSource):
    """A DICOMweb service (QIDO-RS and WADO-RS metadata), e.g. ``https://pacs.example.org/dicom-web``."""

    url: str = Field(description="The service's base URL (http:// only for a PACS on this machine)")
    username: str = Field(default="", description="Basic auth user, e.g. EnvVar('QUIRE_PACS_USER')")
    password: str = Field(default="", description="Basic auth password, e.g. EnvVar('QUIRE_PACS_PASSWORD')")
    token: str = Field(default="", description="A bearer token instead, e.g. EnvVar('QUIRE_PACS_TOKEN')")
    ca_bundle: str = Field(default="", description="A CA certificate file for the PACS's TLS; verification is always on")
    threads: int = Field(default=8, description="Requests in flight at most")

    def files(self) -> FileSource:
        from quire_assets.sources.dicomweb import DicomWebFiles

        return DicomWebFiles(self.url, self.username, self.password, self.token, self.ca_bundle, threads=self.threads)


class DimseSource(DicomSource):
    """A PACS over DIMSE: C-FIND to list, C-GET to read headers in memory."""

    host: str = Field(description="The PACS's host name or address")
    port: int = Field(description="Its DICOM port")
    called_aet: str = Field(description="The PACS's AE title")
    calling_aet: str = Field(default="QUIRE", description="Quire's AE title, as the PACS knows it")
    threads: int = Field(default=4, description="Associations in flight at most")

    def files(self) -> FileSource:
        from quire_assets.sources.dimse import DimseFiles

        return DimseFiles(self.host, self.port, self.called_aet, self.calling_aet, threads=self.threads)
