"""Questions in plain words, table-driven, on the ingested sample archive: each with the filter it
must become (or, where a condition is joined in from another level, the documents it must
select, checked against a query written by hand)."""

from __future__ import annotations

import pytest

from quire_assets.ask import AskError, run, translate
from quire_assets.catalog import open_catalog
from tests.cli.test_ingest_e2e import ingested_home

T = {"$lte": 1.5}
GE, SIEMENS = "GE MEDICAL SYSTEMS", "SIEMENS"
NOTE_THIN = "thin-slice means a slice thickness of at most 1.5 mm"


@pytest.fixture(scope="module")
def catalog(sample_archive, tmp_path_factory):
    _, home = ingested_home(sample_archive, tmp_path_factory)
    with open_catalog(f"sqlite:///{home / 'catalog.db'}") as cat:
        cat.add_to_collection("lung-cohort", ["LIDC0001A", "RAD/2019/0042"])
        yield cat


# (question, level, filter, sort, limit, count)
FILTERS = [
    # values in the catalog: modality, manufacturer, model, body part, kernel, misspelled, prefixes
    ("CT series", "series", {"modality": "CT"}, None, None, False),
    ("DX series", "series", {"modality": "DX"}, None, None, False),
    ("siemens", "series", {"manufacturer": SIEMENS}, None, None, False),
    ("Siemens scanners", "series", {"manufacturer": SIEMENS}, None, None, False),
    ("siemen series", "series", {"manufacturer": SIEMENS}, None, None, False),
    ("toshiba", "series", {"manufacturer": "TOSHIBA"}, None, None, False),
    ("toshib series", "series", {"manufacturer": "TOSHIBA"}, None, None, False),
    ("philips", "series", {"manufacturer": "Philips"}, None, None, False),
    ("phillips", "series", {"manufacturer": "Philips"}, None, None, False),
    ("GE", "series", {"manufacturer": GE}, None, None, False),
    ("series from ge scanners", "series", {"manufacturer": GE}, None, None, False),
    ("GE medical systems series", "series", {"manufacturer": GE}, None, None, False),
    ("carestream", "series", {"manufacturer": "Carestream Health"}, None, None, False),
    ("aquilion", "series", {"manufacturer_model_name": "Aquilion"}, None, None, False),
    ("sensation 16 series", "series", {"manufacturer_model_name": "Sensation 16"}, None, None, False),
    ("lightspeed16", "series", {"manufacturer_model_name": "LightSpeed16"}, None, None, False),
    ("brilliance", "series", {"manufacturer_model_name": "Brilliance 16P"}, None, None, False),
    ("drx-evolution", "series", {"manufacturer_model_name": "DRX-Evolution"}, None, None, False),
    ("b30f kernel", "series", {"convolution_kernel": "B30f"}, None, None, False),
    ("convolution kernel b30f", "series", {"convolution_kernel": {"$regex": "^b30f$", "$options": "i"}},
     None, None, False),
    ("LIDC0001A", "studies", {"accession_number": "LIDC0001A"}, None, None, False),
    ("RAD/2019/0042", "studies", {"accession_number": "RAD/2019/0042"}, None, None, False),
    ("series of LIDC0004A", "series", {"accession_number": "LIDC0004A"}, None, None, False),
    ("studies of patient LIDC-IDRI-0002", "studies", {"patient_id": "LIDC-IDRI-0002"}, None, None, False),
    ("lung-cohort studies", "studies", {"collection_ids": "lung-cohort"}, None, None, False),
    ("contrast studies", "studies", {"study_description": {"$regex": "\\bcontrast\\b", "$options": "i"}},
     None, None, False),
    # synonyms
    ("thin-slice series", "series", {"slice_thickness": T}, None, None, False),
    ("thin slice CT", "series", {"slice_thickness": T, "modality": "CT"}, None, None, False),
    ("thick series", "series", {"slice_thickness": {"$gte": 5}}, None, None, False),
    ("chest series", "series", {"body_part_examined": "CHEST"}, None, None, False),
    ("lung CT", "series", {"body_part_examined": "CHEST", "modality": "CT"}, None, None, False),
    ("thorax scans", "series", {"body_part_examined": "CHEST"}, None, None, False),
    ("head CT", "series", {"body_part_examined": {"$in": ["HEAD", "BRAIN"]}, "modality": "CT"}, None, None, False),
    ("brain MRI", "series", {"body_part_examined": {"$in": ["HEAD", "BRAIN"]}, "modality": "MR"}, None, None, False),
    ("x-ray series", "series", {"modality": {"$in": ["DX", "CR"]}}, None, None, False),
    ("radiographs", "series", {"modality": {"$in": ["DX", "CR"]}}, None, None, False),
    ("female patients", "patients", {"patient_sex": "F"}, None, None, False),
    ("studies of women", "studies", {"patient_sex": "F"}, None, None, False),
    ("male patients", "patients", {"patient_sex": "M"}, None, None, False),
    ("MR series", "series", {"modality": "MR"}, None, None, False),
    ("PET studies", "studies", {"modalities": "PT"}, None, None, False),
    ("CT studies", "studies", {"modalities": "CT"}, None, None, False),
    ("contrast-enhanced series", "series", {"metadata.ContrastBolusAgent": {"$exists": True}}, None, None, False),
    ("non-contrast series", "series", {"metadata.ContrastBolusAgent": {"$exists": False}}, None, None, False),
    ("series without contrast", "series", {"metadata.ContrastBolusAgent": {"$exists": False}}, None, None, False),
    ("series with contrast", "series", {"metadata.ContrastBolusAgent": {"$exists": True}}, None, None, False),
    # numbers with units and comparisons
    ("series with more than 9 slices", "series", {"num_instances": {"$gt": 9}}, None, None, False),
    ("series with at least 10 images", "series", {"num_instances": {"$gte": 10}}, None, None, False),
    ("series with fewer than 5 images", "series", {"num_instances": {"$lt": 5}}, None, None, False),
    ("studies with more than 10 images", "studies", {"num_instances": {"$gt": 10}}, None, None, False),
    ("series thinner than 1 mm", "series", {"slice_thickness": {"$lt": 1}}, None, None, False),
    ("series thicker than 2 mm", "series", {"slice_thickness": {"$gt": 2}}, None, None, False),
    ("slice thickness under 2 mm", "series", {"slice_thickness": {"$lt": 2}}, None, None, False),
    ("slice thickness between 1 and 3 mm", "series", {"slice_thickness": {"$gte": 1, "$lte": 3}}, None, None, False),
    ("between 1 and 3 mm", "series", {"slice_thickness": {"$gte": 1, "$lte": 3}}, None, None, False),
    ("1 mm series", "series", {"slice_thickness": 1}, None, None, False),
    ("0.625 mm CT", "series", {"slice_thickness": 0.625, "modality": "CT"}, None, None, False),
    ("kvp over 130", "series", {"kvp": {"$gt": 130}}, None, None, False),
    ("series at 120 kv", "series", {"kvp": 120}, None, None, False),
    ("more than 130 kvp", "series", {"kvp": {"$gt": 130}}, None, None, False),
    ("kvp at most 120", "series", {"kvp": {"$lte": 120}}, None, None, False),
    ("series where kvp is 120", "series", {"kvp": 120}, None, None, False),
    ("series with a slice thickness of 0.625", "series", {"slice_thickness": 0.625}, None, None, False),
    ("studies with fewer than 2 series", "studies", {"num_series": {"$lt": 2}}, None, None, False),
    ("studies of patients older than 50 years", "studies", {"patient_age": {"$gt": "050Y"}}, None, None, False),
    ("studies of patients younger than 40", "studies", {"patient_age": {"$lt": "040Y"}}, None, None, False),
    ("studies with patients over 45 years old", "studies", {"patient_age": {"$gt": "045Y"}}, None, None, False),
    # dates
    ("studies in 2000", "studies", {"study_date": {"$gte": "2000-01-01", "$lte": "2000-12-31"}}, None, None, False),
    ("studies after March 2000", "studies", {"study_date": {"$gt": "2000-03-31"}}, None, None, False),
    ("studies before 2010", "studies", {"study_date": {"$lt": "2010-01-01"}}, None, None, False),
    ("studies since May 2000", "studies", {"study_date": {"$gte": "2000-05-01"}}, None, None, False),
    ("studies between 2000 and 2003", "studies", {"study_date": {"$gte": "2000-01-01", "$lte": "2003-12-31"}},
     None, None, False),
    ("studies in June 2000", "studies", {"study_date": {"$gte": "2000-06-01", "$lte": "2000-06-30"}},
     None, None, False),
    ("series acquired after 2001", "series", {"series_date": {"$gt": "2001-12-31"}}, None, None, False),
    ("CT studies before March 2001", "studies", {"modalities": "CT", "study_date": {"$lt": "2001-03-01"}},
     None, None, False),
    # negation
    ("not siemens", "series", {"manufacturer": {"$ne": SIEMENS}}, None, None, False),
    ("CT series not from siemens", "series", {"modality": "CT", "manufacturer": {"$ne": SIEMENS}}, None, None, False),
    ("series excluding DX", "series", {"modality": {"$ne": "DX"}}, None, None, False),
    ("non x-ray series", "series", {"modality": {"$nin": ["DX", "CR"]}}, None, None, False),
    ("series not thinner than 1 mm", "series", {"slice_thickness": {"$not": {"$lt": 1}}}, None, None, False),
    # and / or
    ("CT or MR series", "series", {"modality": {"$in": ["CT", "MR"]}}, None, None, False),
    ("siemens or toshiba", "series", {"manufacturer": {"$in": [SIEMENS, "TOSHIBA"]}}, None, None, False),
    ("thin or thick series", "series", {"$or": [{"slice_thickness": T}, {"slice_thickness": {"$gte": 5}}]},
     None, None, False),
    ("thin-slice chest CTs from GE scanners", "series",
     {"slice_thickness": T, "body_part_examined": "CHEST", "modality": "CT", "manufacturer": GE}, None, None, False),
    ("chest and CT", "series", {"body_part_examined": "CHEST", "modality": "CT"}, None, None, False),
    # counting
    ("how many studies", "studies", {}, None, None, True),
    ("how many CT series", "series", {"modality": "CT"}, None, None, True),
    ("number of female patients", "patients", {"patient_sex": "F"}, None, None, True),
    ("how many female patients have a DX study", "patients", {"patient_sex": "F", "modalities": "DX"},
     None, None, True),
    ("count siemens series", "series", {"manufacturer": SIEMENS}, None, None, True),
    # ordering and limits
    ("the 10 thinnest series", "series", {"slice_thickness": {"$ne": None}}, [("slice_thickness", 1)], 10, False),
    ("the 3 thickest CT series", "series", {"modality": "CT", "slice_thickness": {"$ne": None}},
     [("slice_thickness", -1)], 3, False),
    ("latest studies", "studies", {"study_date": {"$ne": None}}, [("study_date", -1)], None, False),
    ("the 5 latest studies", "studies", {"study_date": {"$ne": None}}, [("study_date", -1)], 5, False),
    ("oldest CT studies", "studies", {"modalities": "CT", "study_date": {"$ne": None}}, [("study_date", 1)],
     None, False),
    ("top 2 largest series", "series", {"num_instances": {"$ne": None}}, [("num_instances", -1)], 2, False),
    ("top 5 studies", "studies", {}, None, 5, False),
    ("show the newest 3 studies", "studies", {"study_date": {"$ne": None}}, [("study_date", -1)], 3, False),
    ("series with 8 images", "series", {"num_instances": 8}, None, None, False),
    # level given by the question where the value would choose another
    ("patients with CT", "patients", {"modalities": "CT"}, None, None, False),
    ("studies with DX", "studies", {"modalities": "DX"}, None, None, False),
    # counts of studies and series at every level, number words
    ("patients with more than one study", "patients", {"num_studies": {"$gt": 1}}, None, None, False),
    ("patients with at least 2 studies", "patients", {"num_studies": {"$gte": 2}}, None, None, False),
    ("studies with more than one series", "studies", {"num_series": {"$gt": 1}}, None, None, False),
    ("patients with more than three series", "patients", {"num_series": {"$gt": 3}}, None, None, False),
    ("series with more than 2 frames", "series", {"num_frames": {"$gt": 2}}, None, None, False),
    # ages and birth dates, never the study date
    ("men born before 1950", "patients", {"patient_sex": "M", "patient_birth_date": {"$lt": "1950-01-01"}},
     None, None, False),
    ("studies of patients born in 1944", "studies",
     {"patient_birth_date": {"$gte": "1944-01-01", "$lte": "1944-12-31"}}, None, None, False),
    ("patients born after 1960", "patients", {"patient_birth_date": {"$gt": "1960-12-31"}}, None, None, False),
    ("studies of patients aged 40 to 50", "studies", {"patient_age": {"$gte": "040Y", "$lte": "050Y"}},
     None, None, False),
    ("studies of patients aged between 30 and 45", "studies", {"patient_age": {"$gte": "030Y", "$lte": "045Y"}},
     None, None, False),
    ("studies of patients aged over 60", "studies", {"patient_age": {"$gt": "060Y"}}, None, None, False),
    ("studies of female patients over 50", "studies", {"patient_sex": "F", "patient_age": {"$gt": "050Y"}},
     None, None, False),
    ("CT studies of patients over 60", "studies", {"modalities": "CT", "patient_age": {"$gt": "060Y"}},
     None, None, False),
    ("the two latest studies", "studies", {"study_date": {"$ne": None}}, [("study_date", -1)], 2, False),
    # superlatives of one
    ("the latest study", "studies", {"study_date": {"$ne": None}}, [("study_date", -1)], 1, False),
    ("the thinnest CT series", "series", {"modality": "CT", "slice_thickness": {"$ne": None}},
     [("slice_thickness", 1)], 1, False),
    # every modality
    ("nuclear medicine series", "series", {"modality": "NM"}, None, None, False),
    ("angiography series", "series", {"modality": "XA"}, None, None, False),
    ("fluoroscopy", "series", {"modality": "RF"}, None, None, False),
    ("bone densitometry studies", "studies", {"modalities": "BMD"}, None, None, False),
    ("segmentations", "series", {"modality": "SEG"}, None, None, False),
    ("structured reports", "series", {"modality": "SR"}, None, None, False),
    ("rt dose series", "series", {"modality": "RTDOSE"}, None, None, False),
    ("PET-CT studies", "studies", {"modalities": "PT"}, None, None, False),
    ("echocardiography", "series", {"modality": "US"}, None, None, False),
    # vendors by any spelling
    ("philips medical systems series", "series", {"manufacturer": "Philips"}, None, None, False),
    ("canon scanners", "series", {"manufacturer": "TOSHIBA"}, None, None, False),
    ("siemens healthineers", "series", {"manufacturer": SIEMENS}, None, None, False),
]


