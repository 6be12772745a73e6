"""The DICOMweb routes (``/dicomweb``, and ``/dicomweb/collections/{id}`` scoped to a cohort):
QIDO-RS searches, WADO-RS retrieval of instances, metadata, frames and rendered images.

The boundary is the API's: the same keys, the caller's catalog (a researcher's research view, so
a search cannot match or return a value the policy hides), and for a researcher every file and
header de-identified as the policy says before it leaves (``PhiPolicy.deidentify``). Each
request is logged (``quire.access``): who, what, the answer's status and size.
"""

from __future__ import annotations

import inspect
import logging
import re
import sys
import time
from collections.abc import Callable, Iterator
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import Response, StreamingResponse
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Send
from starlette.types import Scope as ASGIScope

from quire_assets.api.auth import Caller, CallerDep, catalog_for
from quire_assets.api.dicomweb import qido
from quire_assets.api.dicomweb.wado import (
    MAX_DECODE_BYTES,
    InstanceUnavailable,
    Located,
    Reader,
    as_researcher,
    frames_of,
    header_json,
    multipart,
    rendered,
)
from quire_assets.api.reads import JSON_ERRORS
from quire_assets.api.responses import FastJSON
from quire_assets.catalog import KEYS, Catalog, CatalogError
from quire_assets.catalog.policy import PhiPolicy
from quire_assets.research.collections import in_collection, researchers_collection

DICOM_JSON = "application/dicom+json"
MAX_RETRIEVE = 5000  # instances in one study or series retrieval (a viewer asks series by series)

access = logging.getLogger("quire.access")
if not access.handlers:  # uvicorn configures its own loggers only: this one writes beside them
    _handler = logging.StreamHandler(sys.stderr)
    _handler.setFormatter(logging.Formatter("%(asctime)s access %(message)s"))
    access.addHandler(_handler)
    access.setLevel(logging.INFO)
    access.propagate = False


