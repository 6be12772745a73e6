"""Link validation (meta_db's ``/link``): orphans and count mismatches, and their repair."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from quire_assets.api.auth import AdminDep, CallerDep, CatalogDep
from quire_assets.catalog import Catalog
from quire_assets.research.requests import submit_request
from quire_assets.util import chunks

router = APIRouter(prefix="/api/v1", tags=["integrity"])
SHOWN = 1000  # examples per list; the totals count them all


class Integrity(BaseModel):
    ok: bool
    checked: dict[str, int]
    orphan_series: list[str] = Field(description=f"series whose study is missing (at most {SHOWN})")
    orphan_instances: list[str] = Field(description=f"instances whose series is missing (at most {SHOWN})")
    count_mismatches: list[dict[str, Any]] = Field(description=f"counts that differ from the documents present "
                                                               f"(at most {SHOWN})")
    totals: dict[str, int]


class Repair(BaseModel):
    recounted: dict[str, int] = Field(description="series and studies whose counts were re-rolled")
    orphans: int
    job_id: str | None = Field(description="the job re-ingesting the orphans' accessions, if any")
    not_repairable: list[str] = Field(description="orphans without an accession number, or with no source to "
                                                  "ingest them from")
    after: Integrity


def _shown(report: dict) -> Integrity:
    lists = ("orphan_series", "orphan_instances", "count_mismatches")
    return Integrity(ok=report["ok"], checked=report["checked"], totals={k: len(report[k]) for k in lists},
                     **{k: report[k][:SHOWN] for k in lists})


@router.get("/integrity", summary="Orphans and count mismatches across the catalog")
def integrity(catalog: CatalogDep, who: CallerDep) -> Integrity:
    return _shown(catalog.integrity())


def _orphan_accessions(catalog: Catalog, report: dict) -> tuple[set[str], list[str]]:
    accessions: set[str] = set()
    missing: list[str] = []
    for level, uids in (("series", report["orphan_series"]), ("instances", report["orphan_instances"])):
        key = "series_instance_uid" if level == "series" else "sop_instance_uid"
        for chunk in chunks(uids):
            for doc in catalog.find(level, {key: {"$in": list(chunk)}}, projection={key: 1, "accession_number": 1}):
                if doc.get("accession_number"):
                    accessions.add(doc["accession_number"])
                else:
                    missing.append(doc[key])
    return accessions, missing


@router.post("/integrity/repair", summary="Re-roll what is inconsistent (admin)")
def repair(request: Request, catalog: CatalogDep, who: AdminDep) -> Repair:
    """Counts are re-rolled from the documents present at once; orphans need their parents back
    from the source, so their accessions go to a job that ingests them again (the worker or the
    Dagster daemon runs it, as any researcher job)."""
    report = catalog.integrity()
    recounted = catalog.recount(report)
    accessions, not_repairable = _orphan_accessions(catalog, report)
    source = request.app.state.settings.source
    job_id = None
    if accessions and source:
        job_id = submit_request(catalog, who.researcher_id, sorted(accessions), name="integrity repair",
                                source=source)["job_id"]
    elif accessions:
        not_repairable.extend(sorted(accessions))
    return Repair(recounted=recounted, orphans=len(report["orphan_series"]) + len(report["orphan_instances"]),
                  job_id=job_id, not_repairable=not_repairable[:SHOWN], after=_shown(catalog.integrity()))
