"""Researcher jobs: accession numbers in (JSON, or a CSV as `quire jobs submit` reads it), a job id
out, and the status of each accession as the worker (or the Dagster daemon) runs them."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field, ValidationError

from quire_assets.api.auth import Caller, CallerDep, CatalogDep
from quire_assets.catalog import CatalogError
from quire_assets.research.ids import own_collection_id, shown_collection_id
from quire_assets.research.requests import (
    OUTCOMES,
    parse_accessions,
    retry_request,
    submit_request,
)

router = APIRouter(prefix="/api/v1", tags=["jobs"])
MAX_ACCESSIONS = 10_000
Accession = Annotated[str, Field(min_length=1, max_length=256)]


class NewJob(BaseModel):
    accessions: list[Accession] = Field(min_length=1, max_length=MAX_ACCESSIONS)
    name: str | None = Field(None, max_length=200)
    collection: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$",
                                   description="the collection the job's studies join (default: one named after the job)")


class AccessionState(BaseModel):
    status: str = Field(description="pending, running, or how it ended: " + "; ".join(
        f"{k}: {v}" for k, v in OUTCOMES.items()))
    run_id: str | None = None
    detail: str | None = Field(None, description="why it ended so")
    studies: list[str] | None = Field(None, description="ambiguous: the studies the accession number matches")


class Retry(BaseModel):
    corrections: dict[Accession, Accession] = Field(default_factory=dict, max_length=MAX_ACCESSIONS, description=(
        "accession numbers that were not found or failed, each with the one to ask for instead"))
    name: str | None = Field(None, max_length=200)


class Job(BaseModel):
    job_id: str
    researcher_id: str
    name: str | None = None
    collection_id: str | None = None
    source: str | None = None
    status: str
    num_accessions: int
    accessions: dict[str, AccessionState]
    created_at: str | None = None
    updated_at: str | None = None


CSV_HELP = "one accession number per line, or a CSV with an AccessionNumber column (as `quire jobs submit`)"
SUBMIT_BODY = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": NewJob.model_json_schema(ref_template="#/components/schemas/{model}")},
    "text/csv": {"schema": {"type": "string", "description": CSV_HELP}},
    "multipart/form-data": {"schema": {"type": "object", "required": ["file"], "properties": {
        "file": {"type": "string", "format": "binary", "description": CSV_HELP},
        "name": {"type": "string"}, "collection": {"type": "string"}}}},
}}}


async def _new_job(request: Request) -> NewJob:
    """The job in the body: JSON, a CSV / text body, or a CSV file uploaded as a form."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    try:
        if kind == "application/json":
            return NewJob.model_validate_json(await request.body())
        if kind == "multipart/form-data":
            form = await request.form()
            upload = form.get("file")
            if upload is None or isinstance(upload, str):
                raise HTTPException(422, "the form needs a file field holding the CSV")
            text = (await upload.read()).decode("utf-8-sig")
            return NewJob(accessions=parse_accessions(text), name=form.get("name") or None,
                          collection=form.get("collection") or None)
        if kind in ("text/csv", "text/plain"):
            return NewJob(accessions=parse_accessions((await request.body()).decode("utf-8-sig")),
                          name=request.query_params.get("name"), collection=request.query_params.get("collection"))
    except ValidationError as exc:
        raise HTTPException(422, json.loads(exc.json(include_url=False, include_context=False))) from None
    except UnicodeDecodeError:
        raise HTTPException(400, "the CSV is not UTF-8 text") from None
    raise HTTPException(415, "send application/json, text/csv or a multipart form with a file")


@router.post("/jobs", status_code=202, openapi_extra=SUBMIT_BODY, responses={415: {"description": "wrong body type"}},
             summary="Submit accession numbers to extract; the job runs in the background")
async def submit_job(request: Request, who: CallerDep) -> Job:
    job = await _new_job(request)

    def submit() -> dict:
        catalog = request.app.state.thread_catalog
        limit = request.app.state.settings.max_pending_jobs
        if not who.admin and catalog.count("jobs", {"researcher_id": who.researcher_id,
                                                    "status": {"$in": ["pending", "running"]}}) >= limit:
            raise HTTPException(429, f"you have {limit} jobs waiting or running: submit more once some are done "
                                     "(QUIRE_MAX_PENDING_JOBS)")
        try:
            collection = job.collection and (job.collection if who.admin
                                             else own_collection_id(who.researcher_id, job.collection))
            return submit_request(catalog, who.researcher_id, job.accessions, name=job.name,
                                  collection=collection, source=request.app.state.settings.source,
                                  excluded=policy_exclusion(who))
        except CatalogError as exc:
            raise HTTPException(400, str(exc)) from None

    return shown_job(who, await run_in_threadpool(submit))


@router.get("/jobs", summary="Your jobs, newest first (every researcher's, for an admin)")
def list_jobs(catalog: CatalogDep, who: CallerDep,
              status: Annotated[str | None, Query(description="only jobs in this status")] = None) -> list[Job]:
    flt: dict[str, Any] = {} if who.admin else {"researcher_id": who.researcher_id}
    if status:
        flt["status"] = status
    return [shown_job(who, d) for d in catalog.find("jobs", flt, sort=[("created_at", -1)])]


@router.get("/jobs/{job_id}", summary="A job with the status of each accession")
def get_job(catalog: CatalogDep, who: CallerDep, job_id: str) -> Job:
    doc = catalog.get("jobs", job_id)
    if not who.owns(doc):  # another researcher's job is not there, for this key
        raise HTTPException(404, f"no job {job_id!r}")
    return shown_job(who, doc)


def policy_exclusion(who: Caller) -> str | None:
    """Why a researcher's accession list is refused row by row, if it is: under a policy that hides
    accession numbers (hashed or dropped), looking raw ones up would tell the researcher which exist
    and link them to the pseudonymous patients of the job's collection."""
    if who.admin or not who.policy.hidden("AccessionNumber"):
        return None
    return ("this deployment's PHI policy hides accession numbers from researcher keys: a list of them is not "
            "looked up for you (an admin can submit it)")


@router.post("/jobs/{job_id}/retry", status_code=202, summary=(
    "Resubmit the rows of a job that were not found or failed, corrected: a new job of those rows"))
def retry_job(request: Request, who: CallerDep, job_id: str, body: Retry) -> Job:
    catalog = request.app.state.thread_catalog
    doc = catalog.get("jobs", job_id)
    if not who.owns(doc):
        raise HTTPException(404, f"no job {job_id!r}")
    if doc.get("status") in ("pending", "running"):
        raise HTTPException(409, f"job {job_id!r} is {doc['status']}: retry it once it is over")
    try:
        return shown_job(who, retry_request(catalog, doc, body.corrections, body.name))
    except CatalogError as exc:
        raise HTTPException(400, str(exc)) from None


def shown_job(who: Caller, doc: dict) -> Job:
    """A job with its collection named as the caller names it (its id, for an admin), and the
    studies of an ambiguous row only where the caller's policy keeps study UIDs."""
    collection_id = doc.get("collection_id")
    if collection_id and not who.admin:
        collection_id = shown_collection_id(who.researcher_id, collection_id)
    accessions = doc.get("accessions", {})
    if not who.admin and who.policy.hidden("StudyInstanceUID"):
        accessions = {a: {k: v for k, v in state.items() if k != "studies"} for a, state in accessions.items()}
    return Job(**{**doc, "collection_id": collection_id, "accessions": accessions})
