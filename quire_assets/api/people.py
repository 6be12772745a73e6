"""Researchers, their keys, and their collections of cases."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, Field

from quire_assets.api.auth import AdminDep, CallerDep, CatalogDep
from quire_assets.api.reads import (
    LIST_RESPONSES,
    Cursor,
    Fields,
    Fmt,
    Limit,
    Page,
    Reader,
    Sort,
    Where,
    parse_where,
    split_fields,
)
from quire_assets.catalog import CatalogError
from quire_assets.catalog.filters import user_filter
from quire_assets.dicom.records import partition_key
from quire_assets.research.collections import (
    case,
    cases_of,
    collection_member,
    remove_case,
    researchers_collection,
    save_collection,
)
from quire_assets.research.ids import own_collection_id, shown_collection_id
from quire_assets.research.researchers import add_researcher, issue_key, public, revoke_key

router = APIRouter(prefix="/api/v1")
ID = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$")


class Researcher(BaseModel):
    researcher_id: str
    name: str | None = None
    email: str | None = None
    admin: bool = False
    created_at: str | None = None
    key_id: str | None = None
    key_created_at: str | None = None
    key_revoked_at: str | None = None


class NewResearcher(BaseModel):
    researcher_id: Annotated[str, ID]
    name: str | None = Field(None, max_length=200)
    email: str | None = Field(None, max_length=200)
    admin: bool = False


class IssuedKey(BaseModel):
    researcher: Researcher
    key: str = Field(description="shown this once: only its hash is kept")


class Case(BaseModel):
    case_id: Annotated[str | None, ID] = None
    patient_id: str | None = Field(None, max_length=64)
    accession_numbers: list[Annotated[str, Field(min_length=1, max_length=256)]] = Field(min_length=1,
                                                                                          max_length=10_000)


class Cases(BaseModel):
    cases: list[Case] = Field(min_length=1, max_length=10_000)


class NewCollection(BaseModel):
    collection_id: Annotated[str, ID]
    name: str | None = Field(None, max_length=200)
    description: str | None = Field(None, max_length=2000)
    cases: list[Case] = Field(default_factory=list, max_length=10_000)


class Collection(BaseModel):
    collection_id: str
    researcher_id: str
    name: str | None = None
    description: str | None = None
    cases: list[dict[str, Any]]
    created_at: str | None = None
    updated_at: str | None = None


# ---- researchers ------------------------------------------------------------------------------


@router.get("/researchers", tags=["researchers"], summary="Every researcher (an admin), or yourself")
def list_researchers(catalog: CatalogDep, who: CallerDep) -> list[Researcher]:
    docs = catalog.find("researchers") if who.admin else [d for d in [catalog.get("researchers", who.researcher_id)] if d]
    return [Researcher(**public(d)) for d in docs]


@router.get("/researchers/me", tags=["researchers"], summary="Who this key belongs to")
def me(catalog: CatalogDep, who: CallerDep) -> Researcher:
    doc = catalog.get("researchers", who.researcher_id)
    return Researcher(**public(doc)) if doc else Researcher(researcher_id=who.researcher_id, admin=who.admin)


@router.post("/researchers", status_code=201, tags=["researchers"], summary="Add a researcher and issue their key")
def create_researcher(catalog: CatalogDep, who: AdminDep, body: NewResearcher) -> IssuedKey:
    try:
        doc, key = add_researcher(catalog, body.researcher_id, body.name, body.email, body.admin)
    except CatalogError as exc:
        raise HTTPException(409, str(exc)) from None
    return IssuedKey(researcher=Researcher(**doc), key=key)


@router.post("/researchers/{researcher_id}/key", status_code=201, tags=["researchers"],
             summary="Issue a new key (the old one stops working)")
def new_key(catalog: CatalogDep, who: AdminDep, researcher_id: str) -> IssuedKey:
    if catalog.get("researchers", researcher_id) is None:
        raise HTTPException(404, f"no researcher {researcher_id!r}")
    key = issue_key(catalog, researcher_id)
    return IssuedKey(researcher=Researcher(**public(catalog.get("researchers", researcher_id))), key=key)


@router.delete("/researchers/{researcher_id}/key", tags=["researchers"], summary="Revoke a researcher's key")
def revoke(catalog: CatalogDep, who: AdminDep, researcher_id: str) -> Researcher:
    if catalog.get("researchers", researcher_id) is None:
        raise HTTPException(404, f"no researcher {researcher_id!r}")
    return Researcher(**revoke_key(catalog, researcher_id))


# ---- collections ------------------------------------------------------------------------------


def _cases(cases: list[Case]) -> list[dict]:
    return [case(c.accession_numbers, c.case_id, c.patient_id) for c in cases]


def _room_for_a_collection(request: Request, catalog: Any, who: Any) -> None:
    limit = request.app.state.settings.max_collections
    if not who.admin and catalog.count("collections", {"researcher_id": who.researcher_id}) >= limit:
        raise HTTPException(429, f"you have {limit} collections: remove some first (QUIRE_MAX_COLLECTIONS)")


def own_collection(catalog: Any, who: Any, collection_id: str) -> dict:
    """The caller's collection by the name they use (any by its id, for an admin)."""
    doc = catalog.get("collections", collection_id) if who.admin else \
        researchers_collection(catalog, who.researcher_id, collection_id)
    if doc is None:  # another researcher's collection is not there, for this key
        raise HTTPException(404, f"no collection {collection_id!r}")
    return doc