@pytest.mark.parametrize(("question", "level", "expected", "sort", "limit", "count"), FILTERS,
                         ids=[q[0] for q in FILTERS])
def test_question_becomes_its_filter(catalog, question, level, expected, sort, limit, count):
    translation = translate(question, catalog)
    assert (translation.level, translation.filter) == (level, expected)
    assert (translation.sort, translation.limit, translation.count) == (sort, limit, count)
    assert translation.unrecognized == []


# Conditions joined in from another level: the selected documents, against a query by hand.
JOINED = [
    ("female CT series", "series", lambda c: {"modality": "CT", "study_instance_uid": {"$in": [
        s["study_instance_uid"] for s in c.find("studies", {"patient_sex": "F"})]}}),
    ("series of male patients", "series", lambda c: {"study_instance_uid": {"$in": [
        s["study_instance_uid"] for s in c.find("studies", {"patient_sex": "M"})]}}),
    ("studies with siemens series", "studies", lambda c: {"study_instance_uid": {"$in": [
        s["study_instance_uid"] for s in c.find("series", {"manufacturer": SIEMENS})]}}),
    ("studies with thin-slice series", "studies", lambda c: {"study_instance_uid": {"$in": [
        s["study_instance_uid"] for s in c.find("series", {"slice_thickness": T})]}}),
    ("patients older than 40 years", "patients", lambda c: {"study_instance_uids": {"$in": [
        s["study_instance_uid"] for s in c.find("studies", {"patient_age": {"$gt": "040Y"}})]}}),
    ("patients with toshiba scans", "patients", lambda c: {"study_instance_uids": {"$in": [
        s["study_instance_uid"] for s in c.find("series", {"manufacturer": "TOSHIBA"})]}}),
    ("instances of thin-slice series", "instances", lambda c: {"series_instance_uid": {"$in": [
        s["series_instance_uid"] for s in c.find("series", {"slice_thickness": T})]}}),
    ("female patients with chest siemens scans", "patients", lambda c: {"patient_sex": "F", "study_instance_uids": {
        "$in": [s["study_instance_uid"] for s in c.find("series", {"body_part_examined": "CHEST",
                                                                   "manufacturer": SIEMENS})]}}),
    ("female patients over 50", "patients", lambda c: {"patient_sex": "F", "study_instance_uids": {"$in": [
        s["study_instance_uid"] for s in c.find("studies", {"patient_age": {"$gt": "050Y"}})]}}),
    ("patients aged 40 to 50", "patients", lambda c: {"study_instance_uids": {"$in": [
        s["study_instance_uid"] for s in c.find("studies", {"patient_age": {"$gte": "040Y", "$lte": "050Y"}})]}}),
    ("series of patients born before 1950", "series", lambda c: {"study_instance_uid": {"$in": [
        s["study_instance_uid"] for s in c.find("studies", {"patient_birth_date": {"$lt": "1950-01-01"}})]}}),
]

