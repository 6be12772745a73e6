"""Questions in plain words → a level, a MongoDB filter, a sort, a limit, or a count: offline,
deterministic, and honest (the words it could not use are listed; nothing understood is refused).

Hand-written because no library does this job offline: the vocabulary is the catalog's own values,
DICOM's attribute names (pydicom's data dictionary) and a synonym file users can extend
(``synonyms.toml``). A sentence is read left to right; each matcher takes the longest phrase it
knows at the current word. The words are ``vocabulary``'s, the reading ``reader``'s, and the
filter at the asked level ``joins``'; this module holds the entry points.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from quire_assets.ask.joins import home_level, level_filter, place, sort_field
from quire_assets.ask.reader import Reader
from quire_assets.ask.vocabulary import (
    CONCEPTS,
    EXAMPLES,
    GROUP_BY_LEVEL,
    MEANING_WORDS,
    NUMBER_WORDS,
    AskError,
    Condition,
)
from quire_assets.catalog.base import LEVELS, Catalog


@dataclass
class Translation:
    question: str
    level: str
    filter: dict
    sort: list[tuple[str, int]] | None = None
    limit: int | None = None
    count: bool = False
    unrecognized: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    group_by: str | None = None  # "studies per patient", "which scanners": this field's values, counted
    partial: bool = False  # some words were not used (none that would change the question)
    fields: list[str] = field(default_factory=list)  # every field a condition is on, joined ones too

    def as_dict(self) -> dict[str, Any]:
        return {"question": self.question, "level": self.level, "filter": self.filter,
                "sort": [list(s) for s in self.sort] if self.sort else None, "limit": self.limit,
                "count": self.count, "group_by": self.group_by, "partial": self.partial,
                "unrecognized": self.unrecognized, "notes": self.notes}


class Translator(Protocol):
    """What turns a question into a ``Translation``: the offline one below is the default; a
    deployment may plug in another (a model behind a service) with the same signature."""

    def __call__(self, question: str, catalog: Catalog, level: str = "auto",
                 hidden: frozenset[str] = frozenset()) -> Translation: ...



def translate(question: str, catalog: Catalog, level: str = "auto",
              hidden: frozenset[str] = frozenset(), synonyms: str | Path | None = None) -> Translation:
    """The offline translator (``Translator``). ``hidden``: fields the asker may not see (their
    values are not offered as words); ``synonyms``: a site's own phrase file, read first."""
    if not question or not question.strip():
        raise AskError(f"ask a question, e.g. {EXAMPLES}")
    reader = Reader(question, catalog, hidden, synonyms)
    reader.read()
    unread = list(dict.fromkeys(reader.unrecognized))
    meaningful = [w for w in unread if w in MEANING_WORDS or re.fullmatch(r"\d+(\.\d+)?", w) or w in NUMBER_WORDS]
    if meaningful:
        # An answer without these words would be the answer to another question: say what was read.
        understood = describe(reader, level if level in LEVELS else reader.level)
        raise AskError(f"not understood: {', '.join(repr(w) for w in meaningful)}, which change what the question "
                       f"asks, so it is not answered{f' (understood: {understood})' if understood else ''}; "
                       f"ask e.g. {EXAMPLES}")
    if not reader.conditions and not reader.count and not reader.sort and not reader.limit and not reader.group:
        raise AskError(f"no word of this question names something in the catalog "
                       f"({', '.join(reader.unrecognized) or 'nothing to read'}); ask e.g. {EXAMPLES}")
    if reader.sort and not reader.sort[0].startswith("attribute:"):
        # "the thinnest": of the documents that have a thickness at all
        reader.conditions.append(Condition(reader.sort[0], {"$ne": None}))
    chosen = level if level in LEVELS else reader.level
    if chosen is None:
        concepts = [c.concept for item in reader.conditions for c in (item if isinstance(item, list) else [item])]
        if reader.sort:
            concepts.append(reader.sort[0])
        if reader.group and reader.group[0] == "concept":
            concepts.append(reader.group[1])
        homes = [home_level(c) for c in concepts]
        chosen = "series" if "series" in homes else "patients" if "patients" in homes else (
            homes[0] if homes else "studies")
    notes = list(reader.notes)
    group_by = None
    if reader.group and (reader.sort or reader.limit):
        raise AskError(f"the first or latest of each {reader.group[1]} is not a question ask answers (it counts per "
                       f"value, or lists the first of all): ask one of the two")
    if reader.group:
        group_by = group_field(reader.group, chosen)
        if group_by is None:
            kind, name = reader.group
            raise AskError(f"{chosen} cannot be counted per {name}" + (
                f" (ask at the level that has it, e.g. 'how many {name} per ...')" if kind == "level" else
                f" ({name} is not kept on {chosen})"))
    flt = level_filter(catalog, chosen, reader.conditions, notes)
    sort = None
    if reader.sort:
        placed = sort_field(reader.sort[0], chosen) if not reader.sort[0].startswith("attribute:") else None
        if placed:
            sort = [(placed[1], reader.sort[1])]
        else:
            notes.append(f"cannot sort {chosen} by {reader.sort[0]}")
    if reader.negate:
        notes.append("a 'not' at the end had nothing to apply to")
    limit = reader.limit
    if reader.implied_one and sort and reader.singular and not group_by:
        limit = 1
        notes.append(f"'the {reader.sort[0]}' of one: ask 'the 10 ...' for more")
    return Translation(question=question, level=chosen, filter=flt, sort=sort, limit=limit,
                       count=reader.count, unrecognized=unread, notes=notes, group_by=group_by,
                       partial=bool(unread), fields=sorted({place(c, chosen)[1] for item in reader.conditions
                                                            for c in (item if isinstance(item, list) else [item])}))


