"""A cohort as researchers hand it to a pipeline: the files of the studies, series or instances a
filter selects, with the identifiers that place each file."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from quire_assets.catalog.base import KEYS, Catalog, CatalogError
from quire_assets.research.collections import case_id_of, in_collection
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


# Versioned cohort packages: Parquet in the shape of NCI IDC's index (idc-index), one flat row per
# series with its study's and patient's attributes, a manifest that says what was asked of which
# catalog and under which policy, and a README for the people who open the folder.

PACKAGE_VERSION = 1
# Fields of a document that say where a file is or when it was written, not what it holds: a
# series whose files move or are re-read unchanged is the same series to a researcher.
VOLATILE = frozenset({"_id", "updated_at", "partition_version", "uri", "uris", "locations", "sources", "source"})
SERIES_COUNTS = {"num_instances": "instanceCount", "num_frames": "frameCount"}
STUDY_COUNTS = {"num_series": "studySeriesCount", "num_instances": "studyInstanceCount"}
STUDY_WIDE = frozenset({*STUDY_COUNTS.values(), "ModalitiesInStudy"})


@dataclass(frozen=True)
class Package:
    """What a package holds: its folder, the files written and the manifest."""

    folder: Path
    files: list[str]
    manifest: dict


def series_rows(catalog: Catalog, series_keys: Sequence[str]) -> Iterator[dict]:
    """One flat row per series, keyed by DICOM keyword: the patient's and study's attributes (from
    the study document), then the series' own, the keys, and the counts (``instanceCount``)."""
    for chunk in chunks(list(series_keys)):
        docs = catalog.find("series", {"series_instance_uid": {"$in": list(chunk)}}, sort=[("series_instance_uid", 1)])
        study_uids = sorted({d["study_instance_uid"] for d in docs})
        studies = {s["study_instance_uid"]: s for s in catalog.find(
            "studies", {"study_instance_uid": {"$in": study_uids}})}
        for doc in docs:
            study = studies.get(doc["study_instance_uid"], {})
            row = {**(study.get("metadata") or {}), **(doc.get("metadata") or {})}
            row.update({"StudyInstanceUID": doc["study_instance_uid"], "SeriesInstanceUID": doc["series_instance_uid"],
                        "AccessionNumber": doc.get("accession_number"), "PatientID": study.get("patient_id",
                                                                                              doc.get("patient_id"))})
            row.update({name: study.get(field) for field, name in STUDY_COUNTS.items()})
            row.update({name: doc.get(field) for field, name in SERIES_COUNTS.items()})
            row["ModalitiesInStudy"] = study.get("modalities")
            # What Quire says of the series: its labels and quality (docs/catalog.md).
            row.update({"seriesTypes": doc.get("series_types"), "qualityFlags": doc.get("quality_flags"),
                        "completeVolume": doc.get("complete_volume")})
            yield row


def instance_rows(catalog: Catalog, series_keys: Sequence[str], with_locations: bool) -> Iterator[dict]:
    """One row per instance of the series: its keys, number and attributes (and its file, where the
    caller may see it)."""
    for chunk in chunks(list(series_keys)):
        for doc in catalog.find("instances", {"series_instance_uid": {"$in": list(chunk)}},
                                sort=[("series_instance_uid", 1), ("instance_number", 1), ("sop_instance_uid", 1)]):
            row = {**(doc.get("metadata") or {}), "SOPInstanceUID": doc["sop_instance_uid"],
                   "SeriesInstanceUID": doc["series_instance_uid"], "StudyInstanceUID": doc["study_instance_uid"],
                   "AccessionNumber": doc.get("accession_number"), "size": doc.get("size")}
            if with_locations and doc.get("uri"):
                row["uri"] = doc["uri"]
            yield row


