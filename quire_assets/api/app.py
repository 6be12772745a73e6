"""The FastAPI application: routers, the error shape every refusal takes, the body size limit."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import version
from typing import Any

from anyio import to_thread
from fastapi import FastAPI, HTTPException, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from quire_assets.api import ask, integrity, jobs, people, reads
from quire_assets.api.auth import KeyCache
from quire_assets.api.dicomweb import routes as dicomweb
from quire_assets.api.responses import FastJSON
from quire_assets.api.settings import Catalogs, Service, ThreadCatalog, research_catalog
from quire_assets.catalog import CatalogError, FilterError
from quire_assets.catalog.fields import KnownFields
from quire_assets.catalog.view import PolicyRefusal

MAX_BODY = 1024 * 1024
ERROR_NAMES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
               409: "conflict", 413: "too_large", 415: "unsupported_media_type", 422: "invalid_request"}


class Error(BaseModel):
    """Every refusal: a short code and what was wrong."""

    error: str
    detail: Any


def error(status: int, detail: Any, headers: dict[str, str] | None = None) -> JSONResponse:
    return FastJSON({"error": ERROR_NAMES.get(status, "error"), "detail": detail}, status_code=status,
                        headers=headers)


class BodyLimit:
    """Refuse request bodies over ``MAX_BODY`` with 413, declared (Content-Length) or streamed."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY):
            await error(413, f"request bodies are at most {MAX_BODY:,} bytes")(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > MAX_BODY:
                raise HTTPException(413, f"request bodies are at most {MAX_BODY:,} bytes")
            return message

        await self.app(scope, counted, send)


def create_api(service: Service) -> FastAPI:
    """The API's app for ``service`` (``quire_assets.server`` adds the dashboard to it)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Routes are CPU-bound Python over quick SQLite reads: two threads keep one slow query from
        # holding every other request up, while 40 (anyio's default) fight over the GIL (measured
        # under 16 clients: 10 ms of CPU a request with 40 threads, 5.4 with 2, 4.5 one at a time).
        to_thread.current_default_thread_limiter().total_tokens = service.threads
        # The research view is whole before the first request (a new policy or secret builds it).
        await to_thread.run_sync(app.state.catalogs.open_view)
        yield
        app.state.catalogs.close()

    app = FastAPI(title="Quire", version=version("quire"), lifespan=lifespan, default_response_class=FastJSON,
                  docs_url=None, redoc_url=None,  # /docs is the dashboard's, with no script from elsewhere
                  description="The DICOM metadata catalog for researchers: studies, series and instances with "
                              "MongoDB-style filters, collections of cases, and jobs by accession number. Every "
                              "route but /health needs `Authorization: Bearer KEY`.",
                  responses={"4XX": {"model": Error, "description": "refused: `error` names why, `detail` says what"}})
    app.state.settings = service
    app.state.catalogs = Catalogs(service.catalog_uri, service.policy, service.query_seconds, service.regex_seconds,
                                   service.columnar)
    app.state.known_fields = {"admin": KnownFields(), "research": KnownFields()}
    app.state.reports = {}  # rendered reports, by question and catalog write (reads.report)
    app.state.thread_catalog = ThreadCatalog(app.state.catalogs.get)
    app.state.research_catalog = research_catalog(app.state.catalogs)
    app.state.sealer = service.sealer("cursor")
    app.state.keys = KeyCache()
    for router in (reads.router, people.router, jobs.router, integrity.router, ask.router, dicomweb.router,
                   dicomweb.scoped_router):
        app.include_router(router)

    @app.get("/health", tags=["service"], summary="Whether the service and its catalog answer (no key needed)")
    async def health(request: Request) -> dict[str, str]:
        # On the event loop, not the routes' threads: it answers while every route is busy (a
        # count of the researchers by primary key is a few microseconds).
        catalogs = request.app.state.catalogs
        catalogs.get().count("researchers")
        copy = catalogs.columns
        columnar = "off" if copy is None else "ready" if copy.ready else "building"
        return {"status": "ok", "version": version("quire"), "columnar": columnar}

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail
        if exc.status_code == 404 and detail == "Not Found":  # no route: say which
            detail = f"no route {request.url.path} (the routes are listed at /docs)"
        elif exc.status_code == 405 and detail == "Method Not Allowed":
            detail = f"{request.method} is not a method of {request.url.path}"
        return error(exc.status_code, detail, getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error(422, jsonable_encoder(exc.errors(), exclude={"ctx", "url", "input"}))

    @app.exception_handler(FilterError)
    async def bad_filter(request: Request, exc: FilterError) -> JSONResponse:
        return error(400, str(exc))

    @app.exception_handler(PolicyRefusal)
    async def refused_by_policy(request: Request, exc: PolicyRefusal) -> JSONResponse:
        return error(403, str(exc))

    @app.exception_handler(CatalogError)
    async def bad_catalog_request(request: Request, exc: CatalogError) -> JSONResponse:
        return error(400, str(exc))

    @app.exception_handler(RecursionError)
    async def too_deep(request: Request, exc: RecursionError) -> JSONResponse:
        return error(400, "the request nests too deeply")

    app.add_middleware(BodyLimit)
    app.add_middleware(dicomweb.AccessLog)
    if service.cors_origins:
        app.add_middleware(dicomweb.ViewerOrigins, origins=service.cors_origins)
    return app
