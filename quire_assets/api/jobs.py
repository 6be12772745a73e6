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
    parse_accessions,
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
    status: str
    run_id: str | None = None
    detail: str | None = None


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
                                  collection=collection, source=request.app.state.settings.source)
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


def shown_job(who: Caller, doc: dict) -> Job:
    """A job with its collection named as the caller names it (its id, for an admin)."""
    collection_id = doc.get("collection_id")
    if collection_id and not who.admin:
        collection_id = shown_collection_id(who.researcher_id, collection_id)
    return Job(**{**doc, "collection_id": collection_id})
