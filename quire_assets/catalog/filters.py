"""MongoDB filter documents: validation, and compilation to SQLite JSON1.

Supported: ``$eq $ne $gt $gte $lt $lte $in $nin $exists $regex ($options) $not`` on fields,
``$and $or $nor`` on clauses, dotted paths, and Mongo's array semantics (a condition on an
array field matches when any element matches). Anything else is refused with an error naming
the operator: never ignored, never executed. Filter values reach SQL only as parameters.
"""

from __future__ import annotations

import json
import math
import re
from itertools import combinations
from typing import Any

FIELD_OPERATORS = {"$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$exists", "$regex", "$options", "$not"}
LOGICAL_OPERATORS = {"$and", "$or", "$nor"}
# Bounds on what one filter may ask (filters arrive over HTTP too): nesting, list and pattern sizes.
MAX_DEPTH = 32
MAX_IN = 10_000
MAX_CLAUSES = 1_000
# Up to this many values, ``$in`` on a field that may hold arrays is one condition per value;
# beyond, one join with the list (``SqlFilter._in``).
SHORT_IN = 16
MAX_REGEX = 1_000
# Parts of a field path (records hold at most metadata.Sequence.Sequence.Sequence.Attribute).
MAX_PATH_PARTS = 8
# A field path crosses at most this many arrays of documents on SQLite: records keep DICOM
# sequences three levels deep (``dicom/normalize.MAX_SEQUENCE_DEPTH``).
ARRAY_CROSSINGS = 3
_FIELD_PART = re.compile(r"^[^$.\x00\"'\[\]\\]+$")


class FilterError(ValueError):
    """A filter document Quire will not run."""


def _check_field(path: str) -> list[str]:
    if not isinstance(path, str) or not path:
        raise FilterError(f"field names are non-empty strings, not {path!r}")
    check_value(path, "a field name")
    parts = path.split(".")
    if len(parts) > MAX_PATH_PARTS:
        raise FilterError(f"field path {path[:80]!r} has more than {MAX_PATH_PARTS} parts")
    for part in parts:
        if not _FIELD_PART.match(part):
            if part.startswith("$"):
                raise FilterError(f"operator {part!r} is not supported (allowed: "
                                  f"{', '.join(sorted(FIELD_OPERATORS | LOGICAL_OPERATORS))})")
            raise FilterError(f"field name {path!r} is not allowed")
    return parts


def _is_operator_doc(value: Any) -> bool:
    return isinstance(value, dict) and bool(value) and all(isinstance(k, str) and k.startswith("$") for k in value)


def _check_literal(value: Any, where: str) -> None:
    if isinstance(value, dict):
        for key, inner in value.items():
            if not isinstance(key, str) or key.startswith("$"):
                raise FilterError(f"operator {key!r} is not supported inside a value ({where})")
            _check_literal(inner, where)
    elif isinstance(value, list):
        for inner in value:
            _check_literal(inner, where)
    elif not (value is None or isinstance(value, bool | int | float | str)):
        raise FilterError(f"{where}: values are JSON values, not {type(value).__name__}")
    else:  # an integer beyond 64 bits is refused here, by both backends alike, never a crash in a driver
        check_value(value, where)


def validate_filter(flt: Any) -> dict:
    """Return ``flt`` if every operator in it is supported; raise ``FilterError`` otherwise."""
    if flt is None:
        return {}
    if not isinstance(flt, dict):
        raise FilterError(f"a filter is a JSON object, not {type(flt).__name__}")
    for key, value in flt.items():
        if key in LOGICAL_OPERATORS:
            if not isinstance(value, list) or not value:
                raise FilterError(f"{key} takes a non-empty list of filters")
            for clause in value:
                validate_filter(clause)
        elif isinstance(key, str) and key.startswith("$"):
            raise FilterError(f"operator {key!r} is not supported (allowed: "
                              f"{', '.join(sorted(FIELD_OPERATORS | LOGICAL_OPERATORS))})")
        else:
            _check_field(key)
            _validate_condition(key, value)
    return flt


INT64 = (-(2**63), 2**63 - 1)


def check_value(value: Any, what: str = "the filter") -> None:
    """A value a catalog can compare: an integer within 64 bits, a finite number, text that is
    valid Unicode (JSON lets a lone surrogate through; neither SQLite nor BSON takes one)."""
    if isinstance(value, bool) or value is None:
        return
    if isinstance(value, int) and not INT64[0] <= value <= INT64[1]:
        raise FilterError(f"{what}: integers are at most 64 bits (±9,223,372,036,854,775,807)")
    if isinstance(value, float) and not math.isfinite(value):
        raise FilterError(f"{what}: numbers must be finite")
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise FilterError(f"{what}: text that is not valid Unicode (a lone surrogate)") from None


