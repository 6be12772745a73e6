"""The dashboard's pages: server-rendered shells (Jinja2) whose little JavaScript calls the same API
routes a script would; the detail pages are rendered here. Everything shown goes through the PHI
policy of the key that logged in, and Jinja escapes every value."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from pydicom.uid import UID

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
from quire_assets.catalog.labels import label, labels

HERE = Path(__file__).parent
# The tables' columns, human ones first (as a PACS viewer's study list); the key comes last,
# shortened. The command line and CSV keep ``TABLE_COLUMNS``.
COLUMNS = {
    "patients": ["patient_id", "patient_name", "patient_sex", "patient_birth_date", "num_studies", "num_series",
                 "num_instances", "modalities"],
    "studies": ["patient_id", "study_date", "accession_number", "study_description", "modalities", "body_parts",
                "num_series", "num_instances", "series_types", "quality_flags", "study_instance_uid"],
    "series": ["series_description", "series_number", "modality", "slice_thickness", "num_instances",
               "manufacturer_family", "manufacturer_model_name", "series_types", "quality_flags", "accession_number", "series_instance_uid"],
    "instances": ["instance_number", "accession_number", "slice_location", "sop_instance_uid", "uri"],
}
# The order a table opens in: studies newest first, as a study list does.
DEFAULT_SORT = {"studies": "study_date:desc", "series": None, "patients": None, "instances": None}
_UID = re.compile(r"^\d+(\.\d+){3,}$")
# Stored attributes grouped by their DICOM group (the dictionary knows groups, not modules).
GROUPS = {0x0008: "Identification and equipment", 0x0010: "Patient", 0x0018: "Acquisition",
          0x0020: "Relationship and position", 0x0028: "Image", 0x0032: "Study", 0x0040: "Procedure",
          0x0054: "Nuclear medicine"}
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


def _shows(who: Caller, field: str) -> bool:
    """Whether the caller's view holds ``field`` (the API refuses filters and sorts on the others)."""
    return who.admin or who.policy.hidden(field) != "drop"


def shown_filters(who: Caller) -> dict:
    """The Explore page's filters on fields the caller's key sees."""
    if who.admin:
        return FILTERS
    return {level: {"facets": [f for f in spec["facets"] if _shows(who, f)],
                    "ranges": [r for r in spec["ranges"] if _shows(who, r[0])],
                    "text": spec["text"] if spec["text"] and _shows(who, spec["text"]) else None}
            for level, spec in FILTERS.items()}


def shown_sorts(who: Caller) -> dict:
    """The order each table opens in, where the caller's view holds its field (a policy that drops
    study dates opens the study list unsorted, rather than on a refusal)."""
    return {level: sort if sort and _shows(who, sort.split(":")[0]) else None for level, sort in DEFAULT_SORT.items()}


def render(request: Request, who: Caller, template: str, title: str, **context: Any) -> Response:
    opened = session(request) or {}
    filters = shown_filters(who)
    named = {*(c for cs in COLUMNS.values() for c in cs),
             *(f for spec in filters.values() for f in [*spec["facets"], *(r[0] for r in spec["ranges"])]),
             *(spec["text"] for spec in filters.values() if spec["text"])}
    config = {"page": template.removesuffix(".html"), "levels": LEVELS, "filters": filters,
              "columns": COLUMNS, "keys": {level: KEYS[level] for level in LEVELS}, "sort": shown_sorts(who), "labels": labels(sorted(named)),
              "admin": who.admin, "dagster_url": request.app.state.settings.dagster_url,
              **context.pop("config", {})}
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
    from quire_assets.research.requests import OUTCOMES

    return render(request, who, "jobs.html", "Jobs", config={"outcomes": {
        "pending": "waiting for its run", "running": "its run is under way", **OUTCOMES}})


@router.get("/integrity")
def integrity(request: Request, who: Who) -> Response:
    return render(request, who, "integrity.html", "Integrity")


def _scalars(value: Any) -> bool:
    """A list of plain values (shown item by item), not of documents or lists."""
    return isinstance(value, list) and not any(isinstance(v, list | dict) for v in value)


def _text(value: Any) -> str:
    if _scalars(value):
        return ", ".join(map(str, value))
    return json.dumps(value, ensure_ascii=False) if isinstance(value, list | bool | dict) else str(value)


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


def _flat(doc: Any, prefix: str = "") -> list[tuple[str, str]]:
    """Every stored value as (dotted name, text), documents and lists of documents unfolded, empty
    values left out."""
    rows: list[tuple[str, str]] = []
    for key, value in doc.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            rows.extend(_flat(value, f"{name}."))
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            for i, item in enumerate(value):
                rows.extend(_flat(item, f"{name}[{i}]."))
        elif not _empty(value):
            rows.append((name, _text(value)))
    return rows


def _shown(text: str) -> dict:
    """A value as a cell shows it: a long UID shortened (the whole on hover, and a copy button)."""
    if len(text) > 24 and _UID.match(text):
        known = UID(text).name  # a SOP class or transfer syntax by its name
        return {"text": text, "short": known if known != text else f"{text[:6]}…{text[-4:]}"}
    return {"text": text, "short": None}


def _field(name: str, value: Any) -> dict:
    """A stored value as a detail page shows it; a list of values item by item (UIDs shortened)."""
    items = [_shown(str(v)) for v in value] if _scalars(value) else None
    return {"name": name, "label": label(name), **_shown(_text(value)), "items": items}


