"""Campaign admin pages, the overview, grade annotations on the run page and their ndjson
download, through the real app (real forms with CSRF) on SQLite and PostgreSQL; and one
browser test of an admin creating a campaign."""

from __future__ import annotations

import json
import re
import sys
import uuid

import pytest
import sqlalchemy as sa

from cryocurate import accounts, grading
from cryocurate.catalog.models import ClassAverage
from cryocurate.portal import Portal
from tests.grading.portal import ADMIN, LABELLERS, PASSWORD, REVIEWER, build_grading_portal
from tests.web.test_auth import client, form_token, log_in

BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


@pytest.fixture
def built(tmp_path, database_url):
    return build_grading_portal(tmp_path, database_url, n_classes=4)


def _campaign(root, run_ids, labellers=LABELLERS) -> int:
    spec = grading.CampaignSpec(
        name="spring", run_ids=run_ids, labellers=labellers, seed=5, repeat_share=0.0
    )
    with Portal.open(root) as p, p.transaction() as s:
        return grading.create_campaign(s, spec).id


def _grade_first(root, cid: int, email: str, n: int, grade: str = "B") -> None:
    with Portal.open(root) as p, p.transaction() as s:
        user = accounts.get_user(s, email)
        campaign = grading.get_campaign(s, cid)
        for row in grading.window(s, campaign, user, 0, n):
            request = grading.GradeRequest(uuid.uuid4().hex, row["item_id"], grade)
            grading.record(s, campaign, user, request)


def _class_ids(root, run_id: int) -> list[int]:
    with Portal.open(root) as p, p.transaction() as s:
        query = sa.select(ClassAverage.id).where(ClassAverage.run_id == run_id)
        return sorted(s.scalars(query))