def check_values(flt: Any, what: str = "the filter") -> Any:
    """``check_value`` on every key and value of a filter (iteratively); returns it."""
    todo = [flt]
    while todo:
        node = todo.pop()
        if isinstance(node, dict):
            for key in node:
                check_value(key, what)
            todo.extend(node.values())
        elif isinstance(node, list):
            todo.extend(node)
        else:
            check_value(node, what)
    return flt


def user_filter(flt: Any) -> dict:
    """A filter from a user (the command line, the API), held to the bounds on top of the rules:
    at most ``MAX_DEPTH`` levels, ``MAX_IN`` values in a list, ``MAX_REGEX`` characters in a
    pattern, values a catalog can compare. Filters Quire builds itself (a collection's studies)
    may be larger."""
    deepest, todo = 0, [(flt, 1)]
    while todo:  # iteratively: a hostile filter must not exhaust the stack
        node, level = todo.pop()
        if not isinstance(node, dict | list):
            check_value(node)
        else:
            deepest = max(deepest, level)
            if deepest > MAX_DEPTH:
                raise FilterError(f"the filter nests deeper than {MAX_DEPTH} levels")
            if isinstance(node, dict):
                for key in node:
                    check_value(key)
                for op in ("$in", "$nin"):
                    if isinstance(node.get(op), list) and len(node[op]) > MAX_IN:
                        raise FilterError(f"{op} takes at most {MAX_IN:,} values, not {len(node[op]):,}")
                for op in LOGICAL_OPERATORS:
                    if isinstance(node.get(op), list) and len(node[op]) > MAX_CLAUSES:
                        raise FilterError(f"{op} takes at most {MAX_CLAUSES:,} clauses, not {len(node[op]):,}")
                if isinstance(node.get("$regex"), str) and len(node["$regex"]) > MAX_REGEX:
                    raise FilterError(f"$regex takes at most {MAX_REGEX:,} characters, not {len(node['$regex']):,}")
            todo.extend((v, level + 1) for v in (node.values() if isinstance(node, dict) else node))
    return validate_filter(flt)


def filter_from_json(text: str | None, what: str = "where") -> dict:
    """A user's filter given as JSON text (a ``--where``, a ``where`` query parameter), parsed and
    held to ``user_filter``; ``what`` names it in the errors."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as exc:  # ValueError: JSONDecodeError, or a number of 4,300+ digits
        raise FilterError(f"{what} is not valid JSON: {str(exc)[:200]}") from None
    if not isinstance(value, dict):
        raise FilterError(f"{what} takes a JSON object, e.g. '{{\"modality\": \"CT\"}}'")
    return user_filter(value)


def _validate_condition(field: str, value: Any) -> None:
    if not _is_operator_doc(value):
        _check_literal(value, field)
        return
    for op, operand in value.items():
        if op not in FIELD_OPERATORS:
            raise FilterError(f"operator {op!r} is not supported (allowed: "
                              f"{', '.join(sorted(FIELD_OPERATORS | LOGICAL_OPERATORS))})")
        if op in ("$in", "$nin"):
            if not isinstance(operand, list):
                raise FilterError(f"{field}: {op} takes a list")
            for item in operand:
                _check_literal(item, field)
        elif op == "$exists":
            if not isinstance(operand, bool | int):
                raise FilterError(f"{field}: $exists takes true or false")
        elif op == "$regex":
            if not isinstance(operand, str):
                raise FilterError(f"{field}: $regex takes a string")
            try:
                re.compile(operand)
            except re.error as exc:
                raise FilterError(f"{field}: bad $regex: {exc}") from exc
        elif op == "$options":
            if "$regex" not in value or not isinstance(operand, str) or set(operand) - set("imsx"):
                raise FilterError(f"{field}: $options goes with $regex and takes letters from 'imsx'")
        elif op in ("$gt", "$gte", "$lt", "$lte") and isinstance(operand, list | dict):
            # MongoDB orders arrays and documents element by element; no catalog field needs it,
            # and answering "nothing" instead would mislead.
            raise FilterError(f"{field}: {op} compares numbers, text, booleans or null, not "
                              f"{'an array' if isinstance(operand, list) else 'a document'}")
        elif op == "$not":
            if not _is_operator_doc(operand):
                raise FilterError(f"{field}: $not takes an operator document such as {{'$gt': 1}}")
            _validate_condition(field, operand)
        else:
            _check_literal(operand, field)


# How long the ``$regex`` conditions of one query may run in all, by default (``Catalog.regex_seconds``,
# set from QUIRE_REGEX_SECONDS): a pattern that backtracks catastrophically ends as a refusal, not a
# hung catalog.
REGEX_SECONDS = 5.0


def has_regex(node: Any) -> bool:
    if isinstance(node, dict):
        return "$regex" in node or any(has_regex(v) for v in node.values())
    return isinstance(node, list) and any(has_regex(v) for v in node)


def regex_timeout_error(seconds: float) -> FilterError:
    return FilterError(f"the query's $regex ran longer than {seconds:g} s (a pattern that backtracks, "
                       "such as (a|aa)+, on long values): simplify the pattern")


def regex_flags(options: str) -> int:
    flags = 0
    for letter, flag in (("i", re.IGNORECASE), ("m", re.MULTILINE), ("s", re.DOTALL), ("x", re.VERBOSE)):
        if letter in options:
            flags |= flag
    return flags


# ---- SQLite compilation -----------------------------------------------------------------------


def json_path(parts: list[str]) -> str:
    """A JSON1 path. Field parts are validated (no quotes, dots, brackets), so quoting is exact."""
    return "$" + "".join(f'."{p}"' for p in parts)


def _joined(operator: str, clauses: list[str]) -> str:
    """``clauses`` joined by AND or OR as a balanced tree: a chain of a thousand would exceed
    SQLite's expression depth (1,000), a tree of them is ten deep."""
    if len(clauses) <= 8:
        return "(" + f" {operator} ".join(clauses) + ")"
    middle = len(clauses) // 2
    return f"({_joined(operator, clauses[:middle])} {operator} {_joined(operator, clauses[middle:])})"


