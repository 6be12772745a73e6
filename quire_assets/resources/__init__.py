"""Dagster resources: the DICOM source (folder, S3, DICOMweb, DIMSE), the catalog, and the Parquet IO manager."""

from quire_assets.resources.catalog import CatalogResource
from quire_assets.resources.io_manager import PartitionedParquetIOManager
from quire_assets.resources.pacs import DicomWebSource, DimseSource
from quire_assets.resources.source import DicomSource, LocalDicomSource

__all__ = ["CatalogResource", "DicomSource", "DicomWebSource", "DimseSource", "LocalDicomSource", "PartitionedParquetIOManager", "S3DicomSource"]


def __getattr__(name: str):
    # dagster-aws (and boto3) take ~2 s to import: only S3 users pay for them.
    if name == "S3DicomSource":
        from quire_assets.resources.s3 import S3DicomSource

        return S3DicomSource
    raise AttributeError(name)
