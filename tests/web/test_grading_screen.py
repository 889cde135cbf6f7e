"""The grading screen in a real browser against a real server (``cryocurate serve``).

What is checked is what a labeller must be able to trust (labeling.md §2): grading by keyboard
alone, going back to change a grade, resuming after a reload, and, above all, that every grade
given is stored exactly once, even when the network goes away, the tab is closed right after a
keypress, or the server is killed with SIGKILL and restarted mid-run.

One portal and one server serve the whole module; each test makes a campaign of its own (both
labellers, 25 % unannounced repeats), so tests do not share queues or counts. Each test keeps
its own list of the keys pressed, by queue position, and compares it to the ``grades`` and
``grade_events`` tables at the end.
"""

from __future__ import annotations

import os
import re
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from cryocurate import grading
from cryocurate.catalog.models import Grade, GradeEvent, QueueEntry, User
from cryocurate.grading.scales import value_of
from cryocurate.portal import Portal
from tests.conftest import VIEWPORT
from tests.grading.portal import LABELLERS, PASSWORD, GradingPortal, build_grading_portal

pytestmark = pytest.mark.browser

N_CLASSES = 6  # per run; two runs → 12 first looks + 3 repeats per labeller


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> GradingPortal:
    return build_grading_portal(tmp_path_factory.mktemp("grading"), n_classes=N_CLASSES)


@pytest.fixture(scope="module")
def server(built: GradingPortal, live_server_module: Any) -> Any:
    root = built.root
    return live_server_module(
        lambda port: [sys.executable, "-m", "cryocurate", "serve", str(root), "--port", str(port)]
    )


_names = iter(range(1000))


@pytest.fixture
def campaign(built: GradingPortal) -> int:
    """A fresh campaign over both runs, both labellers, repeats mixed in."""
    with Portal.open(built.root) as portal, portal.transaction() as session:
        spec = grading.CampaignSpec(
            name=f"screen test {next(_names)}",
            run_ids=built.run_ids,
            labellers=LABELLERS,
            repeat_share=0.25,
            seed=11,
        )
        return grading.create_campaign(session, spec).id


@dataclass
class Labeller:
    """One labeller's browser tab, and every key they pressed (position → grades, in order)."""

    email: str
    context: Any
    page: Any
    base: str
    campaign_id: int
    pressed: list[tuple[int, str | None]] = field(default_factory=list)

    def open(self, what: str = "grade") -> None:
        self.page.goto(f"{self.base}/campaigns/{self.campaign_id}/{what}")
        self.page.wait_for_selector("body[data-ready='1']")

    def settled(self) -> str:
        """Wait until the screen shows an item or the done screen; say which."""
        self.page.wait_for_function(
            "() => document.querySelector('#stage').dataset.position"
            " || !document.querySelector('#done').hidden"
        )
        return "done" if self.page.is_visible("#done") else "item"

    def position(self) -> int:
        assert self.settled() == "item"
        return int(self.page.get_attribute("#stage", "data-position"))

    def press(self, key: str) -> int:
        """Press a grade key (or ``s``) on the item shown; returns the item's position."""
        pos = self.position()
        self.page.keyboard.press(key)
        grade = None if key.lower() == "s" else key.upper()
        self.pressed.append((pos, grade))
        return pos

    def state(self) -> tuple[str, int]:
        el = self.page.locator("#save-state")
        return el.get_attribute("data-state"), int(el.get_attribute("data-pending"))

    def wait_state(self, state: str, pending: int, timeout: float = 10_000) -> None:
        """Wait for the indicator: it is updated after the next item is painted, so right
        after a keypress it may still show the count from before."""
        selector = f"#save-state[data-state='{state}'][data-pending='{pending}']"
        self.page.wait_for_selector(selector, timeout=timeout)

    def wait_saved(self, timeout: float = 20_000) -> None:
        self.page.wait_for_selector("#save-state[data-state='saved']", timeout=timeout)


