"""The headers of every response, and every page under its Content-Security-Policy.

Routes are enumerated from the app (as tests/web/test_access_matrix.py does), so a route
added later is checked without anyone listing it. Asserted for each GET route, as nobody,
a labeller and an admin, whatever the status:

* pages (and the API): a CSP that runs only the portal's own script files and loads nothing
  from elsewhere (``default-src 'self'``, no ``'unsafe-inline'`` or ``'unsafe-eval'``),
  ``frame-ancestors 'none'`` and ``X-Frame-Options: DENY``, ``Referrer-Policy``, ``nosniff``;
* files of the data tree and downloads: a sandboxing CSP, ``nosniff``, an attachment (PNG
  and JPEG inline);
* rendered HTML holds no inline script, handler attribute or style, and loads nothing from
  another host.

In Chromium, every page route is opened as an admin: the browser guard of tests/conftest.py
fails the test on any CSP violation and on any request that leaves the loopback interface.
``/docs`` shows Swagger UI from the package, offline (#12 finding 3).
"""

from __future__ import annotations

import re
import sys
from typing import Any

import pytest

from tests.grading.portal import ADMIN, LABELLERS, PASSWORD
from tests.web import test_access_matrix as matrix
from tests.web.test_access_matrix import _client, _fill, _routes

world = matrix.world  # the access matrix's portal: a campaign, one grade, every role

DATA_PREFIXES = ("/files/", "/data/", "/download/")
NOT_PAGES = re.compile(
    r"^/(api/|files/|data/|download/|docs/assets/|static/|me$|openapi\.json$)"
    r"|\.(json|csv|png|ndjson|zip)$"
)


def directives(csp: str) -> dict[str, list[str]]:
    out = {}
    for part in csp.split(";"):
        words = part.split()
        if words:
            out[words[0]] = words[1:]
    return out


def assert_page_headers(r: Any, where: str) -> None:
    h = r.headers
    assert h.get("x-content-type-options") == "nosniff", where
    assert h.get("x-frame-options") == "DENY", where
    assert h.get("referrer-policy") == "same-origin", where
    csp = directives(h.get("content-security-policy", ""))
    assert csp.get("default-src") == ["'self'"], (where, csp)
    assert csp.get("script-src") == ["'self'"], (where, csp)
    assert csp.get("style-src") == ["'self'"], (where, csp)
    assert csp.get("object-src") == ["'none'"], (where, csp)
    assert csp.get("frame-ancestors") == ["'none'"], (where, csp)
    assert csp.get("base-uri") == ["'self'"], (where, csp)
    for values in csp.values():
        assert not {"'unsafe-inline'", "'unsafe-eval'", "*", "http:", "https:"} & set(values)


def assert_data_headers(r: Any, where: str) -> None:
    h = r.headers
    assert h.get("x-content-type-options") == "nosniff", where
    csp = directives(h.get("content-security-policy", ""))
    assert "sandbox" in csp and csp["sandbox"] == [], (where, csp)
    assert csp.get("default-src") == ["'none'"], (where, csp)
    kind = h.get("content-type", "").split(";")[0]
    disposition = h.get("content-disposition", "")
    if kind in ("image/png", "image/jpeg"):
        assert disposition.startswith("inline"), (where, disposition)
    else:
        assert disposition.startswith("attachment"), (where, kind, disposition)


def assert_no_inline_code(html: str, where: str) -> None:
    tags = re.findall(r"<[a-zA-Z][^>]*>", html)
    for tag in tags:
        assert not re.search(r"\son[a-z]+\s*=", tag), (where, tag)
        assert not re.search(r"\sstyle\s*=", tag), (where, tag)
        if tag.lower().startswith("<script"):
            assert "src=" in tag or 'type="application/json"' in tag, (where, tag)
        if re.match(r"<(script|link|img|iframe|source|video|audio|embed|object)\b", tag):
            assert not re.search(r'\s(src|href)="(https?:)?//', tag), (where, tag)
    assert "<style" not in html.lower(), where


def _data_urls(world: dict[str, Any]) -> list[str]:
    """Real files of the tree (the routes' placeholders only reach 404s)."""
    admin, _ = _client(world, ADMIN)
    run = admin.get(f"/runs/{world['ids']['run_id']}.json").json()
    image = run["classes"][0]["image_url"]
    rel = image.removeprefix("/data/")
    dataset = world["ids"]["dataset_id"]
    return [
        image,
        "/files/" + rel,
        f"/files/{rel.rsplit('/', 3)[0]}/run_metadata.json",
        f"/download/dataset/{dataset}.json",
        f"/download/run/{world['ids']['run_id']}.zip",
        f"/download/annotation/{world['ids']['annotation_id']}.ndjson",
    ]


