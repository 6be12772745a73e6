"""The researcher web service (``quire serve``): FastAPI over the catalog, collections and jobs.

``create_app()`` builds it from the environment; ``quire_assets.api:app`` is that app, made on
first use, for ``uvicorn quire_assets.api:app`` (docker-compose runs it so).
"""

from __future__ import annotations

from typing import Any

from quire_assets.api.app import create_app

__all__ = ["app", "create_app"]


def __getattr__(name: str) -> Any:
    if name == "app":  # built on first use: importing the package must not read the environment
        globals()["app"] = create_app()
        return globals()["app"]
    raise AttributeError(name)
