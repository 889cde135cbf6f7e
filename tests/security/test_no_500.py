"""Inputs that answered 500 (issue #11, finding 7), each sent as a user or attacker would, and
schemathesis over ``/openapi.json`` as anonymous, a labeller and an admin.

Each input must get a 4xx with one clear line (or, for a search with an apostrophe, the
results), never a 500 or a traceback, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import pytest

from cryocurate import grading
from cryocurate.catalog import models as m
from cryocurate.portal import Portal
from cryocurate.web.app import create_app
from tests.grading.portal import ADMIN, LABELLERS, build_grading_portal
from tests.web.test_auth import Client, log_in

TOO_BIG = 2**63  # one past SQLite's largest INTEGER
HTML = {"Accept": "text/html,application/xhtml+xml"}


@pytest.fixture
def world(tmp_path: Path, database_url: str) -> dict[str, Any]:
    built = build_grading_portal(tmp_path, database_url, n_classes=4)
    with Portal.open(built.root) as portal, portal.transaction() as s:
        spec = grading.CampaignSpec("no500", built.run_ids, labellers=LABELLERS, seed=1)
        cid = grading.create_campaign(s, spec).id
        dataset = s.get(m.Run, built.run_ids[0]).dataset
        dataset.description = "Grids prepared by the O'Brien lab"
        dataset_id = dataset.id
    return {"app": create_app(built.root), "campaign_id": cid, "dataset_id": dataset_id}


def _envelope(r: Any, status: int, *words: str) -> None:
    assert r.status_code == status, (r.status_code, r.text[:300])
    body = r.json()
    assert body["ok"] is False and body["status"] == status
    assert "Traceback" not in body["error"]
    for word in words:
        assert word in body["error"], body["error"]


def test_integers_past_the_databases_range_are_a_400(world) -> None:
    c = Client(world["app"], "http://portal")
    for url in (
        f"/api/v1/runs/{TOO_BIG}",
        f"/api/v1/runs?offset={TOO_BIG}",
        f"/api/v1/runs?id={TOO_BIG}",
        f"/api/v1/runs?id__in=1,{TOO_BIG}",
        f"/api/v1/datasets?id__lt=-{TOO_BIG + 1}",
    ):
        _envelope(c.get(url), 400, str(TOO_BIG)[:10])
    _envelope(c.post("/api/v1/runs/query", json={"offset": TOO_BIG}), 400, "offset")
    _envelope(c.post("/api/v1/runs/query", json={"where": {"id": TOO_BIG}}), 400, "out of range")
    # Pages too, as pages.
    for url in (f"/runs/{TOO_BIG}", f"/datasets/{TOO_BIG}", f"/depositions/{TOO_BIG}"):
        r = c.get(url, headers=HTML)
        assert r.status_code == 400 and "cryocurate portal" in r.text, url
    # A labeller's grading API and a batch naming an item past the range.
    token = log_in(c, LABELLERS[0])
    cid = world["campaign_id"]
    headers = {"X-CSRF-Token": token}
    _envelope(c.get(f"/api/v1/campaigns/{TOO_BIG}"), 400, "campaign_id")
    _envelope(c.get(f"/api/v1/campaigns/{cid}/queue?start={TOO_BIG}"), 400, "start")
    grade = {"request_id": uuid.uuid4().hex, "item_id": TOO_BIG, "grade": "A"}
    r = c.post(f"/api/v1/campaigns/{cid}/grades", json={"grades": [grade]}, headers=headers)
    _envelope(r, 400, "item_id")


def test_an_apostrophe_in_a_search_is_searched_for(world) -> None:
    c = Client(world["app"], "http://portal")
    for q in ("O'Brien", "O'Brien lab", "\"O'Brien", "'", "l'ab'"):
        r = c.get("/", params={"q": q}, headers=HTML)
        assert r.status_code == 200, (q, r.status_code)
    found = c.get("/.json", params={"q": "O'Brien"}).json()
    assert [d["id"] for d in found["datasets"]] == [world["dataset_id"]]
    assert c.get("/.json", params={"q": "O'Brian"}).json()["datasets"] == []


def test_a_wide_or_and_a_deep_chain_are_a_400(world) -> None:
    c = Client(world["app"], "http://portal")
    wide = {"_or": [{"id": i} for i in range(20_000)]}
    _envelope(c.post("/api/v1/datasets/query", json={"where": wide}), 400, "conditions")
    deep: dict[str, Any] = {"id": 1}
    for i in range(100):
        deep = {("runs" if i % 2 else "dataset"): deep}
    deep = {"runs": deep}
    _envelope(c.post("/api/v1/datasets/query", json={"where": deep}), 400, "relationships")


def test_unknown_filter_values_and_urls_answer_as_the_request_asked(world) -> None:
    c = Client(world["app"], "http://portal")
    page = c.get("/?kind=tomogram", headers=HTML)
    assert page.status_code == 400 and "text/html" in page.headers["content-type"]
    assert "tomogram" in page.text and 'href="/"' in page.text
    _envelope(c.get("/.json?kind=tomogram"), 400, "tomogram")
    _envelope(c.get("/api/v1/no-such-thing"), 404, "/api/v1/no-such-thing")
    _envelope(c.request("DELETE", "/api/v1/runs"), 405, "DELETE")
    assert c.get("/no-such-page", headers=HTML).status_code == 404


def test_an_unexpected_error_is_one_log_line_and_a_plain_500(world, caplog) -> None:
    app = world["app"]

    @app.get("/boom-for-the-test")
    def boom() -> None:
        raise ZeroDivisionError("secret detail of the server")

    c = Client(app, "http://portal")
    with caplog.at_level("ERROR", logger="cryocurate.web"):
        page = c.get("/boom-for-the-test", headers=HTML)
        api = c.get("/boom-for-the-test", headers={"Accept": "application/json"})
    assert page.status_code == 500 and "cryocurate portal" in page.text
    assert "secret detail" not in page.text and "Traceback" not in page.text
    _envelope(api, 500, "went wrong")
    assert "secret detail" not in api.text
    records = [r for r in caplog.records if r.name == "cryocurate.web"]
    assert len(records) == 2 and all(r.exc_info for r in records)
    assert "500 on GET /boom-for-the-test" in records[0].getMessage()


def test_admin_forms_with_ids_past_the_range(world) -> None:
    c = Client(world["app"], "http://portal")
    token = log_in(c, ADMIN)
    r = c.post(
        f"/admin/campaigns/{world['campaign_id']}/runs",
        data={"run": str(TOO_BIG), "csrf_token": token},
        headers=HTML,
    )
    assert r.status_code == 400 and "cryocurate portal" in r.text


def test_the_boundary_answers_middleware_errors_with_their_headers(world) -> None:
    from starlette.requests import Request

    from cryocurate.errors import AuthenticationError, TooManyRequestsError
    from cryocurate.web.errors import answer

    def request(path: str, accept: str, method: str = "GET") -> Request:
        headers = [(b"accept", accept.encode()), (b"host", b"portal")]
        scope = {"type": "http", "method": method, "path": path, "query_string": b"a=1",
                 "headers": headers, "app": world["app"], "scheme": "http",
                 "server": ("portal", 80)}  # fmt: skip
        return Request(scope)

    slow_down = TooManyRequestsError("too many log-in attempts", retry_after=42)
    api = answer(request("/api/v1/runs", "*/*"), slow_down)
    assert api.status_code == 429 and api.headers["retry-after"] == "42"
    page = answer(request("/login", "text/html", "POST"), slow_down)
    assert page.status_code == 429 and page.headers["retry-after"] == "42"
    assert page.media_type == "text/html"
    login = answer(request("/campaigns", "text/html"), AuthenticationError("log in first"))
    assert (
        login.status_code == 303 and login.headers["location"] == "/login?next=%2Fcampaigns%3Fa%3D1"
    )
    script = answer(request("/campaigns", "application/json"), AuthenticationError("log in"))
    assert script.status_code == 401 and script.headers["www-authenticate"] == "Bearer"


def test_every_route_with_an_id_answers_an_id_past_the_range_without_a_500(world) -> None:
    """Every route of the app (enumerated as the access matrix does, so a new one is covered)
    whose path takes an id, called by an admin with an id one past the database's range: a
    4xx, never a 500. (The admin user pages and the tilt-series images once took plain
    ``int``s, which SQLite cannot hold.)"""
    from tests.web.test_access_matrix import _routes

    c = Client(world["app"], "http://portal")
    token = log_in(c, ADMIN)
    headers = {**HTML, "X-CSRF-Token": token}
    tried = 0
    for method, path in _routes(world["app"]):
        params = re.findall(r"\{(\w+)(?::(\w+))?\}", path)
        if not any(conv != "path" and name.endswith(("id", "index")) for name, conv in params):
            continue
        url = path
        for name, conv in params:
            value = "x" if conv == "path" else str(TOO_BIG)
            url = url.replace("{" + name + (":" + conv if conv else "") + "}", value)
        r = c.request(method, url, headers=headers, data={"csrf_token": token})
        assert r.status_code < 500, (method, url, r.status_code, r.text[:200])
        tried += 1
    assert tried > 30  # the enumeration found the app's id routes
