"""What ``quire serve`` serves: the researcher API (``api/``) with the dashboard (``web/``).

``create_app(settings)`` builds it; without settings it reads them from the environment here, the
app's edge (uvicorn's ``--factory``, and ``quire serve``'s worker processes).
``quire_assets.server:app`` is that app, made on first use, for ``uvicorn quire_assets.server:app``.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from quire_assets.api.app import create_api
from quire_assets.api.settings import Service
from quire_assets.settings import Settings
from quire_assets.web import add_dashboard


def create_app(settings: Settings | None = None) -> FastAPI:
    app = create_api(Service.of(settings or Settings.from_environ()))
    add_dashboard(app)
    return app


def __getattr__(name: str) -> Any:
    if name == "app":  # built on first use: importing the module must not read the environment
        globals()["app"] = create_app()
        return globals()["app"]
    raise AttributeError(name)
