"""Questions in plain words → a level, a MongoDB filter, a sort, a limit, or a count: offline,
deterministic, and honest (the words it could not use are listed; nothing understood is refused).

Hand-written because no library does this job offline: the vocabulary is the catalog's own values,
DICOM's attribute names (pydicom's data dictionary) and a synonym file users can extend
(``synonyms.toml``). A sentence is read left to right; each matcher takes the longest phrase it
knows at the current word.
"""

from __future__ import annotations

import calendar
import difflib
import json
import os
import re
import threading
import tomllib
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

from quire_assets.catalog.base import Catalog
from quire_assets.catalog.fields import filter_fields, has_field
from quire_assets.dicom.vendors import family_named, manufacturer_family

SYNONYMS = Path(__file__).with_name("synonyms.toml")
LEVELS = ("patients", "studies", "series", "instances")

# Where each concept lives, per level (a concept missing at the asked level is joined in from one
# that has it: "female" on series goes through the studies).
CONCEPTS: dict[str, dict[str, str]] = {
    "modality": {"series": "modality", "studies": "modalities", "patients": "modalities"},
    "body_part": {"series": "body_part_examined"},
    "sex": {"studies": "patient_sex", "patients": "patient_sex"},
    "slice_thickness": {"series": "slice_thickness"},
    "contrast": {"series": "metadata.ContrastBolusAgent"},
    "manufacturer": {"series": "manufacturer"},
    "model": {"series": "manufacturer_model_name"},
    "kernel": {"series": "convolution_kernel"},
    "kvp": {"series": "kvp"},
    "manufacturer_family": {"series": "manufacturer_family"},
    "images": {"series": "num_instances", "studies": "num_instances", "patients": "num_instances"},
    "frames": {"series": "num_frames", "studies": "num_frames", "patients": "num_frames",
               "instances": "number_of_frames"},
    "series_count": {"studies": "num_series", "patients": "num_series"},
    "study_count": {"patients": "num_studies"},
    "date": {"studies": "study_date", "series": "series_date"},
    "age": {"studies": "patient_age"},
    "birth_date": {"patients": "patient_birth_date", "studies": "patient_birth_date"},
    "collection": {"studies": "collection_ids"},
    "accession": {"studies": "accession_number", "series": "accession_number", "instances": "accession_number",
                  "patients": "accession_numbers"},
    "patient": {"patients": "patient_id", "studies": "patient_id", "series": "patient_id"},
    "series_description": {"series": "series_description"},
    "study_description": {"studies": "study_description"},
}
# The level a question about this concept is asked at, when the question names none.
HOME = {"sex": "studies", "age": "studies", "collection": "studies", "study_description": "studies",
        "date": "studies", "patient": "studies", "accession": "studies", "series_count": "studies",
        "birth_date": "patients", "study_count": "patients"}
# Catalog values that are words of a question: concept → (level, field).
VALUE_FIELDS = {"manufacturer": ("series", "manufacturer"), "model": ("series", "manufacturer_model_name"),
                "body_part": ("series", "body_part_examined"), "modality": ("series", "modality"),
                "kernel": ("series", "convolution_kernel"), "collection": ("studies", "collection_ids"),
                "accession": ("studies", "accession_number"), "patient": ("patients", "patient_id")}
LEVEL_WORDS = {"patients": "patients", "patient": "patients", "people": "patients", "subjects": "patients",
               "studies": "studies", "study": "studies", "exams": "studies", "exam": "studies",
               "examinations": "studies", "series": "series", "scans": "series", "scan": "series",
               "acquisitions": "series", "instances": "instances", "instance": "instances", "images": "instances",
               "files": "instances", "slices": "instances"}
COMPARATORS = [("more than", "$gt"), ("greater than", "$gt"), ("larger than", "$gt"), ("bigger than", "$gt"),
               ("at least", "$gte"), ("no less than", "$gte"), ("less than", "$lt"), ("fewer than", "$lt"),
               ("smaller than", "$lt"), ("at most", "$lte"), ("no more than", "$lte"), ("up to", "$lte"),
               ("over", "$gt"), ("above", "$gt"), ("exceeding", "$gt"), ("under", "$lt"), ("below", "$lt"),
               ("exactly", "$eq"), (">=", "$gte"), ("<=", "$lte"), (">", "$gt"), ("<", "$lt"), ("=", "$eq")]
CONCEPT_COMPARATORS = {"thinner than": ("slice_thickness", "$lt"), "thicker than": ("slice_thickness", "$gt"),
                       "older than": ("age", "$gt"), "younger than": ("age", "$lt")}
UNITS = {"mm": "slice_thickness", "millimeters": "slice_thickness", "millimetres": "slice_thickness",
         "kv": "kvp", "kvp": "kvp", "slices": "images", "slice": "images", "images": "images", "image": "images",
         "instances": "images", "instance": "images", "files": "images", "years": "age", "year": "age", "yrs": "age",
         "series": "series_count", "studies": "study_count", "study": "study_count", "exams": "study_count",
         "exam": "study_count", "frames": "frames", "frame": "frames"}
