"""README's claims section is the committed claims/claims.json, rendered: a claim in the front
door cannot drift from the run it came from."""

import json

from conftest import REPO
from varreason import claims as VC
from varreason.claims_page import README_BEGIN, README_END, readme_claims


def test_readme_claims_section_matches_claims_json():
    readme = (REPO / "README.md").read_text()
    assert readme.count(README_BEGIN) == 1 and readme.count(README_END) == 1
    section = readme[readme.index(README_BEGIN) : readme.index(README_END) + len(README_END)]
    doc = json.loads((REPO / VC.REPORT_JSON).read_text())
    assert section == readme_claims(doc)


def test_claims_json_is_from_the_registered_plan_with_ten_primary_seeds():
    doc = json.loads((REPO / VC.REPORT_JSON).read_text())
    plan = VC.load_plan(REPO / VC.PLAN)
    assert doc["plan"]["tiers"] == plan.tiers and doc["plan"]["registered"] == plan.registered
    for arm in plan.tiers["primary"]["arms"]:
        assert len(doc["seeds"]["per_arm"][arm]) >= 10
    for row in doc["families"]["primary"]:
        for key in ("p_t", "p_sign", "p_t_holm", "p_sign_holm", "lo", "hi"):
            assert row["all"][key] is not None
    assert len(doc["provenance"]["commit"]) == 40 and doc["provenance"]["cpu"]