def row_digest(row: dict) -> str:
    """A short SHA-256 of what a series row holds (for telling a changed series from an unchanged
    one): not its study's counts, which a new series of the same study changes."""
    text = json.dumps({k: v for k, v in row.items() if k not in VOLATILE and k not in STUDY_WIDE},
                      sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _table(rows: list[dict]):
    """A pyarrow table of rows whose columns may mix types (a number kept as text because its file
    broke its VR): such a column, and every list or document, is written as text (JSON)."""
    import pyarrow as pa

    columns: dict[str, list] = {}
    for i, row in enumerate(rows):
        for key in row:
            columns.setdefault(key, [None] * i)
        for key, values in columns.items():
            values.append(row.get(key))
    arrays = {}
    for name, values in columns.items():
        kinds = {type(v) for v in values if v is not None}
        if kinds <= {int} or kinds <= {float, int} or kinds <= {str} or kinds <= {bool}:
            arrays[name] = pa.array([float(v) if kinds == {float, int} and v is not None else v for v in values])
        else:
            arrays[name] = pa.array([None if v is None else v if isinstance(v, str)
                                     else json.dumps(v, sort_keys=True, default=str) for v in values], pa.string())
    return pa.table(arrays)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def selected_series(catalog: Catalog, level: str, where: dict | None) -> list[str]:
    """The series a filter at ``level`` selects (a study's or an instance's series)."""
    if level == "series":
        return catalog.keys("series", where or {})
    if level not in ("studies", "instances"):
        raise CatalogError(f"a package is of studies, series or instances, not {level!r}")
    return sorted({v for v, _ in catalog.value_counts(level if level == "instances" else "series",
                                                       "series_instance_uid", where if level == "instances" else
                                                       {"study_instance_uid": {"$in": catalog.keys("studies", where)}})})


def _question_keys(catalog: Catalog, query: dict, snapshot: bool) -> list[str]:
    """The series a package's question selects in the catalog as it is now."""
    if snapshot:
        return catalog.keys("series")
    where = query.get("where") or {}
    if query.get("collection"):
        where = in_collection(catalog, query["collection"], where)
    return selected_series(catalog, query.get("level", "series"), where)


def _asked_accessions(catalog: Catalog, collection: str | None) -> list[str]:
    doc = catalog.get("collections", collection) if collection else None
    return sorted({a for case in (doc or {}).get("cases", []) for a in case.get("accession_numbers", [])})


def write_package(catalog: Catalog, folder: str | os.PathLike[str], *, level: str = "series",
                  where: dict | None = None, collection: str | None = None, policy: dict | None = None,
                  instances: bool = False, with_locations: bool = True, with_errors: bool = True,
                  snapshot: bool = False) -> Package:
    """Write a cohort (the ``level`` documents ``where`` selects, within ``collection``) or, with
    ``snapshot``, the whole catalog to ``folder``: ``series.parquet``, ``instances.parquet`` on
    request, ``README.md`` and ``manifest.json``. ``policy`` describes the PHI policy the catalog
    was read under (None: the identifiable catalog). Without ``with_errors`` (a researcher's key:
    error records name files) the files that could not be read are not listed."""
    import pyarrow.parquet as pq

    target = Path(folder)
    target.mkdir(parents=True, exist_ok=True)
    query = {"level": level, "where": where or {}, **({"collection": collection} if collection else {})}
    keys = _question_keys(catalog, query, snapshot)
    rows = list(series_rows(catalog, keys))
    written = ["series.parquet"]
    pq.write_table(_table(rows), target / "series.parquet")
    instance_count = 0
    if instances:
        instance_table = _table(list(instance_rows(catalog, keys, with_locations)))
        instance_count = instance_table.num_rows
        pq.write_table(instance_table, target / "instances.parquet")
        written.append("instances.parquet")
    shortfall = _shortfall(catalog, rows, _asked_accessions(catalog, collection), with_errors)
    manifest = {
        "package_version": PACKAGE_VERSION,
        "kind": "snapshot" if snapshot else "cohort",
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "quire_version": _version(),
        "catalog": {"write_log_position": catalog.last_change()},
        "query": query,
        "phi_policy": policy or {"applied": False, "note": "the identifiable catalog (an operator's or admin's export)"},
        "counts": {"patients": len({r.get("PatientID") for r in rows}),
                   "studies": len({r["StudyInstanceUID"] for r in rows}), "series": len(rows),
                   "instances": sum(r.get("instanceCount") or 0 for r in rows)},
        "shortfall": shortfall,
        "series": {r["SeriesInstanceUID"]: row_digest(r) for r in rows},
    }
    (target / "README.md").write_text(_readme(manifest, rows, instances), encoding="utf-8")
    written.append("README.md")
    manifest["files"] = {name: _sha256(target / name) for name in written}
    if instances:
        manifest["counts"]["instance_rows"] = instance_count
    (target / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True, default=str) + "\n",
                                          encoding="utf-8")
    return Package(target, [*written, "manifest.json"], manifest)