def log_in(browser: Any, base: str, email: str, campaign_id: int) -> Labeller:
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.goto(f"{base}/login?next=/campaigns/{campaign_id}/grade")
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(rf".*/campaigns/{campaign_id}/grade$"))
    page.wait_for_selector("body[data-ready='1']")
    return Labeller(email, context, page, base, campaign_id)


@pytest.fixture
def labellers(browser: Any, server: Any, campaign: int) -> Iterator[list[Labeller]]:
    people = [log_in(browser, str(server), email, campaign) for email in LABELLERS]
    try:
        yield people
    finally:
        for person in people:
            person.context.close()


def stored(root: Path, campaign_id: int, email: str) -> tuple[dict[int, int], dict[int, int]]:
    """(position → current grade value, position → number of grade events) for a labeller."""
    with Portal.open(root) as portal, portal.transaction() as s:
        user_id = s.scalar(sa.select(User.id).where(User.email == email))
        entries = {
            (e.item_id, e.repeat): e.position
            for e in s.scalars(
                sa.select(QueueEntry).where(
                    QueueEntry.campaign_id == campaign_id, QueueEntry.user_id == user_id
                )
            )
        }
        grades: dict[int, int] = {}
        for g in s.scalars(
            sa.select(Grade).where(Grade.campaign_id == campaign_id, Grade.user_id == user_id)
        ):
            pos = entries[(g.item_id, g.repeat)]
            assert pos not in grades, f"two current grades for position {pos}"
            grades[pos] = g.value
        events: dict[int, int] = {}
        for e in s.scalars(
            sa.select(GradeEvent).where(
                GradeEvent.campaign_id == campaign_id, GradeEvent.user_id == user_id
            )
        ):
            pos = entries[(e.item_id, e.repeat)]
            events[pos] = events.get(pos, 0) + 1
    return grades, events


def assert_stored_exactly_once(root: Path, person: Labeller) -> None:
    """Every key pressed is one grade event; the last grade per look is the current one."""
    with Portal.open(root) as portal, portal.transaction() as s:
        levels = grading.get_campaign(s, person.campaign_id).levels
    grades, events = stored(root, person.campaign_id, person.email)
    want_events: dict[int, int] = {}
    want_grades: dict[int, int] = {}
    for pos, grade in person.pressed:
        want_events[pos] = want_events.get(pos, 0) + 1
        if grade is not None:
            want_grades[pos] = value_of(levels, int(grade) if grade.isdigit() else grade)
    assert events == want_events
    assert grades == want_grades


def queue_positions(root: Path, campaign_id: int, email: str) -> list[int]:
    with Portal.open(root) as portal, portal.transaction() as s:
        user_id = s.scalar(sa.select(User.id).where(User.email == email))
        return list(
            s.scalars(
                sa.select(QueueEntry.position)
                .where(QueueEntry.campaign_id == campaign_id, QueueEntry.user_id == user_id)
                .order_by(QueueEntry.position)
            )
        )