class AccessLog:
    """One line per DICOMweb request, whatever its answer (refusals too): who, what, the status and
    what the answer held. A pure ASGI middleware, so streamed answers are logged as they start."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: ASGIScope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/dicomweb"):
            await self.app(scope, receive, send)
            return

        async def logged(message: Message) -> None:
            if message["type"] == "http.response.start":
                state = scope.get("state", {})
                access.info("%s %s %s %d %s", state.get("researcher_id", "-"), scope["method"], scope["path"],
                            message["status"], state.get("access_note", ""))
            await send(message)

        await self.app(scope, receive, logged)


class ViewerOrigins:
    """CORS for ``/dicomweb`` alone, for the origins a deployment names (``QUIRE_CORS_ORIGINS``): a
    viewer served from elsewhere reads DICOMweb with a key in its Authorization header. Cookies are
    never sent cross-origin (no credentials), and the API and the dashboard stay same-origin only."""

    def __init__(self, app: ASGIApp, origins: tuple[str, ...]):
        self.app = app
        self.cors = CORSMiddleware(app, allow_origins=list(origins), allow_methods=["GET"],
                                   allow_headers=["Authorization", "Accept"], expose_headers=["Warning"])

    async def __call__(self, scope: ASGIScope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/dicomweb"):
            await self.cors(scope, receive, send)
        else:
            await self.app(scope, receive, send)


class Scope:
    """One DICOMweb request: its caller, the catalog they read, and the cohort it is scoped to."""

    def __init__(self, request: Request, who: Caller, collection: str | None):
        if not who.admin and who.policy.uid_action == "hash":
            raise HTTPException(403, "this deployment's PHI policy hashes UIDs: DICOMweb serves researchers only "
                                     "where the policy keeps StudyInstanceUID, SeriesInstanceUID and SOPInstanceUID")
        self.request, self.who = request, who
        request.state.researcher_id = who.researcher_id
        self.catalog: Catalog = catalog_for(request, who)
        self.where: dict | None = None
        # The address a client named (dicomweb-client's Host header leaves the port out: a
        # deployment whose clients do, or that sits behind a proxy, sets QUIRE_PUBLIC_URL).
        public = request.app.state.settings.public_url or str(request.base_url)
        self.base = public.rstrip("/") + "/dicomweb"
        if collection is not None:
            doc = collection if who.admin else (researchers_collection(self.catalog, who.researcher_id, collection)
                                                or {}).get("collection_id")
            if not doc:
                raise HTTPException(404, f"no collection {collection!r}")
            try:
                self.where = in_collection(self.catalog, doc)
            except CatalogError as exc:
                raise HTTPException(404, str(exc)) from None
            self.base += f"/collections/{collection}"

    @property
    def policy(self) -> PhiPolicy | None:
        return None if self.who.admin else self.who.policy

    def unavailable(self, exc: Exception) -> HTTPException:
        """503 for a file its source cannot give now: the source's own words name the file (a path
        foldered by patient, a bucket key), so they are for admins and the log only."""
        self.note(str(exc))
        why = f": {exc}" if self.who.admin else " (the service's log says why)"
        return HTTPException(503, f"an instance cannot be read from its source now{why}")

    def scoped(self, where: dict) -> dict:
        parts = [p for p in (where, self.where) if p]
        return parts[0] if len(parts) == 1 else {"$and": parts} if parts else {}

    def instances(self, where: dict) -> list[dict]:
        """The caller's instance documents matching ``where`` in scope, in instance-number order,
        each with its locations from the identifiable catalog (the view holds none)."""
        visible = self.catalog.find("instances", self.scoped(where), projection=["sop_instance_uid"],
                                    sort=[("instance_number", 1), ("sop_instance_uid", 1)], limit=MAX_RETRIEVE + 1)
        if not visible:
            raise HTTPException(404, f"no instance matches {where}")
        if len(visible) > MAX_RETRIEVE:
            raise HTTPException(413, f"more than {MAX_RETRIEVE:,} instances: retrieve series by series")
        keys = [d["sop_instance_uid"] for d in visible]
        located = {d["sop_instance_uid"]: d for d in self.request.app.state.thread_catalog.find(
            "instances", {"sop_instance_uid": {"$in": keys}}, projection=["sop_instance_uid", "uri", "size", "locations"])}
        return [located[k] for k in keys if k in located]

    def reader(self) -> Reader:
        return Reader(self.request.app.state.settings.source_options)

    def note(self, what: str) -> None:
        """What the access log says the answer held."""
        self.request.state.access_note = what


def _scope(request: Request, who: CallerDep) -> Scope:
    return Scope(request, who, request.path_params.get("collection"))


ScopeDep = Annotated[Scope, Depends(_scope)]


def _uids(study: str, series: str | None = None, sop: str | None = None) -> dict:
    where = {"study_instance_uid": study}
    if series:
        where["series_instance_uid"] = series
    if sop:
        where["sop_instance_uid"] = sop
    return where


# QIDO-RS


def search(scope: Scope, level: str, fixed: dict[str, str]) -> Response:
    features = scope.request.app.state.settings.features
    params = list(scope.request.query_params.multi_items())
    try:
        query = qido.parse(level, params, features, fixed)
        for keyword, path in query.matched.items():
            if not scope.who.admin and scope.who.policy.hidden(path) == "drop":
                raise HTTPException(403, f"{keyword}: not among the attributes the PHI policy shows your key")
        where = scope.scoped(qido.resolve(scope.catalog, query, scope.where))
        # In key order, as the backends keep a level (no sort of every match: ``pages.page`` does so too).
        docs = scope.catalog.find(level, where, limit=query.limit, skip=query.offset)
    except qido.QueryError as exc:
        scope.note(str(exc))
        raise HTTPException(400, str(exc)) from None
    parents: dict[str, dict[str, dict]] = {}
    for parent in ("studies", "series")[: qido.LEVELS.index(level)]:
        keys = sorted({d[KEYS[parent]] for d in docs if d.get(KEYS[parent])})
        parents[parent] = {d[KEYS[parent]]: d for d in scope.catalog.find(parent, {KEYS[parent]: {"$in": keys}})}
    headers = {}
    if query.fuzzy:
        headers["Warning"] = '299 quire: "The fuzzymatching parameter is not supported. Only literal matching has ' \
                             'been performed."'
    answer = qido.answer(level, docs, parents, query, scope.base)
    scope.note(f"{len(answer)} {level}")
    return DicomJSON(answer, headers=headers)


# WADO-RS


def _retrieve(scope: Scope, where: dict) -> StreamingResponse:
    docs = scope.instances(where)
    reader, policy = scope.reader(), scope.policy

    def parts() -> Iterator[tuple[bytes, str]]:
        for doc in docs:
            data, syntax = as_researcher(reader.whole(Located.of(doc)), policy)
            yield data, f"application/dicom; transfer-syntax={syntax}"

    # The first instance is read before the answer starts, so a source that cannot be read is a
    # 503 with its reason rather than a cut stream.
    first = parts()
    try:
        head = next(first)
    except InstanceUnavailable as exc:
        raise scope.unavailable(exc) from None

    def all_parts() -> Iterator[tuple[bytes, str]]:
        yield head
        yield from first

    body, boundary = multipart(all_parts())
    scope.note(f"{len(docs)} instances")
    return StreamingResponse(body, media_type=f'multipart/related; type="application/dicom"; boundary={boundary}')


def _metadata(scope: Scope, where: dict) -> Response:
    docs = scope.instances(where)
    reader = scope.reader()
    try:
        answer = [header_json(reader.header(Located.of(doc)), scope.policy) for doc in docs]
    except InstanceUnavailable as exc:
        raise scope.unavailable(exc) from None
    scope.note(f"metadata of {len(answer)} instances")
    return DicomJSON(answer)


def _one_file(scope: Scope, where: dict) -> bytes:
    doc = scope.instances(where)[0]
    if int(doc.get("size") or 0) > MAX_DECODE_BYTES:
        raise HTTPException(413, f"frames and rendered images are made for instances up to {MAX_DECODE_BYTES >> 20} "
                                 "MiB: retrieve the instance")
    try:
        data, _ = as_researcher(scope.reader().whole(Located.of(doc)), scope.policy)
    except InstanceUnavailable as exc:
        raise scope.unavailable(exc) from None
    return data


def _frame_numbers(text: str) -> list[int]:
    try:
        return [int(n) for n in text.split(",")]
    except ValueError:
        raise HTTPException(400, f"frames {text!r}: a comma-separated list of frame numbers from 1") from None


def _media(request: Request, choices: tuple[str, ...]) -> str:
    accept = request.headers.get("accept", "*/*")
    for media in choices:
        if media in accept:
            return media
    if "*/*" in accept or "image/*" in accept:
        return choices[0]
    raise HTTPException(406, f"this resource is {', '.join(choices)}, not {accept}")


def _path_uids(scope: Scope) -> dict:
    """The study, series and instance the path names, as a filter."""
    found = scope.request.path_params
    return _uids(found["study"], found.get("series"), found.get("sop"))


def _searching(level: str) -> Callable[[Scope], Response]:
    def handler(scope: Scope) -> Response:
        names = {"study": "StudyInstanceUID", "series": "SeriesInstanceUID"}
        fixed = {names[k]: v for k, v in scope.request.path_params.items() if k in names}
        return search(scope, level, fixed)

    return handler


def _frames(scope: Scope) -> Response:
    data = _one_file(scope, _path_uids(scope))
    try:
        found, syntax = frames_of(data, _frame_numbers(scope.request.path_params["numbers"]))
    except ValueError as exc:
        raise HTTPException(404, str(exc)) from None
    compressed = syntax not in ("1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2")
    kind = "application/octet-stream" + (f"; transfer-syntax={syntax}" if compressed else "")
    body, boundary = multipart(iter([(f, kind) for f in found]))
    scope.note(f"{len(found)} frames")
    return StreamingResponse(body, media_type=f'multipart/related; type="application/octet-stream"; '
                                               f"boundary={boundary}")


def _rendered(scope: Scope) -> Response:
    frame = _frame_numbers(scope.request.path_params.get("numbers", "1"))[0]
    return _render(scope, _path_uids(scope), frame, _media(scope.request, ("image/png", "image/jpeg")), None)


def _thumbnail(scope: Scope) -> Response:
    return _render(scope, _path_uids(scope), 1, _media(scope.request, ("image/jpeg", "image/png")), 128)


class DicomJSON(FastJSON):
    media_type = DICOM_JSON


def _content(*media: str, schema: dict | None = None) -> dict:
    """A route's answer in ``media``; its refusals are the API's JSON errors whatever it answers."""
    return {200: {"content": {m: {"schema": schema or {"type": "string", "format": "binary"}} for m in media}},
            **JSON_ERRORS}


JSON_ANSWER = _content(DICOM_JSON, schema={"type": "array", "items": {"type": "object"}})
INSTANCES = _content("multipart/related")
IMAGE = _content("image/png", "image/jpeg")
INSTANCE = "/studies/{study}/series/{series}/instances/{sop}"
ROUTES: list[tuple[str, Callable[[Scope], Response], dict, str]] = [
    ("/studies", _searching("studies"), JSON_ANSWER, "QIDO-RS: search for studies"),
    ("/series", _searching("series"), JSON_ANSWER, "QIDO-RS: search for series"),
    ("/instances", _searching("instances"), JSON_ANSWER, "QIDO-RS: search for instances"),
    ("/studies/{study}/series", _searching("series"), JSON_ANSWER, "QIDO-RS: the series of a study"),
    ("/studies/{study}/instances", _searching("instances"), JSON_ANSWER, "QIDO-RS: the instances of a study"),
    ("/studies/{study}/series/{series}/instances", _searching("instances"), JSON_ANSWER,
     "QIDO-RS: the instances of a series"),
    ("/studies/{study}", lambda s: _retrieve(s, _path_uids(s)), INSTANCES,
     "WADO-RS: a study's instances (multipart/related; application/dicom)"),
    ("/studies/{study}/metadata", lambda s: _metadata(s, _path_uids(s)), JSON_ANSWER,
     "WADO-RS: a study's instances' headers"),
    ("/studies/{study}/series/{series}", lambda s: _retrieve(s, _path_uids(s)), INSTANCES,
     "WADO-RS: a series' instances"),
    ("/studies/{study}/series/{series}/metadata", lambda s: _metadata(s, _path_uids(s)), JSON_ANSWER,
     "WADO-RS: a series' headers"),
    ("/studies/{study}/series/{series}/thumbnail", _thumbnail, IMAGE, "WADO-RS: a series' first image, small"),
    (INSTANCE, lambda s: _retrieve(s, _path_uids(s)), INSTANCES, "WADO-RS: one instance"),
    (f"{INSTANCE}/metadata", lambda s: _metadata(s, _path_uids(s)), JSON_ANSWER, "WADO-RS: an instance's header"),
    (f"{INSTANCE}/frames/{{numbers}}", _frames, INSTANCES, "WADO-RS: frames, as stored"),
    (f"{INSTANCE}/rendered", _rendered, IMAGE, "WADO-RS: an instance rendered (PNG or JPEG)"),
    (f"{INSTANCE}/frames/{{numbers}}/rendered", _rendered, IMAGE, "WADO-RS: a frame rendered"),
    (f"{INSTANCE}/thumbnail", _thumbnail, IMAGE, "WADO-RS: an instance rendered small"),
]


def _endpoint(handler: Callable[[Scope], Response], path: str) -> Callable[..., Response]:
    """The route's function, with the path's UIDs declared (so the OpenAPI schema lists them); the
    handler reads them from the request."""

    def endpoint(**arguments: object) -> Response:
        return handler(arguments["scope"])

    named = [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, annotation=str) for n in re.findall(r"{(\w+)}", path)]
    scope = inspect.Parameter("scope", inspect.Parameter.KEYWORD_ONLY, annotation=ScopeDep)
    endpoint.__signature__ = inspect.Signature([scope, *named], return_annotation=Response)
    return endpoint


def _add_routes(router: APIRouter) -> None:
    for path, handler, responses, summary in ROUTES:
        router.add_api_route(path, _endpoint(handler, router.prefix + path), methods=["GET"], summary=summary,
                             responses=responses, response_class=DicomJSON if responses is JSON_ANSWER else Response,
                             name=summary.split(": ", 1)[1].replace(" ", "_").replace("'", ""))


def _render(scope: Scope, where: dict, frame: int, media: str, size: int | None) -> Response:
    data = _one_file(scope, where)
    started = time.monotonic()
    try:
        image = rendered(data, frame, media, size)
    except (ValueError, RuntimeError, NotImplementedError, AttributeError) as exc:
        scope.note(f"not rendered: {exc}")
        raise HTTPException(404, f"this instance cannot be rendered: {exc}") from None
    scope.note(f"rendered in {time.monotonic() - started:.2f} s")
    return Response(image, media_type=media)


router = APIRouter(prefix="/dicomweb", tags=["dicomweb"])
_add_routes(router)
scoped_router = APIRouter(prefix="/dicomweb/collections/{collection}", tags=["dicomweb"])
_add_routes(scoped_router)