def _shortfall(catalog: Catalog, rows: list[dict], wanted: list[str], with_errors: bool) -> dict:
    """What the cohort asked for but does not hold: accession numbers of its cases that the catalog
    does not have, ones it has that the filter left out, files of the cohort's accessions that could
    not be read, and instances whose copies disagree."""
    held = {r.get("AccessionNumber") for r in rows}
    cataloged = set(catalog.distinct("studies", "accession_number", {"accession_number": {"$in": wanted}})) \
        if wanted else set()
    accessions = sorted(a for a in held | set(wanted) if a)
    errors = [{"accession_number": e.get("partition_key"), "reason": e.get("reason"), "detail": e.get("detail")}
              for chunk in chunks(accessions) for e in catalog.find("errors", {"partition_key": {"$in": list(chunk)}})
              ] if with_errors else None
    conflicts, damaged = [], []
    for chunk in chunks(sorted(r["SeriesInstanceUID"] for r in rows)):
        for doc in catalog.find("instances", {"series_instance_uid": {"$in": list(chunk)},
                                              "$or": [{"conflicts": {"$exists": True}}, {"damage": {"$exists": True}}]},
                                projection=["sop_instance_uid", "conflicts", "damage"]):
            if doc.get("conflicts"):
                conflicts.append({"sop_instance_uid": doc["sop_instance_uid"], "attributes": sorted(doc["conflicts"])})
            if doc.get("damage"):
                damaged.append({"sop_instance_uid": doc["sop_instance_uid"], "damage": doc["damage"]})
    return {"not_found": sorted(set(wanted) - cataloged), "excluded": sorted(cataloged - held),
            "errors": errors, "damaged": damaged, "conflicts": conflicts}


def _version() -> str:
    from importlib.metadata import version

    return version("quire")


def _readme(manifest: dict, rows: list[dict], instances: bool) -> str:
    counts, short = manifest["counts"], manifest["shortfall"]
    modalities = sorted({str(r.get("Modality")) for r in rows if r.get("Modality")})
    dates = sorted(str(r["StudyDate"]) for r in rows if r.get("StudyDate"))
    policy = manifest["phi_policy"]
    lines = [
        f"# Quire {manifest['kind']}: {counts['series']:,} series",
        "",
        f"Written {manifest['created_at']} by Quire {manifest['quire_version']} from the catalog at write-log "
        f"position {manifest['catalog']['write_log_position']}.",
        "",
        "## What it holds",
        "",
        f"- {counts['patients']:,} patients, {counts['studies']:,} studies, {counts['series']:,} series, "
        f"{counts['instances']:,} instances",
        f"- modalities: {', '.join(modalities) or 'none recorded'}",
        f"- study dates: {dates[0]} to {dates[-1]}" if dates else "- study dates: none recorded",
        "- `series.parquet`: one row per series, its study's and patient's attributes joined, columns named by "
        "DICOM keyword (`instanceCount`, `studySeriesCount` are Quire's counts)",
    ]
    if instances:
        lines.append("- `instances.parquet`: one row per instance")
    lines += ["- `manifest.json`: the question, the catalog's version, the PHI policy, and a SHA-256 of each file",
              "", "## What it asked for", "", f"- level `{manifest['query']['level']}`, filter "
              f"`{json.dumps(manifest['query']['where'], sort_keys=True)}`"]
    if manifest["query"].get("collection"):
        lines.append(f"- within the collection `{manifest['query']['collection']}`")
    lines.append(f"- PHI policy: {json.dumps(policy, sort_keys=True)}")
    lines += ["", "## What it asked for but does not hold", ""]
    if short["errors"] is None:
        lines.append("- files of its accessions that could not be read: not listed for a researcher's key (error "
                     "records name files)")
    for name, label in (("not_found", "accession numbers not in the catalog"),
                        ("excluded", "accession numbers in the catalog that the filter left out"),
                        ("errors", "files of its accessions that could not be read"),
                        ("damaged", "instances whose file is cut short or lacks its pixels (cataloged from the header)"),
                        ("conflicts", "instances whose copies disagree")):
        items = short[name]
        if items is None:
            continue
        lines.append(f"- {label}: {len(items)}" + (f" ({', '.join(map(str, items[:20]))}"
                                                    f"{', ...' if len(items) > 20 else ''})" if items else ""))
    lines += ["", "## Reading it", "", "```sql", "-- duckdb", "SELECT Modality, count(*) AS series, sum(instanceCount) "
              "AS instances", "FROM 'series.parquet' GROUP BY Modality ORDER BY series DESC;", "```", "",
              "pandas: `pandas.read_parquet('series.parquet')`; polars: `polars.read_parquet('series.parquet')`.",
              "`quire export --from manifest.json` lists what changed in the catalog since.", ""]
    return "\n".join(lines)


def changes_since(catalog: Catalog, manifest: dict) -> dict[str, list[str]]:
    """The series a package's question selects now, against those it held: added, removed, and
    changed (a different row)."""
    keys = _question_keys(catalog, manifest.get("query") or {}, manifest.get("kind") == "snapshot")
    now = {r["SeriesInstanceUID"]: row_digest(r) for r in series_rows(catalog, keys)}
    then = manifest.get("series") or {}
    return {"added": sorted(now.keys() - then.keys()), "removed": sorted(then.keys() - now.keys()),
            "changed": sorted(k for k in now.keys() & then.keys() if now[k] != then[k])}
