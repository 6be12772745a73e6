"""``GET /api/v1/ask``: a question in plain words, answered with the filter it became."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel, Field

from quire_assets.api.auth import CallerDep, CatalogDep
from quire_assets.ask import AskError, get_translator, run
from quire_assets.ask.vocabulary import VALUE_FIELDS
from quire_assets.catalog.fields import filter_fields
from quire_assets.catalog.filters import check_values

router = APIRouter(prefix="/api/v1", tags=["ask"])


class Answer(BaseModel):
    question: str
    level: str
    filter: dict[str, Any] = Field(description="the MongoDB filter the question became (editable in Explore)")
    sort: list[list[Any]] | None
    limit: int | None
    count: bool = Field(description="the question asked how many: `total` is the answer")
    total: int
    results: list[dict[str, Any]]
    unrecognized: list[str] = Field(description="words of the question that were not used")
    partial: bool = Field(description="some words were not used (none that would change the question: those are "
                                      "refused); show `unrecognized` before the results")
    group_by: str | None = Field(description="the field whose values `groups` counts (\"studies per patient\", "
                                             "\"which scanners\")")
    groups: list[dict[str, Any]] | None = Field(None, description="`{value, count}` per value, most first")
    num_groups: int | None = Field(None, description="how many values there are (`groups` holds the first 1,000)")
    notes: list[str] = Field(description="how words were read (thresholds, ambiguous values, joins)")


@router.get("/ask", summary="Ask in plain words: the filter it became, and its results or count")
def ask(request: Request, catalog: CatalogDep, who: CallerDep, q: Annotated[str, Query(min_length=1, max_length=500)],
        level: Annotated[Literal["auto", "patients", "studies", "series", "instances"], Query()] = "auto") -> Answer:
    hidden = frozenset() if who.admin else frozenset(
        path for _, path in VALUE_FIELDS.values() if who.policy.hidden(path))
    try:
        service = request.app.state.settings
        translation = get_translator(service.ask_translator, service.ask_synonyms)(q, catalog, level, hidden)
    except AskError as exc:
        raise HTTPException(400, str(exc)) from None
    # The fields of joined conditions too: a join on a hidden field would silently match nothing.
    who.check_visible([*filter_fields(translation.filter), *translation.fields,
                       *([translation.group_by] if translation.group_by else [])], "the question")
    check_values(translation.filter, "the question")
    return Answer(**run(translation, catalog))