def group_field(group: tuple[str, str], level: str) -> str | None:
    """The field whose values a grouped question counts, at the counted level."""
    kind, name = group
    if kind == "level":
        return GROUP_BY_LEVEL.get((level, name))
    return CONCEPTS.get(name, {}).get(level)


def describe(reader: Reader, level: str | None) -> str:
    """What a question was read as, in a few words, for a refusal."""
    parts = [f"{c.concept} {json.dumps(c.condition)}" for item in reader.conditions
             for c in (item if isinstance(item, list) else [item])]
    return " where ".join(p for p in (level or "", "; ".join(parts)) if p)


def get_translator(named: str = "", synonyms: str = "") -> Translator:
    """The translator a deployment ``named`` (``package.module:function``, a ``Translator``;
    QUIRE_ASK_TRANSLATOR), else the offline ``translate``, with a site's ``synonyms`` file if any."""
    import importlib

    if not named:
        return functools.partial(translate, synonyms=synonyms) if synonyms else translate
    module, _, name = named.partition(":")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError) as exc:
        raise AskError(f"QUIRE_ASK_TRANSLATOR={named!r} cannot be loaded: {exc}") from None


def run(translation: Translation, catalog: Catalog, default_limit: int = 100) -> dict[str, Any]:
    """The answer: the translation with its results (or its count)."""
    answer = translation.as_dict()
    total = catalog.count(translation.level, translation.filter)
    answer["total"] = total
    if translation.group_by:
        # Counts per value, most first: the answer to "studies per patient" and "which scanners".
        counted = catalog.value_counts(translation.level, translation.group_by, translation.filter)
        answer["groups"] = [{"value": v, "count": n} for v, n in counted[:translation.limit or 1000]]
        answer["num_groups"] = len(counted)
        answer["results"] = []
        return answer
    if translation.count:
        answer["results"] = []
        return answer
    answer["results"] = catalog.find(translation.level, translation.filter, sort=translation.sort,
                                     limit=translation.limit or default_limit)
    return answer


__all__ = ["AskError", "Translation", "Translator", "get_translator", "run", "translate"]

