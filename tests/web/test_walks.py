"""Every role's way through the app, by clicking only, and a screenshot of every page.

The pages a role may use are derived from the app's own routes (as the access matrix
enumerates them): every GET route that answers an HTML page, filled in with the ids of this
test's portal, that answers 200 for that role. A new page is therefore a target as soon as it
exists, and the walk fails until something links to it.

The walk starts at the front page (the only typed URL, with the login form), logs in by
clicking "Log in", and then follows links only: depth first, clicking a visible link to a
page whose route it has not reached yet, going back with the browser's Back. Each page reached
is saved as ``screenshots/walk-<role>-<page>.png`` and checked for what makes the pages one
application: the portal's header with who is logged in (or a Log in link), one h1, and a
breadcrumb on every page below the front page and the home page.
"""

from __future__ import annotations

import contextlib
import itertools
import re
import sys
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa

from cryocurate import accounts, grading
from cryocurate.catalog.models import Annotation, Run, RunKind, Tomogram, User
from cryocurate.grading.consensus_store import compute_consensus
from cryocurate.portal import Portal
from cryocurate.web.app import create_app
from tests.conftest import VIEWPORT
from tests.grading.portal import ADMIN, LABELLERS, PASSWORD, REVIEWER, build_grading_portal
from tests.web.test_access_matrix import _flat
from tests.web.test_auth import Client, log_in
from tests.web.test_tiltseries_grading import add_tomography_runs, tilt_series_campaign

ROLES = {"visitor": None, "labeller": LABELLERS[0], "reviewer": REVIEWER, "admin": ADMIN}
# Not pages: data, files, the API and its documentation, the session endpoints.
NOT_PAGES = re.compile(
    r"^/(api|files|download|data|static|docs|redoc|openapi\.json|me|logout)(/|$)"
    r"|\.(json|csv|png|ndjson|zip)$"
)
# Pages reached otherwise than by clicking inside the app: the login form is typed (or
# clicked from the header, but it is the walk's start), an invite link comes by email.
NOT_CLICKED = {"/login", "/invite/{token}"}
# Pages with no breadcrumb: the top of the app.
TOP_PAGES = {"/", "/home", "/login"}
# At most this many pages of one route are visited (every run page would be the whole site).
PER_ROUTE = 3


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("walks")
    built = build_grading_portal(base, n_classes=4)
    tomo_runs = add_tomography_runs(built.root, base / "tomo", qualities=(4,))
    with Portal.open(built.root) as portal, portal.transaction() as s:
        spec = grading.CampaignSpec(
            "Walk 2D", built.run_ids, labellers=list(LABELLERS), repeat_share=0.0, seed=5
        )
        campaign = grading.create_campaign(s, spec)
        # Grades far apart (A from one, F from the other): every item flagged for review.
        for email, key in zip(LABELLERS, "AF", strict=True):
            user = accounts.get_user(s, email)
            for row in grading.window(s, campaign, user, 0, 100):
                request = grading.GradeRequest(uuid.uuid4().hex, row["item_id"], key)
                grading.record(s, campaign, user, request)
        compute_consensus(s, campaign)
        letters = campaign.id
    tilts = tilt_series_campaign(built.root, tomo_runs, [LABELLERS[0]])
    with Portal.open(built.root) as portal, portal.transaction() as s:
        candidates = {
            "campaign_id": [letters, tilts],
            "run_id": [built.run_ids[0], tomo_runs[0]],
            "dataset_id": list(
                s.scalars(sa.select(Run.dataset_id).distinct().order_by(Run.dataset_id))
            ),
            "tomogram_id": list(s.scalars(sa.select(Tomogram.id).limit(1))),
            "annotation_id": list(s.scalars(sa.select(Annotation.id).limit(1))),
            "user_id": list(s.scalars(sa.select(User.id).where(User.email == LABELLERS[1]))),
            "deposition_id": [1],
            "tiltseries_id": [1],
        }
        assert s.scalar(sa.select(sa.func.count()).where(Run.kind == RunKind.tomography))
    return {"root": built.root, "candidates": candidates, "letters": letters, "tilts": tilts}


def _page_routes(app: Any) -> list[tuple[str, Any]]:
    """Every GET route that may answer a page: (its path, its compiled regex)."""
    out = []
    for prefix, route in _flat(app.routes):
        path = prefix + getattr(route, "path", "")
        if "GET" not in (getattr(route, "methods", None) or ()) or NOT_PAGES.search(path):
            continue
        # The route's own pattern (with its convertors: ``{id:int}`` is digits only).
        regex = (
            route.path_regex
            if not prefix
            else re.compile("^" + re.escape(prefix) + route.path_regex.pattern.lstrip("^"))
        )
        out.append((path, regex))
    return out


