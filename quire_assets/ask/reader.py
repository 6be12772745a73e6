"""Reading a question left to right: each matcher takes the longest phrase it knows at the
current word, and the words it could not use are kept."""

from __future__ import annotations

import calendar
import difflib
import re
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from quire_assets.ask.vocabulary import (
    COMPARATORS,
    CONCEPT_COMPARATORS,
    COUNTS,
    GROUP_WORDS,
    LEVEL_WORDS,
    MONTHS,
    NEGATIONS,
    NUMBER_WORDS,
    SINGULAR,
    STOPWORDS,
    SUPERLATIVES,
    UNITS,
    VENDOR_WORDS,
    Condition,
    Vocabulary,
    attribute_field,
    dicom_attributes,
    load_phrases,
    tokens,
)
from quire_assets.catalog.base import Catalog
from quire_assets.dicom.vendors import family_named, manufacturer_family

# ---- reading a question ---------------------------------------------------------------------


class Reader:
    def __init__(self, question: str, catalog: Catalog, hidden: frozenset[str], synonyms: str | Path | None = None):
        self.question = question
        self.words = tokens(question)
        self.catalog = catalog
        self.vocabulary = Vocabulary.of(catalog, hidden)
        self.phrases = load_phrases(synonyms)
        self.i = 0
        self.level: str | None = None
        self.count = False
        self.sort: tuple[str, int] | None = None
        self.limit: int | None = None
        self.conditions: list[Condition | list[Condition]] = []  # a list is an or-group
        self.unrecognized: list[str] = []
        self.notes: list[str] = []
        self.negate = False
        self.either = False  # "or" was just read
        self.attribute: tuple[str, str, str] | None = None  # (keyword, level, field) last named
        self.group: tuple[str, str] | None = None  # ("concept", name) or ("level", level): counted per value
        self.person = False  # the question is about people: a bare "over 60" is an age
        self.implied_one = False  # "the latest ...": one, unless a number or a plural says otherwise
        self.singular = False  # the level word read was singular ("study")
        self.date_concept = "date"  # "born" makes the next date a birth date

    def at(self, words: tuple[str, ...] | list[str]) -> bool:
        return tuple(self.words[self.i:self.i + len(words)]) == tuple(words)

    def add(self, condition: Condition) -> None:
        if condition.concept in ("sex", "age", "birth_date"):
            self.person = True
        if self.negate:
            condition = Condition(condition.concept, negated(condition.condition), condition.attribute)
            self.negate = False
        if self.either and self.conditions:
            last = self.conditions.pop()
            group = last if isinstance(last, list) else [last]
            merged = merge_values(group[-1], condition) if len(group) == 1 else None
            self.conditions.append(merged or [*group, condition])
        else:
            self.conditions.append(condition)
        self.either = False

    def read(self) -> None:
        while self.i < len(self.words):
            if not any(step() for step in (self.phrase, self.connector, self.counting, self.which, self.grouping,
                                           self.relative_date, self.born, self.aged, self.superlative,
                                           self.comparison, self.date, self.vendor, self.catalog_value,
                                           self.dicom_attribute, self.number_with_unit, self.level_word,
                                           self.description_word, self.stopword)):
                self.unrecognized.append(self.words[self.i])
                self.i += 1

    # Each step reads at self.i and returns whether it took words.

    def connector(self) -> bool:
        word = self.words[self.i]
        if word == "or":
            self.either = True
        elif word in NEGATIONS or self.at(("but", "not")):
            self.negate = True
            self.i += 1 if word in NEGATIONS else 2
            return True
        else:
            return False
        self.i += 1
        return True

    def counting(self) -> bool:
        for phrase in COUNTS:
            if self.at(phrase.split()):
                self.count = True
                self.i += len(phrase.split())
                return True
        return False

    def which(self) -> bool:
        """"which scanners", "what modalities", "list the manufacturers": a field's values, counted."""
        start = self.i
        if self.words[self.i] in ("which", "what"):
            self.i += 1
        elif self.words[self.i] in ("list", "show") and self.i + 1 < len(self.words) and \
                self.words[self.i + 1] in ("the", "all", "every"):
            self.i += 2
        else:
            return False
        concept = self.group_word()  # "what kinds of images" names modalities whole
        for lead in (("kinds", "of"), ("kind", "of"), ("types", "of"), ("type", "of"), ("different",)):
            if concept is None and self.at(lead):
                self.i += len(lead)
                concept = self.group_word()
                break
        if concept is None:
            self.i = start
            return False
        self.group = ("concept", concept)
        return True

    def group_word(self) -> str | None:
        for size in (3, 2, 1):
            text = " ".join(self.words[self.i:self.i + size])
            for concept, words in GROUP_WORDS.items():
                if text in words and len(self.words) - self.i >= size:
                    self.i += size
                    return concept
        return None

    def grouping(self) -> bool:
        """"studies per patient", "series by modality", "for each study": counts per value."""
        start = self.i
        for lead in (("for", "each"), ("grouped", "by"), ("broken", "down", "by"), ("per",), ("by",), ("each",)):
            if self.at(lead):
                self.i += len(lead)
                break
        else:
            return False
        if self.i < len(self.words) and self.words[self.i] in LEVEL_WORDS:
            self.group = ("level", LEVEL_WORDS[self.words[self.i]])
            self.i += 1
            return True
        concept = self.group_word()
        if concept is None:
            self.i = start
            return False
        self.group = ("concept", concept)
        return True

    def relative_date(self) -> bool:
        """"last year", "this month", "in the last 3 months", "today": dates from today."""
        start = self.i
        today = date.today()
        if self.at(("the",)):
            self.i += 1
        if self.at(("this", "year")):
            first, last = f"{today.year}-01-01", today.isoformat()
        elif self.at(("this", "month")):
            first, last = f"{today.year}-{today.month:02d}-01", today.isoformat()
        elif self.at(("last", "year")) or self.at(("previous", "year")):
            first, last = bounds(today.year - 1, None)
        elif self.at(("last", "month")) or self.at(("previous", "month")):
            year, month = (today.year, today.month - 1) if today.month > 1 else (today.year - 1, 12)
            first, last = bounds(year, month)
        elif self.at(("today",)):
            first = last = today.isoformat()
        elif self.words[self.i:self.i + 1] and self.words[self.i] in ("last", "past"):
            self.i += 1
            n = self.number() or 1
            span = self.words[self.i] if self.i < len(self.words) else ""
            days = {"day": 1, "days": 1, "week": 7, "weeks": 7, "month": 30.4375, "months": 30.4375,
                    "year": 365.25, "years": 365.25}.get(span)
            if days is None:
                self.i = start
                return False
            self.i += 1
            first, last = (today - timedelta(days=round(n * days))).isoformat(), today.isoformat()
            self.add(Condition(self.date_concept, {"$gte": first, "$lte": last}))
            return True
        else:
            self.i = start
            return False
        self.i += 1 if self.at(("today",)) else 2
        self.add(Condition(self.date_concept, {"$gte": first, "$lte": last} if first != last else first))
        self.date_concept = "date"
        return True

    def born(self) -> bool:
        """"born before 1950", "born in 1944": the next date is the patient's birth date."""
        if self.words[self.i] != "born":
            return False
        start = self.i
        self.i += 1
        self.date_concept = "birth_date"
        self.person = True
        if self.i < len(self.words) and self.date():
            return True
        self.date_concept = "date"
        self.i = start
        return False

    def aged(self) -> bool:
        """"aged 40 to 50", "aged between 30 and 45", "aged over 60", "aged 40": the patient's age."""
        if self.words[self.i] not in ("aged", "age", "ages"):
            return False
        start = self.i
        self.i += 1
        self.person = True
        if self.i < len(self.words) and self.words[self.i] in ("of", "is", "was"):
            self.i += 1
        if self.comparison(forced="age"):
            return True
        low = self.number()
        if low is None:
            self.i = start
            return False
        high = low
        if self.at(("to",)) or self.at(("and",)) or self.at(("-",)):
            self.i += 1
            high = self.number()
            if high is None:
                self.i = start
                return False
        if self.at(("years",)) or self.at(("year",)):
            self.i += 1
        self.add(Condition("age", {"$gte": scaled("age", low), "$lte": scaled("age", high)}))
        return True

    def vendor(self) -> bool:
        """A manufacturer by any of its spellings ("philips", "toshiba", "ge healthcare", "canon"): every
        spelling of that family the catalog holds."""
        if "manufacturer" not in self.vocabulary.values:
            return False  # hidden from the asker
        for size in (4, 3, 2, 1):
            words = self.words[self.i:self.i + size]
            text = " ".join(words)
            if len(words) < size:
                continue
            known = self.vocabulary.values["manufacturer"].get(text)
            # "philips medical systems": a family's name and the words spellings add to it
            trailing = size > 1 and all(w in VENDOR_WORDS for w in words[1:])
            family = family_named(text) or (family_named(words[0]) if trailing else None) or (
                manufacturer_family(known[0]) if known else None)
            if family is None:
                continue
            spellings = sorted(v for norm, values in self.vocabulary.values["manufacturer"].items()
                               for v in values if manufacturer_family(v) == family)
            if not spellings:
                return False  # no such vendor here: the catalog's own values may still match
            self.i += size
            self.add(Condition("manufacturer", spellings[0] if len(spellings) == 1 else {"$in": spellings}))
            if len(spellings) > 1:
                self.notes.append(f"{text!r} is the {family} family: {', '.join(spellings)}")
            return True
        return False

    def superlative(self) -> bool:
        start = self.i
        for lead in (("the",), ("top",), ("first",), ()):
            self.i = start
            if lead and not self.at(lead):
                continue
            self.i += len(lead)
            number = self.integer()
            for phrase, (concept, direction) in SUPERLATIVES.items():
                if self.at(phrase.split()):
                    self.i += len(phrase.split())
                    self.sort = (concept, direction)
                    self.limit = number or self.integer() or self.limit  # "the 3 newest", "the newest 3"
                    self.implied_one = lead == ("the",) and self.limit is None
                    return True
            if lead and number is not None and self.i < len(self.words) and self.words[self.i] in LEVEL_WORDS:
                self.limit = number  # "the 10 series", "top 5 studies"
                return True
        self.i = start
        return False

    def integer(self) -> int | None:
        if self.i < len(self.words) and re.fullmatch(r"\d+", self.words[self.i]) and not is_year(self.words[self.i]):
            self.i += 1
            return int(self.words[self.i - 1])
        if self.i < len(self.words) and self.words[self.i] in NUMBER_WORDS and self.words[self.i] != "one":
            self.i += 1  # "the two latest studies" ("the one ..." is not a count)
            return NUMBER_WORDS[self.words[self.i - 1]]
        return None

    def number(self) -> float | None:
        if self.i < len(self.words) and re.fullmatch(r"\d+(\.\d+)?", self.words[self.i]):
            self.i += 1
            text = self.words[self.i - 1]
            return int(text) if text.isdigit() else float(text)
        if self.i < len(self.words) and self.words[self.i] in NUMBER_WORDS:  # "more than one study"
            self.i += 1
            return NUMBER_WORDS[self.words[self.i - 1]]
        return None

    def unit(self) -> str | None:
        if self.at(("years", "old")) or self.at(("year", "old")):
            self.i += 2
            return "age"
        if self.i < len(self.words) and self.words[self.i] in UNITS:
            self.i += 1
            return UNITS[self.words[self.i - 1]]
        return None

    def comparison(self, forced: str | None = None) -> bool:
        start = self.i
        concept = op = None
        for phrase, (c, o) in CONCEPT_COMPARATORS.items():
            if self.at(phrase.split()):
                concept, op = c, o
                self.i += len(phrase.split())
                break
        else:
            for phrase, o in COMPARATORS:
                if self.at(phrase.split()):
                    op = o
                    self.i += len(phrase.split())
                    break
        between = op is None and self.at(("between",))
        if between:
            self.i += 1
        elif op is None:
            return False
        low = self.number()
        if low is None or (between and is_year(self.words[self.i - 1])):
            self.i = start
            return False
        high = None
        unit_after_low = None
        if between:
            unit_after_low = self.unit()
            if not (self.at(("and",)) or self.at(("to",))):
                self.i = start
                return False
            self.i += 1
            high = self.number()
            if high is None:
                self.i = start
                return False
        concept = self.unit() or unit_after_low or concept or forced
        if concept is None and self.person and 0 < low <= 130 and (high is None or 0 < high <= 130):
            concept = "age"  # "female patients over 60": of people, a bare number is their age
            if "a number about people is read as their age in years" not in self.notes:
                self.notes.append("a number about people is read as their age in years")
        if concept is None and self.attribute:
            keyword, level, path = self.attribute
            self.add(Condition(f"attribute:{keyword}", {"$gte": low, "$lte": high} if between else
                               (low if op == "$eq" else {op: low}), (level, path)))
            return True
        if concept is None:
            self.i = start
            return False
        condition = {"$gte": scaled(concept, low), "$lte": scaled(concept, high)} if between else (
            scaled(concept, low) if op == "$eq" else {op: scaled(concept, low)})
        self.add(Condition(concept, condition))
        return True

    def month_year(self) -> tuple[int, int | None] | None:
        """``[month] YEAR`` at self.i: (year, month or None)."""
        start = self.i
        month = None
        if self.i < len(self.words) and self.words[self.i] in MONTHS:
            month = MONTHS[self.words[self.i]]
            self.i += 1
        if self.i < len(self.words) and is_year(self.words[self.i]):
            self.i += 1
            return int(self.words[self.i - 1]), month
        self.i = start
        return None

    def date(self) -> bool:
        start = self.i
        word = self.words[self.i]
        lead = word if word in ("in", "during", "after", "since", "before", "until", "between", "from") else None
        if lead:
            self.i += 1
        if self.i < len(self.words) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", self.words[self.i]):
            day = self.words[self.i]
            self.i += 1
            first = last = day
        else:
            period = self.month_year()
            if period is None:
                self.i = start
                return False
            first, last = bounds(*period)
        if lead in ("between", "from") and (self.at(("and",)) or self.at(("to",))):
            self.i += 1
            period = self.month_year()
            if period is None:
                self.i = start
                return False
            last = bounds(*period)[1]
            condition: Any = {"$gte": first, "$lte": last}
        elif lead == "after":
            condition = {"$gt": last}
        elif lead == "since":
            condition = {"$gte": first}
        elif lead in ("before", "until"):
            condition = {"$lt": first} if lead == "before" else {"$lte": last}
        elif lead in ("between", "from"):
            self.i = start
            return False
        else:
            condition = {"$gte": first, "$lte": last}
        self.add(Condition(self.date_concept, condition))
        self.date_concept = "date"
        return True

    def phrase(self) -> bool:
        for words, condition, note in self.phrases:
            if words and self.at(words):
                self.i += len(words)
                self.add(condition)
                if note and note not in self.notes:
                    self.notes.append(note)
                return True
        return False

    def catalog_value(self) -> bool:
        for size in (4, 3, 2, 1):
            text = " ".join(self.words[self.i:self.i + size])
            if len(self.words) - self.i < size or not text:
                continue
            found = self.values_for(text, size == 1)
            if found:
                self.i += size
                for concept, values in found.items():
                    self.add(Condition(concept, values[0] if len(values) == 1 else {"$in": values}))
                    if len(values) > 1:
                        self.notes.append(f"{text!r} matches several {concept} values: {', '.join(values)}")
                return True
        return False

    def values_for(self, text: str, single: bool) -> dict[str, list]:
        """Catalog values this text names: exactly, as the first words of a value ("ge" → "GE
        MEDICAL SYSTEMS"), or, for a longer word, misspelled a little ("siemen")."""
        found: dict[str, list] = {}
        for concept, table in self.vocabulary.values.items():
            if text in table:
                found[concept] = list(table[text])
        if found:
            return found
        for concept, table in self.vocabulary.values.items():
            if concept in ("accession", "patient", "collection"):
                continue  # identifiers: exact only
            hits = [v for norm, values in table.items() if norm.startswith(text + " ") for v in values]
            if hits and (not single or text not in STOPWORDS and text not in LEVEL_WORDS):
                found[concept] = sorted(hits)
        if found or not single or len(text) < 4 or text in STOPWORDS:
            return found
        for concept, table in self.vocabulary.values.items():
            if concept in ("accession", "patient", "collection"):
                continue
            close = difflib.get_close_matches(text, [n.split()[0] for n in table], n=3, cutoff=0.8)
            hits = sorted({v for norm, values in table.items() if norm.split()[0] in close for v in values})
            if hits:
                found[concept] = hits
        return found

    def dicom_attribute(self) -> bool:
        attributes = dicom_attributes()
        for size in (5, 4, 3, 2, 1):
            words = tuple(self.words[self.i:self.i + size])
            if len(words) == size and words in attributes and not (size == 1 and words[0] in STOPWORDS):
                keyword = attributes[words]
                where = attribute_field(keyword, self.catalog)
                if where is None:
                    return False
                self.i += size
                self.attribute = (keyword, *where)
                # "kvp 120", "convolution kernel b30f": a value right after the attribute.
                if self.i < len(self.words) and (value := self.plain_value()) is not None:
                    self.add(Condition(f"attribute:{keyword}", value, where))
                return True
        return False

    def plain_value(self) -> Any:
        word = self.words[self.i]
        if re.fullmatch(r"\d+(\.\d+)?", word) and not is_year(word):
            self.i += 1
            return int(word) if word.isdigit() else float(word)
        if re.fullmatch(r"[a-z]*\d[a-z0-9]*", word):  # a code such as b30f
            self.i += 1
            return {"$regex": f"^{re.escape(word)}$", "$options": "i"}
        return None

    def number_with_unit(self) -> bool:
        start = self.i
        value = self.number()
        if value is None:
            return False
        concept = self.unit()
        if concept in ("slice_thickness", "kvp", "images"):  # "1 mm", "120 kV", "with 8 images"
            self.add(Condition(concept, value))
            return True
        if concept is None and self.attribute and not is_year(self.words[start]):
            keyword, level, path = self.attribute  # "kvp is 120", "slice thickness of 0.625"
            self.add(Condition(f"attribute:{keyword}", value, (level, path)))
            self.attribute = None
            return True
        self.i = start
        return False

    def level_word(self) -> bool:
        word = self.words[self.i]
        if word in LEVEL_WORDS:
            if self.level is None:
                self.level = LEVEL_WORDS[word]
                self.singular = word in SINGULAR
            self.person = self.person or LEVEL_WORDS[word] == "patients"  # "CT studies of patients over 60"
            self.i += 1
            return True
        return False

    def description_word(self) -> bool:
        word = self.words[self.i]
        for concept, words in self.vocabulary.words.items():
            if word in words and word not in STOPWORDS:
                self.i += 1
                self.add(Condition(concept, {"$regex": rf"\b{re.escape(word)}\b", "$options": "i"}))
                return True
        return False

    def stopword(self) -> bool:
        if self.words[self.i] in STOPWORDS:
            self.i += 1
            return True
        return False