NUMBER_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
                "ten": 10, "eleven": 11, "twelve": 12, "twenty": 20, "fifty": 50, "hundred": 100}
# Superlatives after "the" with no number ask for one: "the latest study".
SINGULAR = {"patient", "study", "exam", "scan", "acquisition", "instance", "image", "file", "slice", "series"}
# "which X", "per X", "by X": the values of a field, counted. Concept → the words naming it.
GROUP_WORDS = {"model": ("scanners", "scanner", "scanner models", "models", "model"),
               "manufacturer_family": ("manufacturers", "manufacturer", "vendors", "vendor", "makers", "brands"),
               "modality": ("modalities", "modality", "kinds of images", "types of images"),
               "body_part": ("body parts", "body part", "regions", "anatomy", "body regions"),
               "kernel": ("kernels", "kernel", "convolution kernels", "reconstruction kernels"),
               "sex": ("sex", "sexes", "gender", "genders")}
# Grouping by the documents of a level: at the counted level, the field that names them.
GROUP_BY_LEVEL = {("studies", "patients"): "patient_id", ("series", "patients"): "patient_id",
                  ("series", "studies"): "study_instance_uid", ("instances", "studies"): "study_instance_uid",
                  ("instances", "series"): "series_instance_uid", ("instances", "patients"): "patient_id"}
# Words that change what a question asks: left unread, the answer would be to another question.
MEANING_WORDS = frozenset({
    "more", "less", "fewer", "greater", "larger", "bigger", "smaller", "over", "under", "above", "below",
    "between", "least", "most", "exactly", "older", "younger", "before", "after", "since", "until", "per",
    "each", "every", "by", "born", "aged", "age", "old", "latest", "newest", "oldest", "earliest", "thinnest",
    "thickest", "top", "first", "last", "this", "past", "not", "no", "without", "except", "only", "average",
    "mean", "median", "total", "sum", "group", "grouped", "distinct", "unique", "same", "different", "or",
    "nor", "neither", "both", "than", "within", "ago", "recent", "next", "days", "weeks", "months", "years",
    "mm", "cm", "kv", "kvp", "ms", "tesla", "t",
})
SUPERLATIVES = {"thinnest": ("slice_thickness", 1), "thickest": ("slice_thickness", -1), "latest": ("date", -1),
                "newest": ("date", -1), "most recent": ("date", -1), "recent": ("date", -1), "oldest": ("date", 1),
                "earliest": ("date", 1), "largest": ("images", -1), "biggest": ("images", -1),
                "smallest": ("images", 1)}
NEGATIONS = {"not", "no", "without", "excluding", "except", "exclude", "non", "but not"}
# Words a vendor's spelling may carry after its name ("Philips Medical Systems", "TOSHIBA_MEC").
VENDOR_WORDS = frozenset({"medical", "systems", "system", "healthcare", "healthineers", "health", "mec", "inc",
                          "co", "corp", "corporation", "ltd", "company", "ag", "gmbh", "solutions", "imaging"})
COUNTS = ("how many", "number of", "count of", "count")
# Words that carry no condition (field nouns such as "kernel" only say where a value is).
STOPWORDS = frozenset({
    "the", "a", "an", "of", "from", "with", "in", "on", "by", "for", "all", "any", "show", "me",
    "list", "find", "get", "give", "which", "that", "who", "whose", "have", "has", "had", "having",
    "are", "is", "were", "was", "there", "do", "does", "what", "please", "to", "their", "them",
    "those", "these", "some", "scanner", "scanners", "machine", "machines", "acquired", "taken",
    "done", "performed", "made", "where", "and", "patients'", "than", "also", "only",
    "just", "ones", "one", "using", "used", "at", "kernel", "kernels", "manufacturer",
    "manufacturers", "vendor", "vendors", "model", "models", "modality", "modalities", "catalog", "archive",
    "database", "here", "scanned", "imaged", "exist", "available", "stored", "held", "kept", "kinds", "kind",
    "types", "type", "hold", "holds", "contain", "contains",
})
MONTHS = {name.lower(): i for i, name in enumerate(calendar.month_name) if name}
MONTHS.update({name.lower(): i for i, name in enumerate(calendar.month_abbr) if name})
TOKEN = re.compile(r"\d{4}-\d{2}-\d{2}|\d+(?:\.\d+)?|[a-z0-9][a-z0-9/._]*(?:[-'][a-z0-9]+)*|[<>]=?|=")
EXAMPLES = ('"thin-slice chest CTs from GE scanners", "how many female patients have a DX study", '
            '"series with more than 100 slices acquired after 2001"')


class AskError(ValueError):
    """A question Quire cannot turn into a filter (with examples of ones it can)."""


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


