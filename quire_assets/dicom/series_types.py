"""Series-type labels (T1w, DWI, localizer, kernel:sharp, contrast, secondary_capture ...) from
what a series' files say, by the rules of a readable data file (``series-types.toml``, which
documents the format; a site's own file comes first).

Each label carries its evidence (the attributes and values that decided it, and the rule) and the
rule's confidence. A rule never decides from the description alone: the words people type are
at most one way among others for a rule whose other conditions hold.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import regex

DEFAULT_RULES = Path(__file__).with_name("series-types.toml")
TYPED_WORDS = frozenset({"SeriesDescription", "ProtocolName"})
TESTS = ("contains", "equals", "matches", "lt", "le", "gt", "ge", "present")
# BIDS datatypes and suffixes of the labels dcm2bids can sort (``dcm2bids_config``).
BIDS = {"T1w": ("anat", "T1w"), "T2w": ("anat", "T2w"), "PDw": ("anat", "PDw"), "FLAIR": ("anat", "FLAIR"),
        "DWI": ("dwi", "dwi"), "BOLD": ("func", "bold"), "fieldmap": ("fmap", "fieldmap"),
        "MRA": ("anat", "angio"), "SWI": ("swi", "swi")}


# An attribute Quire computes for the rules: seconds from the contrast bolus's start to each
# image's acquisition (AcquisitionTime less ContrastBolusStartTime), for the contrast phase.
CONTRAST_DELAY = "ContrastDelaySeconds"
# Where an annotation names the series it is about: a SEG's and a presentation state's referenced
# series, an SR's evidence, an RT structure set's contoured series (three sequences deep).
REFERENCES = ("ReferencedSeriesSequence", "CurrentRequestedProcedureEvidenceSequence",
              "ReferencedFrameOfReferenceSequence")


def _seconds(time: Any) -> float | None:
    """A normalized TM (``HH:MM:SS[.ffffff]``) as seconds since midnight."""
    if not isinstance(time, str) or len(time) < 8:
        return None
    try:
        return int(time[:2]) * 3600 + int(time[3:5]) * 60 + float(time[6:])
    except ValueError:
        return None


def contrast_delays(records: list[dict]) -> list[float]:
    """Seconds from the bolus's start to each acquisition (same day, so a negative delay is none)."""
    delays = []
    for record in records:
        start = _seconds(record["metadata"].get("ContrastBolusStartTime"))
        acquired = _seconds(record["metadata"].get("AcquisitionTime"))
        if start is not None and acquired is not None and acquired >= start:
            delays.append(round(acquired - start, 3))
    return sorted(set(delays))


def _series_uids(node: Any, found: set[str]) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "SeriesInstanceUID" and isinstance(value, str):
                found.add(value)
            else:
                _series_uids(value, found)
    elif isinstance(node, list):
        for item in node:
            _series_uids(item, found)


def annotated_series(records: list[dict], own: str) -> list[str]:
    """The other series an annotation's files refer to."""
    found: set[str] = set()
    for record in records:
        for name in REFERENCES:
            _series_uids(record["metadata"].get(name), found)
    return sorted(found - {own})


class SeriesTypeError(ValueError):
    """A rules file Quire cannot use (the message names the file and the rule)."""


@dataclass(frozen=True)
class Condition:
    attribute: str
    test: str
    operand: Any
    index: int | None = None
    modulo: int | None = None

    def values(self, values: list[Any]) -> list[Any]:
        out = []
        for value in values:
            if self.index is not None:
                value = value[self.index] if isinstance(value, list) and len(value) > self.index else None
            if self.modulo is not None and isinstance(value, int | float):
                value = value % self.modulo
            if value is not None:
                out.append(value)
        return out

    def met_by(self, values: list[Any]) -> Any:
        """The first value that passes the test (True for ``present``), or None."""
        found = self.values(values)
        if self.test == "present":
            return (found[0] if found else None) if self.operand else (True if not found else None)
        for value in found:
            for item in value if isinstance(value, list) else [value]:
                if self._passes(item):
                    return item
        return None

    def _passes(self, item: Any) -> bool:
        if self.test in ("lt", "le", "gt", "ge"):
            if not isinstance(item, int | float) or isinstance(item, bool):
                return False
            return {"lt": item < self.operand, "le": item <= self.operand, "gt": item > self.operand,
                    "ge": item >= self.operand}[self.test]
        text = str(item).strip()
        if self.test == "contains":
            return str(self.operand).upper() in text.upper()
        if self.test == "equals":
            return text.upper() == str(self.operand).upper()
        return bool(self.operand.search(text, timeout=1))


@dataclass(frozen=True)
class Rule:
    name: str
    label: str
    group: str
    confidence: float
    modalities: tuple[str, ...] = ()
    all: tuple[Condition, ...] = ()
    any: tuple[Condition, ...] = ()
    attributes: frozenset[str] = field(default_factory=frozenset)

    def evidence(self, modality: str | None, values: dict[str, list[Any]]) -> list[dict] | None:
        """The attributes and values that meet the rule, or None when it is not met."""
        if self.modalities and modality not in self.modalities:
            return None
        found = []
        for condition in self.all:
            value = condition.met_by(values.get(condition.attribute, []))
            if value is None:
                return None
            found.append({"attribute": condition.attribute, "value": value})
        if self.any:
            for condition in self.any:
                value = condition.met_by(values.get(condition.attribute, []))
                if value is not None:
                    found.append({"attribute": condition.attribute, "value": value})
                    break
            else:
                return None
        return found


