"""The DICOMweb routes (``/dicomweb``, and ``/dicomweb/collections/{id}`` scoped to a cohort):
QIDO-RS searches, WADO-RS retrieval of instances, metadata, frames and rendered images.

The boundary is the API's: the same keys, the caller's catalog (a researcher's research view, so
a search cannot match or return a value the policy hides), and for a researcher every file and
header de-identified as the policy says before it leaves (``PhiPolicy.deidentify``). Each
request is logged (``quire.access``): who, what, the answer's status and size.
"""

from __future__ import annotations

import logging
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
from quire_assets.api.responses import FastJSON
from quire_assets.catalog import KEYS, Catalog, CatalogError
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
    def policy(self):
        return None if self.who.admin else self.who.policy

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
    return FastJSON(answer, media_type=DICOM_JSON, headers=headers)


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
        scope.note(str(exc))
        raise HTTPException(503, f"the instance cannot be read from its source now: {exc}") from None

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
        scope.note(str(exc))
        raise HTTPException(503, f"an instance cannot be read from its source now: {exc}") from None
    scope.note(f"metadata of {len(answer)} instances")
    return FastJSON(answer, media_type=DICOM_JSON)


def _one_file(scope: Scope, where: dict) -> bytes:
    doc = scope.instances(where)[0]
    if int(doc.get("size") or 0) > MAX_DECODE_BYTES:
        raise HTTPException(413, f"frames and rendered images are made for instances up to {MAX_DECODE_BYTES >> 20} "
                                 "MiB: retrieve the instance")
    try:
        data, _ = as_researcher(scope.reader().whole(Located.of(doc)), scope.policy)
    except InstanceUnavailable as exc:
        raise HTTPException(503, f"the instance cannot be read from its source now: {exc}") from None
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


def _add_routes(router: APIRouter) -> None:
    def studies(scope: ScopeDep) -> Response:
        return search(scope, "studies", {})

    def all_series(scope: ScopeDep) -> Response:
        return search(scope, "series", {})

    def study_series(scope: ScopeDep, study: str) -> Response:
        return search(scope, "series", {"StudyInstanceUID": study})

    def all_instances(scope: ScopeDep) -> Response:
        return search(scope, "instances", {})

    def study_instances(scope: ScopeDep, study: str) -> Response:
        return search(scope, "instances", {"StudyInstanceUID": study})

    def series_instances(scope: ScopeDep, study: str, series: str) -> Response:
        return search(scope, "instances", {"StudyInstanceUID": study, "SeriesInstanceUID": series})

    def study(scope: ScopeDep, study: str) -> Response:
        return _retrieve(scope, _uids(study))

    def series(scope: ScopeDep, study: str, series: str) -> Response:
        return _retrieve(scope, _uids(study, series))

    def instance(scope: ScopeDep, study: str, series: str, sop: str) -> Response:
        return _retrieve(scope, _uids(study, series, sop))

    def study_metadata(scope: ScopeDep, study: str) -> Response:
        return _metadata(scope, _uids(study))

    def series_metadata(scope: ScopeDep, study: str, series: str) -> Response:
        return _metadata(scope, _uids(study, series))

    def instance_metadata(scope: ScopeDep, study: str, series: str, sop: str) -> Response:
        return _metadata(scope, _uids(study, series, sop))

    def frames(scope: ScopeDep, study: str, series: str, sop: str, numbers: str) -> Response:
        data = _one_file(scope, _uids(study, series, sop))
        try:
            found, syntax = frames_of(data, _frame_numbers(numbers))
        except ValueError as exc:
            raise HTTPException(404, str(exc)) from None
        compressed = syntax not in ("1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2")
        kind = "application/octet-stream" + (f"; transfer-syntax={syntax}" if compressed else "")
        body, boundary = multipart(iter([(f, kind) for f in found]))
        scope.note(f"{len(found)} frames")
        return StreamingResponse(body, media_type=f'multipart/related; type="application/octet-stream"; '
                                                   f"boundary={boundary}")

    def instance_rendered(scope: ScopeDep, study: str, series: str, sop: str) -> Response:
        media = _media(scope.request, ("image/png", "image/jpeg"))
        return _render(scope, _uids(study, series, sop), 1, media, None)

    def frame_rendered(scope: ScopeDep, study: str, series: str, sop: str, numbers: str) -> Response:
        media = _media(scope.request, ("image/png", "image/jpeg"))
        return _render(scope, _uids(study, series, sop), _frame_numbers(numbers)[0], media, None)

    def thumbnail(scope: ScopeDep, study: str, series: str, sop: str) -> Response:
        media = _media(scope.request, ("image/jpeg", "image/png"))
        return _render(scope, _uids(study, series, sop), 1, media, 128)

    def series_thumbnail(scope: ScopeDep, study: str, series: str) -> Response:
        media = _media(scope.request, ("image/jpeg", "image/png"))
        return _render(scope, _uids(study, series), 1, media, 128)

    routes: list[tuple[str, Callable[..., Response], str]] = [
        ("/studies", studies, "QIDO-RS: search for studies"),
        ("/series", all_series, "QIDO-RS: search for series"),
        ("/instances", all_instances, "QIDO-RS: search for instances"),
        ("/studies/{study}/series", study_series, "QIDO-RS: the series of a study"),
        ("/studies/{study}/instances", study_instances, "QIDO-RS: the instances of a study"),
        ("/studies/{study}/series/{series}/instances", series_instances, "QIDO-RS: the instances of a series"),
        ("/studies/{study}", study, "WADO-RS: a study's instances (multipart/related; application/dicom)"),
        ("/studies/{study}/metadata", study_metadata, "WADO-RS: a study's instances' headers"),
        ("/studies/{study}/series/{series}", series, "WADO-RS: a series' instances"),
        ("/studies/{study}/series/{series}/metadata", series_metadata, "WADO-RS: a series' headers"),
        ("/studies/{study}/series/{series}/thumbnail", series_thumbnail, "WADO-RS: a series' first image, small"),
        ("/studies/{study}/series/{series}/instances/{sop}", instance, "WADO-RS: one instance"),
        ("/studies/{study}/series/{series}/instances/{sop}/metadata", instance_metadata, "WADO-RS: its header"),
        ("/studies/{study}/series/{series}/instances/{sop}/frames/{numbers}", frames, "WADO-RS: frames, as stored"),
        ("/studies/{study}/series/{series}/instances/{sop}/rendered", instance_rendered, "WADO-RS: rendered"),
        ("/studies/{study}/series/{series}/instances/{sop}/frames/{numbers}/rendered", frame_rendered,
         "WADO-RS: a frame rendered"),
        ("/studies/{study}/series/{series}/instances/{sop}/thumbnail", thumbnail, "WADO-RS: a small rendering"),
    ]
    for path, endpoint, summary in routes:
        router.add_api_route(path, endpoint, methods=["GET"], summary=summary, name=endpoint.__name__)


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
