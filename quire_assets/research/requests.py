"""Researcher requests (meta_db's shape), kept in the catalog's ``jobs`` collection.

In code, "job" means a Dagster job; what a researcher submits is a *request* (the ``quire jobs``
command, the API's ``/jobs`` routes and the ``jobs`` collection keep the name researchers know,
``job_id`` included).
A request belongs to a researcher and lists accession numbers to extract; each accession carries
its own status (``pending → running →`` one of ``OUTCOMES``, each with a reason in ``detail``)
and the request's status follows from them: ``done`` when every accession is, ``partial`` when
some delivered something, ``failed`` when none did. A researcher resubmits only the rows that
delivered nothing (``retry_request``), corrected. Its collection lists the same
accessions as its cases; cataloged studies of those accessions carry the collection in
``collection_ids``.
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from quire_assets.catalog.base import Catalog, CatalogError
from quire_assets.research.collections import cases_of, save_collection
from quire_assets.research.ids import check_id, now

ACCESSION_COLUMNS = ("AccessionNumber", "Accession Number", "accession_number", "Accession")
# How an accession of a request ends (reconciled against the catalog when its run is over):
OUTCOMES = {
    "done": "cataloged whole",
    "ambiguous": "cataloged, but the accession number matches several studies (all of them are in the collection)",
    "partial": "cataloged, but some of its files could not be read (the detail says how many and why)",
    "not_found": "the archive has no such accession number",
    "excluded": "refused by the PHI policy, which hides accession numbers from researcher keys",
    "failed": "its run failed",
}
TERMINAL = set(OUTCOMES)
DELIVERED = {"done", "ambiguous", "partial"}
RETRIED = {"not_found", "failed"}  # what a researcher can fix and resubmit
def parse_accessions(text: str) -> list[str]:
    """Accession numbers from a CSV with an ``AccessionNumber`` (or ``Accession Number``) column,
    or from plain text with one per line (commas also separate). Order kept, duplicates dropped."""
    text = text.lstrip("\ufeff")
    first = text.splitlines()[0] if text.strip() else ""
    values: list[str] = []
    header = next(csv.reader([first]), []) if first else []
    column = next((c for c in header if c.strip() in ACCESSION_COLUMNS), None)
    if column is not None:
        for row in csv.DictReader(io.StringIO(text)):
            values.append((row.get(column) or "").strip())
    else:
        for line in text.splitlines():
            values.extend(part.strip() for part in line.split(","))
    return list(dict.fromkeys(v for v in values if v and not v.startswith("#")))


def serves(request: dict, source_uri: str) -> bool:
    """Whether a request is for this source (one that names none is for any)."""
    return not request.get("source") or request["source"] == source_uri


def request_status(accessions: dict[str, dict[str, Any]]) -> str:
    statuses = [a["status"] for a in accessions.values()]
    if not statuses or all(s == "pending" for s in statuses):
        return "pending"
    if any(s not in TERMINAL for s in statuses):
        return "running"
    if all(s == "done" for s in statuses):
        return "done"
    if any(s in DELIVERED for s in statuses):
        return "partial"
    return "failed"


def submit_request(
    catalog: Catalog,
    researcher_id: str,
    accessions: Iterable[str],
    name: str | None = None,
    collection: str | None = None,
    source: str | None = None,
    excluded: str | None = None,
    retry_of: str | None = None,
) -> dict:
    """Create the researcher if new, the request's collection (a case per accession) and the
    pending request (a document of the ``jobs`` collection); returns it. With ``excluded`` (the
    reason), every row ends ``excluded`` at once and nothing is looked up."""
    check_id("researcher", researcher_id)
    accessions = list(dict.fromkeys(a.strip() for a in accessions if a and a.strip()))
    if not accessions:
        raise CatalogError("a job needs at least one accession number")
    stamp = now()
    if catalog.get("researchers", researcher_id) is None:
        catalog.upsert("researchers", [{"researcher_id": researcher_id, "created_at": stamp}])
    job_id = f"request-{datetime.now(UTC):%Y%m%d}-{uuid.uuid4().hex[:8]}"
    collection_id = check_id("collection", collection) if collection else job_id
    # A job's new collection is named after the job (the collection facet shows names).
    save_collection(catalog, collection_id, researcher_id, [] if excluded else cases_of(accessions),
                    name=None if catalog.get("collections", collection_id) else name or collection or job_id)
    request = {
        "job_id": job_id, "researcher_id": researcher_id, "name": name or job_id, "collection_id": collection_id,
        "source": source, "status": "pending", "num_accessions": len(accessions),
        "accessions": {a: {"status": "excluded" if excluded else "pending", "run_id": None, "detail": excluded}
                       for a in accessions},
        "created_at": stamp, "updated_at": stamp, **({"retry_of": retry_of} if retry_of else {}),
    }
    request["status"] = request_status(request["accessions"])
    catalog.upsert("jobs", [request])
    return request


def update_accessions(catalog: Catalog, job_id: str, updates: dict[str, dict[str, Any]]) -> dict:
    """Set the status (and run id, detail) of some of a request's accessions; re-derive the request's status."""
    with catalog.transaction():
        request = catalog.get("jobs", job_id)
        if request is None:
            raise CatalogError(f"no job {job_id!r}")
        for accession, change in updates.items():
            if accession in request["accessions"]:
                request["accessions"][accession] = {**request["accessions"][accession], **change}
        request["status"] = request_status(request["accessions"])
        request["updated_at"] = now()
        catalog.upsert("jobs", [request])
    return request


def pending_requests(catalog: Catalog, source_uri: str, request_ids: list[str] | None = None) -> list[dict]:
    """Pending requests for this source, oldest first (another code location, or ``quire jobs
    submit --wait``, serves the requests of other sources)."""
    flt = {"status": "pending", **({"job_id": {"$in": request_ids}} if request_ids else {})}
    return [r for r in catalog.find("jobs", flt, sort=[("created_at", 1)]) if serves(r, source_uri)]


def requested_accessions(catalog: Catalog, source_uri: str, request_ids: list[str] | None = None) -> list[str]:
    """The pending accessions of the pending requests this source serves."""
    wanted: dict[str, None] = {}
    for request in pending_requests(catalog, source_uri, request_ids):
        wanted.update((a, None) for a, state in request["accessions"].items() if state["status"] == "pending")
    return list(wanted)


def accessions_in_flight(catalog: Catalog, source_uri: str) -> list[str]:
    """The accessions of this source's requests that are not over yet (pending or running)."""
    found: dict[str, None] = {}
    for request in catalog.find("jobs", {"status": {"$in": ["pending", "running"]}}):
        if serves(request, source_uri):
            found.update((a, None) for a, state in request["accessions"].items() if state["status"] not in TERMINAL)
    return list(found)


