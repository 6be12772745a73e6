"""The words ``ask`` knows: the level, comparison, unit and count words, the synonym file
(``synonyms.toml``, a site's own first), DICOM's attribute names (pydicom's data dictionary) and
the catalog's own values (``Vocabulary``)."""

from __future__ import annotations

import calendar
import re
import threading
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from quire_assets.catalog.base import Catalog
from quire_assets.catalog.fields import has_field

SYNONYMS = Path(__file__).with_name("synonyms.toml")

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
    "complete_volume": {"series": "complete_volume"},
    "quality": {"series": "quality_flags"},
    "series_type": {"series": "series_types"},
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
               "acquisitions": "series", "volumes": "series", "volume": "series", "instances": "instances", "instance": "instances", "images": "instances",
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
class Condition:
    concept: str
    condition: Any  # a MongoDB condition on the concept's field (a value or an operator document)
    attribute: tuple[str, str] | None = None  # (level, field) for a DICOM attribute named in the question



# ---- vocabularies ------------------------------------------------------------------------------


def load_phrases(synonyms: str | Path | None = None) -> list[tuple[tuple[str, ...], Condition, str | None]]:
    """The synonym file(s): (words, condition, note), a site's own file (``synonyms``) first."""
    files = [Path(p) for p in [synonyms] if p] + [SYNONYMS]
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


