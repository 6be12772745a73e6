"""The dashboard's pages: server-rendered shells (Jinja2) whose little JavaScript calls the same API
routes a script would; the detail pages are rendered here. Everything shown goes through the PHI
policy of the key that logged in, and Jinja escapes every value."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from quire_assets.api.auth import (
    SESSION_COOKIE,
    SESSION_SECONDS,
    Caller,
    caller,
    catalog,
    catalog_for,
    end_session,
    new_session,
    session,
)
from quire_assets.catalog import KEYS, Catalog
from quire_assets.catalog.base import LEVELS
from quire_assets.catalog.fields import TABLE_COLUMNS

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
router = APIRouter(include_in_schema=False)
NAV = [("/", "Overview"), ("/explore", "Explore"), ("/cohort", "Cohort"), ("/jobs", "Jobs"), ("/integrity", "Integrity")]
LOGIN_COOKIE = "quire_login"
# What the Explore page offers per level: facets (distinct values with counts), ranges, and the
# description's field (free text, and its words as a facet).
FILTERS = {
    "patients": {"facets": ["patient_sex", "modalities"],
                 "ranges": [["num_studies", "number"], ["num_series", "number"], ["num_instances", "number"]],
                 "text": None},
    "studies": {"facets": ["modalities", "patient_sex", "collection_ids"],
                "ranges": [["study_date", "date"], ["num_series", "number"], ["num_instances", "number"]],
                "text": "study_description"},
    "series": {"facets": ["modality", "manufacturer_family", "manufacturer", "manufacturer_model_name",
                          "body_part_examined", "series_types", "complete_volume", "quality_flags"],
               "ranges": [["slice_thickness", "number"], ["num_instances", "number"], ["pixel_spacing", "number"],
                          ["metadata.KVP", "number"]],
               "text": "series_description"},
    "instances": {"facets": ["accession_number"], "ranges": [["instance_number", "number"]], "text": None},
}


class LoginNeeded(Exception):
    def __init__(self, path: str):
        self.path = path


async def page_caller(request: Request, cat: Annotated[Catalog, Depends(catalog)]) -> Caller:
    """The caller of a page: its session, else the login page."""
    try:
        return await caller(request, cat, None)
    except HTTPException as exc:
        if exc.status_code == 401:
            raise LoginNeeded(request.url.path + (f"?{request.url.query}" if request.url.query else "")) from None
        raise


Who = Annotated[Caller, Depends(page_caller)]


def _level(level: str | None) -> str:
    return level if level in LEVELS else "studies"


def _where_text(where: str | None) -> str:
    """The filter as the page shows it: the document as sent (checked by the API when used)."""
    if not where:
        return "{}"
    try:
        return json.dumps(json.loads(where), ensure_ascii=False)
    except ValueError:
        return where


def shown_filters(who: Caller) -> dict:
    """The Explore page's filters on fields the caller's key sees."""
    if who.admin:
        return FILTERS
    def shown(field: str) -> bool:
        return who.policy.hidden(field) != "drop"

    return {level: {"facets": [f for f in spec["facets"] if shown(f)],
                    "ranges": [r for r in spec["ranges"] if shown(r[0])],
                    "text": spec["text"] if spec["text"] and shown(spec["text"]) else None}
            for level, spec in FILTERS.items()}


def render(request: Request, who: Caller, template: str, title: str, **context: Any) -> Response:
    opened = session(request) or {}
    config = {"page": template.removesuffix(".html"), "levels": LEVELS, "filters": shown_filters(who),
              "columns": {level: [KEYS[level], *TABLE_COLUMNS[level]] for level in LEVELS},
              "admin": who.admin, **context.pop("config", {})}
    return templates.TemplateResponse(request, template, {
        "title": title, "page": title.lower(), "nav": NAV, "who": who, "csrf": opened.get("csrf", ""),
        "config": config, **context})


def login_token(request: Request, nonce: str) -> str:
    """The login form's token: bound to the login cookie's nonce by the deployment's secret, so a
    page elsewhere on this host that sets the cookie cannot make a matching form (login CSRF)."""
    return hmac.new(request.app.state.settings.policy.salt, b"quire-login:" + nonce.encode(),
                    hashlib.sha256).hexdigest()


@router.get("/login")
def login_page(request: Request, next: str = "/", error: str | None = None) -> Response:
    nonce = secrets.token_urlsafe(16)
    response = templates.TemplateResponse(request, "login.html", {
        "csrf": login_token(request, nonce), "error": error,
        "next": next if next.startswith("/") and not next.startswith("//") else "/"},
        status_code=401 if error else 200)
    response.set_cookie(LOGIN_COOKIE, nonce, httponly=True, samesite="strict", secure=request.url.scheme == "https")
    return response


@router.post("/login")
async def login(request: Request, key: Annotated[str, Form()], csrf: Annotated[str, Form()],
                next: Annotated[str, Form()] = "/") -> Response:
    if not hmac.compare_digest(csrf, login_token(request, request.cookies.get(LOGIN_COOKIE, ""))):
        return login_page(request, next, "The form expired: log in again.")
    state = request.app.state
    try:
        found = await state.keys.checked(request, key.strip())
    except HTTPException as exc:  # too many failed keys: said on the form
        return login_page(request, next, str(exc.detail))
    if found is None:
        return login_page(request, next, "That key is unknown or revoked.")
    value = await run_in_threadpool(new_session, request, found)
    target = next if next.startswith("/") and not next.startswith("//") else "/"
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(SESSION_COOKIE, value, httponly=True, samesite="strict", secure=request.url.scheme == "https",
                        max_age=SESSION_SECONDS)
    response.delete_cookie(LOGIN_COOKIE)
    return response


@router.post("/logout")
def logout(request: Request, csrf: Annotated[str, Form()] = "") -> Response:
    opened = session(request)
    if opened and not secrets.compare_digest(csrf, opened["csrf"]):
        raise HTTPException(403, "this needs the page's CSRF token")
    end_session(request)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE)
    return response


@router.get("/")
def overview(request: Request, who: Who, level: str | None = None, where: str | None = None) -> Response:
    return render(request, who, "overview.html", "Overview", level=_level(level), where_text=_where_text(where))


@router.get("/explore")
def explore(request: Request, who: Who, level: str | None = None, where: str | None = None) -> Response:
    return render(request, who, "explore.html", "Explore", level=_level(level), levels=LEVELS,
                  config={"level": _level(level), "where": _where_text(where)})


@router.get("/cohort")
def cohort(request: Request, who: Who, level: str | None = None, where: str | None = None) -> Response:
    level, where_text = _level(level), _where_text(where)
    return render(request, who, "cohort.html", "Cohort", level=level, where_text=where_text,
                  files_url=f"/api/v1/{level}/files?where={quote(where_text)}",
                  package_url=f"/api/v1/{level}/package?where={quote(where_text)}",
                  config={"level": level, "where": where_text})


@router.get("/jobs")
def jobs(request: Request, who: Who) -> Response:
    return render(request, who, "jobs.html", "Jobs")


@router.get("/integrity")
def integrity(request: Request, who: Who) -> Response:
    return render(request, who, "integrity.html", "Integrity")


def _flat(doc: Any, prefix: str = "") -> list[tuple[str, str]]:
    """Every stored value as (dotted name, text), documents and lists of documents unfolded."""
    rows: list[tuple[str, str]] = []
    for key, value in doc.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            rows.extend(_flat(value, f"{name}."))
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            for i, item in enumerate(value):
                rows.extend(_flat(item, f"{name}[{i}]."))
        else:
            rows.append((name, json.dumps(value, ensure_ascii=False) if isinstance(value, list | bool) or value is None
                         else str(value)))
    return rows


def _children(cat: Any, level: str, link: str, uid: str, href: str) -> list[dict]:
    key = KEYS[level]
    docs = cat.find(level, {link: uid}, sort=[(key, 1)], limit=10_000)
    columns = [key, *TABLE_COLUMNS[level]]
    return [{"href": f"{href}/{quote(d[key], safe='')}",
             "cells": {c: _cell(d, c) for c in columns}} for d in docs]


def _cell(doc: dict, column: str) -> str:
    value = doc.get(column)
    if value is None:
        return ""
    return ", ".join(map(str, value)) if isinstance(value, list) else str(value)


def _detail(request: Request, who: Caller, level: str, uid: str) -> Response:
    cat = catalog_for(request, who)
    doc = cat.get(level, uid)
    if doc is None:
        raise HTTPException(404, f"no {level} document {uid!r}")
    crumbs, children, child_level = [], [], None
    study_uid = doc.get("study_instance_uid")
    if level == "studies" and doc.get("patient_id"):
        crumbs.append((f"/patients/{quote(doc['patient_id'], safe='')}", f"Patient {doc['patient_id']}"))
    if level in ("series", "instances") and study_uid:
        crumbs.append((f"/studies/{quote(study_uid, safe='')}", f"Study {doc.get('accession_number') or study_uid}"))
    if level == "instances" and doc.get("series_instance_uid"):
        crumbs.append((f"/series/{quote(doc['series_instance_uid'], safe='')}", "Series"))
    if level == "patients":
        child_level, children = "studies", _children(cat, "studies", "patient_id", uid, "/studies")
    elif level == "studies":
        child_level, children = "series", _children(cat, "series", "study_instance_uid", uid, "/series")
    elif level == "series":
        child_level, children = "instances", _children(cat, "instances", "series_instance_uid", uid,
                                                        "/instances")
    heading = {"patients": "Patient", "studies": "Study", "series": "Series", "instances": "Instance"}[level]
    heading += f" {doc.get('accession_number') or ''} {doc.get('series_description') or ''}".rstrip()
    if level == "patients":
        heading = f"Patient {uid}"
    return render(request, who, "detail.html", "Explore", heading=heading.strip(), crumbs=crumbs,
                  tags=_flat(doc), files=doc.get("uris") or ([doc["uri"]] if doc.get("uri") else []),
                  children=children, children_label=(child_level or "").capitalize(),
                  child_columns=[KEYS[child_level], *TABLE_COLUMNS[child_level]] if child_level else [])


@router.get("/patients/{uid:path}")  # a patient ID may hold a slash
def patient_page(request: Request, who: Who, uid: str) -> Response:
    return _detail(request, who, "patients", uid)


@router.get("/studies/{uid}")
def study_page(request: Request, who: Who, uid: str) -> Response:
    return _detail(request, who, "studies", uid)


@router.get("/series/{uid}")
def series_page(request: Request, who: Who, uid: str) -> Response:
    return _detail(request, who, "series", uid)


@router.get("/instances/{uid}")
def instance_page(request: Request, who: Who, uid: str) -> Response:
    return _detail(request, who, "instances", uid)


@router.get("/docs")
def api_docs(request: Request) -> Response:
    """Swagger UI over /openapi.json, its files served by this service."""
    return templates.TemplateResponse(request, "docs.html", {})


@router.get("/static/plotly.min.js")
def plotly_js() -> FileResponse:
    """plotly.js from the installed plotly package (the bundle reports link to): no internet needed."""
    from quire_assets.report import plotly_js

    return FileResponse(plotly_js(), media_type="text/javascript", headers={"Cache-Control": "max-age=86400"})