def _negate(sql: str) -> str:
    # SQL's NULL (a missing field in a plain comparison) must negate to true, as in MongoDB.
    return f"NOT IFNULL(({sql}), 0)"


class SqlFilter:
    """Compiles a validated filter to a WHERE clause over a ``doc`` JSON column."""

    def __init__(self, column: str = "doc", scalar_fields: frozenset[str] = frozenset(), key_field: str = ""):
        self.column = column
        # The natural key is also the table's primary key column ``k``: lookups by it use that.
        self.key_field = key_field
        # Fields the catalog guarantees hold no array (promoted fields): compiled to plain
        # json_extract() comparisons, the same expressions the indexes are built on.
        self.scalar_fields = scalar_fields
        self.params: list[Any] = []

    def compile(self, flt: dict) -> str:
        validate_filter(flt)
        return self._clauses(flt)

    def _clauses(self, flt: dict) -> str:
        parts = []
        for key, value in flt.items():
            if key == "$and":
                parts.append(_joined("AND", [self._clauses(c) for c in value]))
            elif key == "$or":
                parts.append(_joined("OR", [self._clauses(c) for c in value]))
            elif key == "$nor":
                parts.append(_negate(_joined("OR", [self._clauses(c) for c in value])))
            else:
                parts.append(self._field(key.split("."), value))
        return _joined("AND", parts) if parts else "1"

    def _field(self, parts: list[str], value: Any) -> str:
        if not _is_operator_doc(value):
            return self._eq(parts, value)
        conditions = []
        for op, operand in value.items():
            if op == "$options":
                continue
            conditions.append(self._op(parts, op, operand, value.get("$options", "")))
        return "(" + " AND ".join(conditions) + ")"

    def _op(self, parts: list[str], op: str, operand: Any, options: str) -> str:
        if op == "$eq":
            return self._eq(parts, operand)
        if op == "$ne":
            return _negate(self._eq(parts, operand))
        if op in ("$gt", "$gte", "$lt", "$lte"):
            return self._compare(parts, op, operand)
        if op == "$in":
            if not operand:
                return "0"
            return self._in(parts, operand)
        if op == "$nin":
            if not operand:
                return "1"
            return _negate(self._in(parts, operand))
        if op == "$exists":
            return f"({self._present(parts)})" if operand else _negate(self._present(parts))
        if op == "$regex":
            sql = self._any(parts, "({jtype} = 'text' AND quire_regexp(?, ?, {val}))")
            self.params.extend([operand, options])
            return sql
        if op == "$not":
            return _negate(self._field(parts, operand))
        raise FilterError(f"operator {op!r} is not supported")  # validate_filter stops it earlier

    # Mongo semantics: a field path can cross arrays (a.b over [{b: 1}, {b: 2}]), at any step and
    # through arrays of documents inside documents of arrays (a DICOM sequence inside a sequence),
    # and a condition on an array matches the array itself or any element. ``_candidates`` expands
    # a path into the values it reaches; the SQL sees them as (val, jtype, whole) rows.

    def _candidates(self, parts: list[str]) -> str:
        """A subquery yielding (val, jtype, whole) for every value the path reaches: one branch per
        choice of the steps at which the path crosses an array of documents (at most
        ``ARRAY_CROSSINGS`` of them, the depth records keep sequences to), each with the value at
        the path's end (``whole``) and, when that is an array, its elements."""
        # Paths are SQL literals, not parameters: field parts are validated (no quotes), and a filter
        # of many conditions on deep paths would otherwise run out of SQLite's 32,766 parameters.
        sources: list[str] = []
        for count in range(min(ARRAY_CROSSINGS, len(parts) - 1) + 1):
            for crossings in combinations(range(1, len(parts)), count):
                bounds = [0, *crossings]
                joins, arrays, source = [], [], self.column
                for n, (start, stop) in enumerate(zip(bounds, crossings, strict=False)):
                    head = json_path(parts[start:stop])
                    joins.append(f"json_each({source}, '{head}') AS e{n}")
                    arrays.append(f"json_type({source}, '{head}') = 'array' AND e{n}.type = 'object'")
                    source = f"e{n}.value"
                tail = json_path(parts[bounds[-1]:])
                from_ = f" FROM {', '.join(joins)}" if joins else ""
                where = f" WHERE {' AND '.join(arrays)}" if arrays else ""
                sources.append(f"SELECT json_extract({source}, '{tail}') AS val, json_type({source}, '{tail}') AS jtype, "
                               f"1 AS whole{from_}{where}")
                ends = ", ".join([*joins, f"json_each({source}, '{tail}') AS f"])
                elements = " AND ".join([*arrays, f"json_type({source}, '{tail}') = 'array'"])
                sources.append(f"SELECT f.value, f.type, 0 FROM {ends} WHERE {elements}")
        return " UNION ALL ".join(sources)

    def _any(self, parts: list[str], condition: str) -> str:
        if ".".join(parts) in self.scalar_fields:
            path = json_path(parts)
            val, jtype = f"json_extract({self.column}, '{path}')", f"json_type({self.column}, '{path}')"
            return "(" + condition.format(val=val, jtype=jtype, whole="1") + ")"
        where = condition.format(val="val", jtype="jtype", whole="whole")
        return f"EXISTS (SELECT 1 FROM ({self._candidates(parts)}) WHERE {where})"

    def _scalar(self, parts: list[str]) -> str | None:
        """The indexed expression of a single-valued field (never an array, a document or a
        boolean: ``upsert`` refuses those), whose SQL type alone tells text from numbers: a
        condition on it needs no ``json_type`` (which parses the document) and the index answers
        it whole (a count of 12,500 of 50,000 series: 40 ms → 2 ms, measured)."""
        field = ".".join(parts)
        if field not in self.scalar_fields or field == self.key_field:
            return None
        return f"json_extract({self.column}, '{json_path(parts)}')"

    def _present(self, parts: list[str]) -> str:
        return self._any(parts, "{jtype} IS NOT NULL AND {whole} = 1")

    def _eq(self, parts: list[str], operand: Any) -> str:
        if operand is None:
            # null matches a missing field, an explicit null, or an array holding null.
            present = self._present(parts)
            null = self._any(parts, "{jtype} = 'null'")
            return f"({_negate(present)} OR {null})"
        if isinstance(operand, bool):
            return self._any(parts, "{jtype} = '" + ("true" if operand else "false") + "'")
        if isinstance(operand, int | float | str) and (expr := self._scalar(parts)):
            self.params.append(operand)
            return f"({expr} = ?)"  # SQL compares text with text and numbers with numbers only
        if isinstance(operand, int | float):
            cond = "{jtype} IN ('integer', 'real') AND {val} = ?"
            sql = self._any(parts, cond)
            self.params.append(operand)
            return sql
        if isinstance(operand, str):
            if ".".join(parts) == self.key_field and self.key_field in self.scalar_fields:
                self.params.append(operand)
                return f"(k = ? AND json_type({self.column}, '{json_path(parts)}') = 'text')"
            sql = self._any(parts, "{jtype} = 'text' AND {val} = ?")
            self.params.append(operand)
            return sql
        # Arrays and documents compare as whole values (order matters, as in Mongo).
        sql = self._any(parts, "CASE WHEN {jtype} IN ('array', 'object') THEN json({val}) = json(?) ELSE 0 END")
        self.params.append(json.dumps(operand, ensure_ascii=False, separators=(",", ":")))
        return sql

    def _in(self, parts: list[str], items: list) -> str:
        """``$in``: on a scalar (indexed) field, one ``IN (...)`` per type, so the index serves it;
        on any other field, the values the path reaches joined with the list's values (one JSON
        parameter, ``json_each``), so that ten thousand values are one condition, not ten thousand."""
        if ".".join(parts) not in self.scalar_fields:
            if len(items) <= SHORT_IN:  # a few values: one condition each is faster (1.5× for 3, measured)
                return _joined("OR", [self._eq(parts, item) for item in items])
            listed = [item for item in items if item is not None]
            clauses = [self._eq(parts, None)] if len(listed) < len(items) else []
            if listed:
                sql = (f"EXISTS (SELECT 1 FROM ({self._candidates(parts)}), json_each(?) AS i WHERE "
                       "(jtype = i.type AND jtype IN ('text', 'true', 'false') AND (jtype <> 'text' OR val = i.value))"
                       " OR (jtype IN ('integer', 'real') AND i.type IN ('integer', 'real') AND val = i.value)"
                       " OR (jtype = i.type AND jtype IN ('array', 'object') AND json(val) = json(i.value)))")
                self.params.append(json.dumps(listed, ensure_ascii=False, separators=(",", ":")))
                clauses.append(sql)
            return _joined("OR", clauses)
        path = json_path(parts)
        val, jtype = f"json_extract({self.column}, '{path}')", f"json_type({self.column}, '{path}')"
        texts = [i for i in items if isinstance(i, str)]
        numbers = [i for i in items if isinstance(i, int | float) and not isinstance(i, bool)]
        others = [i for i in items if isinstance(i, bool) or not isinstance(i, str | int | float)]
        clauses = []
        for values, types in ((texts, "'text'"), (numbers, "'integer', 'real'")):
            if values:
                column = "k" if ".".join(parts) == self.key_field and types == "'text'" else val
                typed = "" if self._scalar(parts) else f" AND {jtype} IN ({types})"
                clauses.append(f"({column} IN ({', '.join('?' * len(values))}){typed})")
                self.params.extend(values)
        clauses.extend(self._eq(parts, item) for item in others)
        return _joined("OR", clauses)

    def _compare(self, parts: list[str], op: str, operand: Any) -> str:
        sql_op = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}[op]
        if isinstance(operand, bool) or operand is None:
            # Mongo compares within a type bracket: null's holds only null, the booleans' false < true.
            if operand is None and op in ("$gte", "$lte"):
                return self._eq(parts, None)
            if isinstance(operand, bool):
                truth = {"$gt": ["true"] if not operand else [], "$gte": ["true"] if operand else ["false", "true"],
                         "$lt": ["false"] if operand else [], "$lte": ["false"] if not operand else ["false", "true"]}[op]
                if not truth:
                    return "0"
                return self._any(parts, "{jtype} IN (" + ", ".join(f"'{t}'" for t in truth) + ")")
            return "0"
        if expr := self._scalar(parts):
            # SQLite orders numbers before all text: '' bounds each type's range in the index.
            if isinstance(operand, int | float) and sql_op.startswith(">"):
                sql = f"({expr} {sql_op} ? AND {expr} < '')"
            elif isinstance(operand, str) and sql_op.startswith("<"):
                sql = f"({expr} {sql_op} ? AND {expr} >= '')"
            else:
                sql = f"({expr} {sql_op} ?)"
        elif isinstance(operand, int | float):
            sql = self._any(parts, "{jtype} IN ('integer', 'real') AND {val} " + sql_op + " ?")
        elif ".".join(parts) == self.key_field and self.key_field in self.scalar_fields:
            # Ranges on the natural key (keyset pages) walk the primary key.
            sql = f"(k {sql_op} ? AND json_type({self.column}, '{json_path(parts)}') = 'text')"
        else:
            sql = self._any(parts, "{jtype} = 'text' AND {val} " + sql_op + " ?")
        self.params.append(operand)
        return sql
