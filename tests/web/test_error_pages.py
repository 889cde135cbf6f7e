"""Errors in a real Chromium (issue #12, finding 4): pages answer errors as pages, with the
portal's header and a way back; the JSON API answers as JSON, even in the browser."""

from __future__ import annotations

import sys
from typing import Any

import pytest

from cryocurate.catalog import models as m
from tests.web.test_browse_pages import build


@pytest.fixture(scope="module")
def served(tmp_path_factory, live_server_module) -> tuple[str, int]:
    root = tmp_path_factory.mktemp("errors") / "portal"
    portal = build(root)
    with portal.transaction() as s:
        class2d = s.query(m.Run).filter(m.Run.kind == m.RunKind.class2d).first().id
    portal.close()
    url = live_server_module(
        lambda port: [sys.executable, "-m", "cryocurate", "serve", str(root), "--port", str(port)]
    )
    return url, class2d


def _is_a_portal_page(page: Any, status: int, words: str) -> None:
    assert page.locator("header.top a.brand").inner_text() == "cryocurate portal"
    assert page.get_by_role("navigation", name="Main").is_visible()
    message = page.get_by_test_id("error-message")
    assert words in message.inner_text()
    assert f"HTTP status {status}" in page.locator(".error-status").inner_text()
    assert "Internal Server Error" not in page.content()
    assert '{"detail"' not in page.content() and '{"ok"' not in page.content()


@pytest.mark.browser
def test_error_pages_have_the_header_and_a_way_back(served, page, screenshot_dir) -> None:
    url, class2d = served
    cases = [
        ("/?kind=tomogram", 400, "tomogram"),
        ("/runs/999", 404, "no run 999"),
        (f"/runs/{class2d}/view", 404, "no tomogram to view"),
        ("/no/such/page", 404, "nothing at /no/such/page"),
    ]
    for path, status, words in cases:
        response = page.goto(url + path)
        assert response is not None and response.status == status, path
        assert response.headers["content-type"].startswith("text/html")
        _is_a_portal_page(page, status, words)
        name = path.strip("/").replace("/", "_").replace("?", "_").replace("=", "_") or "home"
        page.screenshot(path=str(screenshot_dir / f"error-{name}.png"))
        # The way back leads to the home page, which works.
        with page.expect_navigation():
            page.get_by_role("link", name="Browse datasets (home)").click()
        assert page.url == url + "/"
        assert page.locator("#result-count").is_visible()


@pytest.mark.browser
def test_the_previous_page_is_offered_as_the_way_back(served, page) -> None:
    url, _ = served
    page.goto(url + "/")
    page.evaluate("location.href = '/runs/999'")
    page.wait_for_url(url + "/runs/999")
    back = page.get_by_role("link", name="Back to the previous page")
    assert back.get_attribute("href") == "/"


@pytest.mark.browser
def test_the_json_api_answers_as_json_in_the_browser(served, page) -> None:
    url, _ = served
    response = page.goto(url + "/api/v1/runs/999")
    assert response is not None and response.status == 404
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == {"ok": False, "error": "no Run with id 999", "status": 404}
    response = page.goto(url + "/runs/999.json")
    assert response is not None and response.status == 404 and response.json()["ok"] is False