def is_year(word: str) -> bool:
    return bool(re.fullmatch(r"(19|20)\d\d", word))


def bounds(year: int, month: int | None) -> tuple[str, str]:
    if month is None:
        return f"{year}-01-01", f"{year}-12-31"
    return f"{year}-{month:02d}-01", f"{year}-{month:02d}-{calendar.monthrange(year, month)[1]:02d}"


def scaled(concept: str, value: Any) -> Any:
    """A number as the concept's field holds it: ages are DICOM age strings (``063Y``)."""
    return f"{int(value):03d}Y" if concept == "age" else value


def negated(condition: Any) -> Any:
    if isinstance(condition, dict) and set(condition) == {"$in"}:
        return {"$nin": condition["$in"]}
    if isinstance(condition, dict) and set(condition) == {"$exists"}:
        return {"$exists": not condition["$exists"]}
    if isinstance(condition, dict) and "$regex" in condition:
        return {"$not": condition}
    if isinstance(condition, dict):
        return {"$not": condition}
    return {"$ne": condition}


def merge_values(first: Condition, second: Condition) -> Condition | None:
    """"CT or MR" → one ``$in`` of both, when both are plain values of one concept."""
    def values(c: Any) -> list | None:
        if isinstance(c, dict):
            return c["$in"] if set(c) == {"$in"} else None
        return [c]

    a, b = values(first.condition), values(second.condition)
    if first.concept != second.concept or a is None or b is None or first.attribute:
        return None
    return Condition(first.concept, {"$in": list(dict.fromkeys([*a, *b]))})


