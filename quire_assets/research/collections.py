"""Collections: a researcher's named sets of cases (meta_db's shape), each case an accession number
or a few, and the filter that selects a collection's documents at any level."""

from __future__ import annotations

import re
from collections.abc import Sequence

from quire_assets.catalog.base import Catalog, CatalogError
from quire_assets.research.ids import check_id, now, own_collection_id


def case_id_of(accession: str) -> str:
    """A case id from an accession number (text from a file: kept to the id alphabet)."""
    cleaned = re.sub(r"[^A-Za-z0-9._@-]", "-", accession).strip("-._@")[:128]
    return cleaned or "case"


def cases_of(accessions: Sequence[str]) -> list[dict]:
    """A case per accession number."""
    return [case([a], case_id=case_id_of(a)) for a in accessions]


def case(accession_numbers: Sequence[str], case_id: str | None = None, patient_id: str | None = None) -> dict:
    """A collection's case (meta_db's shape): an id, the patient, the accession numbers."""
    accessions = list(dict.fromkeys(a.strip() for a in accession_numbers if a and a.strip()))
    if not accessions:
        raise CatalogError("a case needs at least one accession number")
    return {"case_id": check_id("case", case_id or accessions[0]), "patient_id": patient_id,
            "accession_numbers": accessions}


def merged_cases(existing: Sequence[dict], added: Sequence[dict]) -> list[dict]:
    """Cases by ``case_id``: an added case replaces the one of the same id, order kept."""
    cases = {c["case_id"]: c for c in existing}
    cases.update((c["case_id"], c) for c in added)
    return list(cases.values())


def save_collection(catalog: Catalog, collection_id: str, researcher_id: str, cases: Sequence[dict],
                    name: str | None = None, description: str | None = None) -> dict:
    """Create a collection or add cases to it; returns it."""
    check_id("collection", collection_id)
    stamp = now()
    with catalog.transaction():
        existing = catalog.get("collections", collection_id) or {}
        if existing and existing.get("researcher_id") != researcher_id:
            raise CatalogError(f"collection {collection_id!r} belongs to another researcher")
        doc = {**existing, "collection_id": collection_id, "researcher_id": researcher_id,
               "name": name or existing.get("name") or collection_id,
               "description": description if description is not None else existing.get("description"),
               "cases": merged_cases(existing.get("cases", []), cases),
               "created_at": existing.get("created_at", stamp), "updated_at": stamp}
        catalog.upsert("collections", [doc])
    return doc


def researchers_collection(catalog: Catalog, researcher_id: str, name: str) -> dict | None:
    """A researcher's collection by the name they use: in their own namespace, else (one made for
    them outside the API, such as a job's) the id itself if it is theirs; never another's."""
    for collection_id in (own_collection_id(researcher_id, name), name):
        doc = catalog.get("collections", collection_id)
        if doc is not None and doc.get("researcher_id") == researcher_id:
            return doc
    return None


def remove_case(catalog: Catalog, collection_id: str, case_id: str) -> dict:
    with catalog.transaction():
        doc = catalog.get("collections", collection_id)
        if doc is None:
            raise CatalogError(f"no collection {collection_id!r}")
        cases = [c for c in doc.get("cases", []) if c["case_id"] != case_id]
        if len(cases) == len(doc.get("cases", [])):
            raise CatalogError(f"collection {collection_id!r} has no case {case_id!r}")
        doc = {**doc, "cases": cases, "updated_at": now()}
        catalog.upsert("collections", [doc])
    return doc


def collection_member(catalog: Catalog, collection_id: str) -> dict:
    """A filter for a collection's documents, at any level below patients: those of the studies
    tagged with it (a researcher job's studies) or of its cases' accession numbers (also ones
    cataloged after the collection was made)."""
    doc = catalog.get("collections", collection_id)
    uids = catalog.tagged_studies(collection_id)
    if doc is None:
        if not uids:
            raise CatalogError(f"no collection {collection_id!r}")
        doc = {}
    accessions = sorted({a for c in doc.get("cases", []) for a in c.get("accession_numbers", [])})
    return {"$or": [{"study_instance_uid": {"$in": uids}}, {"accession_number": {"$in": accessions}}]}


def in_collection(catalog: Catalog, collection_id: str, where: dict | None = None) -> dict:
    """``where`` narrowed to a researcher collection's documents (``collection_member``)."""
    member = collection_member(catalog, collection_id)
    return {"$and": [where, member]} if where else member
