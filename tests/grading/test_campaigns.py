"""Campaigns, queues, grades and progress through the services, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
import threading
import uuid

import pytest
import sqlalchemy as sa

from cryocurate import accounts, grading
from cryocurate.catalog.models import Annotation, Grade, GradeEvent, QueueEntry
from cryocurate.errors import ConflictError, InputError, NotFoundError
from cryocurate.grading.annotations import grade_annotations_of_run, grades_ndjson
from cryocurate.grading.campaigns import REPEAT_GAP, shuffled_queue
from cryocurate.portal import Portal
from tests.grading.portal import LABELLERS, REVIEWER, build_grading_portal


@pytest.fixture
def built(tmp_path, database_url):
    return build_grading_portal(tmp_path, database_url, n_classes=8)


def _create(portal: Portal, run_ids, **kwargs) -> int:
    spec = grading.CampaignSpec(
        name=kwargs.pop("name", "first"), run_ids=run_ids, labellers=LABELLERS, seed=7, **kwargs
    )
    with portal.transaction() as s:
        return grading.create_campaign(s, spec).id


def _grade(portal: Portal, cid: int, email: str, item: int, grade, **kwargs) -> grading.Ack:
    request = grading.GradeRequest(
        request_id=kwargs.pop("request_id", uuid.uuid4().hex), item_id=item, grade=grade, **kwargs
    )
    with portal.transaction() as s:
        user = accounts.get_user(s, email)
        return grading.record(s, grading.get_campaign(s, cid), user, request)


def _window(portal: Portal, cid: int, email: str, start: int = 0, limit: int = 200):
    with portal.transaction() as s:
        user = accounts.get_user(s, email)
        return grading.window(s, grading.get_campaign(s, cid), user, start, limit)


def _resume(portal: Portal, cid: int, email: str) -> grading.Resume:
    with portal.transaction() as s:
        return grading.resume(s, grading.get_campaign(s, cid), accounts.get_user(s, email))


def test_each_labeller_has_an_own_order_over_all_labs(built):
    with Portal.open(built.root) as portal:
        cid = _create(portal, built.run_ids, repeat_share=0.0)
        first, second = (_window(portal, cid, e) for e in LABELLERS)
    assert len(first) == len(second) == 16
    assert [r["item_id"] for r in first] != [r["item_id"] for r in second]
    assert sorted(r["item_id"] for r in first) == sorted(r["item_id"] for r in second)
    # Both labs' data are mixed in one order, not lab after lab.
    labs = [r["lab"] for r in first]
    assert labs != sorted(labs) and labs != sorted(labs, reverse=True)
    row = first[0]
    assert row["image_url"].startswith(f"/data/{row['dataset_id']}/{row['run_name']}/")
    assert set(row["metadata"]) >= {"resolution_a", "particle_count", "class_fraction"}


def test_repeats_come_back_later_and_deterministically():
    items = list(range(1000, 1200))
    queue = shuffled_queue(42, 3, 0, items, 0.1)
    assert queue == shuffled_queue(42, 3, 0, items, 0.1)
    assert [p for p, _, _ in queue] == list(range(220))
    first_seen = {item: p for p, item, repeat in queue if not repeat}
    repeats = [(p, item) for p, item, repeat in queue if repeat]
    assert len(repeats) == 20 and len(first_seen) == 200
    assert all(p - first_seen[item] >= REPEAT_GAP for p, item in repeats)


def test_grades_are_idempotent_and_keep_history(built):
    with Portal.open(built.root) as portal:
        cid = _create(portal, built.run_ids, repeat_share=0.0)
        item = _window(portal, cid, LABELLERS[0])[0]["item_id"]
        t0 = dt.datetime(2026, 11, 1, 12, 0, tzinfo=dt.UTC)
        ack = _grade(portal, cid, LABELLERS[0], item, "b", request_id="req-00001", given_at=t0)
        assert ack.status == "stored" and ack.grade == "B"
        again = _grade(portal, cid, LABELLERS[0], item, "b", request_id="req-00001", given_at=t0)
        assert again.status == "duplicate"
        later = t0 + dt.timedelta(seconds=5)
        assert _grade(portal, cid, LABELLERS[0], item, "D", given_at=later).status == "stored"
        # A retry of an older keypress arriving last does not undo the correction.
        old = _grade(portal, cid, LABELLERS[0], item, "A", given_at=t0 + dt.timedelta(seconds=1))
        assert old.status == "superseded"
        with portal.transaction() as s:
            campaign = grading.get_campaign(s, cid)
            user = accounts.get_user(s, LABELLERS[0])
            rows = grading.grade_rows(s, campaign, user)
            steps = grading.history(s, campaign, item, user)
            assert s.scalar(sa.select(sa.func.count(Grade.id))) == 1
            assert s.scalar(sa.select(sa.func.count(GradeEvent.id))) == 3
    assert [(r["grade"], r["labeller"]) for r in rows] == [("D", LABELLERS[0])]
    assert [s["grade"] for s in steps] == ["B", "A", "D"]  # by the browser's clock


def test_bad_grades_are_refused(built):
    with Portal.open(built.root) as portal:
        cid = _create(portal, built.run_ids)
        item = _window(portal, cid, LABELLERS[0])[0]["item_id"]
        with pytest.raises(InputError, match="not a grade"):
            _grade(portal, cid, LABELLERS[0], item, "E")
        with pytest.raises(InputError, match="request id"):
            _grade(portal, cid, LABELLERS[0], item, "A", request_id="x")
        with pytest.raises(NotFoundError):
            _grade(portal, cid, REVIEWER, item, "A")  # not a labeller of this campaign
        with pytest.raises(NotFoundError):
            _grade(portal, cid, LABELLERS[0], 10_000, "A")
        _grade(portal, cid, LABELLERS[0], item, "A", request_id="same-id-1")
        with pytest.raises(ConflictError):
            _grade(portal, cid, LABELLERS[1], item, "A", request_id="same-id-1")


def test_resume_skips_and_done(built):
    with Portal.open(built.root) as portal:
        cid = _create(portal, built.run_ids[:1], repeat_share=0.0)
        queue = _window(portal, cid, LABELLERS[0])
        assert _resume(portal, cid, LABELLERS[0]) == grading.Resume(0, False)
        _grade(portal, cid, LABELLERS[0], queue[0]["item_id"], "C")
        _grade(portal, cid, LABELLERS[0], queue[1]["item_id"], None)  # skip
        assert _resume(portal, cid, LABELLERS[0]) == grading.Resume(2, False)
        for row in queue[2:]:
            _grade(portal, cid, LABELLERS[0], row["item_id"], "B")
        assert _resume(portal, cid, LABELLERS[0]) == grading.Resume(1, True)  # the skipped one
        _grade(portal, cid, LABELLERS[0], queue[1]["item_id"], "F")
        assert _resume(portal, cid, LABELLERS[0]) == grading.Resume(None, False)
        assert _window(portal, cid, LABELLERS[0])[1]["grade"] == "F"
        with portal.transaction() as s:
            campaign = grading.get_campaign(s, cid)
            mine = grading.my_progress(s, campaign, accounts.get_user(s, LABELLERS[0]))
            overall = grading.campaign_progress(s, campaign)
    assert (mine["done"], mine["total"]) == (8, 8)
    assert (overall["done"], overall["target"]) == (8, 16)
    assert overall["per_lab"] == [{"lab": "Lab A", "items": 8, "done": 8, "target": 16}]


def test_fewer_grades_per_item_retires_items(built):
    with Portal.open(built.root) as portal:
        cid = _create(portal, built.run_ids[:1], grades_per_item=1, repeat_share=0.0)
        for row in _window(portal, cid, LABELLERS[0])[:5]:
            _grade(portal, cid, LABELLERS[0], row["item_id"], "B")
        others = _window(portal, cid, LABELLERS[1])
        with portal.transaction() as s:
            progress = grading.campaign_progress(s, grading.get_campaign(s, cid))
    assert len(others) == 3  # five items already have the one grade they need
    assert (progress["done"], progress["target"]) == (5, 8)


def test_grades_become_one_annotation_per_labeller_per_run(built):
    with Portal.open(built.root) as portal:
        cid = _create(portal, built.run_ids, repeat_share=0.0)
        for email, grade in zip(LABELLERS, "BD", strict=True):
            for row in _window(portal, cid, email):
                _grade(portal, cid, email, row["item_id"], grade)
        with portal.transaction() as s:
            listed = grade_annotations_of_run(s, built.run_ids[0])
            first = min(listed)
            lines = [json.loads(line) for line in grades_ndjson(s, first)]
            annotation = s.get(Annotation, first)
            assert annotation.method_type.value == "manual"
            assert annotation.object_count == 8
            author = annotation.authors[0]
            assert author.email is None  # not published
            assert author.name == listed[first]["labeller"].split("@")[0]
    assert sorted(v["labeller"] for v in listed.values()) == sorted(LABELLERS)
    assert all(v["grades"] == 8 for v in listed.values())
    assert [line["class_index"] for line in lines] == list(range(8))
    assert {line["labeller"] for line in lines} == {listed[first]["labeller"]}


def test_campaign_choices_are_checked(built, tmp_path):
    with Portal.open(built.root) as portal:
        _create(portal, built.run_ids)
        with pytest.raises(ConflictError, match="already exists"):
            _create(portal, built.run_ids)
        with pytest.raises(NotFoundError):
            _create(portal, [999], name="other")
        with pytest.raises(InputError, match="no tilt series"):
            _create(portal, built.run_ids, name="ts", scale="tilt_series")
        with pytest.raises(InputError, match="repeat share"):
            _create(portal, built.run_ids, name="r", repeat_share=0.9)
        with pytest.raises(InputError, match="no grade 'Q'"):
            _create(portal, built.run_ids, name="d", descriptions={"Q": "?"})
        with portal.transaction() as s:
            assert grading.list_campaigns(s)[0].name == "first"


def test_adding_runs_and_labellers_later(built):
    with Portal.open(built.root) as portal:
        cid = _create(portal, built.run_ids[:1], repeat_share=0.0)
        before = _window(portal, cid, LABELLERS[0])
        with portal.transaction() as s:
            campaign = grading.get_campaign(s, cid)
            assert grading.add_runs(s, campaign, built.run_ids) == 8
            grading.add_labellers(s, campaign, [REVIEWER])
        after = _window(portal, cid, LABELLERS[0])
        assert after[:8] == before  # nobody's order changes
        assert len(after) == 16 and len(_window(portal, cid, REVIEWER)) == 16


def test_concurrent_grades_of_one_item_leave_one_row(built):
    with Portal.open(built.root) as portal:
        cid = _create(portal, built.run_ids, repeat_share=0.0)
        item = _window(portal, cid, LABELLERS[0])[0]["item_id"]
        with portal.transaction() as s:
            user_id = accounts.get_user(s, LABELLERS[0]).id
        requests = [grading.GradeRequest(f"race-{n:04d}", item, "ABCDF"[n % 5]) for n in range(12)]
        results: list = []

        def send(chunk):
            results.extend(grading.record_many(portal, cid, user_id, chunk))

        threads = [threading.Thread(target=send, args=(requests[i::4],)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        with portal.transaction() as s:
            assert s.scalar(sa.select(sa.func.count(Grade.id))) == 1
            assert s.scalar(sa.select(sa.func.count(GradeEvent.id))) == 12
            assert s.scalar(sa.select(sa.func.count()).select_from(QueueEntry)) == 32
    assert len(results) == 12 and all(isinstance(r, grading.Ack) for r in results)


def test_campaign_needs_existing_users(built):
    with Portal.open(built.root) as portal, pytest.raises(NotFoundError), portal.transaction() as s:
        spec = grading.CampaignSpec("x", built.run_ids, labellers=["nobody@x.org"])
        grading.create_campaign(s, spec)