def _fillings(path: str, candidates: dict[str, list[Any]]) -> list[str]:
    names = [n.split(":")[0] for n in re.findall(r"\{([^}]+)\}", path)]
    pools = [candidates.get(n, [1]) for n in names]
    urls = []
    for values in itertools.product(*pools):
        urls.append(re.sub(r"\{[^}]+\}", "{}", path).format(*values))
    return urls


def pages_for(world: dict[str, Any], email: str | None) -> set[str]:
    """The page routes ``email`` (None: a visitor) may use: those answering 200 with HTML
    for at least one filling of their ids."""
    app = create_app(world["root"])
    c = Client(app, "http://portal")
    if email:
        log_in(c, email)
    found = set()
    for path, _ in _page_routes(app):
        if path in NOT_CLICKED:
            continue
        for url in _fillings(path, world["candidates"]):
            try:
                r = c.get(url, headers={"accept": "text/html"}, follow_redirects=False)
            except Exception:  # a page that fails is a bug, but not this test's
                continue
            if r.status_code == 200 and r.headers.get("content-type", "").startswith("text/html"):
                found.add(path)
                break
    return found


def _slug(path: str) -> str:
    """``/campaigns/{campaign_id:int}/review`` → ``campaigns-id-review`` (``/`` → ``front``)."""
    path = re.sub(r"\{[^}]+\}", "id", path)
    return re.sub(r"[^a-z0-9]+", "-", path.lower()).strip("-") or "front"


class Walk:
    """A depth-first walk by clicks, remembering which route each page reached belongs to."""

    def __init__(self, page: Any, base: str, role: str, routes: list[tuple[str, Any]],
                 targets: set[str], shots: Path) -> None:  # fmt: skip
        self.page, self.base, self.role = page, base, role
        self.routes, self.targets, self.shots = routes, targets, shots
        self.reached: dict[str, str] = {}  # route → the URL it was reached at
        self.seen: set[str] = set()  # paths visited
        self.count: dict[str, int] = {}  # route → pages of it visited
        self.problems: list[str] = []

    def route_of(self, href: str) -> str | None:
        parts = urlsplit(href)
        if parts.netloc and f"{parts.scheme}://{parts.netloc}" != self.base:
            return None
        for path, regex in self.routes:
            if regex.match(parts.path):
                return path
        return None

    def settle(self) -> None:
        self.page.wait_for_load_state("load")
        # Pages that keep polling never go idle: what is there after 4 s is enough.
        with contextlib.suppress(Exception):
            self.page.wait_for_load_state("networkidle", timeout=4000)

    def look(self, route: str) -> None:
        """The screenshot, and what every page of one application has."""
        self.page.screenshot(path=self.shots / f"walk-{self.role}-{_slug(route)}.png")
        where = f"{self.role} on {self.page.url}"
        if self.page.locator("header.top .brand").count() != 1:
            self.problems.append(f"{where}: no portal header")
        email = ROLES[self.role]
        if email and route != "/login" and email not in (self.page.text_content("#account") or ""):
            self.problems.append(f"{where}: the header does not say who is logged in")
        if not email and route != "/login" and self.page.locator("#login-link").count() != 1:
            self.problems.append(f"{where}: no Log in link")
        if self.page.locator("h1").count() != 1:
            self.problems.append(f"{where}: {self.page.locator('h1').count()} h1 headings")
        if route not in TOP_PAGES and not self.page.locator("nav[aria-label=Breadcrumb]").count():
            self.problems.append(f"{where}: no breadcrumb")

    def links(self) -> list[str]:
        hrefs = self.page.eval_on_selector_all(
            "a[href]:not([download]):not([target=_blank])",
            "els => els.filter(e => e.offsetParent !== null).map(e => e.getAttribute('href'))",
        )
        return list(dict.fromkeys(hrefs))

    def visit(self) -> None:
        """Look at this page, then follow its links: first to routes not reached yet, then
        to other pages of reached routes (a tomography run's page links what a 2D run's does
        not), at most ``PER_ROUTE`` pages per route, until every target is reached."""
        here = urlsplit(self.page.url).path
        route = self.route_of(self.page.url)
        if route is None or here in self.seen or self.count.get(route, 0) >= PER_ROUTE:
            return
        self.seen.add(here)
        self.count[route] = self.count.get(route, 0) + 1
        if route not in self.reached:
            self.reached[route] = self.page.url
            self.look(route)
        hrefs = self.links()
        hrefs.sort(key=lambda h: self.route_of(h) in self.reached)  # new routes first
        for href in hrefs:
            if not self.targets - set(self.reached):
                return
            target = self.route_of(href)
            if target is None or target not in self.targets:
                continue
            if urlsplit(href).path in self.seen or self.count.get(target, 0) >= PER_ROUTE:
                continue
            before = self.page.url
            link = self.page.locator(f'a[href="{href}"] >> visible=true').first
            try:
                link.click(timeout=5000)
                self.page.wait_for_url(lambda u, b=before: u != b, timeout=10_000)
            except Exception as err:
                self.problems.append(f"{self.role}: clicking {href} on {before}: {err}")
                continue
            self.settle()
            self.visit()
            self.page.go_back()
            self.settle()
            if self.page.url != before:  # a page that replaced its history entry
                self.page.goto(before)  # back where the link was; not a new page reached
                self.settle()


