"""Dagster resources: the DICOM source (any URI: folder, S3, DICOMweb, DIMSE), the catalog, and the Parquet IO manager."""

from quire_assets.resources.catalog import CatalogResource
from quire_assets.resources.io_manager import PartitionedParquetIOManager
from quire_assets.resources.source import DicomSource

__all__ = ["CatalogResource", "DicomSource", "PartitionedParquetIOManager"]
