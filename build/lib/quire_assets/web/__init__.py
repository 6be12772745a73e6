"""The dashboard (``quire serve`` at ``/``): Jinja2 templates and static files served from the
package (plotly.js from the plotly package), calling the API's own routes."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from quire_assets.web.pages import HERE, LoginNeeded, router


def add_dashboard(app: FastAPI) -> None:
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    @app.exception_handler(LoginNeeded)
    async def to_login(request: Request, exc: LoginNeeded) -> RedirectResponse:
        return RedirectResponse(f"/login?next={quote(exc.path, safe='')}", status_code=303)