def retry_request(catalog: Catalog, request: dict, corrections: dict[str, str] | None = None,
                  name: str | None = None) -> dict:
    """A new request of the rows of ``request`` that delivered nothing (not found, failed), each
    replaced by its correction where one is given; the same researcher, source and collection."""
    retried = [a for a, state in request["accessions"].items() if state["status"] in RETRIED]
    corrections = corrections or {}
    wrong = sorted(set(corrections) - set(retried))
    if wrong:
        raise CatalogError(f"only rows that were not found or failed are resubmitted, not {', '.join(wrong[:5])}")
    if not retried:
        raise CatalogError(f"job {request['job_id']!r} has no row that was not found or failed")
    return submit_request(catalog, request["researcher_id"], [corrections.get(a, a) for a in retried],
                          name=name or f"{request.get('name') or request['job_id']} (retry)",
                          collection=request.get("collection_id"), source=request.get("source"),
                          retry_of=request["job_id"])


def fail_unfinished(catalog: Catalog, request_id: str, detail: str) -> None:
    """Mark a request's accessions that are still pending or running failed, with why."""
    request = catalog.get("jobs", request_id) or {"accessions": {}}
    update_accessions(catalog, request_id, {a: {"status": "failed", "detail": detail[:500]}
                                            for a, state in request["accessions"].items()
                                            if state["status"] in ("pending", "running")})
