"""From conditions to a filter at one level: each concept's home level, and the joins that carry a
condition on another level (a study's sex, a series' date) to the level asked for."""

from __future__ import annotations

from quire_assets.ask.vocabulary import CONCEPTS, HOME, Condition
from quire_assets.catalog.base import Catalog
from quire_assets.catalog.fields import filter_fields

# ---- from conditions to a filter at one level ---------------------------------------------


def home_level(concept: str) -> str:
    if concept.startswith("attribute:"):
        return "series"
    return HOME.get(concept, "series" if "series" in CONCEPTS.get(concept, {}) else "studies")


def place(condition: Condition, level: str) -> tuple[str, str]:
    """(level, field) where a condition is evaluated: the asked level if it has the concept."""
    if condition.attribute:
        return condition.attribute
    fields = CONCEPTS[condition.concept]
    if level in fields:
        return level, fields[level]
    other = next(lv for lv in ("studies", "series", "patients", "instances") if lv in fields)
    return other, fields[other]


# (asked level, level of the condition) → (field here, field there). Patients are joined through
# their studies' UIDs, never their IDs: a filter shown to a researcher holds no patient ID.
JOINS = {("series", "studies"): ("study_instance_uid", "study_instance_uid"),
         ("studies", "series"): ("study_instance_uid", "study_instance_uid"),
         ("instances", "series"): ("series_instance_uid", "series_instance_uid"),
         ("instances", "studies"): ("study_instance_uid", "study_instance_uid"),
         ("patients", "studies"): ("study_instance_uids", "study_instance_uid"),
         ("patients", "series"): ("study_instance_uids", "study_instance_uid")}


def level_filter(catalog: Catalog, level: str, conditions: list[Condition | list[Condition]],
                 notes: list[str]) -> dict:
    """One filter at ``level``: conditions on its own fields as they are, the others joined in
    through the level that has them (their keys as an ``$in``)."""
    own: list[dict] = []
    elsewhere: dict[str, list[dict]] = {}
    groups: list[list[Condition]] = []
    for item in conditions:
        group = item if isinstance(item, list) else [item]
        if len({place(c, level)[0] for c in group}) > 1:  # an "or" across levels cannot be one clause
            notes.append("'or' between things kept at different levels: read as 'and'")
            groups.extend([c] for c in group)
        else:
            groups.append(group)
    for group in groups:
        placed = [place(c, level) for c in group]
        parts = [{path: c.condition} for (_, path), c in zip(placed, group, strict=True)]
        clause = parts[0] if len(parts) == 1 else {"$or": parts}
        target = placed[0][0]
        (own if target == level else elsewhere.setdefault(target, [])).append(clause)
    for other, clauses in elsewhere.items():
        mine, theirs = JOINS[(level, other)]
        inner = clauses[0] if len(clauses) == 1 else {"$and": clauses}
        keys = sorted({v for v, _ in catalog.value_counts(other, theirs, inner)})
        own.append({mine: {"$in": keys}})
        notes.append(f"{', '.join(sorted({k for c in clauses for k in filter_fields(c)}))} "
                     f"{'is' if len(clauses) == 1 else 'are'} on {other}: joined by {mine} ({len(keys)} of them)")
    if not own:
        return {}
    merged: dict = {}
    for clause in own:
        if set(clause) & set(merged):
            return {"$and": own}
        merged.update(clause)
    return merged


def sort_field(concept: str, level: str) -> tuple[str, str] | None:
    fields = CONCEPTS[concept]
    if level in fields:
        return level, fields[level]
    return None