@pytest.fixture(scope="module")
def server(world: dict[str, Any], live_server_module: Any) -> Any:
    root = world["root"]
    return live_server_module(
        lambda port: [sys.executable, "-m", "cryocurate", "serve", str(root), "--port", str(port)]
    )


@pytest.mark.browser
@pytest.mark.parametrize("role", list(ROLES))
def test_every_page_a_role_may_use_is_reached_by_clicking(
    role, world, server, browser, screenshot_dir
):
    email = ROLES[role]
    targets = pages_for(world, email)
    assert "/" in targets and "/runs/{run_id:int}" in targets
    if email:
        assert {"/home", "/campaigns", "/campaigns/{campaign_id:int}"} <= targets
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    base = str(server)
    try:
        page.goto(base + "/")  # the one typed URL
        walk = Walk(page, base, role, _page_routes(create_app(world["root"])), targets,
                    screenshot_dir)  # fmt: skip
        if email:
            page.click("#login-link")
            page.wait_for_url(re.compile(r".*/login\?next="))
            walk.look("/login")
            page.fill("#email", email)
            page.fill("#password", PASSWORD)
            page.click("main button[type=submit]")
            page.wait_for_url(re.compile(r".*/home$"))
        walk.settle()
        walk.visit()
        # From home, the front page too (a role's walk covers the public pages as well).
        if "/" not in walk.reached:
            page.click("header.top .brand")
            walk.settle()
            walk.visit()
    finally:
        context.close()

    missing = sorted(targets - set(walk.reached))
    assert not missing, f"{role} cannot reach by clicking: {missing}"
    assert not walk.problems, "\n".join(walk.problems)


# ----------------------------------------------------------------------------------------------
# What each role's home and a campaign's page offer (no browser)


def _html(world: dict[str, Any], email: str, url: str) -> str:
    c = Client(create_app(world["root"]), "http://portal")
    log_in(c, email)
    r = c.get(url, headers={"accept": "text/html"})
    assert r.status_code == 200, (email, url, r.status_code)
    return r.text


def test_each_role_has_a_home_listing_what_it_can_do(world):
    letters, tilts = world["letters"], world["tilts"]
    lena = _html(world, LABELLERS[0], "/home")
    assert (
        f'href="/campaigns/{letters}/grade"' in lena and f'href="/campaigns/{tilts}/grade"' in lena
    )
    assert "/review" not in lena and "/agreement" not in lena and "/admin/" not in lena
    assert "Change grades" in lena and "Start grading" in lena  # 2D done, tilt series not
    assert 'action="/logout"' in lena and "lena@lab-a.org" in lena

    reviewer = _html(world, REVIEWER, "/home")
    assert f'href="/campaigns/{letters}/review"' in reviewer
    assert f'href="/campaigns/{letters}/agreement"' in reviewer
    assert "/grade" not in reviewer and "/admin/" not in reviewer
    assert re.search(r'class="num flagged-count">8 of 8<', reviewer), "eight items flagged, open"

    admin = _html(world, ADMIN, "/home")
    for href in ("/admin/campaigns", "/admin/users", f"/campaigns/{letters}/review",
                 f"/admin/campaigns/{letters}"):  # fmt: skip
        assert f'href="{href}"' in admin, href


def test_a_campaigns_page_links_what_the_role_may_open_and_breadcrumbs_lead_there(world):
    letters = world["letters"]
    page = _html(world, REVIEWER, f"/campaigns/{letters}")
    for what in ("overview", "review", "agreement"):
        assert f'href="/campaigns/{letters}/{what}"' in page
    assert f'href="/campaigns/{letters}/grade"' not in page  # not a labeller of it
    c = Client(create_app(world["root"]), "http://portal")
    log_in(c, REVIEWER)
    for sub in ("agreement", "review", "overview"):
        html = c.get(f"/campaigns/{letters}/{sub}").text
        crumbs = re.search(r'<nav aria-label="Breadcrumb"[^>]*>(.*?)</nav>', html, re.S)
        assert crumbs, sub
        hrefs = re.findall(r'href="([^"]+)"', crumbs.group(1))
        assert f"/campaigns/{letters}" in hrefs, (sub, hrefs)
        for href in hrefs:
            assert c.get(href).status_code == 200, (sub, href)