# Counts per value: (question, level, the field counted per value).
GROUPED = [
    ("how many studies per patient", "studies", "patient_id"),
    ("series per study", "series", "study_instance_uid"),
    ("instances per series", "instances", "series_instance_uid"),
    ("how many series per modality", "series", "modality"),
    ("count studies by modality", "studies", "modalities"),
    ("CT series by manufacturer", "series", "manufacturer_family"),
    ("studies for each patient", "studies", "patient_id"),
    ("which scanners are in the catalog", "series", "manufacturer_model_name"),
    ("which manufacturers", "series", "manufacturer_family"),
    ("what modalities are there", "series", "modality"),
    ("which body parts were scanned", "series", "body_part_examined"),
    ("list the kernels", "series", "convolution_kernel"),
    ("what kinds of images do thin-slice series hold", "series", "modality"),
]


@pytest.mark.parametrize(("question", "level", "field"), GROUPED, ids=[q[0] for q in GROUPED])
def test_counts_per_value_are_the_catalogs_value_counts(catalog, question, level, field):
    translation = translate(question, catalog)
    assert (translation.level, translation.group_by, translation.unrecognized) == (level, field, [])
    answer = run(translation, catalog)
    expected = catalog.value_counts(level, field, translation.filter)
    assert [(g["value"], g["count"]) for g in answer["groups"]] == expected and expected


