"""Logging in, sessions, CSRF, API tokens, roles and the private setting, through the real app
on SQLite and PostgreSQL; and a browser test of the invite flow."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import sys
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from cryocurate import accounts
from cryocurate.catalog.models import UserSession
from cryocurate.portal import Portal
from cryocurate.web.app import create_app
from cryocurate.web.auth import SESSION_COOKIE

PASSWORD = "a long password"
USERS = {"admin": "ada@lab.org", "labeller": "lab@lab.org", "reviewer": "rev@lab.org"}


def make_portal(root: Path, database_url: str | None = None, private: bool = False) -> Path:
    with Portal.create(root, database_url=database_url) as p, p.transaction() as s:
        for role, email in USERS.items():
            user = accounts.add_user(s, email, role)
            accounts.accept_invite(s, accounts.create_invite(s, user), PASSWORD)
    if private:
        settings = root / "cryocurate.toml"
        settings.write_text(settings.read_text() + "\n[web]\nprivate = true\n")
    return root


@pytest.fixture
def root(tmp_path, database_url) -> Path:
    return make_portal(tmp_path / "portal", database_url)


_LOOP: asyncio.AbstractEventLoop | None = None


def _loop() -> asyncio.AbstractEventLoop:
    """One event loop in a thread of its own (another test's Playwright may hold this one's)."""
    global _LOOP
    if _LOOP is None:
        _LOOP = asyncio.new_event_loop()
        threading.Thread(target=_LOOP.run_forever, daemon=True).start()
    return _LOOP


class Client:
    """A browser-like client (it keeps cookies) sending real requests through the app
    in-process, with httpx's ASGI transport."""

    def __init__(self, app: Any, base_url: str) -> None:
        transport = httpx.ASGITransport(app=app)
        self.http = httpx.AsyncClient(transport=transport, base_url=base_url)
        self.cookies = self.http.cookies

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        call = self.http.request(method, url, **kwargs)
        return asyncio.run_coroutine_threadsafe(call, _loop()).result()

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)


def client(root: Path, https: bool = False) -> Client:
    return Client(create_app(root), "https://portal" if https else "http://portal")