@dataclass
class Condition:
    concept: str
    condition: Any  # a MongoDB condition on the concept's field (a value or an operator document)
    attribute: tuple[str, str] | None = None  # (level, field) for a DICOM attribute named in the question


# ---- vocabularies ------------------------------------------------------------------------------


def load_phrases() -> list[tuple[tuple[str, ...], Condition, str | None]]:
    """The synonym file(s): (words, condition, note), a user's file ($QUIRE_ASK_SYNONYMS) first."""
    files = [Path(p) for p in [os.environ.get("QUIRE_ASK_SYNONYMS")] if p] + [SYNONYMS]
    phrases = []
    for path in files:
        for entry in tomllib.loads(path.read_text(encoding="utf-8")).get("phrase", []):
            op, value = entry.get("op"), entry["value"]
            condition = Condition(entry["concept"], {op: value} if op and op != "$eq" else value)
            for words in entry["words"]:
                phrases.append((tuple(tokens(words)), condition, entry.get("note")))
    return sorted(phrases, key=lambda p: -len(p[0]))


@lru_cache(maxsize=1)
def dicom_attributes() -> dict[tuple[str, ...], str]:
    """DICOM attribute names and keywords (pydicom's dictionary), as words → keyword."""
    from pydicom.datadict import DicomDictionary

    found: dict[tuple[str, ...], str] = {}
    for _vr, _vm, name, retired, keyword in DicomDictionary.values():
        if keyword and not retired:
            found.setdefault(tuple(tokens(name)), keyword)
            found.setdefault((keyword.lower(),), keyword)
    return found


def attribute_field(keyword: str, catalog: Catalog) -> tuple[str, str] | None:
    """Where the catalog keeps an attribute: a promoted field, else ``metadata.<Keyword>``, at the
    first level whose documents have it."""
    from quire_assets.dicom.records import snake_case

    for level in ("series", "studies", "instances"):
        for path in (snake_case(keyword), f"metadata.{keyword}"):
            if has_field(catalog, level, path):
                return level, path
    return None


def tokens(text: str) -> list[str]:
    return TOKEN.findall(text.lower().replace("’", "'"))


_VOCABULARIES: dict[tuple, Vocabulary] = {}
_VOCABULARIES_LOCK = threading.Lock()


@dataclass
class Vocabulary:
    values: dict[str, dict[str, list]]  # concept → normalized text → catalog values
    words: dict[str, set[str]]  # description concept → words

    @classmethod
    def of(cls, catalog: Catalog, hidden: frozenset[str] = frozenset()) -> Vocabulary:
        """The catalog's words, read again only once the catalog has been written since (a question
        costs its own queries, not a pass over every value)."""
        key = (type(catalog).__name__, catalog.uri, hidden, catalog.last_change())
        with _VOCABULARIES_LOCK:
            known = _VOCABULARIES.get(key)
        if known is None:
            known = cls.read(catalog, hidden)
            with _VOCABULARIES_LOCK:
                if len(_VOCABULARIES) > 16:
                    _VOCABULARIES.clear()
                _VOCABULARIES[key] = known
        return known

    @classmethod
    def read(cls, catalog: Catalog, hidden: frozenset[str] = frozenset()) -> Vocabulary:
        values: dict[str, dict[str, list]] = {}
        for concept, (level, path) in VALUE_FIELDS.items():
            if path in hidden:
                continue  # a researcher's question never confirms a hidden value
            table: dict[str, list] = {}
            for value in catalog.distinct(level, path):
                if isinstance(value, str) and value.strip():
                    table.setdefault(" ".join(tokens(value)), []).append(value)
            values[concept] = table
        words = {concept: {w for value in catalog.distinct(level, path) if isinstance(value, str)
                           for w in tokens(value) if len(w) >= 3 and not w[0].isdigit()}
                 for concept, (level, path) in (("series_description", ("series", "series_description")),
                                                ("study_description", ("studies", "study_description")))}
        return cls(values, words)


# ---- reading a question ---------------------------------------------------------------------


class Reader:
    def __init__(self, question: str, catalog: Catalog, hidden: frozenset[str]):
        self.question = question
        self.words = tokens(question)
        self.catalog = catalog
        self.vocabulary = Vocabulary.of(catalog, hidden)
        self.phrases = load_phrases()
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


def translate(question: str, catalog: Catalog, level: str = "auto",
              hidden: frozenset[str] = frozenset()) -> Translation:
    """The offline translator (``Translator``). ``hidden``: fields the asker may not see (their
    values are not offered as words)."""
    if not question or not question.strip():
        raise AskError(f"ask a question, e.g. {EXAMPLES}")
    reader = Reader(question, catalog, hidden)
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


def get_translator() -> Translator:
    """``$QUIRE_ASK_TRANSLATOR`` (``package.module:function``, a ``Translator``) if a deployment
    names one, else the offline ``translate``."""
    import importlib

    named = os.environ.get("QUIRE_ASK_TRANSLATOR")
    if not named:
        return translate
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