def test_relative_dates_count_from_today(catalog):
    from datetime import date

    today = date.today()
    cases = {"studies from last year": {"$gte": f"{today.year - 1}-01-01", "$lte": f"{today.year - 1}-12-31"},
             "studies this year": {"$gte": f"{today.year}-01-01", "$lte": today.isoformat()},
             "studies this month": {"$gte": f"{today.year}-{today.month:02d}-01", "$lte": today.isoformat()}}
    for question, condition in cases.items():
        assert translate(question, catalog).filter == {"study_date": condition}, question
    recent = translate("series from the last 3 months", catalog).filter["series_date"]
    assert recent["$lte"] == today.isoformat() and 89 <= (today - date.fromisoformat(recent["$gte"])).days <= 93


@pytest.mark.parametrize("question", [
    "female patients over 60 per 5 widgets", "series with 3 frobnicators", "studies per 5 widgets",
    "CT series blorp 12", "patients per study", "the two most recent studies of each patient",
    "average slice thickness of CT series", "patients with both CT and DX",
])
def test_a_word_that_changes_the_question_refuses_it(catalog, question):
    with pytest.raises(AskError, match="not answered|cannot be counted per|not a question ask answers"):
        translate(question, catalog)


def test_other_unused_words_make_a_partial_answer(catalog):
    translation = translate("thin-slice chest CTs with frobnication", catalog)
    assert translation.partial and translation.unrecognized == ["frobnication"]
    assert not translate("thin-slice chest CTs", catalog).partial