def test_admin_creates_and_edits_a_campaign_through_the_pages(built):
    root, (first, second) = built.root, built.run_ids
    lab = client(root)
    log_in(lab, LABELLERS[0])
    assert lab.get("/admin/campaigns").status_code == 403
    assert client(root).get("/admin/campaigns").status_code == 303  # to the login page

    c = client(root)
    token = log_in(c, ADMIN)
    page = c.get("/admin/campaigns")
    assert page.status_code == 200
    html = page.text
    assert 'href="/admin/campaigns"' in html and 'href="/admin/users"' in html
    assert f'name="run" value="{first}"' in html and f'name="run" value="{second}"' in html
    assert "Lab A" in html and "Lab B" in html
    assert f'name="labeller" value="{LABELLERS[1]}"' in html
    token = form_token(html)

    form = {
        "name": "Spring 2D",
        "description": "both labs",
        "scale": "letters",
        "run": [str(first), str(second)],
        "labeller": [LABELLERS[0]],
        "grades_per_item": "",
        "repeat_share": "0.1",
    }
    assert c.post("/admin/campaigns", data=form).status_code == 403  # no CSRF token
    r = c.post("/admin/campaigns", data={**form, "csrf_token": token})
    assert r.status_code == 303, r.text
    cid = int(r.headers["location"].rsplit("/", 1)[1])
    # errors come back inline, with what was typed
    r = c.post("/admin/campaigns", data={**form, "csrf_token": token})
    assert r.status_code == 400 and "already exists" in r.text and "both labs" in r.text
    r = c.post("/admin/campaigns", data={**form, "name": "x", "run": [], "csrf_token": token})
    assert r.status_code == 400 and "at least one run" in r.text
    r = c.post(
        "/admin/campaigns", data={**form, "name": "y", "repeat_share": "0.9", "csrf_token": token}
    )
    assert r.status_code == 400 and "out of range" in r.text

    listing = c.get("/admin/campaigns").text
    assert "Spring 2D" in listing and "0 of 8 grades" in listing
    assert '<td class="num">8</td>' in listing and "built-in" not in listing

    edit = c.get(f"/admin/campaigns/{cid}")
    assert edit.status_code == 200 and "Best" in edit.text and "Unusable" in edit.text
    keys = re.findall(r'name="key" value="([^"]+)"', edit.text)
    assert keys == ["A", "B", "C", "D", "F"]
    texts = re.findall(
        r'<textarea id="describe-\w" name="text" required>([^<]*)</textarea>', edit.text
    )
    texts[1] = "Clear features; keep it"
    r = c.post(
        f"/admin/campaigns/{cid}/descriptions",
        data={"key": keys, "text": texts, "csrf_token": token},
    )
    assert r.status_code == 303 and r.headers["location"] == f"/admin/campaigns/{cid}"
    assert "Clear features; keep it" in c.get(f"/admin/campaigns/{cid}").text
    r = c.post(
        f"/admin/campaigns/{cid}/descriptions",
        data={"key": ["A"], "text": [" "], "csrf_token": token},
    )
    assert r.status_code == 400 and "description is empty" in r.text

    ca = _class_ids(root, first)
    r = c.post(
        f"/admin/campaigns/{cid}/rubric",
        data={
            "grade": "A",
            "item_ids": f"{ca[0]}, {ca[1]}",
            "caption": "crisp",
            "csrf_token": token,
        },
    )
    assert r.status_code == 303, r.text
    r = c.post(
        f"/admin/campaigns/{cid}/rubric",
        data={"grade": "A", "item_ids": str(ca[2]), "caption": "", "csrf_token": token},
    )
    assert r.status_code == 303
    edit = c.get(f"/admin/campaigns/{cid}").text
    images = re.findall(r'<img src="(/data/[^"]+)" alt="Example of A', edit)
    assert len(images) == 3 and all(c.get(u).status_code == 200 for u in images)
    assert "8 items" in edit and "built-in" not in edit
    assert "crisp" in edit
    r = c.post(
        f"/admin/campaigns/{cid}/rubric",
        data={"grade": "A", "item_ids": "999999", "csrf_token": token},
    )
    assert r.status_code == 400 and "no class average with id 999999" in r.text
    r = c.post(
        f"/admin/campaigns/{cid}/rubric",
        data={"grade": "Q", "item_ids": str(ca[0]), "csrf_token": token},
    )
    assert r.status_code == 400 and "not a grade" in r.text
    example = re.search(r'name="example_id" value="(\d+)"', edit).group(1)
    r = c.post(
        f"/admin/campaigns/{cid}/rubric/remove", data={"example_id": example, "csrf_token": token}
    )
    assert r.status_code == 303
    assert len(re.findall(r'alt="Example of A', c.get(f"/admin/campaigns/{cid}").text)) == 2

    r = c.post(
        f"/admin/campaigns/{cid}/labellers", data={"labeller": LABELLERS[1], "csrf_token": token}
    )
    assert r.status_code == 303
    r = c.post(f"/admin/campaigns/{cid}/labellers", data={"csrf_token": token})
    assert r.status_code == 400 and "tick at least one" in r.text

    with Portal.open(root) as p, p.transaction() as s:
        campaign = grading.load_campaign(s, cid)
        assert campaign.levels[1]["description"] == "Clear features; keep it"
        assert campaign.repeat_share == pytest.approx(0.1) and campaign.description == "both labs"
        assert {link.user.email for link in campaign.labellers} == set(LABELLERS)
        assert [e.caption for e in campaign.rubric_examples] == ["crisp", None]
        assert campaign.created_by_id is not None

    # add-runs: a second campaign over one run, then the other run
    form2 = {**form, "name": "one run", "run": [str(first)], "csrf_token": token}
    cid2 = int(c.post("/admin/campaigns", data=form2).headers["location"].rsplit("/", 1)[1])
    assert f'name="run" value="{second}"' in c.get(f"/admin/campaigns/{cid2}").text
    r = c.post(f"/admin/campaigns/{cid2}/runs", data={"run": str(second), "csrf_token": token})
    assert r.status_code == 303
    with Portal.open(root) as p, p.transaction() as s:
        assert grading.campaign_progress(s, grading.get_campaign(s, cid2))["items"] == 8
    assert c.get("/admin/campaigns/999").status_code == 404


