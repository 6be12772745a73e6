"""The dashboard (``quire serve`` at ``/``): Jinja2 templates and static files served from the
package (plotly.js from the plotly package, Swagger UI from swagger-ui-py), calling the API's
own routes. Every response says that pages may run only this origin's scripts and may not be framed."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import swagger_ui
from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from quire_assets.web.pages import HERE, LoginNeeded, router

# Plotly sets inline styles on its charts; scripts come from this origin only.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
       "frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
HEADERS = [(b"content-security-policy", CSP.encode()), (b"x-frame-options", b"DENY"),
           (b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer")]


class SecurityHeaders:
    """The headers above on every response (a pure ASGI middleware: streamed responses too)."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *HEADERS]
            await send(message)

        await self.app(scope, receive, with_headers)


def add_dashboard(app: FastAPI) -> None:
    app.include_router(router)
    app.mount("/static/swagger", StaticFiles(directory=Path(swagger_ui.__file__).parent / "static"), name="swagger")
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.add_middleware(SecurityHeaders)

    @app.exception_handler(LoginNeeded)
    async def to_login(request: Request, exc: LoginNeeded) -> RedirectResponse:
        return RedirectResponse(f"/login?next={quote(exc.path, safe='')}", status_code=303)
