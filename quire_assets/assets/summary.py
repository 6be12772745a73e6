"""Summary statistics over the catalog, as numbers and markdown tables in the Dagster UI, and
as the offline HTML report ``quire report`` also writes."""

from dagster import AssetExecutionContext, AutomationCondition, MaterializeResult, MetadataValue, asset

from quire_assets.assets.catalog_assets import GROUP, catalog_entries
from quire_assets.resources import CatalogResource


def markdown_table(title: str, counts: dict, key: str, value: str) -> str:
    rows = "\n".join(f"| {k} | {v:,} |" for k, v in counts.items()) or "| (none) | 0 |"
    return f"**{title}**\n\n| {key} | {value} |\n|---|---:|\n{rows}\n"


# Refreshed once after catalog writes, however many accession partitions a run or a backfill wrote,
# and not while a write is still running (eager() would also wait for every registered partition to
# have been cataloged, which an archive still being ingested never is).
AFTER_CATALOG_WRITES = (AutomationCondition.any_deps_updated().since_last_handled()
                        & ~AutomationCondition.any_deps_in_progress() & ~AutomationCondition.in_progress())


@asset(deps=[catalog_entries], group_name=GROUP, kinds={"python", "plotly"}, automation_condition=AFTER_CATALOG_WRITES,
       description=(
    "Total studies, total slices, average slices per study, slice thickness and sex distributions, "
    "and more, over the whole catalog; also written as an offline HTML report."))
def summary_statistics(context: AssetExecutionContext, catalog: CatalogResource) -> MaterializeResult:
    # plotly is heavy to import: only this asset needs it
    from quire_assets.report import catalog_report, write_report

    with catalog.open() as cat:
        stats, page = catalog_report(cat, plotly="")
    report = write_report(page, catalog.reports_dir(), linked=True)
    tables = [
        markdown_table("Slice thickness distribution", stats["slice_thickness_distribution"]["series"],
                       "slice thickness (mm)", "series"),
        markdown_table("Sex distribution", stats["sex_distribution"], "sex", "patients"),
        markdown_table("Modality distribution", stats["modality_distribution"], "modality", "series"),
        markdown_table("Scanner model distribution", stats["model_distribution"], "manufacturer and model", "series"),
        markdown_table("Study year distribution", stats["study_year_distribution"], "year", "studies"),
        markdown_table("Patient age distribution", stats["patient_age_distribution"], "age", "patients"),
    ]
    context.log.info(f"report written to {report}")
    return MaterializeResult(metadata={
        "total_studies": stats["total_studies"],
        "total_instances": stats["total_instances"],
        "total_images": stats["total_images"],
        "average_images_per_study": float(stats["average_images_per_study"]),
        "total_series": stats["total_series"],
        "total_patients": stats["total_patients"],
        "distributions": MetadataValue.md("\n".join(tables)),
        "report": MetadataValue.path(str(report)),
    })
