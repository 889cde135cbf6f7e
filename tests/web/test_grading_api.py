"""The grading JSON API through the real app, as each role and as nobody, on SQLite and
PostgreSQL: what each may read, that grades are recorded for their sender only, exactly once,
and that nothing changes without a session and its CSRF token."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa

from cryocurate import accounts, grading
from cryocurate.catalog.models import Grade, GradeEvent
from cryocurate.portal import Portal
from tests.grading.portal import ADMIN, LABELLERS, REVIEWER, build_grading_portal
from tests.web.test_auth import client, log_in


@pytest.fixture
def setup(tmp_path, database_url):
    built = build_grading_portal(tmp_path, database_url, n_classes=6)
    with Portal.open(built.root) as portal, portal.transaction() as s:
        spec = grading.CampaignSpec(
            "api", built.run_ids, labellers=LABELLERS, seed=3, repeat_share=0.0
        )
        cid = grading.create_campaign(s, spec).id
    return built.root, cid


def _session(root, email):
    c = client(root)
    token = log_in(c, email)
    return c, {"X-CSRF-Token": token}


def _grade(item_id: int, grade: str | None, request_id: str | None = None) -> dict:
    return {
        "request_id": request_id or uuid.uuid4().hex,
        "item_id": item_id,
        "grade": grade,
        "given_at": "2026-11-21T10:00:00.000Z",
    }


def _stored(root) -> tuple[int, int]:
    with Portal.open(root) as portal, portal.transaction() as s:
        return (
            s.scalar(sa.select(sa.func.count(Grade.id))),
            s.scalar(sa.select(sa.func.count(GradeEvent.id))),
        )


def test_a_labeller_grades_and_resumes(setup):
    root, cid = setup
    c, headers = _session(root, LABELLERS[0])
    listed = c.get("/api/v1/campaigns").json()["campaigns"]
    assert [x["id"] for x in listed] == [cid] and listed[0]["my_progress"]["total"] == 12
    detail = c.get(f"/api/v1/campaigns/{cid}").json()
    assert [lv["key"] for lv in detail["levels"]] == list("ABCDF")
    assert detail["levels"][0]["name"] == "Best" and detail["is_labeller"]
    assert [row["lab"] for row in detail["progress"]["per_lab"]] == ["Lab A", "Lab B"]
    assert [r["labeller"] for r in detail["progress"]["per_labeller"]] == [LABELLERS[0]]
    assert "repeats" not in detail["progress"]["per_labeller"][0]  # repeats are unannounced
    assert set(detail["my_progress"]) == {"done", "total", "per_run"}
    q = c.get(f"/api/v1/campaigns/{cid}/queue?limit=5").json()
    assert q["resume"] == 0 and q["queue_length"] == 12 and len(q["items"]) == 5
    batch = [_grade(q["items"][0]["item_id"], "B", "fixed-request-1")]
    batch.append(_grade(q["items"][1]["item_id"], None))  # skip
    r = c.post(f"/api/v1/campaigns/{cid}/grades", json={"grades": batch}, headers=headers)
    assert r.status_code == 200
    assert [x["status"] for x in r.json()["results"]] == ["stored", "stored"]
    again = c.post(f"/api/v1/campaigns/{cid}/grades", json={"grades": batch[:1]}, headers=headers)
    assert again.json()["results"][0]["status"] == "duplicate"
    assert _stored(root) == (1, 2)
    q = c.get(f"/api/v1/campaigns/{cid}/queue").json()
    assert q["resume"] == 2 and q["start"] == 2 and q["my_progress"]["done"] == 1
    run_id = detail["runs"][0]["run_id"]
    grid = c.get(f"/api/v1/campaigns/{cid}/runs/{run_id}/items").json()["items"]
    assert [row["metadata"]["class_index"] for row in grid] == list(range(6))
    own = c.get(f"/api/v1/campaigns/{cid}/grades").json()["grades"]
    assert [(g["grade"], g["labeller"]) for g in own] == [("B", LABELLERS[0])]
    hist = c.get(f"/api/v1/campaigns/{cid}/items/{q['items'][0]['item_id']}/history")
    assert hist.status_code == 200


def test_bad_grades_in_a_batch_do_not_hold_back_the_others(setup):
    root, cid = setup
    c, headers = _session(root, LABELLERS[0])
    item = c.get(f"/api/v1/campaigns/{cid}/queue").json()["items"][0]["item_id"]
    batch = [_grade(item, "Q"), _grade(99999, "A"), _grade(item, "A")]
    results = c.post(f"/api/v1/campaigns/{cid}/grades", json={"grades": batch}, headers=headers)
    statuses = [x["status"] for x in results.json()["results"]]
    assert statuses == ["error", "error", "stored"]
    assert "not a grade" in results.json()["results"][0]["error"]
    malformed = c.post(f"/api/v1/campaigns/{cid}/grades", json={"grades": []}, headers=headers)
    assert malformed.status_code == 400


def test_who_sees_what(setup):
    root, cid = setup
    lena, lena_h = _session(root, LABELLERS[0])
    lars, _ = _session(root, LABELLERS[1])
    reviewer, _ = _session(root, REVIEWER)
    admin, _ = _session(root, ADMIN)
    item = lena.get(f"/api/v1/campaigns/{cid}/queue").json()["items"][0]["item_id"]
    lena.post(
        f"/api/v1/campaigns/{cid}/grades", json={"grades": [_grade(item, "C")]}, headers=lena_h
    )
    # Labellers: own grades only; asking for another's is refused.
    assert lars.get(f"/api/v1/campaigns/{cid}/grades").json()["grades"] == []
    r = lars.get(f"/api/v1/campaigns/{cid}/grades", params={"labeller": LABELLERS[0]})
    assert r.status_code == 403
    r = lars.get(f"/api/v1/campaigns/{cid}/items/{item}/history", params={"labeller": LABELLERS[0]})
    assert r.status_code == 403
    # Reviewers and admins: everyone's.
    for c in (reviewer, admin):
        grades = c.get(f"/api/v1/campaigns/{cid}/grades").json()["grades"]
        assert [(g["labeller"], g["grade"]) for g in grades] == [(LABELLERS[0], "C")]
        per = c.get(f"/api/v1/campaigns/{cid}/progress").json()["per_labeller"]
        assert len(per) == 2
    # A reviewer is not a labeller of this campaign: no queue, no grading.
    assert reviewer.get(f"/api/v1/campaigns/{cid}/queue").status_code == 404
    # A labeller outside a campaign does not see it at all.
    with Portal.open(root) as portal, portal.transaction() as s:
        user = accounts.add_user(s, "out@lab-c.org", "labeller")
        accounts.accept_invite(s, accounts.create_invite(s, user), "a long password")
    outsider, out_h = _session(root, "out@lab-c.org")
    assert outsider.get("/api/v1/campaigns").json()["campaigns"] == []
    assert outsider.get(f"/api/v1/campaigns/{cid}").status_code == 404
    r = outsider.post(
        f"/api/v1/campaigns/{cid}/grades", json={"grades": [_grade(item, "A")]}, headers=out_h
    )
    assert r.status_code == 404
    assert _stored(root) == (1, 1)


def test_nothing_changes_without_a_session_and_csrf_token(setup):
    root, cid = setup
    nobody = client(root)
    for path in ("", f"/{cid}", f"/{cid}/queue", f"/{cid}/grades", f"/{cid}/progress"):
        assert nobody.get(f"/api/v1/campaigns{path}").status_code == 401
    body = {"grades": [_grade(1, "A")]}
    assert nobody.post(f"/api/v1/campaigns/{cid}/grades", json=body).status_code == 401
    lena, _ = _session(root, LABELLERS[0])
    assert lena.post(f"/api/v1/campaigns/{cid}/grades", json=body).status_code == 403
    wrong = {"X-CSRF-Token": "not-the-token"}
    assert lena.post(f"/api/v1/campaigns/{cid}/grades", json=body, headers=wrong).status_code == 403
    assert _stored(root) == (0, 0)
    # Scripts use an API token instead (no CSRF: browsers never send that header by themselves).
    with Portal.open(root) as portal, portal.transaction() as s:
        token = accounts.create_api_token(s, accounts.get_user(s, LABELLERS[0]), "script")
    script = client(root)
    item = lena.get(f"/api/v1/campaigns/{cid}/queue").json()["items"][0]["item_id"]
    r = script.post(
        f"/api/v1/campaigns/{cid}/grades",
        json={"grades": [_grade(item, "D")]},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert r.status_code == 200 and r.json()["results"][0]["status"] == "stored"
    assert _stored(root) == (1, 1)
