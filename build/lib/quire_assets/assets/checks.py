"""Checks that judge the whole catalog, not one run's accessions.

They read every document, so they are not part of ``ingest_job`` (an archive ingested in 50 runs
would read the catalog 50 times): ``report_job`` evaluates them with the summary, and the
``summary_refresh`` sensor once catalog writes have finished, like ``summary_statistics``.
"""

from dagster import AssetCheckResult, MetadataValue, asset_check

from quire_assets.assets.catalog_assets import catalog_entries
from quire_assets.assets.summary import AFTER_CATALOG_WRITES
from quire_assets.resources import CatalogResource


@asset_check(asset=catalog_entries, automation_condition=AFTER_CATALOG_WRITES, description=(
    "The whole catalog: no series without its study, no instance without its series, and every "
    "count (series per study, instances per series and study) equal to what is present."))
def catalog_integrity(catalog: CatalogResource) -> AssetCheckResult:
    with catalog.open() as cat:
        report = cat.integrity()
    return AssetCheckResult(passed=report["ok"], metadata={
        **{f"{level}_checked": n for level, n in report["checked"].items()},
        "orphan_series": len(report["orphan_series"]), "orphan_instances": len(report["orphan_instances"]),
        "count_mismatches": len(report["count_mismatches"]),
        "examples": MetadataValue.json({k: v[:10] for k, v in report.items() if isinstance(v, list)}),
    })


catalog_checks = [catalog_integrity]