def test_two_labellers_grade_a_run_by_keyboard(
    labellers: list[Labeller], built: GradingPortal, screenshot_dir: Path
) -> None:
    lena, lars = labellers
    order = queue_positions(built.root, lena.campaign_id, lena.email)
    assert lena.page.text_content("#progress-all") == f"0 of {2 * N_CLASSES}"
    lena.page.screenshot(path=screenshot_dir / "grading-screen.png")
    lena.page.keyboard.press("?")
    assert lena.page.is_visible("#rubric")
    assert lena.page.locator("#rubric .rubric-level").count() == 5
    lena.page.screenshot(path=screenshot_dir / "grading-rubric.png")
    lena.page.keyboard.press("Escape")
    assert not lena.page.is_visible("#rubric")
    # Metadata is hidden until asked for.
    assert not lena.page.is_visible("#item-meta")
    lena.page.keyboard.press("m")
    assert lena.page.is_visible("#item-meta")
    lena.page.keyboard.press("m")

    keys = "ABCDF"
    seen = []
    for n in range(3):
        seen.append(lena.press(keys[n]))
    assert seen == order[:3]
    # Back twice: the item graded "B" comes back with B highlighted; change it to D.
    lena.page.keyboard.press("Backspace")
    lena.page.keyboard.press("ArrowLeft")
    assert lena.position() == order[1]
    assert lena.page.get_attribute("#stage", "data-grade") == "B"
    assert lena.page.locator("#levels .level.current").get_attribute("data-key") == "B"
    lena.press("d")
    assert lena.position() == order[2]  # the next item, with its grade shown
    lena.page.keyboard.press("ArrowRight")
    # The rest, alternating between the two labellers; lena skips one and uses 1–5 too.
    lars_keys = "12345"
    while True:
        done_a = lena.settled() == "done"
        done_b = lars.settled() == "done"
        if done_a and done_b:
            break
        if not done_a:
            lena.press("s" if len(lena.pressed) == 6 else keys[len(lena.pressed) % 5])
        if not done_b:
            lars.press(lars_keys[len(lars.pressed) % 5])
    for person in labellers:
        person.wait_saved()
    # lena's skipped item came back after the queue and was graded then.
    skipped = [pos for pos, grade in lena.pressed if grade is None]
    assert len(skipped) == 1 and lena.pressed[-1][0] == skipped[0]
    assert lena.page.text_content("#progress-all") == f"{2 * N_CLASSES} of {2 * N_CLASSES}"
    lena.page.screenshot(path=screenshot_dir / "grading-done.png")
    # The campaigns page lists it with the labeller's progress and a link back here.
    lena.page.goto(f"{lena.base}/campaigns")
    row = lena.page.locator(f"tr[data-campaign-id='{lena.campaign_id}']")
    assert row.locator(".progress-text").text_content() == f"{2 * N_CLASSES} of {2 * N_CLASSES}"
    assert row.locator(f"a[href='/campaigns/{lena.campaign_id}/grade']").count() == 1
    for person in labellers:
        assert_stored_exactly_once(built.root, person)
    # The changed grade: one current row with D, and the history has both B and D.
    with Portal.open(built.root) as portal, portal.transaction() as s:
        user = s.scalar(sa.select(User).where(User.email == lena.email))
        entry = s.scalar(
            sa.select(QueueEntry).where(
                QueueEntry.campaign_id == lena.campaign_id,
                QueueEntry.user_id == user.id,
                QueueEntry.position == order[1],
            )
        )
        campaign = grading.get_campaign(s, lena.campaign_id)
        history = grading.history(s, campaign, entry.item_id, user)
        rows = s.scalars(
            sa.select(Grade).where(Grade.item_id == entry.item_id, Grade.user_id == user.id)
        ).all()
    assert [h["grade"] for h in history if h["repeat"] == entry.repeat] == ["B", "D"]
    assert [r.value for r in rows if r.repeat == entry.repeat] == [4]


def test_reload_resumes_and_a_closed_tab_loses_nothing(
    labellers: list[Labeller], built: GradingPortal, browser: Any
) -> None:
    lena = labellers[0]
    # Nobody logged in: the screen sends them to the login page.
    anonymous = browser.new_context()
    try:
        page = anonymous.new_page()
        page.goto(f"{lena.base}/campaigns/{lena.campaign_id}/grade")
        assert "/login?next=" in page.url
    finally:
        anonymous.close()
    order = queue_positions(built.root, lena.campaign_id, lena.email)
    for key in "ABCA":
        lena.press(key)
    lena.page.reload()
    lena.page.wait_for_selector("body[data-ready='1']")
    assert lena.position() == order[4]
    assert lena.page.text_content("#progress-all").split(" of ")[0] in {"3", "4"}
    # Close the tab right after a keypress; a new page of the same browser sends the grade
    # (the outbox is in localStorage) and resumes after it.
    lena.press("C")
    lena.page.close()
    lena.page = lena.context.new_page()
    lena.open()
    assert lena.position() == order[5]
    lena.wait_saved()
    assert_stored_exactly_once(built.root, lena)