@pytest.mark.parametrize(("question", "level", "by_hand"), JOINED, ids=[q[0] for q in JOINED])
def test_joined_questions_select_what_a_query_by_hand_selects(catalog, question, level, by_hand):
    from quire_assets.catalog import KEYS

    translation = translate(question, catalog)
    assert translation.level == level and translation.unrecognized == []
    assert any("joined by" in note for note in translation.notes)
    key = KEYS[level]
    got = sorted(d[key] for d in catalog.find(level, translation.filter))
    expected = sorted(d[key] for d in catalog.find(level, by_hand(catalog)))
    assert got == expected and got


def test_a_level_can_be_forced(catalog):
    assert translate("siemens", catalog, level="studies").level == "studies"
    assert translate("female", catalog, level="patients").filter == {"patient_sex": "F"}


@pytest.mark.parametrize("question", ["hello world", "what is the meaning of life", "zzz qqq", "   ", "the of and"])
def test_nothing_understood_is_refused_with_examples(catalog, question):
    with pytest.raises(AskError, match="thin-slice chest CTs"):
        translate(question, catalog)


def test_unknown_words_are_listed_and_thresholds_stated(catalog):
    translation = translate("thin-slice chest CTs with frobnication", catalog)
    assert translation.unrecognized == ["frobnication"]
    assert NOTE_THIN in translation.notes