def _sections(doc: dict) -> list[tuple[str, list[dict]]]:
    """The page's stored values once each: Quire's fields first, then the file's attributes not
    already shown under a field of their own, by DICOM group, then Quire's notes on them."""
    from pydicom.datadict import keyword_dict

    from quire_assets.dicom.records import snake_case

    fields = {k: v for k, v in doc.items() if k not in ("uri", "uris") and not isinstance(v, dict) and not _empty(v)
              and not (isinstance(v, list) and v and all(isinstance(x, dict) for x in v))}
    sections: list[tuple[str, list[dict]]] = [("Catalog", [_field(k, v) for k, v in fields.items()])]
    groups: dict[str, list[dict]] = {}
    for keyword, value in (doc.get("metadata") or {}).items():
        if _empty(value) or snake_case(keyword) in fields:
            continue
        tag = keyword_dict.get(keyword)
        group = GROUPS.get(tag >> 16, f"Group {tag >> 16:04X}") if tag is not None else "Private and other"
        groups.setdefault(group, []).append(_field(f"metadata.{keyword}", value))
    sections.extend(sorted(groups.items(), key=lambda kv: kv[0]))
    ranges = [{"name": f"instance_ranges.{k}", "label": label(f"metadata.{k}"), "items": None,
               **_shown(str(r.get("min")) if r.get("min") == r.get("max") else f"{r.get('min')} to {r.get('max')}")} for k, r in (doc.get("instance_ranges") or {}).items()]
    sections.append(("Ranges over the instances", ranges))
    quality = [_field(f"quality.{k}", v) for k, v in (doc.get("quality") or {}).items()
               if not _empty(v) and k not in fields and f"quality_{k}" not in fields]
    sections.append(("Quality", quality))
    evidence = [{"name": f"series_type_evidence[{i}]", "label": e.get("label", ""), "items": None,
                 **_shown(f"{label('metadata.' + e['attribute']) if e.get('attribute') else 'rule'} = {_text(e.get('value'))} "
                          f"({e.get('rule')}, confidence {e.get('confidence')})")}
                for i, e in enumerate(doc.get("series_type_evidence") or [])]
    sections.append(("What decided the labels", evidence))
    shown_apart = {"metadata", "instance_ranges", "quality", "series_type_evidence", *fields}
    notes = [{"name": n, "label": n, **_shown(t), "items": None} for k, v in doc.items()
             if k not in shown_apart and isinstance(v, dict | list) for n, t in _flat({k: v})]
    sections.append(("Quire's notes", notes))
    return [(title, rows) for title, rows in sections if rows]


def _children(cat: Any, level: str, link: str, uid: str) -> list[dict]:
    key = KEYS[level]
    order = [("instance_number", 1), (key, 1)] if level == "instances" else \
        [("series_number", 1), (key, 1)] if level == "series" else [("study_date", -1), (key, 1)]
    docs = cat.find(level, {link: uid}, sort=order, limit=10_000)
    return [{"href": f"/{level}/{quote(d[key], safe='')}", "cells": {c: _shown(_cell(d, c)) for c in COLUMNS[level]}}
            for d in docs]


def _cell(doc: dict, column: str) -> str:
    value = doc.get(column)
    return "" if value is None else _text(value)


def _heading(level: str, doc: dict, uid: str) -> str:
    if level == "patients":
        return f"Patient {uid}"
    if level == "studies":
        parts = [doc.get("study_description"), doc.get("study_date"), doc.get("accession_number")]
        return "Study: " + (" · ".join(p for p in parts if p) or "(no description)")
    if level == "series":
        number = doc.get("series_number")
        return f"Series {number if number is not None else ''}: {doc.get('series_description') or doc.get('modality') or ''}"
    number = doc.get("instance_number")
    return f"Instance {number if number is not None else '(no number)'}"


def _detail(request: Request, who: Caller, level: str, uid: str) -> Response:
    cat = catalog_for(request, who)
    doc = cat.get(level, uid)
    if doc is None:
        raise HTTPException(404, f"no {level} document {uid!r}")
    crumbs, children, child_level = [], [], None
    if level != "patients" and doc.get("patient_id"):
        crumbs.append((f"/patients/{quote(doc['patient_id'], safe='')}", f"Patient {doc['patient_id']}"))
    study_uid = doc.get("study_instance_uid")
    if level in ("series", "instances") and study_uid:
        crumbs.append((f"/studies/{quote(study_uid, safe='')}", f"Study {doc.get('accession_number') or study_uid}"))
    if level == "instances" and doc.get("series_instance_uid"):
        crumbs.append((f"/series/{quote(doc['series_instance_uid'], safe='')}", "Series"))
    if level == "patients":
        child_level, children = "studies", _children(cat, "studies", "patient_id", uid)
    elif level == "studies":
        child_level, children = "series", _children(cat, "series", "study_instance_uid", uid)
    elif level == "series":
        child_level, children = "instances", _children(cat, "instances", "series_instance_uid", uid)
    template = request.app.state.settings.viewer_url
    viewer = template.replace("{study_instance_uid}", quote(study_uid, safe="")) if template and study_uid else None
    # A child table leaves out what every row shares with this page (a series' accession number).
    columns = [c for c in COLUMNS[child_level] if not (
        c in doc and children and all(r["cells"][c]["text"] == _cell(doc, c) for r in children))] if child_level else []
    return render(request, who, "detail.html", "Explore", heading=_heading(level, doc, uid), crumbs=crumbs,
                  sections=_sections(doc), viewer=viewer, level=level,
                  files=doc.get("uris") or ([doc["uri"]] if doc.get("uri") else []),
                  children=children, children_label=(child_level or "").capitalize(),
                  child_columns=[(c, label(c)) for c in columns])


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
