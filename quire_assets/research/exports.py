"""A cohort as researchers hand it to a pipeline: the files of the studies, series or instances a
filter selects, with the identifiers that place each file."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from quire_assets.catalog.base import KEYS, Catalog, CatalogError
from quire_assets.research.collections import case_id_of
from quire_assets.util import chunks

EXPORT_COLUMNS = ["accession_number", "patient_id", "study_instance_uid", "series_instance_uid",
                  "sop_instance_uid", "uri"]


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


def fetch_commands(rows: Iterator[dict] | Sequence[dict], dest: str = "cohort") -> list[str]:
    """An s5cmd command file (``s5cmd run FILE``; each line also reads as ``aws s3 cp`` arguments)
    copying a cohort's ``s3://`` files to ``dest/<accession>/<SOP Instance UID>.dcm``. The local
    names are made from identifiers, never from the object keys (text from the archive: a key
    holding ``../`` must not choose where a file lands)."""
    lines = []
    for row in rows:
        uri = row.get("uri") or ""
        if not uri.startswith("s3://"):
            continue
        folder = case_id_of(row.get("accession_number") or "no-accession")
        name = case_id_of(row.get("sop_instance_uid") or "instance")
        lines.append(f'cp "{uri.replace(chr(34), "%22")}" "{dest}/{folder}/{name}.dcm"')
    return lines
