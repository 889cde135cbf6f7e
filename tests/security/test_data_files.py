"""#11 finding 2 and 8, as the attack: a folder handed to the lab carries a page with a script.

An outsider gives a lab a dataset folder to import. Next to the real files it holds
``readme.html`` and ``TS_001/logo.svg``, each with a script that reads the admin's CSRF token
from ``GET /me`` and creates an admin account of its own with ``POST /admin/users``.
``cryocurate import-czportal`` copies them into the data tree (if a later import refuses or
skips files it does not know, the test puts them into the tree itself: whatever way a file
gets there, it must not run). An admin, logged in in Chromium, opens each file by its URL,
under ``/files/`` and ``/data/``. Nothing may run: no request to ``/me`` or
``/admin/users`` leaves the page, the number of accounts is unchanged, the response is an
attachment with a sandboxing policy.

The same files with those headers stripped do run and attempt the takeover (checked with the
``POST`` stopped in the browser), so the test shows the attack is real and that the headers
are what stops it. With only ``Content-Disposition`` stripped (a browser or proxy that shows
it anyway), the sandbox alone still stops it.

And the one-route rule (#11 finding 8): ``/data/`` and ``/files/`` are one code path, so
staging and swap folders, half-written files and symbolic links out of the tree answer 404
under both, and Range and conditional requests answer alike.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from cryocurate import accounts
from cryocurate.portal import Portal
from cryocurate.synth import synth_cryosparc
from cryocurate.transfer.download import copy_entries, list_entity
from tests.transfer.conftest import build_source
from tests.web.test_auth import PASSWORD, USERS, make_portal

ADMIN = USERS["admin"]
TAKEOVER = """
fetch("/me", {credentials: "same-origin"})
  .then((r) => r.json())
  .then((me) => fetch("/admin/users", {
    method: "POST", credentials: "same-origin",
    headers: {"X-CSRF-Token": me.csrf_token,
              "Content-Type": "application/x-www-form-urlencoded"},
    body: "email=intruder%40evil.example&role=admin",
  }));
document.title = "pwned";
"""
PLANTED = {
    "10000/readme.html": (
        "<!doctype html><title>Read me</title><h1>About this dataset</h1>"
        f"<script>{TAKEOVER}</script>"
    ),
    "10000/TS_001/logo.svg": (
        '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">'
        f"<script><![CDATA[{TAKEOVER}]]></script></svg>"
    ),
}
PREFIXES = ("/files/", "/data/")


@pytest.fixture(scope="module")
def portal(tmp_path_factory: pytest.TempPathFactory, live_server_module: Any) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("handed")
    job = synth_cryosparc(base / "J12", n_classes=4, box=32, n_particles=200, seed=7)
    source = build_source(base / "source", None, job)
    with Portal.open(source.root) as p:
        copy_entries(list_entity(p, "dataset", 10000, "v1"), base / "folder")
    folder = base / "folder" / "10000"
    for rel, text in PLANTED.items():
        (folder.parent / rel).write_text(text)

    root = make_portal(base / "portal")
    done = subprocess.run(
        [sys.executable, "-m", "cryocurate", "import-czportal", str(root), str(folder)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    data = root / "data"
    for rel, text in PLANTED.items():
        if not (data / rel).exists():  # the import no longer copies unknown files
            (data / rel).parent.mkdir(parents=True, exist_ok=True)
            (data / rel).write_text(text)
    url = live_server_module(
        lambda port: [sys.executable, "-m", "cryocurate", "serve", str(root), "--port", str(port)]
    )
    return {"root": root, "data": data, "url": str(url)}


def n_users(root: Path) -> int:
    with Portal.open(root) as p, p.transaction() as s:
        return len(accounts.list_users(s))


def log_in(page: Any, url: str) -> None:
    page.goto(url + "/login")
    page.get_by_label("Email").fill(ADMIN)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(url + "/")


def watch(page: Any) -> list[str]:
    """Every request the page's documents make to the two URLs the takeover needs."""
    seen: list[str] = []
    page.context.on(
        "request",
        lambda r: (
            seen.append(f"{r.method} {r.url}")
            if r.url.split("?")[0].endswith(("/me", "/admin/users"))
            else None
        ),
    )
    return seen


def open_file(page: Any, url: str) -> Any:
    """Navigate to ``url`` as an admin would by typing or clicking it; the download it starts,
    or None when the browser showed it."""
    from playwright.sync_api import Error as PlaywrightError

    try:
        # goto raises "Download is starting" when the browser saves the file
        with page.expect_download(timeout=5000) as info, contextlib.suppress(PlaywrightError):
            page.goto(url)
        return info.value
    except PlaywrightError:
        return None


@pytest.mark.browser
@pytest.mark.parametrize("prefix", PREFIXES)
@pytest.mark.parametrize("rel", sorted(PLANTED))
def test_a_planted_file_opened_by_an_admin_runs_nothing(
    portal: dict[str, Any], page: Any, prefix: str, rel: str, browser_problems: Any
) -> None:
    url = portal["url"]
    before = n_users(portal["root"])
    log_in(page, url)
    seen = watch(page)
    download = open_file(page, url + prefix + rel)
    page.wait_for_timeout(500)  # time for a script, had one run, to reach the server
    assert seen == []
    assert n_users(portal["root"]) == before
    assert download is not None, "the file was shown in the portal's origin, not saved"
    assert download.suggested_filename == Path(rel).name

    # What the server said, through the admin's own session.
    r = page.request.get(url + prefix + rel)
    assert r.status == 200
    assert r.headers["content-disposition"].startswith("attachment")
    csp = r.headers["content-security-policy"]
    assert csp.split(";")[0].strip() == "sandbox" and "default-src 'none'" in csp
    assert r.headers["x-content-type-options"] == "nosniff"


