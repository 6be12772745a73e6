"""Dagster resources: the DICOM source, the catalog, and the Parquet IO manager."""

from quire_assets.resources.catalog import CatalogResource
from quire_assets.resources.io_manager import PartitionedParquetIOManager
from quire_assets.resources.s3 import S3DicomSource
from quire_assets.resources.source import DicomSource, LocalDicomSource

__all__ = ["CatalogResource", "DicomSource", "LocalDicomSource", "PartitionedParquetIOManager", "S3DicomSource"]