def test_offline_and_server_killed_mid_run(
    labellers: list[Labeller], built: GradingPortal, server: Any
) -> None:
    lena, lars = labellers
    lena.press("A")
    lena.wait_saved()
    # Offline: grades queue up, the indicator says how many wait; back online, all saved.
    lena.context.set_offline(True)
    for key in "BCD":
        lena.press(key)
    lena.wait_state("offline", 3)
    assert lena.state() == ("offline", 3)
    assert "3 waiting" in lena.page.text_content("#save-state")
    lena.context.set_offline(False)
    lena.wait_saved()
    # SIGKILL: no chance to finish anything. Both keep grading; the grades wait in the outbox.
    lars.press("B")
    lars.wait_saved()
    os.killpg(server.process.pid, signal.SIGKILL)
    server.process.wait(timeout=10)
    for person, keys in ((lena, "FAB"), (lars, "CCD")):
        for key in keys:
            person.press(key)
    time.sleep(0.5)
    for person in labellers:
        state, pending = person.state()
        assert state in {"waiting", "offline"} and pending >= 1
    # A reload while the server is down would lose the page, so reload after it is back:
    # the restarted server gets every queued grade, once.
    server.restart()
    for person in labellers:
        person.wait_saved()
        assert_stored_exactly_once(built.root, person)
    lena.page.reload()
    lena.page.wait_for_selector("body[data-ready='1']")
    order = queue_positions(built.root, lena.campaign_id, lena.email)
    assert lena.position() == order[7]


def test_grid_mode_by_keyboard(
    labellers: list[Labeller], built: GradingPortal, screenshot_dir: Path
) -> None:
    lena = labellers[0]
    run_id = built.run_ids[0]
    lena.page.goto(f"{lena.base}/campaigns/{lena.campaign_id}/grid?run={run_id}")
    lena.page.wait_for_selector("body[data-ready='1']")
    tiles = lena.page.locator("#grid .tile")
    assert tiles.count() == N_CLASSES
    page = lena.page
    page.keyboard.press("b")  # tile 0 → B, focus moves to tile 1
    page.keyboard.press("ArrowRight")  # tile 2
    page.keyboard.press("c")  # tile 2 → C, focus on 3
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("ArrowLeft")  # back on tile 0
    page.keyboard.press("a")  # tile 0 → A (changed)
    assert tiles.nth(0).get_attribute("data-grade") == "A"
    assert tiles.nth(2).get_attribute("data-grade") == "C"
    assert tiles.nth(1).get_attribute("data-grade") == ""
    assert page.get_attribute("#grid", "data-focus") == "1"
    page.screenshot(path=screenshot_dir / "grading-grid.png")
    lena.wait_saved()
    ids = [int(tiles.nth(i).get_attribute("data-item-id")) for i in (0, 2)]
    with Portal.open(built.root) as portal, portal.transaction() as s:
        user_id = s.scalar(sa.select(User.id).where(User.email == lena.email))
        grades = {
            g.item_id: g.value
            for g in s.scalars(
                sa.select(Grade).where(
                    Grade.campaign_id == lena.campaign_id, Grade.user_id == user_id
                )
            )
        }
        n_events = s.scalar(
            sa.select(sa.func.count(GradeEvent.id)).where(
                GradeEvent.campaign_id == lena.campaign_id, GradeEvent.user_id == user_id
            )
        )
    assert grades == {ids[0]: 1, ids[1]: 3}
    assert n_events == 3
    # The one-at-a-time screen moves past the tiles graded in the grid.
    with page.expect_navigation():
        page.keyboard.press("g")
    page.wait_for_selector("body[data-ready='1']")
    shown = int(page.get_attribute("#stage", "data-item-id"))
    assert shown not in ids
