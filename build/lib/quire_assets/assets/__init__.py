"""Dagster assets: source index → files → instances → series → studies → catalog entries."""

from quire_assets.assets.catalog_assets import (
    catalog_entries,
    dicom_files,
    instance_records,
    series_rollups,
    source_index,
    study_rollups,
)
from quire_assets.assets.checks import catalog_checks, catalog_integrity
from quire_assets.assets.summary import summary_statistics

ingest_assets = [dicom_files, instance_records, series_rollups, study_rollups, catalog_entries]
all_assets = [source_index, *ingest_assets, summary_statistics]

__all__ = ["all_assets", "catalog_checks", "catalog_integrity", "ingest_assets", "summary_statistics"]