@pytest.mark.parametrize("who", [None, LABELLERS[0], ADMIN])
def test_every_get_route_sets_the_headers(world: dict[str, Any], who: str | None) -> None:
    c, _ = _client(world, who)
    urls = [_fill(p, world["ids"]) for m, p in _routes(world["app"]) if m == "GET"]
    urls += [*_data_urls(world), "/static/portal.css", "/no/such/page", "/files/nope"]
    seen_data = seen_pages = 0
    for url in urls:
        r = c.get(url, follow_redirects=False)
        where = f"{who} GET {url} → {r.status_code}"
        if url.startswith(DATA_PREFIXES) and (200 <= r.status_code < 300):
            assert_data_headers(r, where)
            seen_data += 1
        else:
            assert_page_headers(r, where)
        if r.status_code == 200 and r.headers.get("content-type", "").startswith("text/html"):
            assert_no_inline_code(r.text, where)
            seen_pages += 1
    assert seen_data >= 4 and seen_pages >= (10 if who == ADMIN else 2), (seen_data, seen_pages)


def test_redoc_is_off_and_docs_is_ours(world: dict[str, Any]) -> None:
    c, _ = _client(world, None)
    assert c.get("/redoc").status_code == 404
    page = c.get("/docs")
    assert page.status_code == 200
    assets = re.findall(r'(?:src|href)="(/docs/assets/[^"]+)"', page.text)
    assert len(assets) == 2
    for url in assets:
        r = c.get(url)
        assert r.status_code == 200 and len(r.content) > 100_000, url
    # Only those two files of the package: not its demo index.html (the Petstore, online).
    version = assets[0].split("/")[3]
    assert c.get(f"/docs/assets/{version}/index.html").status_code == 404
    assert c.get(f"/docs/assets/{version}/swagger-ui.js.map").status_code == 404
    assert c.get("/docs/assets/0.0.1/swagger-ui.css").status_code == 404


# ── in the browser ──────────────────────────────────────────────────────────────────────────


@pytest.fixture(scope="module")
def server(world: dict[str, Any], live_server_module: Any) -> str:
    root = world["root"]
    return str(
        live_server_module(
            lambda port: [
                sys.executable,
                "-m",
                "cryocurate",
                "serve",
                str(root),
                "--port",
                str(port),
            ]
        )
    )


def log_in(page: Any, url: str, email: str) -> None:
    page.goto(url + "/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(url + "/")


@pytest.mark.browser
def test_every_page_works_under_its_policy(world: dict[str, Any], server: str, page: Any) -> None:
    """Each page route, opened by an admin; the guard fails the test on a CSP violation or an
    outside request. Pages with scripts get time to run them (and their fetches)."""
    log_in(page, server, ADMIN)
    opened = []
    for method, path in _routes(world["app"]):
        if method != "GET" or NOT_PAGES.search(path):
            continue
        url = _fill(path, world["ids"])
        response = page.goto(server + url, wait_until="load")
        assert response is not None
        page.wait_for_load_state("networkidle")
        opened.append((url, response.status))
    ok = [u for u, status in opened if status == 200]
    assert len(ok) >= 12, opened
    for must in ("/", "/campaigns", "/admin/campaigns", "/admin/users", "/docs"):
        assert must in ok, opened


@pytest.mark.browser
def test_the_api_docs_work_offline(server: str, page: Any, screenshot_dir: Any) -> None:
    page.goto(server + "/docs")
    page.locator(".opblock").first.wait_for(timeout=15000)
    assert page.locator(".opblock").count() > 20
    assert "cryocurate portal" in page.locator(".swagger-ui .title").inner_text()
    page.screenshot(path=screenshot_dir / "api-docs.png")


@pytest.mark.browser
def test_the_browser_guard_catches_what_it_must(
    server: str, page: Any, browser_problems: Any
) -> None:
    """The guard itself: an outside request and a CSP violation are both recorded (and
    would fail the test; they are cleared here once seen)."""
    page.set_content('<img src="http://192.0.2.1/beacon.png">')  # no CSP on about:blank
    page.wait_for_timeout(300)
    browser_problems.settle()
    assert browser_problems.outside == ["http://192.0.2.1/beacon.png"]
    assert browser_problems.failure()
    browser_problems.outside.clear()

    page.goto(server + "/")
    with page.expect_console_message(lambda m: "[csp-violation]" in m.text):
        page.evaluate(
            "document.body.insertAdjacentHTML('beforeend',"
            " '<img src=/nope.png onerror=\"document.title = 1\">')"
        )
    browser_problems.settle()
    assert any("script-src" in m for m in browser_problems.csp), browser_problems.csp
    assert page.title() != "1"
    assert browser_problems.failure()
    browser_problems.csp.clear()
