"""A reference evaluator of the MongoDB query language Quire supports, written from MongoDB's
manual, not from either backend: the oracle the differential test holds SQLite (and mongomock)
to. Each rule names the page it comes from (https://www.mongodb.com/docs/manual/...).

- Dot notation reaches into documents and, at any step, into the documents of an array
  (tutorial/query-array-of-documents); a path that reaches no value is a missing field.
- A condition on a field that holds an array matches the array as a whole or any of its elements
  (tutorial/query-arrays): equality, ranges, ``$in`` and ``$regex`` alike.
- Comparisons stay inside a type bracket: numbers (integers and doubles compare by value),
  strings, booleans (false < true), null; no order across brackets (reference/bson-type-comparison-order,
  "Type Bracketing" under the comparison operators). Booleans are never numbers: true is not 1.
- ``null`` matches a null value or a missing field (tutorial/query-for-null-fields); ``$gte``/``$lte``
  null are the same as equality to null, ``$gt``/``$lt`` null match nothing.
- Arrays and documents as values compare whole, in order, their numbers by value.
- ``$ne``, ``$nin``, ``$not`` and ``$exists: false`` are the complement of ``$eq``, ``$in``, the
  inner expression and ``$exists: true``: they match documents where the field is missing
  (reference/operator/query/ne, nin, not, exists). ``$exists: true`` matches a field holding null.
- ``$regex`` matches strings only, and array elements that are strings.
- ``$and``, ``$or``, ``$nor`` as in logic; several operators on one field all hold.

Where the manual is silent (a path through an array some of whose documents lack the next field),
the rule above decides: the field is present when the path reaches any value.
"""

from __future__ import annotations

import re
from typing import Any

from quire_assets.catalog.filters import regex_flags


def reached(node: Any, parts: list[str]) -> list[Any]:
    """Every value ``parts`` reaches in ``node``."""
    if not parts:
        return [node]
    if isinstance(node, dict):
        return reached(node[parts[0]], parts[1:]) if parts[0] in node else []
    if isinstance(node, list):
        return [v for item in node if isinstance(item, dict) for v in reached(item, parts)]
    return []


def _bracket(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def same(a: Any, b: Any) -> bool:
    """BSON equality: type brackets kept apart, numbers by value, containers whole and in order."""
    if _bracket(a) != _bracket(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    return a == b


def _candidates(values: list[Any]) -> list[Any]:
    """The values a condition is tried on: each value reached and the elements of those that are arrays."""
    return [*values, *(e for v in values if isinstance(v, list) for e in v)]


def _eq(values: list[Any], operand: Any) -> bool:
    if operand is None:
        return not values or any(c is None for c in _candidates(values))
    return any(same(c, operand) for c in _candidates(values))


def _compare(values: list[Any], op: str, operand: Any) -> bool:
    if operand is None:
        return _eq(values, None) if op in ("$gte", "$lte") else False
    if isinstance(operand, list | dict):
        raise NotImplementedError("range operators with an array or a document operand: the filter rules refuse them")
    bracket = _bracket(operand)
    test = {"$gt": lambda a: a > operand, "$gte": lambda a: a >= operand, "$lt": lambda a: a < operand,
            "$lte": lambda a: a <= operand}[op]
    return any(_bracket(c) == bracket and test(c) for c in _candidates(values))


def _condition(values: list[Any], condition: Any) -> bool:
    if not (isinstance(condition, dict) and condition and all(k.startswith("$") for k in condition)):
        return _eq(values, condition)
    options = condition.get("$options", "")
    for op, operand in condition.items():
        if op == "$options":
            continue
        if op == "$eq":
            ok = _eq(values, operand)
        elif op == "$ne":
            ok = not _eq(values, operand)
        elif op in ("$gt", "$gte", "$lt", "$lte"):
            ok = _compare(values, op, operand)
        elif op == "$in":
            ok = any(_eq(values, item) for item in operand)
        elif op == "$nin":
            ok = not any(_eq(values, item) for item in operand)
        elif op == "$exists":
            ok = bool(values) == bool(operand)
        elif op == "$regex":
            pattern = re.compile(operand, regex_flags(options))
            ok = any(isinstance(c, str) and pattern.search(c) for c in _candidates(values))
        elif op == "$not":
            ok = not _condition(values, operand)
        else:
            raise ValueError(f"{op} is not in the language")
        if not ok:
            return False
    return True


def matches(doc: dict, flt: dict) -> bool:
    """Whether ``doc`` matches the filter document ``flt``."""
    for key, value in flt.items():
        if key == "$and":
            ok = all(matches(doc, c) for c in value)
        elif key == "$or":
            ok = any(matches(doc, c) for c in value)
        elif key == "$nor":
            ok = not any(matches(doc, c) for c in value)
        else:
            ok = _condition(reached(doc, key.split(".")), value)
        if not ok:
            return False
    return True