def test_a_vendor_is_every_spelling_of_its_family_and_said(catalog):
    catalog.upsert("series", [{"series_instance_uid": "9.9", "study_instance_uid": "9", "manufacturer": "GE Healthcare"},
                              {"series_instance_uid": "9.8", "study_instance_uid": "9", "manufacturer": "TOSHIBA_MEC"}])
    try:
        for question in ("GE series", "GE Healthcare series", "g.e. series", "general electric series"):
            translation = translate(question, catalog)
            assert translation.filter == {"manufacturer": {"$in": ["GE Healthcare", GE]}}, question
            assert any("GE family: GE Healthcare, GE MEDICAL SYSTEMS" in note for note in translation.notes)
            assert not translation.partial
        for question in ("canon series", "toshiba series", "toshiba mec series"):
            assert translate(question, catalog).filter == {"manufacturer": {"$in": ["TOSHIBA", "TOSHIBA_MEC"]}}
    finally:
        catalog.delete("series", {"series_instance_uid": {"$in": ["9.9", "9.8"]}})


def test_a_synonym_file_of_ones_own(catalog, tmp_path):
    from quire_assets.ask import get_translator

    own = tmp_path / "mine.toml"
    own.write_text('[[phrase]]\nwords = ["lidc thin"]\nconcept = "slice_thickness"\nop = "$lt"\nvalue = 1\n')
    assert translate("lidc thin series", catalog, synonyms=own).filter == {"slice_thickness": {"$lt": 1}}
    assert get_translator(synonyms=str(own))("lidc thin series", catalog).filter == {"slice_thickness": {"$lt": 1}}
    assert translate("lidc thin series", catalog).filter != {"slice_thickness": {"$lt": 1}}


def test_answers_run_the_filter(catalog):
    answer = run(translate("how many CT series", catalog), catalog)
    assert answer["total"] == catalog.count("series", {"modality": "CT"}) > 0 and answer["results"] == []
    answer = run(translate("the 2 thinnest series", catalog), catalog)
    assert [r["slice_thickness"] for r in answer["results"]] == sorted(
        s["slice_thickness"] for s in catalog.find("series", {"slice_thickness": {"$ne": None}}))[:2]


def test_hidden_fields_are_not_offered_as_words(catalog):
    translation = translate("studies of patient LIDC-IDRI-0002 in 2000", catalog,
                            hidden=frozenset({"patient_id"}))
    assert "patient_id" not in str(translation.filter) and "lidc-idri-0002" in translation.unrecognized


def test_a_deployment_can_name_another_translator(catalog):
    from quire_assets.ask import get_translator

    assert get_translator() is translate
    assert get_translator("quire_assets.ask.translate:translate") is translate
    with pytest.raises(AskError, match="cannot be loaded"):
        get_translator("no.such.module:ask")


def test_or_across_levels_is_read_as_and_and_said(catalog):
    translation = translate("female or siemens series", catalog)
    assert translation.level == "series" and "read as 'and'" in " ".join(translation.notes)
    assert translation.filter["manufacturer"] == SIEMENS and "study_instance_uid" in translation.filter


def test_the_vocabulary_follows_the_catalogs_writes(tmp_path):
    # The catalog's words are kept between questions, and read again once the catalog is written.
    from quire_assets.catalog.sqlite import SqliteCatalog

    with SqliteCatalog(tmp_path / "catalog.db") as catalog:
        catalog.upsert("series", [{"series_instance_uid": "1.1", "modality": "CT", "manufacturer": "ACME"}])
        assert translate("acme series", catalog).filter == {"manufacturer": "ACME"}
        with pytest.raises(AskError):
            translate("zetavendor series", catalog)
        catalog.upsert("series", [{"series_instance_uid": "1.2", "modality": "CT", "manufacturer": "ZETAVENDOR"}])
        assert translate("zetavendor series", catalog).filter == {"manufacturer": "ZETAVENDOR"}