def test_grades_are_annotations_on_the_run_page_downloadable_per_role(built):
    root, (first, _second) = built.root, built.run_ids
    cid = _campaign(root, built.run_ids)
    _grade_first(root, cid, LABELLERS[0], 8, "A")
    _grade_first(root, cid, LABELLERS[1], 8, "C")

    anonymous = client(root)
    body = anonymous.get(f"/runs/{first}.json").json()
    assert sorted(row["id"] for row in body["classes"]) == _class_ids(root, first)
    # The campaign runs: its grades are not for visitors (grading.access).
    assert not [a for a in body["annotations"] if a["grading"]]
    anonymous_html = anonymous.get(f"/runs/{first}").text
    assert "@" not in anonymous_html and "Grades by" not in anonymous_html
    assert 'href="/campaigns"' not in anonymous_html  # no grading links for a visitor
    reviewer = client(root)
    log_in(reviewer, REVIEWER)
    body = reviewer.get(f"/runs/{first}.json").json()
    graded = [a for a in body["annotations"] if a["grading"]]
    # Labellers are named, never by their address.
    names = {email.split("@")[0]: email for email in LABELLERS}
    assert {a["grading"]["labeller"] for a in graded} <= set(names) and graded
    assert all(a["method_type"] == "manual" for a in graded)
    mine = {names[a["grading"]["labeller"]]: a for a in graded}
    html = reviewer.get(f"/runs/{first}").text
    for a in graded:
        assert f"/download/annotation/{a['id']}.ndjson" in html
        assert f"Grades by {a['grading']['labeller']}" in html

    # the run's and the annotation's zips still work with grade annotations in the run
    assert anonymous.get(f"/download/run/{first}.zip").status_code == 200
    some = graded[0]["id"]
    assert reviewer.get(f"/download/annotation/{some}.zip").status_code == 200

    owner_email = LABELLERS[0] if LABELLERS[0] in mine else LABELLERS[1]
    other_email = LABELLERS[1] if owner_email == LABELLERS[0] else LABELLERS[0]
    annotation = mine[owner_email]
    url = f"/download/annotation/{annotation['id']}.ndjson"
    assert anonymous.get(url).status_code == 401
    r = anonymous.get(url, headers={"accept": BROWSER_ACCEPT})
    assert r.status_code == 303 and r.headers["location"].startswith("/login?next=")
    for email, status in (
        (owner_email, 200),
        (other_email, 403),
        (REVIEWER, 200),
        (ADMIN, 200),
    ):
        c = client(root)
        log_in(c, email)
        r = c.get(url)
        assert r.status_code == status, (email, r.text)
        if status == 200:
            assert r.headers["content-type"].startswith("application/x-ndjson")
            lines = [json.loads(line) for line in r.text.splitlines()]
            assert lines and {row["labeller"] for row in lines} == {owner_email}
            assert all(row["type"] == "grade" and row["scale"] == "letters" for row in lines)
            assert len(lines) == annotation["grading"]["grades"]
            indices = [row["class_index"] for row in lines]
            assert indices == sorted(indices)
    c = client(root)
    log_in(c, ADMIN)
    assert c.get("/download/annotation/999999.ndjson").status_code == 404


