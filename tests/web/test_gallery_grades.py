"""Grades wherever class averages are shown: the run page's gallery (each tile's consensus
grade, kept/dropped colours, filter and sort; spread and flag for reviewers only), the per-run
grading summary on run and dataset pages, runs in natural order with the columns of their kind,
letters on the review page, grid tiles that appear as their images arrive, and the rule that a
consensus is ground truth only once every item has its grades.

The consensus is computed in the test through the real grading code (:mod:`tests.web.graded`
says tile by tile what it is)."""

from __future__ import annotations

import re
import sys
import time
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from cryocurate import grading
from cryocurate.catalog.models import Annotation, GradeAnnotation
from cryocurate.catalog.run_pages import class_grades, run_overview
from cryocurate.catalog.search import dataset_overview
from cryocurate.grading.annotations import grade_annotations_of_run
from cryocurate.grading.consensus_store import compute_consensus
from cryocurate.grading.scales import LETTER_LEVELS, TILT_SERIES_LEVELS, grade_label
from cryocurate.portal import Portal
from tests.grading.portal import ADMIN, LABELLERS, PASSWORD, REVIEWER
from tests.web.graded import (
    DROPPED,
    FINAL,
    FLAGGED_CLASS,
    KEPT,
    N_CLASSES,
    SETTLED_CLASS,
    UNGRADED,
    build_graded_portal,
    give,
    items_by_class,
)
from tests.web.test_auth import client
from tests.web.test_auth import log_in as client_log_in

KEPT_RGB = "rgb(26, 127, 55)"  # --kept in portal.css
DROPPED_RGB = "rgb(180, 35, 24)"  # --dropped


def _consensus_annotations(session) -> dict[int, Annotation]:
    """Run id → its consensus annotation."""
    rows = session.execute(
        sa.select(GradeAnnotation.run_id, Annotation)
        .join(Annotation, Annotation.id == GradeAnnotation.annotation_id)
        .where(GradeAnnotation.user_id.is_(None))
    ).all()
    return {run_id: a for run_id, a in rows}


# ── services, on SQLite and PostgreSQL ──────────────────────────────────────────────────────


def test_ground_truth_only_when_every_item_has_its_grades(tmp_path, database_url):
    g = build_graded_portal(tmp_path, database_url, closed=False)  # more grades come later
    first, second = g.run_ids
    with Portal.open(g.root) as portal, portal.transaction() as s:
        consensus = _consensus_annotations(s)
        # 7 of 8 items graded (one by nobody): a consensus, not ground truth
        assert consensus[first].ground_truth_status is False
        assert consensus[first].object_count == 7
        # every item graded by both labellers (grades per item = the 2 labellers)
        assert consensus[second].ground_truth_status is True
        # an annotation stored under the old rule is corrected on the next recompute
        consensus[first].ground_truth_status = True
    with Portal.open(g.root) as portal, portal.transaction() as s:
        summary = compute_consensus(s, grading.get_campaign(s, g.campaign_id))
        assert {r["run_id"]: r["ground_truth"] for r in summary.runs} == {
            first: False,
            second: True,
        }
        assert _consensus_annotations(s)[first].ground_truth_status is False
        # the Browse filter "ground truth" no longer finds the half-graded run's dataset via it
        gt_runs = set(
            s.scalars(sa.select(Annotation.run_id).where(Annotation.ground_truth_status.is_(True)))
        )
        assert first not in gt_runs and second in gt_runs
    # the last grade of the first run makes it ground truth
    with Portal.open(g.root) as portal, portal.transaction() as s:
        campaign = grading.get_campaign(s, g.campaign_id)
        item = items_by_class(s, g.campaign_id, first)[min(UNGRADED)]
        for email in LABELLERS:
            give(s, campaign, email, item, "C")
        compute_consensus(s, campaign)
        assert _consensus_annotations(s)[first].ground_truth_status is True


def test_class_grades_query_and_natural_run_order(tmp_path, database_url):
    g = build_graded_portal(tmp_path, database_url)
    first = g.run_ids[0]
    with Portal.open(g.root) as portal, portal.transaction() as s:
        rows = class_grades(s, [first])
        assert {r["kind"] for r in rows} == {"consensus"}
        links = grade_annotations_of_run(s, first)
        ctx = run_overview(s, first, links)
        tiles = {c["class_index"]: c["grade"] for c in ctx["classes"]}
        assert {i: t["grade"] for i, t in tiles.items() if t} == FINAL
        assert {i for i, t in tiles.items() if t is None} == UNGRADED
        assert {i for i, t in tiles.items() if t and t["kept"]} == KEPT
        assert tiles[SETTLED_CLASS]["settled"] is True
        assert "spread" not in tiles[0]  # no detail unless asked
        detail = run_overview(s, first, links, grade_detail=True)
        flagged = {
            c["class_index"] for c in detail["classes"] if c["grade"] and c["grade"]["flagged"]
        }
        assert flagged == {FLAGGED_CLASS}
        # only the annotations the caller passes reach the gallery
        hidden = run_overview(s, first, {})
        assert all(c["grade"] is None for c in hidden["classes"])

        names = [r.name for r in dataset_overview(s, g.dataset_id)["runs"]]
        assert names == ["P1_J2", "P1_J10"]


