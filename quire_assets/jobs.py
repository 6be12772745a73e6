"""Asset jobs: refresh the source index, and catalog accession partitions."""

from dagster import AssetSelection, define_asset_job

from quire_assets.assets import ingest_assets, source_index, summary_statistics
from quire_assets.partitions import accession_partitions

index_job = define_asset_job(
    "index_job",
    selection=AssetSelection.assets(source_index),
    description="List the source, read new or changed headers, register accession partitions.",
)

ingest_job = define_asset_job(
    "ingest_job",
    selection=AssetSelection.assets(*ingest_assets),
    partitions_def=accession_partitions,
    description="Catalog accession partitions (one run takes a range of many partitions).",
)

report_job = define_asset_job(
    "report_job",
    selection=AssetSelection.assets(summary_statistics),
    description="Summary statistics over the catalog, and the HTML report.",
)

all_jobs = [index_job, ingest_job, report_job]