def test_overview_per_role(built):
    root = built.root
    cid = _campaign(root, built.run_ids, labellers=[LABELLERS[0]])
    _grade_first(root, cid, LABELLERS[0], 3)
    pages = {}
    for email in (ADMIN, REVIEWER, LABELLERS[0]):
        c = client(root)
        log_in(c, email)
        r = c.get(f"/campaigns/{cid}/overview.json")
        assert r.status_code == 200, r.text
        pages[email] = (r.json(), c.get(f"/campaigns/{cid}/overview").text)
    body, html = pages[ADMIN]
    assert body["progress"] == {
        "done": 3,
        "target": 8,
        "items": 8,
        "grades_per_item": 1,
        "percent": 37.5,
    }
    assert {row["lab"] for row in body["per_lab"]} == {"Lab A", "Lab B"}
    assert sum(row["done"] for row in body["per_lab"]) == 3
    assert len(body["per_run"]) == 2
    assert [p["labeller"] for p in body["per_labeller"]] == [LABELLERS[0]]
    assert body["per_labeller"][0]["graded"] == 3 and "repeats" in body["per_labeller"][0]
    assert 'role="progressbar"' in html and "Per lab" in html and "built-in" not in html
    assert "8 items" in html and '<td class="num">4</td>' in html
    assert 'href="/admin/campaigns"' in html
    assert pages[REVIEWER][0]["sees_all_labellers"] is True
    labeller_body, labeller_html = pages[LABELLERS[0]]
    assert labeller_body["sees_all_labellers"] is False
    assert [p["labeller"] for p in labeller_body["per_labeller"]] == [LABELLERS[0]]
    assert "repeats" not in labeller_body["per_labeller"][0]
    assert labeller_body["per_lab"] == body["per_lab"]
    assert 'href="/campaigns"' in labeller_html
    assert 'href="/admin/campaigns"' not in labeller_html

    # a labeller of no campaign, or of another one, sees nothing; a visitor is asked to log in
    outsider = client(root)
    log_in(outsider, LABELLERS[1])
    assert outsider.get(f"/campaigns/{cid}/overview.json").status_code == 404
    assert outsider.get(f"/campaigns/{cid}/overview").status_code == 404
    assert client(root).get(f"/campaigns/{cid}/overview.json").status_code == 401
    c = client(root)
    log_in(c, ADMIN)
    assert c.get("/campaigns/999/overview.json").status_code == 404


@pytest.mark.browser
def test_admin_creates_a_campaign_in_a_browser(tmp_path, live_server, page, screenshot_dir):
    built = build_grading_portal(tmp_path, n_classes=6)
    url = live_server(
        lambda port: [
            sys.executable, "-m", "cryocurate", "serve", str(built.root), "--port", str(port)
        ]
    )  # fmt: skip
    page.goto(url + "/admin/campaigns")
    page.get_by_label("Email").fill(ADMIN)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(url + "/admin/campaigns")
    assert page.get_by_role("link", name="Campaigns").count() == 1

    form = page.locator("#new-campaign")
    form.get_by_label("Name").fill("Browser campaign")
    form.get_by_label("Description").fill("Both labs' class averages")
    for run_id in built.run_ids:
        form.locator(f"input[name=run][value='{run_id}']").check()
    for email in LABELLERS:
        form.locator(f"input[name=labeller][value='{email}']").check()
    page.screenshot(path=screenshot_dir / "admin-campaigns.png", full_page=True)
    form.get_by_role("button", name="Create campaign").click()
    page.wait_for_url(re.compile(r".*/admin/campaigns/\d+$"))
    cid = int(page.url.rsplit("/", 1)[1])

    page.locator("#describe-B").fill("Clear features; keep it")
    page.get_by_role("button", name="Save descriptions").click()
    page.wait_for_url(url + f"/admin/campaigns/{cid}")
    ca = _class_ids(built.root, built.run_ids[0])
    rubric = page.locator("#rubric")
    rubric.get_by_label("Grade").select_option("A")
    rubric.get_by_label("Class average ids").fill(f"{ca[0]} {ca[1]}")
    rubric.get_by_label("Caption").fill("crisp")
    rubric.get_by_role("button", name="Add examples").click()
    page.wait_for_url(url + f"/admin/campaigns/{cid}")
    assert page.locator("#descriptions img").count() == 2
    assert page.locator("#describe-B").input_value() == "Clear features; keep it"
    page.locator("#descriptions img").first.evaluate("img => img.decode()")
    page.screenshot(path=screenshot_dir / "admin-campaign.png", full_page=True)

    page.get_by_role("link", name="overview").click()
    page.wait_for_url(url + f"/campaigns/{cid}/overview")
    assert page.locator("#per-lab tbody tr").count() == 2
    assert page.locator("#per-labeller tbody tr").count() == 2
    assert "0 of 24 grades" in page.locator("#overall").inner_text()
    page.screenshot(path=screenshot_dir / "campaign-overview.png", full_page=True)