def form_token(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, html
    return match.group(1)


def log_in(c: Client, email: str, password: str = PASSWORD) -> str:
    """Log in through the form; the CSRF token of the new session."""
    token = form_token(c.get("/login").text)
    r = c.post("/login", data={"email": email, "password": password, "csrf_token": token})
    assert r.status_code == 303, r.text
    return form_token(c.get("/login").text)


def test_login_sets_a_safe_cookie_and_logout_ends_the_session(root):
    c = client(root)
    assert c.get("/me").status_code == 401
    page = c.get("/login")
    token = form_token(page.text)
    r = c.post("/login", data={"email": USERS["admin"], "password": "nope", "csrf_token": token})
    assert r.status_code == 401 and "wrong email or password" in r.text
    r = c.post(
        "/login",
        data={"email": "ADA@lab.org", "password": PASSWORD, "csrf_token": token, "next": "/x"},
    )
    assert r.status_code == 303 and r.headers["location"] == "/x"
    cookie = r.headers["set-cookie"]
    assert cookie.startswith(SESSION_COOKIE + "=")
    assert "HttpOnly" in cookie and "samesite=lax" in cookie.lower() and "Secure" not in cookie
    me = c.get("/me").json()
    assert me["user"]["email"] == "ada@lab.org" and me["user"]["role"] == "admin"
    stolen = c.cookies[SESSION_COOKIE]
    # no open redirect
    c2 = client(root)
    t2 = form_token(c2.get("/login").text)
    r = c2.post(
        "/login",
        data={"email": USERS["admin"], "password": PASSWORD, "csrf_token": t2, "next": "//evil"},
    )
    assert r.headers["location"] == "/"
    # logout: needs the CSRF token, deletes the row; the old cookie no longer works
    assert c.post("/logout").status_code == 403
    r = c.post("/logout", data={"csrf_token": me["csrf_token"]})
    assert r.status_code == 303 and r.headers["location"] == "/login"
    assert c.get("/me").status_code == 401
    replay = client(root)
    replay.cookies.set(SESSION_COOKIE, stolen)
    assert replay.get("/me").status_code == 401


def test_cookie_is_secure_over_https(root):
    c = client(root, https=True)
    token = form_token(c.get("/login").text)
    r = c.post("/login", data={"email": USERS["admin"], "password": PASSWORD, "csrf_token": token})
    assert r.status_code == 303 and "Secure" in r.headers["set-cookie"]


def test_expired_sessions_are_refused(root):
    c = client(root)
    log_in(c, USERS["reviewer"])
    assert c.get("/me").status_code == 200
    with Portal.open(root) as p, p.transaction() as s:
        past = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
        s.execute(sa.update(UserSession).values(expires_at=past))
    assert c.get("/me").status_code == 401
    r = c.get("/admin/users")
    assert r.status_code == 303 and r.headers["location"] == "/login?next=%2Fadmin%2Fusers"


def test_csrf_is_required_on_state_changing_requests(root):
    c = client(root)
    # the login form itself: no token, or a wrong one, is refused
    c.get("/login")
    login = {"email": USERS["admin"], "password": PASSWORD}
    assert c.post("/login", data=login).status_code == 403
    assert c.post("/login", data={**login, "csrf_token": "x" * 64}).status_code == 403
    csrf = log_in(c, USERS["admin"])
    new = {"email": "new@lab.org", "role": "labeller"}
    assert c.post("/admin/users", data=new).status_code == 403
    assert c.post("/admin/users", data={**new, "csrf_token": "wrong"}).status_code == 403
    r = c.post(
        "/admin/users",
        data=new,
        headers={"X-CSRF-Token": csrf[:-1] + ("1" if csrf[-1] == "0" else "0")},
    )
    assert r.status_code == 403 and "CSRF" in r.text
    # JSON bodies and other methods are checked too
    r = c.request("DELETE", "/admin/users/1", headers={"Accept": "application/json"})
    assert r.status_code == 403 and r.json()["error"].startswith("missing or wrong CSRF")
    r = c.post("/api/v1/datasets/query", json={})
    assert r.status_code == 403
    with Portal.open(root) as p, p.transaction() as s:
        assert [u.email for u in accounts.list_users(s)] == sorted(USERS.values())
    # the right token: as a form field, or as the header
    r = c.post("/admin/users", data={**new, "csrf_token": csrf})
    assert r.status_code == 200 and "/invite/" in r.text
    r = c.post("/admin/users", data={"email": "n2@lab.org", "role": "reviewer"},
               headers={"X-CSRF-Token": csrf})  # fmt: skip
    assert r.status_code == 200
    assert c.post("/api/v1/datasets/query", json={}, headers={"X-CSRF-Token": csrf}).is_success
    # a token from another session is refused
    other = client(root)
    other_csrf = log_in(other, USERS["admin"])
    assert other_csrf != csrf
    assert c.post("/admin/users", data={**new, "csrf_token": other_csrf}).status_code == 403


def test_anonymous_api_posts_need_no_csrf(root):
    # no cookie, no authority to forge: public API queries keep working for scripts
    assert client(root).post("/api/v1/datasets/query", json={}).status_code == 200


def test_bearer_tokens_work_for_the_api_and_stop_when_revoked(root):
    with Portal.open(root) as p, p.transaction() as s:
        admin_token = accounts.create_api_token(s, accounts.get_user(s, USERS["admin"]), "admin")
        lab_token = accounts.create_api_token(s, accounts.get_user(s, USERS["labeller"]), "s")
    c = client(root)
    auth = {"Authorization": f"Bearer {lab_token}"}
    me = c.get("/me", headers=auth).json()
    assert me["user"]["email"] == USERS["labeller"] and me["csrf_token"] is None
    assert c.get("/api/v1/datasets", headers=auth).status_code == 200
    assert c.get("/admin/users.json", headers=auth).status_code in (403, 404)
    r = c.get("/admin/users", headers={**auth, "Accept": "application/json"})
    assert r.status_code == 403 and r.json()["error"] == "this needs the admin role"
    # bearer requests carry no cookie, so need no CSRF token
    admin = {"Authorization": f"Bearer {admin_token}", "Accept": "application/json"}
    r = c.post("/admin/users", data={"email": "s@lab.org", "role": "labeller"}, headers=admin)
    assert r.status_code == 200 and r.json()["invite_url"].startswith("http://portal/invite/")
    with Portal.open(root) as p, p.transaction() as s:
        accounts.revoke_api_token(s, accounts.get_user(s, USERS["labeller"]), "s")
    r = c.get("/api/v1/datasets", headers=auth)
    assert r.status_code == 401 and r.json()["error"] == "invalid or revoked API token"
    assert c.get("/api/v1/datasets", headers={"Authorization": "Bearer made-up"}).status_code == 401


@pytest.mark.parametrize("who", ["nobody", "labeller", "reviewer", "admin"])
def test_the_admin_page_is_for_admins_only(root, who):
    c = client(root)
    if who != "nobody":
        log_in(c, USERS[who])
    r = c.get("/admin/users")
    json = c.get("/admin/users", headers={"Accept": "application/json"})
    if who == "nobody":
        assert r.status_code == 303 and r.headers["location"].startswith("/login?next=")
        assert json.status_code == 401
    elif who in ("labeller", "reviewer"):
        assert r.status_code == 403 and "this needs the admin role" in r.text
        assert json.status_code == 403
        assert c.post("/admin/users/1/disable", data={"csrf_token": "x"}).status_code == 403
    else:
        assert r.status_code == 200 and "Add a user" in r.text
        assert sorted(u["email"] for u in json.json()["users"]) == sorted(USERS.values())


def test_admin_adds_reinvites_and_disables_users(root):
    c = client(root)
    csrf = log_in(c, USERS["admin"])
    zoe = {"email": "Zoe@Lab.org", "role": "reviewer", "display_name": "Zoë", "lab": "L"}
    r = c.post("/admin/users", data={**zoe, "csrf_token": csrf})
    link = re.search(r'value="(http://portal/invite/[^"]+)"', r.text).group(1)
    r = c.post(
        "/admin/users", data={"email": "zoe@lab.org", "role": "reviewer", "csrf_token": csrf}
    )
    assert r.status_code == 400 and "already exists" in r.text
    users = c.get("/admin/users", headers={"Accept": "application/json"}).json()["users"]
    zoe = next(u for u in users if u["email"] == "zoe@lab.org")
    r = c.post(f"/admin/users/{zoe['id']}/invite", data={"csrf_token": csrf})
    assert r.status_code == 200 and link not in r.text
    assert client(root).get(link.removeprefix("http://portal")).status_code == 400  # replaced
    me = next(u for u in users if u["email"] == USERS["admin"])
    r = c.post(f"/admin/users/{me['id']}/disable", data={"csrf_token": csrf})
    assert r.status_code == 400 and "cannot disable yourself" in r.text
    lab = client(root)
    log_in(lab, USERS["labeller"])
    labeller = next(u for u in users if u["email"] == USERS["labeller"])
    assert (
        c.post(f"/admin/users/{labeller['id']}/disable", data={"csrf_token": csrf}).status_code
        == 303
    )
    assert lab.get("/me").status_code == 401  # their session ended


def test_invite_links_set_a_password_once(root):
    with Portal.open(root) as p, p.transaction() as s:
        token = accounts.create_invite(s, accounts.add_user(s, "new@lab.org", "labeller"))
    c = client(root)
    page = c.get(f"/invite/{token}")
    assert page.status_code == 200 and "new@lab.org" in page.text
    csrf = form_token(page.text)
    r = c.post(
        f"/invite/{token}", data={"password": PASSWORD, "confirm": "other", "csrf_token": csrf}
    )
    assert r.status_code == 400 and "differ" in r.text
    r = c.post(
        f"/invite/{token}", data={"password": "short", "confirm": "short", "csrf_token": csrf}
    )
    assert r.status_code == 400 and "at least 12" in r.text
    assert (
        c.post(f"/invite/{token}", data={"password": PASSWORD, "confirm": PASSWORD}).status_code
        == 403
    )
    r = c.post(
        f"/invite/{token}", data={"password": PASSWORD, "confirm": PASSWORD, "csrf_token": csrf}
    )
    assert r.status_code == 303 and c.get("/me").json()["user"]["email"] == "new@lab.org"
    again = client(root)
    assert again.get(f"/invite/{token}").status_code == 400  # used
    assert "not valid" in again.get(f"/invite/{token}").text
    log_in(again, "new@lab.org")


def test_public_by_default_private_when_set(tmp_path):
    public = client(make_portal(tmp_path / "public"))
    assert public.get("/").status_code == 200
    assert public.get("/api/v1/datasets").status_code == 200

    root = make_portal(tmp_path / "private", private=True)
    assert Portal.open(root).settings.private
    c = client(root)
    r = c.get("/datasets/10000?x=1")
    assert (
        r.status_code == 303 and r.headers["location"] == "/login?next=%2Fdatasets%2F10000%3Fx%3D1"
    )
    assert c.get("/").status_code == 303
    assert c.get("/.json").status_code == 401
    r = c.get("/api/v1/datasets")
    assert r.status_code == 401 and r.json()["error"] == "this portal is private: log in first"
    assert c.post("/api/v1/datasets/query", json={}).status_code == 401
    assert c.get("/data/anything", headers={"Accept": "text/html"}).status_code == 303
    assert c.get("/data/anything").status_code == 401  # a script's download: the envelope
    assert c.get("/login").status_code == 200 and c.get("/static/portal.css").status_code == 200
    log_in(c, USERS["labeller"])
    assert c.get("/").status_code == 200 and c.get("/api/v1/datasets").status_code == 200


@pytest.mark.browser
def test_admin_invites_a_user_who_sets_a_password_in_a_browser(
    tmp_path, live_server, browser, page, screenshot_dir
):
    root = make_portal(tmp_path / "portal")
    url = live_server(
        lambda port: [sys.executable, "-m", "cryocurate", "serve", str(root), "--port", str(port)]
    )
    page.goto(url + "/admin/users")
    assert page.url.startswith(url + "/login?next=")
    page.get_by_label("Email").fill(USERS["admin"])
    page.get_by_label("Password").fill(PASSWORD)
    page.screenshot(path=screenshot_dir / "login.png")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(url + "/admin/users")

    form = page.locator("form.add-user")
    form.get_by_label("Email").fill("grader@lab.org")
    form.get_by_label("Name").fill("Grace Grader")
    form.get_by_label("Lab", exact=True).fill("Lander")
    form.get_by_label("Role", exact=True).select_option("labeller")
    form.get_by_role("button", name="Add and make invite link").click()
    link = page.locator("#invite-url").input_value()
    assert link.startswith(url + "/invite/")
    assert page.locator("#users tr[data-email='grader@lab.org']").inner_text().count("invited") == 1
    page.screenshot(path=screenshot_dir / "admin-users.png", full_page=True)

    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        grader = context.new_page()
        grader.goto(link)
        grader.get_by_label("New password").fill("grading all day")
        grader.get_by_label("The same password again").fill("grading all day")
        grader.get_by_role("button", name="Set password and log in").click()
        grader.wait_for_url(url + "/")
        grader.goto(url + "/login")
        assert "grader@lab.org" in grader.locator("main").inner_text()
        grader.get_by_role("button", name="Log out").click()
        grader.wait_for_url(url + "/login")
        grader.get_by_label("Email").fill("grader@lab.org")
        grader.get_by_label("Password").fill("grading all day")
        grader.get_by_role("button", name="Log in").click()
        grader.wait_for_url(url + "/")
        assert grader.request.get(url + "/me").json()["user"]["role"] == "labeller"
        grader.goto(link)  # the link was spent
        assert "not valid" in grader.locator("main").inner_text()
    finally:
        context.close()
