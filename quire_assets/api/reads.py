"""Catalog reads: lists with keyset cursors (JSON, or streamed CSV / NDJSON), search, count,
distinct values, navigation, statistics and the report. Read routes never write."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import tempfile
import zipfile
from collections.abc import Iterator
from itertools import chain, islice
from pathlib import Path
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, PlainTextResponse, Response, StreamingResponse
from pydantic import BaseModel, Field

from quire_assets.api.auth import CallerDep, CatalogDep, catalog_for
from quire_assets.api.responses import FastJSON
from quire_assets.catalog import KEYS, Catalog, CatalogError, FilterError
from quire_assets.catalog.base import QUERY_LEVELS
from quire_assets.catalog.fields import TABLE_COLUMNS, csv_cells, filter_fields, refuse_unknown_fields
from quire_assets.catalog.filters import filter_from_json, user_filter
from quire_assets.catalog.pages import MAX_LIMIT, Position, page
from quire_assets.research.collections import in_collection, researchers_collection
from quire_assets.research.exports import (
    EXPORT_COLUMNS,
    cohort_files,
    fetch_commands,
    selected_series,
    write_package,
)
from quire_assets.util import chunks

router = APIRouter(prefix="/api/v1", tags=["catalog"])
Format = Literal["json", "csv", "ndjson"]
MEDIA = {"json": "application/json", "csv": "text/csv; charset=utf-8", "ndjson": "application/x-ndjson"}
STREAM_CHUNK = 500
CURSOR_SECONDS = 24 * 3600
MAX_FIELDS = 64  # field paths one request may name (each unknown one is looked for at every level)

WHERE_HELP = ('A MongoDB filter document as JSON, e.g. {"modality": "CT", "slice_thickness": {"$lt": 1.5}} '
              "(the operators `quire query` takes)")
SORT_HELP = "FIELD, FIELD:asc or FIELD:desc, on one single-valued field of the level (default: its key)"


class Page(BaseModel):
    items: list[dict[str, Any]] = Field(description="the documents, as the caller's key may see them")
    count: int = Field(description="documents on this page")
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null on the last")


class Count(BaseModel):
    count: int


class ValueCount(BaseModel):
    value: Any
    count: int


class Distinct(BaseModel):
    field: str
    values: list[ValueCount]


class Search(BaseModel):
    """The list options in a body (for filters too long for a URL)."""

    where: dict[str, Any] | None = Field(None, description=WHERE_HELP)
    sort: str | None = Field(None, description=SORT_HELP)
    fields: list[str] | None = Field(None, description="the fields to return (dotted paths too)")
    limit: int = Field(100, ge=1, le=MAX_LIMIT)
    cursor: str | None = None
    format: Format = "json"
    collection: str | None = Field(None, description="only the documents of this collection's studies")


# Refusals are JSON on every route, the HTML one too.
JSON_ERRORS: dict[int | str, dict[str, Any]] = {"4XX": {"description": "refused", "content": {
    "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}}
LIST_RESPONSES: dict[int | str, dict[str, Any]] = {200: {"content": {
    "text/csv": {"schema": {"type": "string"}}, "application/x-ndjson": {"schema": {"type": "string"}}}}}


def parse_where(text: str | None) -> dict:
    return filter_from_json(text, "where")


def parse_sort(text: str | None) -> tuple[str, int] | None:
    if not text:
        return None
    field, _, direction = text.partition(":")
    if not field or direction.lower() not in ("", "asc", "desc"):
        raise FilterError(f"sort {text!r}: write FIELD, FIELD:asc or FIELD:desc")
    return field, -1 if direction.lower() == "desc" else 1


class Reader:
    """One list request: its filter checked against the level's fields and the caller's view."""

    def __init__(self, request: Request, catalog: Catalog, who: CallerDep, level: str, where: dict,
                 sort: str | None, fields: list[str], collection: str | None, base: dict | None = None):
        self.request, self.catalog, self.who, self.level = request, catalog, who, level
        self.sort = parse_sort(sort)
        self.fields = fields
        sort_fields = [self.sort[0]] if self.sort else []
        who.check_visible(filter_fields(where), "where")
        who.check_visible(sort_fields, "sort")
        who.check_visible(fields, "fields")
        named = list(dict.fromkeys([*filter_fields(where), *sort_fields, *fields]))
        if len(named) > MAX_FIELDS:
            raise FilterError(f"a request names at most {MAX_FIELDS} fields, not {len(named)}")
        state = request.app.state
        known = state.known_fields["admin" if who.admin else "research"].has(state.catalogs.get().last_change())
        refuse_unknown_fields(catalog, level, named, "where, sort or fields", has=known)
        if collection:
            # An admin may name a collection that is only a tag on studies (no document).
            if not who.admin:
                doc = researchers_collection(catalog, who.researcher_id, collection)
                if doc is None:
                    raise HTTPException(404, f"no collection {collection!r}")
                collection = doc["collection_id"]
            try:
                where = in_collection(catalog, collection, where)
            except CatalogError as exc:
                raise HTTPException(404, str(exc)) from None
        self.collection = collection  # the id it resolved to (a researcher names their own collections)
        parts = [p for p in (base, where) if p]
        self.where = parts[0] if len(parts) == 1 else ({"$and": parts} if parts else {})

    def projection(self) -> list[str] | None:
        return [KEYS[self.level], *self.fields] if self.fields else None

    def _query_id(self) -> str:
        """Who asked what: a cursor serves only the caller and the query it was given for."""
        text = json.dumps([self.who.researcher_id, self.level, self.where, self.sort], sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    def position(self, cursor: str | None) -> Position | None:
        if not cursor:
            return None
        data = self.request.app.state.sealer.open(cursor, ttl=CURSOR_SECONDS)
        if data is None:
            raise FilterError("the cursor is not one this API gave, or it expired (cursors last "
                              f"{CURSOR_SECONDS // 3600} h): ask for the first page again")
        loaded = json.loads(data)
        if loaded.get("query") != self._query_id():
            raise FilterError("the cursor belongs to another query (or another key): ask for the first page again")
        return Position.from_dict(loaded["at"])

    def seal(self, position: Position | None) -> str | None:
        if position is None:
            return None
        return self.request.app.state.sealer.seal(json.dumps({"query": self._query_id(),
                                                              "at": position.as_dict()}).encode())

    def respond(self, limit: int, cursor: str | None, fmt: str) -> Any:
        after = self.position(cursor)
        if fmt == "json":
            docs, end = page(self.catalog, self.level, self.where, self.sort, limit, after, self.projection())
            return FastJSON({"items": docs, "count": len(docs), "next_cursor": self.seal(end)})
        # Streamed: the page's keys first (so the next cursor can go in a header), then the documents
        # a chunk at a time, each chunk on whichever pool thread runs it (``self.catalog`` is the
        # calling thread's: ``ThreadCatalog``).
        keyed, end = page(self.catalog, self.level, self.where, self.sort, limit, after, [KEYS[self.level]])
        keys = [d[KEYS[self.level]] for d in keyed]
        headers = {"X-Next-Cursor": self.seal(end) or "", "X-Count": str(len(keys))}
        return StreamingResponse(self.stream(keys, fmt), media_type=MEDIA[fmt], headers=headers)

    def columns(self) -> list[str]:
        key = KEYS[self.level]
        columns = list(dict.fromkeys([key, *(self.fields or TABLE_COLUMNS.get(self.level, []))]))
        return [c for c in columns if self.who.admin or self.who.policy.hidden(c) != "drop"]

    def stream(self, keys: list[str], fmt: str) -> Iterator[bytes]:
        key = KEYS[self.level]
        sort = [self.sort] if self.sort else None
        columns = self.columns() if fmt == "csv" else []
        if fmt == "csv":
            yield _csv_lines([columns]).encode()
        for chunk in chunks(keys, STREAM_CHUNK):
            docs = self.catalog.find(self.level, {key: {"$in": list(chunk)}}, projection=self.projection(), sort=sort)
            if fmt == "csv":
                yield _csv_lines(csv_cells(d, columns) for d in docs).encode()
            else:
                yield b"".join(orjson.dumps(d) + b"\n" for d in docs)


def _csv_lines(rows: Any) -> str:
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    return out.getvalue()


def split_fields(text: str | None) -> list[str]:
    return [f.strip() for f in (text or "").split(",") if f.strip()]


Where = Annotated[str | None, Query(description=WHERE_HELP)]
Sort = Annotated[str | None, Query(description=SORT_HELP)]
Fields = Annotated[str | None, Query(description="comma-separated fields to return (dotted paths too)")]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="documents per page")]
Cursor = Annotated[str | None, Query(description="the `next_cursor` of the previous page")]
Collection = Annotated[str | None, Query(description="only the documents of this collection's studies")]
Fmt = Annotated[Format, Query(description="json (a page object), or csv / ndjson streamed (next cursor in "
                                          "the X-Next-Cursor header)")]


def _list_route(level: str) -> None:
    def list_documents(request: Request, catalog: CatalogDep, who: CallerDep, where: Where = None,
                       sort: Sort = None, fields: Fields = None, limit: Limit = 100, cursor: Cursor = None,
                       format: Fmt = "json", collection: Collection = None) -> Any:
        reader = Reader(request, catalog, who, level, parse_where(where), sort, split_fields(fields), collection)
        return reader.respond(limit, cursor, format)

    def search_documents(request: Request, catalog: CatalogDep, who: CallerDep, body: Search) -> Any:
        reader = Reader(request, catalog, who, level, user_filter(body.where), body.sort, body.fields or [],
                        body.collection)
        return reader.respond(body.limit, body.cursor, body.format)

    def count_documents(request: Request, catalog: CatalogDep, who: CallerDep, where: Where = None,
                        collection: Collection = None) -> Count:
        reader = Reader(request, catalog, who, level, parse_where(where), None, [], collection)
        return Count(count=catalog.count(level, reader.where))

    def distinct_values(request: Request, catalog: CatalogDep, who: CallerDep, field: str, where: Where = None,
                        collection: Collection = None,
                        limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 1000) -> Distinct:
        reader = Reader(request, catalog, who, level, parse_where(where), None, [field], collection)
        counts = catalog.value_counts(level, field, reader.where)[:limit]
        return Distinct(field=field, values=[ValueCount(value=v, count=n) for v, n in counts])

    label = level.capitalize()
    router.add_api_route(f"/{level}", list_documents, methods=["GET"], response_model=Page,
                         responses=LIST_RESPONSES, summary=f"{label}: a page", name=f"list_{level}")
    router.add_api_route(f"/{level}/search", search_documents, methods=["POST"], response_model=Page,
                         responses=LIST_RESPONSES, summary=f"{label}: a page, options in the body",
                         name=f"search_{level}")
    router.add_api_route(f"/{level}/count", count_documents, methods=["GET"], response_model=Count,
                         summary=f"{label}: how many match", name=f"count_{level}")
    router.add_api_route(f"/{level}/distinct/{{field}}", distinct_values, methods=["GET"], response_model=Distinct,
                         summary=f"{label}: the values of a field with their counts (facets)",
                         name=f"distinct_{level}")


FILES_FORMATS = Literal["csv", "json", "uris", "s5cmd"]


def _files_route(level: str) -> None:
    def cohort_file_list(request: Request, catalog: CatalogDep, who: CallerDep, where: Where = None,
                         collection: Collection = None,
                         format: Annotated[FILES_FORMATS, Query(description=(
                             "csv or json rows; uris: one location per line; s5cmd: a command file "
                             "copying the s3:// files (`s5cmd run FILE`)"))] = "csv") -> Any:
        reader = Reader(request, catalog, who, level, parse_where(where), None, [], collection)
        if format in ("uris", "s5cmd") and not who.admin and who.policy.hidden("uri"):
            raise HTTPException(403, f"format={format} lists file locations, which the PHI policy hides from "
                                     "your key: csv and json name each file by its accession number and UIDs")
        rows = cohort_files(catalog, level, reader.where)  # a generator: the files are streamed
        if format == "json":
            return FastJSON(list(rows))
        if format == "uris":
            return StreamingResponse((f"{r['uri']}\n" for r in rows), media_type="text/plain; charset=utf-8")
        if format == "s5cmd":
            return PlainTextResponse("".join(f"{line}\n" for line in fetch_commands(rows)))
        columns = [c for c in EXPORT_COLUMNS if who.admin or who.policy.hidden(c) != "drop"]
        chunked = iter(lambda: list(islice(rows, STREAM_CHUNK)), [])
        lines = chain([_csv_lines([columns])], (_csv_lines(csv_cells(r, columns) for r in chunk) for chunk in chunked))
        return StreamingResponse(lines, media_type=MEDIA["csv"])

    router.add_api_route(f"/{level}/files", cohort_file_list, methods=["GET"], name=f"files_{level}",
                         summary=f"{level.capitalize()}: their files (a cohort export, as `quire export`), or a "
                                 "manifest to fetch them",
                         responses={200: {"content": {"text/csv": {"schema": {"type": "string"}},
                                                      "text/plain": {"schema": {"type": "string"}},
                                                      "application/json": {"schema": {"type": "array"}}}}})


MAX_PACKAGE_SERIES = 100_000  # a bigger cohort is a snapshot's job: `quire export --snapshot`


def _package_route(level: str) -> None:
    def cohort_package(request: Request, catalog: CatalogDep, who: CallerDep, where: Where = None,
                       collection: Collection = None,
                       instances: Annotated[bool, Query(description="instances.parquet too")] = False) -> Response:
        reader = Reader(request, catalog, who, level, parse_where(where), None, [], None)
        collection_id = collection
        if collection and not who.admin:
            doc = researchers_collection(catalog, who.researcher_id, collection)
            if doc is None:
                raise HTTPException(404, f"no collection {collection!r}")
            collection_id = doc["collection_id"]
        scoped = in_collection(catalog, collection_id, reader.where) if collection_id else reader.where
        if len(selected_series(catalog, level, scoped)) > MAX_PACKAGE_SERIES:
            raise HTTPException(413, f"a package holds at most {MAX_PACKAGE_SERIES:,} series: narrow the filter, "
                                     "or ask an operator for `quire export --snapshot`")
        policy = None if who.admin else {"applied": True, "fingerprint": who.policy.fingerprint,
                                         "default": who.policy.default, "rules": who.policy.rules}
        with tempfile.TemporaryDirectory() as folder:
            package = write_package(catalog, Path(folder) / "cohort", level=level, where=reader.where,
                                    collection=collection_id, policy=policy, instances=instances,
                                    with_locations=who.admin, with_errors=who.admin)
            buffer = io.BytesIO()
            with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
                for name in package.files:
                    archive.write(package.folder / name, f"quire-cohort/{name}")
        return Response(buffer.getvalue(), media_type="application/zip",
                        headers={"Content-Disposition": 'attachment; filename="quire-cohort.zip"'})

    router.add_api_route(f"/{level}/package", cohort_package, methods=["GET"], name=f"package_{level}",
                         summary=f"{level.capitalize()}: the cohort as a versioned package (a zip of series.parquet, "
                                 "README.md and manifest.json, as `quire export --package`)",
                         responses={200: {"content": {"application/zip": {"schema": {"type": "string",
                                                                                      "format": "binary"}}}},
                                    **JSON_ERRORS})


def _one_route(level: str) -> None:
    key = KEYS[level]

    def one_document(catalog: CatalogDep, uid: str) -> dict[str, Any]:
        doc = catalog.get(level, uid)
        if doc is None:
            raise HTTPException(404, f"no {level} document with {key} {uid!r}")
        return doc

    router.add_api_route(f"/{level}/{{uid}}", one_document, methods=["GET"], name=f"get_{level}",
                         summary=f"One {level} document by {key}")


for _level in QUERY_LEVELS:
    _list_route(_level)
for _level in ("studies", "series", "instances"):
    _files_route(_level)
    _package_route(_level)


def _children_route(parent: str, child: str, link: str) -> None:
    def children(request: Request, catalog: CatalogDep, who: CallerDep, uid: str, where: Where = None,
                 sort: Sort = None, fields: Fields = None, limit: Limit = 100, cursor: Cursor = None,
                 format: Fmt = "json") -> Any:
        doc = catalog.get(parent, uid)
        if doc is None:
            raise HTTPException(404, f"no {parent} document {uid!r}")
        reader = Reader(request, catalog, who, child, parse_where(where), sort, split_fields(fields), None, {link: uid})
        return reader.respond(limit, cursor, format)

    router.add_api_route(f"/{parent}/{{uid}}/{child}", children, methods=["GET"], response_model=Page,
                         responses=LIST_RESPONSES, name=f"{child}_of_{parent}",
                         summary=f"The {child} of one {parent} document")


_children_route("studies", "series", "study_instance_uid")
_children_route("series", "instances", "series_instance_uid")
_children_route("patients", "studies", "patient_id")
for _level in ("patients", "studies", "series", "instances"):
    _one_route(_level)


StatsLevel = Annotated[Literal["patients", "studies", "series", "instances"], Query(
    description="the level `where` applies to: the statistics are of the studies holding what it selects")]


def _studies_of(reader: Reader, level: str) -> dict:
    """The study filter for what a filter on ``level`` selects."""
    if level == "studies":
        return reader.where
    if level == "patients":
        return {"patient_id": {"$in": [v for v, _ in reader.catalog.value_counts("patients", "patient_id", reader.where)]}}
    uids = [v for v, _ in reader.catalog.value_counts(level, "study_instance_uid", reader.where)]
    return {"study_instance_uid": {"$in": uids}}


@router.get("/stats", summary="The summary statistics of the studies a filter selects (all by default)",
            tags=["statistics"])
def statistics(request: Request, catalog: CatalogDep, who: CallerDep, where: Where = None,
               collection: Collection = None, level: StatsLevel = "studies") -> dict[str, Any]:
    from quire_assets.catalog.stats import summary_statistics

    reader = Reader(request, catalog, who, level, parse_where(where), None, [], collection)
    return summary_statistics(catalog, _studies_of(reader, level), _min_cell(request, who))


def _min_cell(request: Request, who: Any) -> int:
    """Researchers' statistics merge cells under QUIRE_STATS_MIN_CELL; an admin's are whole."""
    return 0 if who.admin else request.app.state.settings.min_cell


@router.get("/report", response_class=HTMLResponse, tags=["statistics"], responses=JSON_ERRORS,
            summary="The HTML report of `quire report` for the studies a filter selects")
async def report(request: Request, who: CallerDep, where: Where = None,
                 collection: Collection = None, level: StatsLevel = "studies") -> HTMLResponse:
    from quire_assets.report import catalog_report

    def render() -> str:
        cat = catalog_for(request, who)
        reader = Reader(request, cat, who, level, parse_where(where), None, [], collection)
        # The same report for the same question, until the catalog is written again.
        key = json.dumps([who.admin, level, reader.where, _min_cell(request, who), cat.last_change()],
                         sort_keys=True, default=str)
        reports = request.app.state.reports
        if key not in reports:
            if len(reports) > 32:
                reports.clear()
            # The dashboard serves plotly.js and the drawing script: the page runs under its CSP.
            asked = f"on {level}: {json.dumps(parse_where(where), ensure_ascii=False)}" if where else None
            reports[key] = catalog_report(cat, _studies_of(reader, level), _min_cell(request, who), plotly="/static/",
                                          collection=reader.collection, asked=asked)[1]
        return reports[key]

    return HTMLResponse(await run_in_threadpool(render))
