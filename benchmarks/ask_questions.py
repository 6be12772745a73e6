"""How many of a set of researchers' questions ``quire ask`` answers right: written before the
round that added ages, counts per group, "which" questions, relative dates, every modality and
manufacturer families, and run after it. Each question is judged by what its answer selects
against a query written by hand (or by the refusal it must be).

    python benchmarks/ask_questions.py        # a table: question, expected, verdict; then the score
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from quire_assets.ask import AskError, run, translate  # noqa: E402
from quire_assets.catalog import KEYS, Catalog, open_catalog  # noqa: E402

TODAY = date.today()
LAST_YEAR = (f"{TODAY.year - 1}-01-01", f"{TODAY.year - 1}-12-31")
# Spellings of vendors real archives hold, beside the sample archive's own (GE MEDICAL SYSTEMS,
# SIEMENS, Philips, TOSHIBA, Carestream Health), and studies dated now for relative dates.
EXTRA_SERIES = [
    ("x.1", "x", "US", "Philips Medical Systems"), ("x.2", "x", "CT", "TOSHIBA_MEC"),
    ("x.3", "y", "NM", "GE Healthcare"), ("x.4", "y", "MG", "HOLOGIC, Inc."), ("x.5", "z", "XA", "Siemens Healthineers"),
    ("x.6", "z", "RF", "Canon Medical Systems"), ("x.7", "z", "PT", "GE MEDICAL SYSTEMS"),
]
EXTRA_STUDIES = [("x", f"{TODAY.year - 1}-06-15", ["US", "CT"]), ("y", TODAY.isoformat(), ["NM", "MG"]),
                 ("z", f"{TODAY.year}-{TODAY.month:02d}-01", ["XA", "RF", "PT"])]

Check = Callable[[Any, Catalog], str | None]  # the answer (or the AskError) → what is wrong, or None


def keys(catalog: Catalog, level: str, flt: dict) -> list:
    return sorted(d[KEYS[level]] for d in catalog.find(level, flt))


def understood(answer: Any) -> str | None:
    if isinstance(answer, AskError):
        return f"refused: {str(answer)[:70]}"
    if answer.get("partial") or answer["unrecognized"]:
        return f"words not used: {answer['unrecognized']}"
    return None


def selects(level: str, by_hand: dict) -> Check:
    def check(answer: Any, catalog: Catalog) -> str | None:
        if problem := understood(answer):
            return problem
        if answer["level"] != level:
            return f"level {answer['level']}"
        got, want = keys(catalog, level, answer["filter"]), keys(catalog, level, by_hand)
        return None if got == want else f"selects {len(got)}, not {len(want)}"
    return check


def counts(level: str, by_hand: dict) -> Check:
    def check(answer: Any, catalog: Catalog) -> str | None:
        if problem := selects(level, by_hand)(answer, catalog):
            return problem
        return None if answer["count"] and answer["total"] == catalog.count(level, by_hand) else "not a count"
    return check


def grouped(level: str, field: str) -> Check:
    def check(answer: Any, catalog: Catalog) -> str | None:
        if problem := understood(answer):
            return problem
        want = {str(v): n for v, n in catalog.value_counts(level, field)}
        got = {str(g["value"]): g["count"] for g in answer.get("groups") or []}
        return None if answer["level"] == level and got == want else f"groups {got or answer['filter']}"
    return check


def first(level: str, field: str, direction: int, n: int = 1) -> Check:
    def check(answer: Any, catalog: Catalog) -> str | None:
        if problem := understood(answer):
            return problem
        want = [d[field] for d in catalog.find(level, {field: {"$ne": None}}, sort=[(field, direction)], limit=n)]
        got = [d.get(field) for d in answer["results"]]
        return None if got == want else f"{len(got)} results"
    return check


def refused(answer: Any, catalog: Catalog) -> str | None:
    return None if isinstance(answer, AskError) else f"answered {answer['level']} {answer['filter']}"


def partial(words: list[str], level: str, by_hand: dict) -> Check:
    def check(answer: Any, catalog: Catalog) -> str | None:
        if isinstance(answer, AskError):
            return "refused"
        if not answer.get("partial") or answer["unrecognized"] != words:
            return "not said partial"
        return None if keys(catalog, level, answer["filter"]) == keys(catalog, level, by_hand) else "selects other"
    return check


def studies_of(flt: dict) -> Callable[[Catalog], list]:
    return lambda c: [s["study_instance_uid"] for s in c.find("studies", flt)]


def patients_with_studies(catalog: Catalog, flt: dict) -> dict:
    return {"study_instance_uids": {"$in": studies_of(flt)(catalog)}}


PHILIPS = ["Philips", "Philips Medical Systems"]
TOSHIBA = ["TOSHIBA", "TOSHIBA_MEC", "Canon Medical Systems"]
GE = ["GE MEDICAL SYSTEMS", "GE Healthcare"]


def questions(catalog: Catalog) -> list[tuple[str, str, Check]]:
    def age(op: str, years: int) -> dict:
        return {"patient_age": {op: f"{years:03d}Y"}}

    return [
        ("how many studies per patient", "studies counted per patient_id", grouped("studies", "patient_id")),
        ("series per study", "series counted per study", grouped("series", "study_instance_uid")),
        ("how many series per modality", "series counted per modality", grouped("series", "modality")),
        ("instances per series", "instances counted per series", grouped("instances", "series_instance_uid")),
        ("count studies by modality", "studies counted per modality", grouped("studies", "modalities")),
        ("female patients over 60", "female, age > 60",
         selects("patients", {"patient_sex": "F", **patients_with_studies(catalog, age("$gt", 60))})),
        ("patients over 50", "age > 50", selects("patients", patients_with_studies(catalog, age("$gt", 50)))),
        ("patients aged 40 to 50", "40 <= age <= 50",
         selects("patients", patients_with_studies(catalog, {"patient_age": {"$gte": "040Y", "$lte": "050Y"}}))),
        ("studies of patients aged between 30 and 45", "30 <= age <= 45",
         selects("studies", {"patient_age": {"$gte": "030Y", "$lte": "045Y"}})),
        ("men born before 1950", "male, birth date < 1950",
         selects("patients", {"patient_sex": "M", "patient_birth_date": {"$lt": "1950-01-01"}})),
        ("patients born after 1960", "birth date > 1960",
         selects("patients", {"patient_birth_date": {"$gt": "1960-12-31"}})),
        ("the latest study", "1 study, newest", first("studies", "study_date", -1)),
        ("the thinnest CT series", "1 series, thinnest", first("series", "slice_thickness", 1)),
        ("patients with more than one study", "num_studies > 1", selects("patients", {"num_studies": {"$gt": 1}})),
        ("patients with at least 2 studies", "num_studies >= 2", selects("patients", {"num_studies": {"$gte": 2}})),
        ("studies with more than one series", "num_series > 1", selects("studies", {"num_series": {"$gt": 1}})),
        ("patients with more than 2 series", "num_series > 2", selects("patients", {"num_series": {"$gt": 2}})),
        ("which scanners are in the catalog", "models with counts",
         grouped("series", "manufacturer_model_name")),
        ("which manufacturers", "manufacturers with counts", grouped("series", "manufacturer_family")),
        ("what modalities are there", "modalities with counts", grouped("series", "modality")),
        ("which body parts were scanned", "body parts with counts", grouped("series", "body_part_examined")),
        ("ultrasound series from Philips", "US, every Philips spelling",
         selects("series", {"modality": "US", "manufacturer": {"$in": PHILIPS}})),
        ("series from Toshiba", "every Toshiba/Canon spelling", selects("series", {"manufacturer": {"$in": TOSHIBA}})),
        ("Canon CT", "CT, Canon/Toshiba", selects("series", {"modality": "CT", "manufacturer": {"$in": TOSHIBA}})),
        ("GE series", "every GE spelling", selects("series", {"manufacturer": {"$in": GE}})),
        ("CT series thinner than 1.5 mm from GE scanners", "CT, < 1.5 mm, every GE spelling",
         selects("series", {"modality": "CT", "slice_thickness": {"$lt": 1.5}, "manufacturer": {"$in": GE}})),
        ("siemens healthineers series", "every Siemens spelling",
         selects("series", {"manufacturer": {"$in": ["SIEMENS", "Siemens Healthineers"]}})),
        ("nuclear medicine series", "NM", selects("series", {"modality": "NM"})),
        ("mammograms", "MG", selects("series", {"modality": "MG"})),
        ("angiography series", "XA", selects("series", {"modality": "XA"})),
        ("fluoroscopy", "RF", selects("series", {"modality": "RF"})),
        ("how many ultrasound studies", "count of US studies", counts("studies", {"modalities": "US"})),
        ("studies from last year", f"study date in {TODAY.year - 1}",
         selects("studies", {"study_date": {"$gte": LAST_YEAR[0], "$lte": LAST_YEAR[1]}})),
        ("studies this month", "study date this month", selects("studies", {"study_date": {
            "$gte": f"{TODAY.year}-{TODAY.month:02d}-01", "$lte": TODAY.isoformat()}})),
        ("studies this year", "study date this year", selects("studies", {"study_date": {
            "$gte": f"{TODAY.year}-01-01", "$lte": TODAY.isoformat()}})),
        ("series with 3 frobnicators", "refused: a number it cannot place", refused),
        ("studies per 5 widgets", "refused", refused),
        ("CT series with blorp", "partial, blorp shown",
         partial(["blorp"], "series", {"modality": "CT"})),
    ]


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        from quire_assets.cli import ingest
        from quire_assets.dicom.sample import write_sample_archive

        archive = Path(tmp) / "archive"
        write_sample_archive(archive)
        uri = f"sqlite:///{Path(tmp) / 'catalog.db'}"
        ingest(str(archive), uri, quiet=True)
        with open_catalog(uri) as catalog:
            from quire_assets.dicom.vendors import manufacturer_family

            catalog.upsert("series", [{"series_instance_uid": s, "study_instance_uid": st, "modality": m,
                                       "manufacturer": v, "manufacturer_family": manufacturer_family(v)}
                                      for s, st, m, v in EXTRA_SERIES])
            catalog.upsert("studies", [{"study_instance_uid": s, "study_date": d, "modalities": m}
                                       for s, d, m in EXTRA_STUDIES])
            right = 0
            rows = questions(catalog)
            print(f"{'question':<50} {'expected':<36} verdict")
            for question, expected, check in rows:
                try:
                    answer: Any = run(translate(question, catalog), catalog)
                except AskError as exc:
                    answer = exc
                problem = check(answer, catalog)
                right += problem is None
                print(f"{question:<50} {expected:<36} {'right' if problem is None else 'WRONG: ' + problem}")
            print(f"\n{right} of {len(rows)} right")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