def _condition(raw: Any, where: str) -> Condition:
    if not isinstance(raw, dict) or not isinstance(raw.get("attribute"), str):
        raise SeriesTypeError(f"{where}: a condition is {{attribute = \"KEYWORD\", TEST = VALUE}}")
    tests = [t for t in TESTS if t in raw]
    if len(tests) != 1:
        raise SeriesTypeError(f"{where}: a condition takes one test of {', '.join(TESTS)}")
    operand = raw[tests[0]]
    if tests[0] == "matches":
        try:
            operand = regex.compile(operand, regex.IGNORECASE)
        except regex.error as exc:
            raise SeriesTypeError(f"{where}: bad regular expression {raw['matches']!r}: {exc}") from None
    elif tests[0] in ("lt", "le", "gt", "ge") and not isinstance(operand, int | float):
        raise SeriesTypeError(f"{where}: {tests[0]} takes a number")
    return Condition(raw["attribute"], tests[0], operand, raw.get("index"), raw.get("modulo"))


def parse_rules(text: str, source: str) -> list[Rule]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SeriesTypeError(f"{source}: not TOML: {exc}") from None
    rules = []
    for number, raw in enumerate(data.get("rule", []), start=1):
        where = f"{source}: rule {number} ({raw.get('label', '?')})"
        if not isinstance(raw.get("label"), str) or not isinstance(raw.get("group"), str):
            raise SeriesTypeError(f"{where}: needs a label and a group")
        every = tuple(_condition(c, where) for c in raw.get("all", []))
        some = tuple(_condition(c, where) for c in raw.get("any", []))
        attributes = frozenset(c.attribute for c in every + some)
        if not attributes:
            raise SeriesTypeError(f"{where}: needs a condition")
        if attributes <= TYPED_WORDS:
            raise SeriesTypeError(f"{where}: decides from {', '.join(sorted(attributes))} alone; a rule needs "
                                  "an attribute the scanner writes")
        rules.append(Rule(f"{Path(source).name}#{number}", raw["label"], raw["group"],
                          float(raw.get("confidence", 0.5)), tuple(raw.get("modality", [])), every, some, attributes))
    return rules


@lru_cache(maxsize=8)
def load_rules(features_folder: str | None = None) -> tuple[Rule, ...]:
    """A site's rules first (``series-types.toml`` in its feature-set folder, ``QUIRE_FEATURES``:
    what a site reads and how it labels it are configured together), then the built-in ones."""
    rules: list[Rule] = []
    site = Path(features_folder) / DEFAULT_RULES.name if features_folder else None
    if site is not None and site.is_file():
        try:
            rules += parse_rules(site.read_text(encoding="utf-8"), str(site))
        except OSError as exc:
            raise SeriesTypeError(f"cannot read the series-type rules {site}: {exc.strerror or exc}") from None
    return tuple(rules + parse_rules(DEFAULT_RULES.read_text(encoding="utf-8"), str(DEFAULT_RULES)))


def rule_attributes(rules: tuple[Rule, ...]) -> frozenset[str]:
    return frozenset().union(*(r.attributes for r in rules))


def series_types(records: list[dict], rules: tuple[Rule, ...] | None = None) -> tuple[list[str], list[dict]]:
    """The labels of one series (its instance records) and their evidence: one entry per label and
    attribute, ``{"label", "rule", "confidence", "attribute", "value"}``."""
    rules = rules if rules is not None else load_rules()
    values: dict[str, list[Any]] = {}
    for name in rule_attributes(rules):
        seen = []
        for record in records:
            value = record["metadata"].get(name)
            if value is not None and value not in seen:
                seen.append(value)
        values[name] = seen
    values[CONTRAST_DELAY] = contrast_delays(records)
    modalities = [r["metadata"].get("Modality") for r in records if r["metadata"].get("Modality")]
    modality = max(set(modalities), key=modalities.count) if modalities else None
    labels: list[str] = []
    evidence: list[dict] = []
    decided: set[str] = set()
    for rule in rules:
        if rule.group in decided:
            continue
        found = rule.evidence(modality, values)
        if found is None:
            continue
        decided.add(rule.group)
        if rule.label not in labels:
            labels.append(rule.label)
        evidence += [{"label": rule.label, "rule": rule.name, "confidence": rule.confidence, **f} for f in found]
    return sorted(labels), evidence


def dcm2bids_config(series: list[dict]) -> dict:
    """A dcm2bids configuration sorting a cohort's series by their labels: one description per
    series with a BIDS datatype (T1w, T2w, FLAIR, DWI, BOLD ...), matched by its number and
    description as dcm2niix writes them in each sidecar."""
    descriptions = []
    for doc in sorted(series, key=lambda d: (d.get("accession_number") or "", d.get("series_number") or 0)):
        kinds = [label for label in doc.get("series_types") or [] if label in BIDS]
        if not kinds or "derived" in (doc.get("series_types") or []):
            continue
        datatype, suffix = BIDS[kinds[0]]
        criteria = {"SeriesNumber": doc.get("series_number")}
        if doc.get("series_description"):
            criteria["SeriesDescription"] = doc["series_description"]
        descriptions.append({"id": doc["series_instance_uid"], "datatype": datatype, "suffix": suffix,
                             "criteria": criteria})
    return {"descriptions": descriptions}