def shown(who: Any, doc: dict) -> Collection:
    return Collection(**{**doc, "collection_id": doc["collection_id"] if who.admin
                         else shown_collection_id(who.researcher_id, doc["collection_id"])})


def new_collection_id(catalog: Any, who: Any, name: str) -> str:
    """Where a collection the caller names is made; 409 only for a name the caller already uses."""
    collection_id = name if who.admin else own_collection_id(who.researcher_id, name)
    if catalog.get("collections", collection_id) is not None:
        raise HTTPException(409, f"you have a collection {name!r} (add cases to it with "
                                 f"POST /api/v1/collections/{name}/cases)")
    return collection_id


@router.get("/collections", tags=["collections"], summary="Your collections (every one, for an admin)")
def list_collections(catalog: CatalogDep, who: CallerDep) -> list[Collection]:
    flt = {} if who.admin else {"researcher_id": who.researcher_id}
    return [shown(who, d) for d in catalog.find("collections", flt, sort=[("collection_id", 1)])]


@router.post("/collections", status_code=201, tags=["collections"], summary="Create a collection of cases")
def create_collection(request: Request, catalog: CatalogDep, who: CallerDep, body: NewCollection) -> Collection:
    _room_for_a_collection(request, catalog, who)
    collection_id = new_collection_id(catalog, who, body.collection_id)
    saved = save_collection(catalog, collection_id, who.researcher_id, _cases(body.cases),
                            body.name or body.collection_id, body.description)
    _tag_studies(catalog, who, saved)
    return shown(who, saved)


class NewCohort(BaseModel):
    collection_id: Annotated[str, ID]
    name: str | None = Field(None, max_length=200)
    description: str | None = Field(None, max_length=2000)
    level: Literal["studies", "series", "instances"] = "studies"
    where: dict[str, Any] | None = Field(None, description="a MongoDB filter document on that level")


@router.post("/cohorts", status_code=201, tags=["collections"],
             summary="Save what a filter selects as a collection (a case per accession number)")
def save_cohort(request: Request, catalog: CatalogDep, who: CallerDep, body: NewCohort) -> Collection:
    _room_for_a_collection(request, catalog, who)
    reader = Reader(request, catalog, who, body.level, user_filter(body.where), None, [], None)
    accessions = sorted(v for v, _ in catalog.value_counts(body.level, "accession_number", reader.where))
    if not accessions:
        raise HTTPException(400, "the filter selects no document with an accession number")
    collection_id = new_collection_id(catalog, who, body.collection_id)
    saved = save_collection(catalog, collection_id, who.researcher_id, cases_of(accessions),
                            body.name or body.collection_id, body.description)
    _tag_studies(catalog, who, saved)
    return shown(who, saved)


def _tag_studies(catalog: Any, who: Any, collection: dict) -> None:
    """An admin's collection tags its studies (``collection_ids``: the studies' collection facet),
    as a finished job tags its own. A researcher's cases are accession numbers as the research view
    shows them (pseudonyms, perhaps), and ``collection_ids`` is never shown to researchers: their
    collections select through their cases (``collection=``)."""
    if who.admin:
        catalog.add_to_collection(collection["collection_id"], sorted(
            {partition_key(a, None) for c in collection["cases"] for a in c["accession_numbers"]}))


@router.get("/collections/{collection_id}", tags=["collections"], summary="One collection with its cases")
def get_collection(catalog: CatalogDep, who: CallerDep, collection_id: str) -> Collection:
    return shown(who, own_collection(catalog, who, collection_id))


@router.post("/collections/{collection_id}/cases", tags=["collections"],
             summary="Add cases (a case of the same case_id is replaced)")
def add_cases(catalog: CatalogDep, who: CallerDep, collection_id: str, body: Cases) -> Collection:
    doc = own_collection(catalog, who, collection_id)
    saved = save_collection(catalog, doc["collection_id"], doc["researcher_id"], _cases(body.cases))
    _tag_studies(catalog, who, saved)
    return shown(who, saved)


@router.delete("/collections/{collection_id}/cases/{case_id}", tags=["collections"], summary="Remove a case")
def delete_case(catalog: CatalogDep, who: CallerDep, collection_id: str, case_id: str) -> Collection:
    doc = own_collection(catalog, who, collection_id)
    try:
        return shown(who, remove_case(catalog, doc["collection_id"], case_id))
    except CatalogError as exc:
        raise HTTPException(404, str(exc)) from None


@router.get("/collections/{collection_id}/studies", tags=["collections"], response_model=Page,
            responses=LIST_RESPONSES, summary="The cataloged studies of a collection's cases")
def collection_studies(request: Request, catalog: CatalogDep, who: CallerDep, collection_id: str,
                       where: Where = None, sort: Sort = None, fields: Fields = None, limit: Limit = 100,
                       cursor: Cursor = None, format: Fmt = "json") -> Any:
    doc = own_collection(catalog, who, collection_id)
    reader = Reader(request, catalog, who, "studies", parse_where(where), sort, split_fields(fields), None,
                    collection_member(catalog, doc["collection_id"]))
    return reader.respond(limit, cursor, format)
