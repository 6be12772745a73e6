"""A cohort as researchers hand it to a pipeline: the files of the studies, series or instances a
filter selects, with the identifiers that place each file (no Dagster here)."""

from __future__ import annotations

from collections.abc import Iterator

from quire_assets.catalog.base import KEYS, Catalog, CatalogError, chunks

EXPORT_COLUMNS = ["accession_number", "patient_id", "study_instance_uid", "series_instance_uid",
                  "sop_instance_uid", "uri"]


def in_collection(catalog: Catalog, collection_id: str, where: dict | None = None) -> dict:
    """``where`` narrowed to the studies of a researcher collection (collections tag studies, so
    this is what makes membership usable at series and instance level)."""
    uids = [s["study_instance_uid"] for s in catalog.find(
        "studies", {"collection_ids": collection_id}, projection={"study_instance_uid": 1})]
    if not uids and catalog.get("collections", collection_id) is None:
        raise CatalogError(f"no collection {collection_id!r}")
    member = {"study_instance_uid": {"$in": uids}}
    return {"$and": [where, member]} if where else member


def cohort_files(catalog: Catalog, level: str, where: dict | None = None) -> Iterator[dict]:
    """One row per file of the selected documents (every location of an instance held by several
    files), in ``EXPORT_COLUMNS``."""
    if level not in ("studies", "series", "instances"):
        raise CatalogError(f"export takes studies, series or instances, not {level!r}")
    key = KEYS[level]
    selected = [d[key] for d in catalog.find(level, where or {}, projection={key: 1}, sort=[(key, 1)])]
    patients = {}
    for chunk in chunks(selected):
        instances = catalog.find("instances", {key: {"$in": list(chunk)}}, sort=[(key, 1), ("sop_instance_uid", 1)],
                                 projection={c: 1 for c in [*EXPORT_COLUMNS, "uris"]})
        missing = {d["study_instance_uid"] for d in instances} - set(patients)
        for sub in chunks(sorted(missing)):
            patients.update((s["study_instance_uid"], s.get("patient_id")) for s in catalog.find(
                "studies", {"study_instance_uid": {"$in": list(sub)}},
                projection={"study_instance_uid": 1, "patient_id": 1}))
        for doc in instances:
            for uri in doc.get("uris") or [doc.get("uri")]:
                yield {**{c: doc.get(c) for c in EXPORT_COLUMNS}, "patient_id": patients.get(doc["study_instance_uid"]),
                       "uri": uri}