def test_grade_label_reads_as_the_scale():
    assert grade_label(LETTER_LEVELS, 2.0) == "B"
    assert grade_label(LETTER_LEVELS, 2.5) == "B–C"
    assert grade_label(LETTER_LEVELS, 5) == "F"
    assert grade_label(LETTER_LEVELS, None) == "—"
    assert grade_label(TILT_SERIES_LEVELS, 3.5) == "3.5"
    assert grade_label(TILT_SERIES_LEVELS, 4.0) == "4"


# ── in the browser ──────────────────────────────────────────────────────────────────────────


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    return build_graded_portal(tmp_path_factory.mktemp("gallery"))


@pytest.fixture(scope="module")
def server(graded, live_server_module) -> str:
    return live_server_module(
        lambda port: [
            sys.executable, "-m", "cryocurate", "serve", str(graded.root), "--port", str(port)
        ]
    )  # fmt: skip


def log_in(page, server: str, email: str) -> None:
    page.goto(server + "/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_load_state()


def _cards(page, run_name: str) -> Any:
    return page.get_by_role("list", name=f"Class averages of {run_name}").get_by_role("listitem")


def _wait_images(page) -> None:
    page.wait_for_function(
        "() => [...document.images].every(i => i.complete && i.naturalWidth > 0)"
    )


def _shown_indices(cards) -> list[int]:
    return cards.evaluate_all(
        "els => els.filter(e => !e.hidden).map(e => Number(e.dataset.class_index))"
    )


@pytest.mark.browser
def test_gallery_shows_grades_filters_and_sorts(server, graded, page, screenshot_dir):
    first = graded.run_ids[0]
    page.goto(f"{server}/runs/{first}")
    cards = _cards(page, "P1_J10")
    assert cards.count() == N_CLASSES
    _wait_images(page)
    gallery = page.locator(".class-gallery")
    assert "Grades: none yet" not in gallery.inner_text()
    assert "GRADE SLOT" not in page.content()

    # the right letter on the right tile, kept / dropped / neutral
    for index in range(N_CLASSES):
        card = page.locator(f".class-card[data-class_index='{index}']")
        badge = card.locator(".grade")
        if index in UNGRADED:
            assert badge.count() == 0
            assert "ungraded" in card.get_attribute("class")
            continue
        assert badge.inner_text() == FINAL[index]
        state = "kept" if index in KEPT else "dropped"
        assert state in card.get_attribute("class").split()
        colour = card.locator("figure").evaluate("e => getComputedStyle(e).borderTopColor")
        assert colour == (KEPT_RGB if index in KEPT else DROPPED_RGB), (index, colour)
    dropped_img = page.locator(f".class-card[data-class_index='{min(DROPPED)}'] img")
    assert float(dropped_img.evaluate("e => getComputedStyle(e).opacity")) < 1
    legend = page.locator("#gallery-legend").inner_text()
    assert "kept (A–C)" in legend and "dropped (D–F)" in legend and "not graded" in legend
    # a visitor sees no spread and no flag
    assert page.locator(".class-gallery .spread").count() == 0
    assert page.locator(".class-gallery .flag").count() == 0
    assert page.get_by_label("Show").locator("option[value=flagged]").count() == 0

    # filter by clicking
    show = page.get_by_label("Show")
    show.select_option("kept")
    assert sorted(_shown_indices(cards)) == sorted(KEPT)
    assert page.locator("[data-gallery-count]").inner_text() == f"Showing {len(KEPT)} of 8"
    show.select_option("dropped")
    assert sorted(_shown_indices(cards)) == sorted(DROPPED)
    show.select_option("ungraded")
    assert _shown_indices(cards) == sorted(UNGRADED)
    show.select_option("grade:B")
    assert sorted(_shown_indices(cards)) == [i for i, k in FINAL.items() if k == "B"]
    show.select_option("all")
    assert len(_shown_indices(cards)) == N_CLASSES

    # sort by grade: A first, ungraded last; reversed: F first, ungraded still last
    page.get_by_label("Sort by").select_option("grade_value")
    letters = cards.evaluate_all("els => els.map(e => e.dataset.grade)")
    assert letters == ["A", "B", "B", "B", "C", "D", "F", ""]
    page.get_by_role("button", name="Reverse the order (now ascending)").click()
    letters = cards.evaluate_all("els => els.map(e => e.dataset.grade)")
    assert letters == ["F", "D", "C", "B", "B", "B", "A", ""]

    # the grading summary: counts and bar heights (A 1, B 3, C 1, D 1, F 1 → B is the tallest)
    summary = page.locator(".grading-summary")
    assert "7 of 8 graded" in summary.inner_text()
    assert "5 kept" in summary.inner_text() and "2 dropped" in summary.inner_text()
    assert re.search(r"α = -?\d\.\d\d", summary.inner_text())
    heights = summary.locator("svg.grade-bars g.bar").evaluate_all(
        "gs => gs.map(g => [g.dataset.key, Number(g.dataset.count),"
        " g.querySelector('rect').getBoundingClientRect().height])"
    )
    assert [(k, n) for k, n, _ in heights] == [("A", 1), ("B", 3), ("C", 1), ("D", 1), ("F", 1)]
    h = {k: px for k, _, px in heights}
    assert h["B"] == pytest.approx(40, abs=0.5)
    assert h["A"] == pytest.approx(40 / 3, abs=0.7) and h["A"] == h["C"] == h["D"] == h["F"]
    bar_fill = summary.locator("g.bar.dropped rect").first.evaluate("e => getComputedStyle(e).fill")
    assert bar_fill == DROPPED_RGB
    # a visitor may open no campaign page, so none is linked
    assert summary.locator("a.campaign-link").count() == 0
    page.get_by_label("Sort by").select_option("class_index")
    page.screenshot(path=screenshot_dir / "run-class2d-graded.png", full_page=True)


@pytest.mark.browser
def test_reviewer_sees_spread_and_flag_and_campaign_links(server, graded, page, screenshot_dir):
    first = graded.run_ids[0]
    log_in(page, server, REVIEWER)
    page.goto(f"{server}/runs/{first}")
    cards = _cards(page, "P1_J10")
    _wait_images(page)
    flagged = page.locator(f".class-card[data-class_index='{FLAGGED_CLASS}']")
    assert flagged.locator(".flag").count() == 1
    assert flagged.locator(".spread").inner_text() == "±3"
    assert page.locator(".class-card[data-class_index='0'] .spread").inner_text() == "±0"
    assert page.locator(".class-gallery .flag").count() == 1
    page.get_by_label("Show").select_option("flagged")
    assert _shown_indices(cards) == [FLAGGED_CLASS]
    page.get_by_label("Show").select_option("all")
    links = page.locator(".grading-summary a.campaign-link")
    hrefs = links.evaluate_all("els => els.map(e => e.getAttribute('href'))")
    cid = graded.campaign_id
    assert hrefs == [
        f"/campaigns/{cid}/agreement",
        f"/campaigns/{cid}/review",
        f"/campaigns/{cid}/overview",
    ]
    page.screenshot(path=screenshot_dir / "run-class2d-reviewer.png", full_page=True)
    # the links open (the reviewer may use them)
    links.first.click()
    page.wait_for_url(f"{server}/campaigns/{cid}/agreement")


@pytest.mark.browser
def test_labeller_gets_the_overview_link_only(server, graded, page):
    log_in(page, server, LABELLERS[0])
    page.goto(f"{server}/runs/{graded.run_ids[0]}")
    links = page.locator(".grading-summary a.campaign-link")
    assert links.evaluate_all("els => els.map(e => e.getAttribute('href'))") == [
        f"/campaigns/{graded.campaign_id}/overview"
    ]
    assert page.locator(".class-gallery .spread").count() == 0
    links.first.click()
    page.wait_for_url(f"{server}/campaigns/{graded.campaign_id}/overview")


@pytest.mark.browser
def test_dataset_page_of_2d_runs(server, graded, page, screenshot_dir):
    page.goto(f"{server}/datasets/{graded.dataset_id}")
    table = page.get_by_role("table", name="Runs")
    header = table.locator("thead").inner_text()
    assert "Tilt-series quality" not in header and "Annotated objects" not in header
    assert "Classes" in header and "Particles" in header and "Grading" in header
    names = table.locator("tbody tr td:first-child").all_inner_texts()
    assert names == ["P1_J2", "P1_J10"]  # natural order, not text order
    row = table.locator(f"tr[data-run='{graded.run_ids[0]}']")
    assert "7/8 graded" in row.inner_text() and "Spring 2D" in row.inner_text()
    counts = row.locator("svg.grade-bars g.bar").evaluate_all(
        "gs => gs.map(g => Number(g.dataset.count))"
    )
    assert counts == [1, 3, 1, 1, 1]
    heights = row.locator("svg.grade-bars g.bar rect:first-of-type").evaluate_all(
        "rs => rs.map(r => r.getBoundingClientRect().height)"
    )
    assert heights[1] == pytest.approx(40, abs=0.5) and heights[0] < heights[1]
    assert "not graded" in table.locator(f"tr[data-run='{graded.j2_run_id}']").inner_text()
    # the JSON twin is in the same order
    body = httpx.get(f"{server}/datasets/{graded.dataset_id}.json").json()
    assert [r["name"] for r in body["runs"]] == ["P1_J2", "P1_J10"]
    page.screenshot(path=screenshot_dir / "dataset-class2d.png", full_page=True)


@pytest.mark.browser
def test_review_page_shows_letters(server, graded, page, screenshot_dir):
    with Portal.open(graded.root) as portal, portal.transaction() as s:
        item = items_by_class(s, graded.campaign_id, graded.run_ids[0])[FLAGGED_CLASS]
    log_in(page, server, REVIEWER)
    page.goto(f"{server}/campaigns/{graded.campaign_id}/review?item={item}")
    model = page.locator("#model").inner_text()
    # A and D: the median is half-way, B–C, shown as letters and never as "2.5"
    assert page.locator("#median").inner_text() == "B–C"
    assert not re.search(r"median \d", model)
    assert sorted(page.locator("#review-grades td.grade").all_inner_texts()) == ["A", "D"]
    page.screenshot(path=screenshot_dir / "review-letters.png", full_page=True)


@pytest.mark.browser
def test_grid_tiles_appear_as_their_images_arrive(server, graded, page, screenshot_dir):
    """Images are held back (the last one until the test lets it go): the first tile is on
    screen, with its image, while the last image has not arrived."""
    log_in(page, server, LABELLERS[1])
    held: list[Any] = []
    last = f"class_{N_CLASSES - 1:04d}.png"

    def throttle(route: Any) -> None:
        if route.request.url.endswith(last):
            held.append(route)  # answered below, once the first tiles are checked
            return
        time.sleep(0.15)  # the others arrive one by one
        route.continue_()

    page.route("**/ClassAverages/Images/*.png", throttle)
    page.goto(f"{server}/campaigns/{graded.campaign_id}/grid?run={graded.run_ids[0]}")
    page.wait_for_selector(".grade-grid .tile.loaded")
    first = page.locator(".grade-grid .tile").first
    assert first.is_visible()
    assert first.locator("img").evaluate("i => i.complete && i.naturalWidth > 0")
    assert float(first.locator("img").evaluate("i => getComputedStyle(i).opacity")) > 0
    tiles = page.locator(".grade-grid .tile")
    assert tiles.count() == N_CLASSES  # every tile is there, placeholders included
    last_tile = tiles.nth(N_CLASSES - 1)
    assert "loading" in last_tile.get_attribute("class")
    assert last_tile.is_visible()  # its frame and class number show while the image is due
    assert "Loading images" in page.locator("#grade-status").inner_text()
    page.screenshot(path=screenshot_dir / "grid-loading.png")
    page.wait_for_function("() => document.querySelectorAll('.tile.loaded').length >= 3")
    for route in held:
        route.continue_()
    page.wait_for_function(
        f"() => document.querySelectorAll('.grade-grid .tile.loaded').length === {N_CLASSES}"
    )
    assert page.locator("#grade-status").inner_text() == ""
    page.screenshot(path=screenshot_dir / "grid-loaded.png")


def test_admin_sees_detail_in_the_json_twin(graded, server):
    c = client(graded.root)
    client_log_in(c, ADMIN)
    body = c.get(f"/runs/{graded.run_ids[0]}.json").json()
    tile = next(x for x in body["classes"] if x["class_index"] == FLAGGED_CLASS)
    assert tile["grade"]["flagged"] is True and tile["grade"]["spread"] == 3
    visitor = httpx.get(f"{server}/runs/{graded.run_ids[0]}.json").json()
    tile = next(x for x in visitor["classes"] if x["class_index"] == FLAGGED_CLASS)
    assert tile["grade"]["grade"] == "C" and "spread" not in tile["grade"]
    assert "flagged" not in tile["grade"]


@pytest.mark.browser
def test_browse_marks_ground_truth_only_for_a_complete_consensus(server, graded, page):
    page.goto(server + "/")
    table = page.get_by_role("table", name="Datasets")
    lab_a = table.locator("tr", has=page.get_by_role("link", name="Complex of Lab A"))
    lab_b = table.locator("tr", has=page.get_by_role("link", name="Complex of Lab B"))
    # Lab A's run has 7 of its 8 items graded; Lab B's every item by both labellers.
    assert lab_a.locator(".badge", has_text="Ground truth").count() == 0
    assert lab_b.locator(".badge", has_text="Ground truth").count() == 1
