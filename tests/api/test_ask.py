"""``GET /api/v1/ask`` on a running ``quire serve``: the filter, the results, the refusals, the PHI policy."""

from __future__ import annotations

from quire_assets.catalog import open_catalog
from tests.api.conftest import pseudonym


def test_a_question_answers_with_its_filter_and_results(admin, api_home):
    answer = admin.get("/api/v1/ask", params={"q": "thin-slice chest CTs from GE scanners"}).json()
    assert answer["level"] == "series" and answer["unrecognized"] == []
    assert answer["filter"] == {"slice_thickness": {"$lte": 1.5}, "body_part_examined": "CHEST", "modality": "CT",
                                "manufacturer": "GE MEDICAL SYSTEMS"}
    with open_catalog(f"sqlite:///{api_home['catalog']}") as catalog:
        expected = catalog.find("series", answer["filter"])
    assert answer["results"] == expected and answer["total"] == len(expected) > 0
    assert "thin-slice means a slice thickness of at most 1.5 mm" in answer["notes"]


def test_counting_and_refusals(admin):
    counted = admin.get("/api/v1/ask", params={"q": "how many CT series"}).json()
    assert counted["count"] and counted["results"] == [] and counted["total"] > 0
    refused = admin.get("/api/v1/ask", params={"q": "hello world"})
    assert refused.status_code == 400 and "thin-slice chest CTs" in refused.json()["detail"]
    assert admin.get("/api/v1/ask", params={"q": ""}).status_code == 422


def test_a_researcher_gets_the_phi_policy_and_no_patient_id_words(alice):
    answer = alice.get("/api/v1/ask", params={"q": "female patients"}).json()
    assert answer["results"] and all(len(p["patient_id"]) == 16 and "patient_name" not in p
                                     for p in answer["results"])
    assert pseudonym("LIDC-IDRI-0002") in {p["patient_id"] for p in answer["results"]}
    asked = alice.get("/api/v1/ask", params={"q": "CT studies of LIDC-IDRI-0002"}).json()
    assert "lidc-idri-0002" in asked["unrecognized"] and "patient_id" not in str(asked["filter"])


def test_partial_answers_groups_and_refusals_over_http(admin, alice):
    partial = admin.get("/api/v1/ask", params={"q": "CT series with blorp"}).json()
    assert partial["partial"] is True and partial["unrecognized"] == ["blorp"] and partial["total"] > 0
    grouped = admin.get("/api/v1/ask", params={"q": "series per modality"}).json()
    assert grouped["group_by"] == "modality" and {g["value"] for g in grouped["groups"]} == {"CT", "DX"}
    refused = admin.get("/api/v1/ask", params={"q": "studies per 5 widgets"})
    assert refused.status_code == 400 and "change what the question asks" in refused.json()["detail"]
    # A researcher's question on a field the policy drops is refused by name, joined or not.
    for question in ("men born before 1950", "series of patients born before 1950"):
        hidden = alice.get("/api/v1/ask", params={"q": question})
        assert hidden.status_code == 403 and "patient_birth_date" in hidden.json()["detail"], question
    assert admin.get("/api/v1/ask", params={"q": "series of patients born before 1950"}).json()["total"] > 0
