"""Series quality through the API: a researcher filters and facets on it as on any shown field."""

from __future__ import annotations

import json


def test_a_researcher_filters_and_facets_on_quality(alice, admin):
    where = json.dumps({"complete_volume": True})
    theirs = alice.get("/api/v1/series/count", params={"where": where}).json()["count"]
    assert theirs == admin.get("/api/v1/series/count", params={"where": where}).json()["count"] > 0
    facet = alice.get("/api/v1/series/distinct/complete_volume").json()["values"]
    assert {v["value"] for v in facet} <= {True, False} and sum(v["count"] for v in facet) == (
        alice.get("/api/v1/series/count").json()["count"])
    page = alice.get("/api/v1/series", params={"where": where, "limit": 5}).json()["items"]
    assert all(s["quality"]["volume"] == "regular" and s["quality_flags"] == [] for s in page)