def _strip(page: Any, url: str, headers: tuple[str, ...]) -> None:
    """Serve ``url`` to the page with ``headers`` removed (as a careless proxy would)."""

    def handle(route: Any) -> None:
        response = route.fetch()
        kept = {k: v for k, v in response.headers.items() if k.lower() not in headers}
        route.fulfill(response=response, headers=kept)

    page.route(url, handle)


@pytest.mark.browser
@pytest.mark.parametrize("rel", sorted(PLANTED))
def test_the_sandbox_alone_stops_a_file_that_is_shown(
    portal: dict[str, Any], page: Any, rel: str, browser_problems: Any
) -> None:
    url = portal["url"]
    before = n_users(portal["root"])
    log_in(page, url)
    seen = watch(page)
    target = f"{url}/files/{rel}"
    _strip(page, target, ("content-disposition",))
    browser_problems.expect_csp = True  # the blocked script is reported, by design
    page.goto(target)
    page.wait_for_timeout(500)
    assert page.title() != "pwned"
    assert seen == []
    assert n_users(portal["root"]) == before


@pytest.mark.browser
@pytest.mark.parametrize("rel", sorted(PLANTED))
def test_without_the_headers_the_attack_is_real(
    portal: dict[str, Any], page: Any, rel: str
) -> None:
    """The control: the same file, its security headers stripped, does try the takeover
    (the POST is stopped in the browser so the portal is not changed)."""
    url = portal["url"]
    log_in(page, url)
    target = f"{url}/files/{rel}"
    _strip(
        page,
        target,
        ("content-disposition", "content-security-policy", "x-content-type-options"),
    )
    attempts: list[str] = []

    def stop(route: Any) -> None:
        attempts.append(route.request.post_data or "")
        route.abort()

    page.route(f"{url}/admin/users", stop)
    before = n_users(portal["root"])
    page.goto(target)
    page.wait_for_function("() => document.title === 'pwned'")
    page.wait_for_timeout(300)
    assert attempts and "intruder" in attempts[0]
    assert n_users(portal["root"]) == before


# ── one route, one set of rules ─────────────────────────────────────────────────────────────


def test_hidden_names_and_links_out_answer_404_under_both_prefixes(
    portal: dict[str, Any], tmp_path: Path
) -> None:
    data, url = portal["data"], portal["url"]
    secret = tmp_path / "secret.txt"
    secret.write_text("outside the tree")
    planted = {
        ".staging/x": "staged",
        ".swaps/x": "swapped",
        "10000/.tmp-half.json": "{",
        "10000/.hidden": "hidden",
    }
    for rel, text in planted.items():
        (data / rel).parent.mkdir(parents=True, exist_ok=True)
        (data / rel).write_text(text)
    link = data / "10000" / "notes.txt"
    link.symlink_to(secret)
    try:
        for prefix in PREFIXES:
            for rel in [*planted, "10000/notes.txt", "10000", "../cryocurate.toml"]:
                r = httpx.get(url + prefix + rel)
                assert r.status_code == 404, (prefix, rel, r.status_code)
                assert "outside the tree" not in r.text
            # Percent-encoded traversal does not get round the rules either.
            assert (
                httpx.get(url + prefix + "10000/%2e%2e/%2e%2e/cryocurate.toml").status_code == 404
            )
    finally:
        link.unlink()
        for rel in planted:
            (data / rel).unlink()
        shutil.rmtree(data / ".staging")
        shutil.rmtree(data / ".swaps")


def test_both_prefixes_answer_a_file_alike(portal: dict[str, Any]) -> None:
    """The pages' /data/ URLs keep working, with the same answers as /files/."""
    url = portal["url"]
    rel = "10000/P1_J12/ClassAverages/Images/class_0000.png"
    size = os.path.getsize(portal["data"] / rel)
    seen = {}
    for prefix in PREFIXES:
        whole = httpx.get(url + prefix + rel)
        assert whole.status_code == 200 and whole.headers["content-type"] == "image/png"
        assert whole.headers["content-disposition"].startswith("inline")  # pages show it
        assert whole.headers["x-content-type-options"] == "nosniff"
        assert whole.headers["content-security-policy"].startswith("sandbox")
        part = httpx.get(url + prefix + rel, headers={"Range": "bytes=8-15"})
        assert part.status_code == 206 and part.content == whole.content[8:16]
        assert part.headers["content-range"] == f"bytes 8-15/{size}"
        assert httpx.get(url + prefix + rel, headers={"Range": f"bytes={size}-"}).status_code == 416
        etag, modified = whole.headers["etag"], whole.headers["last-modified"]
        assert httpx.get(url + prefix + rel, headers={"If-None-Match": etag}).status_code == 304
        assert (
            httpx.get(url + prefix + rel, headers={"If-Modified-Since": modified}).status_code
            == 304
        )
        assert httpx.head(url + prefix + rel).headers["content-length"] == str(size)
        seen[prefix] = (whole.content, etag)
    assert seen["/files/"] == seen["/data/"]


def test_downloads_are_attachments(portal: dict[str, Any]) -> None:
    url = portal["url"]
    for path in ("/download/dataset/10000.zip", "/download/dataset/10000.json"):
        r = httpx.head(url + path) if path.endswith(".zip") else httpx.get(url + path)
        assert r.status_code == 200, path
        assert r.headers["content-disposition"].startswith("attachment; filename="), path
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["content-security-policy"].startswith("sandbox")
    manifest = httpx.get(url + "/download/dataset/10000.json").json()
    assert manifest["files"]  # still JSON for the client that reads it
