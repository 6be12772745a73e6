"""One catalog, many sources: which source holds which document, and where its files are.

Several archives may hold the same files (a mirror, a backup, the same study on a share and in a
bucket). A document lists every source that holds it in ``sources``; an instance lists every file in
``locations`` (``{source, uri, recorded}``, ``uris`` flattened for readers). Writing one source's
partitions adds and removes only that source's part: a document disappears when no source holds
it any more, and series and studies several sources hold are counted over all of them.
"""

from __future__ import annotations

from collections.abc import Callable

from quire_assets.dicom.rollup import conflicts_between, frames


def held_by(source: str) -> dict:
    """The filter for documents a source holds. Catalogs written before ``sources`` named one
    ``source`` per document: they are read alike, and rewritten with ``sources`` as they are written."""
    return {"$or": [{"sources": source}, {"source": source}]}


def sources_of(doc: dict | None) -> list[str]:
    if not doc:
        return []
    return list(doc.get("sources") or ([doc["source"]] if doc.get("source") else []))


def locations_of(doc: dict | None) -> list[dict]:
    if not doc:
        return []
    if "locations" in doc:
        return list(doc["locations"])
    legacy = doc.get("source")
    return [{"source": legacy, "uri": uri} for uri in doc.get("uris", [])]


def with_locations(doc: dict, locations: list[dict]) -> dict:
    """The instance with these files: ``uris`` and ``uri`` follow, and ``conflicts`` says which
    recorded attributes differ between them."""
    locations = sorted(locations, key=lambda loc: (loc["uri"], loc.get("source") or ""))
    out = {k: v for k, v in doc.items() if k not in ("conflicts", "source")}
    uris = list(dict.fromkeys(loc["uri"] for loc in locations))
    out.update(locations=locations, uris=uris, uri=uris[0] if uris else doc.get("uri"))
    if conflict := conflicts_between(locations):
        out["conflicts"] = conflict
    return out


def reduced(collection: str, doc: dict, source: str) -> dict:
    out = {k: v for k, v in doc.items() if k != "source"}
    out["sources"] = [s for s in sources_of(doc) if s != source]
    if collection == "instances":
        out = with_locations(out, [loc for loc in locations_of(doc) if loc.get("source") != source])
    return out


def recount(find: Callable[..., list[dict]], out: dict[str, list[dict]], gone: dict[str, set], source: str) -> None:
    """Counts of the series and studies other sources hold too, over what every source holds once
    this write is done (a source's own rollup counts only its files)."""
    shared_series = {d["series_instance_uid"]: d for d in out.get("series", []) if sources_of(d) != [source]}
    if shared_series:
        members: dict[str, dict[str, dict]] = {uid: {} for uid in shared_series}
        for d in find("instances", {"series_instance_uid": {"$in": list(shared_series)}},
                              projection={"sop_instance_uid": 1, "series_instance_uid": 1, "number_of_frames": 1,
                                          "conflicts": 1}):
            if d["sop_instance_uid"] not in gone.get("instances", ()):
                members[d["series_instance_uid"]][d["sop_instance_uid"]] = d
        for d in out.get("instances", []):
            if d["series_instance_uid"] in members:
                members[d["series_instance_uid"]][d["sop_instance_uid"]] = d
        for uid, doc in shared_series.items():
            doc.pop("conflicting_instances", None)
            doc.update(series_counts(list(members[uid].values())))
    shared_studies = {d["study_instance_uid"]: d for d in out.get("studies", []) if sources_of(d) != [source]}
    if shared_studies:
        its_series: dict[str, dict[str, dict]] = {uid: {} for uid in shared_studies}
        for d in find("series", {"study_instance_uid": {"$in": list(shared_studies)}}):
            if d["series_instance_uid"] not in gone.get("series", ()):
                its_series[d["study_instance_uid"]][d["series_instance_uid"]] = d
        for d in out.get("series", []):
            if d["study_instance_uid"] in its_series:
                its_series[d["study_instance_uid"]][d["series_instance_uid"]] = d
        for uid, doc in shared_studies.items():
            series = list(its_series[uid].values())
            doc.update(num_series=len(series), num_instances=sum(s.get("num_instances", 0) for s in series),
                       num_frames=sum(s.get("num_frames", 0) for s in series),
                       modalities=sorted({s["modality"] for s in series if s.get("modality")}))


def series_counts(instances: list[dict]) -> dict[str, int]:
    """A series' counts from its instance documents: instances, frames (an instance without
    ``NumberOfFrames`` is one), and instances whose copies differ."""
    conflicting = sum(1 for d in instances if d.get("conflicts"))
    return {"num_instances": len(instances), "num_frames": sum(frames(d.get("number_of_frames")) for d in instances),
            **({"conflicting_instances": conflicting} if conflicting else {})}

