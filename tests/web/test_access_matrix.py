"""Every route of the app, called as each role and as nobody.

Routes are enumerated from the app itself, so a route added later is covered without anyone
remembering to list it. What must hold, checked against the catalog's row counts (every
table) before and after:

* no request that could change state (POST, PUT, PATCH, DELETE) changes anything without a
  valid session and its CSRF token — anonymous, no token, or a wrong token;
* the grading and admin pages refuse nobody (401, or a redirect to the login page), and admin
  routes refuse labellers and reviewers;
* a labeller never reads another labeller's grades, through any grading route.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
import sqlalchemy as sa

from cryocurate import accounts, grading
from cryocurate.catalog.models import Base
from cryocurate.portal import Portal
from cryocurate.web.app import create_app
from tests.grading.portal import ADMIN, LABELLERS, REVIEWER, build_grading_portal
from tests.web.test_auth import Client, log_in

UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
# Routes an anonymous visitor may post to: they check a pre-session CSRF token of their own.
ANONYMOUS_FORMS = {"/login", "/invite/{token}"}
# The public API's searches take their filter as a JSON body; they read only.
READ_ONLY_POST = re.compile(r"^/api/v1/[a-z0-9_]+/query$")
# Routes that need a logged-in user whatever the portal's privacy setting.
PRIVATE_PREFIXES = ("/api/v1/campaigns", "/campaigns", "/admin", "/me")


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[str, Any]:
    built = build_grading_portal(tmp_path_factory.mktemp("matrix"), n_classes=4)
    with Portal.open(built.root) as portal, portal.transaction() as s:
        spec = grading.CampaignSpec(
            "matrix", built.run_ids, labellers=LABELLERS, seed=1, repeat_share=0.0
        )
        campaign = grading.create_campaign(s, spec)
        cid = campaign.id
        lena = grading.get_campaign(s, cid)
        user = accounts.get_user(s, LABELLERS[0])
        item = grading.window(s, lena, user, 0, 1)[0]["item_id"]
        grading.record(s, lena, user, grading.GradeRequest(uuid.uuid4().hex, item, "B"))
        annotation_id = s.scalar(
            sa.text("SELECT annotation_id FROM grade_annotations ORDER BY annotation_id LIMIT 1")
        )
        user_id = user.id
    app = create_app(built.root)
    return {
        "root": built.root,
        "app": app,
        "ids": {
            "campaign_id": cid,
            "run_id": built.run_ids[0],
            "item_id": item,
            "user_id": user_id,
            "annotation_id": annotation_id,
            "dataset_id": 10000,
            "token": "not-a-real-token",
        },
    }


def _fill(path: str, ids: dict[str, Any]) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1).split(":")[0]
        if name in ids:
            return str(ids[name])
        if name.endswith("id") or name in {"ident"}:
            return "1"
        return "x"

    return re.sub(r"\{([^}]+)\}", value, path)


def _flat(routes: Any, prefix: str = "") -> Any:
    """Every route, also inside routers FastAPI keeps nested (``include_router``)."""
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            context = getattr(route, "include_context", None)
            yield from _flat(inner.routes, prefix + (getattr(context, "prefix", "") or ""))
        else:
            yield prefix, route


def _routes(app: Any) -> list[tuple[str, str]]:
    found = []
    for prefix, route in _flat(app.routes):
        methods = getattr(route, "methods", None)
        if methods and isinstance(getattr(route, "path", None), str):
            for method in sorted(set(methods) - {"HEAD"}):
                found.append((method, prefix + route.path))
    return found


def _counts(root) -> dict[str, int]:
    with Portal.open(root) as portal, portal.transaction() as s:
        return {
            t.name: s.scalar(sa.select(sa.func.count()).select_from(t))
            for t in Base.metadata.sorted_tables
            if t.name not in {"user_sessions"}  # logging in creates sessions by design
        }


def _client(world, email: str | None) -> tuple[Client, str | None]:
    c = Client(world["app"], "http://portal")
    return (c, log_in(c, email)) if email else (c, None)


def _send(c: Client, method: str, url: str, headers: dict[str, str] | None = None):
    body = {"grades": [{"request_id": uuid.uuid4().hex, "item_id": 1, "grade": "A"}]}
    return c.request(method, url, json=body, headers=headers or {}, follow_redirects=False)


def test_nothing_changes_without_a_session_and_its_csrf_token(world):
    unsafe = [(m, p) for m, p in _routes(world["app"]) if m in UNSAFE]
    assert len(unsafe) >= 5, unsafe
    before = _counts(world["root"])
    nobody, _ = _client(world, None)
    lena, _ = _client(world, LABELLERS[0])
    admin, _ = _client(world, ADMIN)
    for method, path in unsafe:
        url = _fill(path, world["ids"])
        r = _send(nobody, method, url)
        if path in ANONYMOUS_FORMS:
            assert r.status_code == 403, (method, path, r.status_code)
        elif path == "/logout":
            assert r.status_code == 303  # nothing to end
        elif READ_ONLY_POST.match(path):
            assert r.status_code == 200  # a search with a JSON body: public, reads only
        else:
            assert r.status_code in (401, 403, 405), (method, path, r.status_code)
        for c in (lena, admin):
            for headers in ({}, {"X-CSRF-Token": "forged"}):
                r = _send(c, method, url, headers)
                assert r.status_code in (403, 405), (method, path, headers, r.status_code)
    assert _counts(world["root"]) == before


def test_private_routes_refuse_nobody(world):
    nobody, _ = _client(world, None)
    for method, path in _routes(world["app"]):
        if method != "GET" or not path.startswith(PRIVATE_PREFIXES):
            continue
        r = nobody.request(method, _fill(path, world["ids"]), follow_redirects=False)
        assert r.status_code in (401, 303), (path, r.status_code)
        if r.status_code == 303:
            assert r.headers["location"].startswith("/login")


def test_admin_routes_refuse_labellers_and_reviewers(world):
    admin_paths = [p for m, p in _routes(world["app"]) if m == "GET" and p.startswith("/admin")]
    assert admin_paths
    for email in (LABELLERS[0], REVIEWER):
        c, _ = _client(world, email)
        for path in admin_paths:
            r = c.get(_fill(path, world["ids"]), follow_redirects=False)
            assert r.status_code == 403, (email, path, r.status_code)
    admin, _ = _client(world, ADMIN)
    for path in admin_paths:
        r = admin.get(_fill(path, world["ids"]), follow_redirects=False)
        assert r.status_code in (200, 404), (path, r.status_code)


def test_no_labeller_reads_another_labellers_grades(world):
    """Lena gave one grade; through every GET route, Lars never sees it (or her email next to
    a grade), while a reviewer does."""
    lars, _ = _client(world, LABELLERS[1])
    reviewer, _ = _client(world, REVIEWER)
    cid = world["ids"]["campaign_id"]
    seen_by_reviewer = reviewer.get(f"/api/v1/campaigns/{cid}/grades").json()["grades"]
    assert [g["labeller"] for g in seen_by_reviewer] == [LABELLERS[0]]
    for method, path in _routes(world["app"]):
        if method != "GET" or not any(k in path for k in ("campaign", "annotation", "grade")):
            continue
        url = _fill(path, world["ids"])
        for query in ("", f"?labeller={LABELLERS[0]}"):
            r = lars.get(url + query, follow_redirects=False)
            if r.status_code != 200:
                continue
            text = r.text
            assert '"grade": "B"' not in text and '"grade":"B"' not in text, (path, query)
            assert not re.search(re.escape(LABELLERS[0]) + r".{0,200}\"grade\"", text), path
