"""Accounts under attack (issue #11, findings 4, 5 and the account parts of 8), each test
written as the attack.

The concurrency attacks run against a real served portal (``cryocurate serve --workers 2``
in a subprocess) on SQLite and on PostgreSQL, so the throttle and the invite must hold
across processes, not in one process's memory. A second client address is a real one: the
owner's client binds 127.0.0.2, the attacker's 127.0.0.1 (any 127/8 address is loopback).
"""

from __future__ import annotations

import io
import re
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from cryocurate import accounts, grading
from cryocurate.catalog.models import GradeAnnotation, LoginThrottle, User, UserSession
from cryocurate.grading import access
from cryocurate.portal import Portal
from tests.cli_in_process import cli
from tests.grading.portal import ADMIN, LABELLERS, REVIEWER, build_grading_portal
from tests.web.test_auth import PASSWORD, USERS, client, form_token, log_in, make_portal

OWNER = USERS["labeller"]
SESSION = "cryocurate_session"


@pytest.fixture
def served(tmp_path, database_url, live_server):
    root = make_portal(tmp_path / "portal", database_url)
    url = live_server(
        [sys.executable, "-m", "cryocurate", "serve", str(root), "--port", "{port}",
         "--workers", "2"],
        timeout=60,
    )  # fmt: skip
    return url, root


def _client(url: str, address: str = "127.0.0.1") -> httpx.Client:
    transport = httpx.HTTPTransport(local_address=address, retries=0)
    return httpx.Client(base_url=url, transport=transport, timeout=120, follow_redirects=False)


def _with_cookie(url: str, cookie: str) -> httpx.Client:
    c = _client(url)
    c.cookies.set(SESSION, cookie)
    return c


def _login_token(c: httpx.Client) -> str:
    return form_token(c.get("/login").text)


def _sessions_of(root: Path, email: str) -> int:
    with Portal.open(root) as p, p.transaction() as s:
        user = accounts.get_user(s, email)
        return int(s.scalar(sa.select(sa.func.count()).where(UserSession.user_id == user.id)))


def _parallel(n: int, attempt) -> list[httpx.Response]:
    start = threading.Barrier(n)

    def one(i: int) -> httpx.Response:
        start.wait()
        return attempt(i)

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(one, range(n)))


def test_parallel_guesses_are_throttled_and_the_owner_elsewhere_still_logs_in(served):
    url, root = served
    attacker = _client(url)
    token = _login_token(attacker)

    def guess(i: int) -> httpx.Response:
        # The right password hides at attempt 41; X-Forwarded-For is forged on every guess
        # (no proxy is configured, so it must not count as another address).
        password = PASSWORD if i == 40 else f"guess number {i}"
        return attacker.post(
            "/login",
            data={"email": OWNER, "password": password, "csrf_token": token},
            headers={"X-Forwarded-For": f"10.0.{i}.1"},
        )

    answers = _parallel(60, guess)
    checked = [r for r in answers if r.status_code != 429]
    refused = [r for r in answers if r.status_code == 429]
    assert len(checked) <= 8, [r.status_code for r in answers]  # 5 free, then 1 s, 2 s, 4 s…
    assert len(refused) >= 52
    assert all(int(r.headers["Retry-After"]) >= 1 for r in refused)
    assert all("too many login attempts" in r.text for r in refused)
    sessions = [r for r in answers if SESSION in r.headers.get("set-cookie", "")]
    assert len(sessions) <= 1 and all(r in checked for r in sessions)
    # Guessing on, waiting as told: each checked guess makes the next wait longer, and the
    # right password sent at once after one is refused without being checked.
    waits = []
    for _ in range(2):
        while True:
            data = {"email": OWNER, "password": "one more guess", "csrf_token": token}
            r = attacker.post("/login", data=data)
            if r.status_code != 429:
                break
            time.sleep(int(r.headers["Retry-After"]))
        assert r.status_code == 401
        data = {"email": OWNER, "password": PASSWORD, "csrf_token": token}
        r = attacker.post("/login", data=data)
        assert r.status_code == 429 and SESSION not in r.headers.get("set-cookie", "")
        waits.append(int(r.headers["Retry-After"]))
    assert waits[1] > waits[0] >= 1
    assert _sessions_of(root, OWNER) == len(sessions)
    # The owner, at their own address, is not locked out by someone else's guesses.
    owner = _client(url, "127.0.0.2")
    r = owner.post(
        "/login", data={"email": OWNER, "password": PASSWORD, "csrf_token": _login_token(owner)}
    )
    assert r.status_code == 303 and SESSION in r.headers["set-cookie"]
    assert owner.get("/me").json()["user"]["email"] == OWNER


def test_behind_a_trusted_proxy_the_forwarded_address_is_the_one_counted(tmp_path, live_server):
    root = make_portal(tmp_path / "portal")
    settings = root / "cryocurate.toml"
    settings.write_text(settings.read_text() + '\n[web]\ntrusted_proxies = ["127.0.0.1"]\n')
    url = live_server([sys.executable, "-m", "cryocurate", "serve", str(root), "--port", "{port}"])
    proxy = _client(url)  # the proxy connects from 127.0.0.1 for every client
    token = _login_token(proxy)

    def attempt(client_address: str, password: str) -> httpx.Response:
        data = {"email": OWNER, "password": password, "csrf_token": token}
        return proxy.post("/login", data=data, headers={"X-Forwarded-For": client_address})

    statuses = [attempt("203.0.113.9", f"guess {i}").status_code for i in range(7)]
    assert statuses[:5] == [401] * 5 and 429 in statuses[5:]
    # The owner, forwarded from another address, is not held back by the attacker's guesses.
    assert attempt("198.51.100.7", PASSWORD).status_code == 303
    # A client that is not the proxy cannot forge the header: 127.0.0.2 is counted as itself.
    other = _client(url, "127.0.0.2")
    other_token = _login_token(other)
    answers = [
        other.post(
            "/login",
            data={"email": OWNER, "password": f"guess {i}", "csrf_token": other_token},
            headers={"X-Forwarded-For": f"192.0.2.{i}"},
        ).status_code
        for i in range(7)
    ]
    assert 429 in answers


def test_one_password_against_a_hundred_emails_is_throttled_per_address(served):
    url, root = served
    attacker = _client(url)
    token = _login_token(attacker)
    emails = [f"person{i}@lab.org" for i in range(97)] + list(USERS.values())

    def spray(i: int) -> httpx.Response:
        data = {"email": emails[i], "password": "Summer2026!!", "csrf_token": token}
        return attacker.post("/login", data=data)

    answers = _parallel(len(emails), spray)
    checked = [r for r in answers if r.status_code != 429]
    assert {r.status_code for r in checked} <= {401}
    assert len(checked) <= 36, len(checked)  # 30 free for one address, then doubling delays
    assert sum(r.status_code == 429 for r in answers) >= 64
    # The same emails from another address are not refused for the first one's spraying.
    other = _client(url, "127.0.0.3")
    r = other.post(
        "/login", data={"email": OWNER, "password": PASSWORD, "csrf_token": _login_token(other)}
    )
    assert r.status_code == 303
    with Portal.open(root) as p, p.transaction() as s:  # counters name no one
        keys = s.scalars(sa.select(LoginThrottle.key)).all()
    assert keys and all(re.fullmatch(r"[0-9a-f]{64}", k) for k in keys)


def test_an_invite_link_raced_eight_times_sets_one_password_and_one_session(served):
    url, root = served
    with Portal.open(root) as p, p.transaction() as s:
        new = accounts.add_user(s, "new@lab.org", "labeller")
        invite = accounts.create_invite(s, new)
        old = [accounts.start_session(s, new) for _ in range(3)]  # e.g. from an earlier invite
    c = _client(url)
    token = form_token(c.get(f"/invite/{invite}").text)
    for cookie in old:
        assert _with_cookie(url, cookie).get("/me").status_code == 200

    def accept(i: int) -> httpx.Response:
        data = {"password": f"racer number {i} pass", "confirm": f"racer number {i} pass"}
        return c.post(f"/invite/{invite}", data={**data, "csrf_token": token})

    answers = _parallel(8, accept)
    won = [i for i, r in enumerate(answers) if r.status_code == 303]
    assert len(won) == 1, [r.status_code for r in answers]
    lost = [r for r in answers if r.status_code != 303]
    assert all(r.status_code == 400 and "not valid" in r.text for r in lost)
    assert [SESSION in r.headers.get("set-cookie", "") for r in answers].count(True) == 1
    assert _sessions_of(root, "new@lab.org") == 1
    for cookie in old:  # the sessions from before the password was set are dead
        assert _with_cookie(url, cookie).get("/me").status_code == 401
    with Portal.open(root) as p, p.transaction() as s:
        user = accounts.authenticate(s, "new@lab.org", f"racer number {won[0]} pass")
        assert user.email == "new@lab.org"


def _logged_in(url: str, email: str, address: str = "127.0.0.1") -> httpx.Client:
    c = _client(url, address)
    r = c.post("/login", data={"email": email, "password": PASSWORD, "csrf_token": _login_token(c)})
    assert r.status_code == 303, r.text
    return c


def test_disable_and_end_sessions_log_a_user_out_everywhere(served, capsys):
    url, root = served
    # The admin's button on /admin/users
    laptops = [_logged_in(url, OWNER, f"127.0.0.{n}") for n in (4, 5)]
    admin = _logged_in(url, USERS["admin"])
    page = admin.get("/admin/users")
    assert "End sessions" in page.text
    with Portal.open(root) as p, p.transaction() as s:
        owner_id = accounts.get_user(s, OWNER).id
    r = admin.post(
        f"/admin/users/{owner_id}/end-sessions", data={"csrf_token": form_token(page.text)}
    )
    assert r.status_code == 200 and f"Ended 2 sessions of {OWNER}" in r.text
    assert [c.get("/me").status_code for c in laptops] == [401, 401]
    assert admin.get("/me").status_code == 200
    # `cryocurate users end-sessions`
    again = _logged_in(url, OWNER, "127.0.0.6")
    code, _, err = cli(capsys, "users", "end-sessions", root, OWNER)
    assert code == 0 and f"Ended 1 session of {OWNER}" in err
    assert again.get("/me").status_code == 401
    # `cryocurate users disable`
    reviewer = _logged_in(url, USERS["reviewer"], "127.0.0.7")
    code, _, err = cli(capsys, "users", "disable", root, USERS["reviewer"])
    assert code == 0 and reviewer.get("/me").status_code == 401
    # the admin page's Disable
    labeller = _logged_in(url, OWNER, "127.0.0.8")
    page = admin.get("/admin/users")
    r = admin.post(f"/admin/users/{owner_id}/disable", data={"csrf_token": form_token(page.text)})
    assert r.status_code == 303 and labeller.get("/me").status_code == 401
    assert _sessions_of(root, OWNER) == 0


@pytest.mark.parametrize(
    ("password", "why"),
    [
        ("aaaaaaaa", "at least 12 characters"),
        ("password1234", "one of the most common ones"),
        ("aaaaaaaaaaaaaaaa", "too repetitive or sequential"),
    ],
)
def test_weak_passwords_are_refused_at_the_cli_and_on_the_page(
    tmp_path, capsys, monkeypatch, password, why
):
    root = make_portal(tmp_path / "portal")
    monkeypatch.setattr(sys, "stdin", io.StringIO(password + "\n"))
    code, out, err = cli(capsys, "users", "password", root, OWNER)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and out == "" and len(lines) == 1 and why in lines[0], err
    with Portal.open(root) as p, p.transaction() as s:
        user = accounts.get_user(s, OWNER)
        invite = accounts.create_invite(s, user)
    log_in(client(root), OWNER)  # the old password still works: nothing was changed
    c = client(root)
    token = form_token(c.get(f"/invite/{invite}").text)
    r = c.post(
        f"/invite/{invite}", data={"password": password, "confirm": password, "csrf_token": token}
    )
    errors = re.findall(r'<p class="auth-error" role="alert">([^<]*)</p>', r.text)
    assert r.status_code == 400 and len(errors) == 1 and why in errors[0]
    log_in(client(root), OWNER)


# ----------------------------------------------------------------------------------------------
# Leaks: who exists, whose grades


@pytest.fixture
def graded(tmp_path, database_url):
    built = build_grading_portal(tmp_path, database_url, n_classes=4)
    with Portal.open(built.root) as portal, portal.transaction() as s:
        spec = grading.CampaignSpec(
            "secret", built.run_ids, labellers=LABELLERS, seed=3, repeat_share=0.0
        )
        cid = grading.create_campaign(s, spec).id
    lena = client(built.root)
    csrf = log_in(lena, LABELLERS[0])
    item = lena.get(f"/api/v1/campaigns/{cid}/queue").json()["items"][0]["item_id"]
    grade = {"request_id": "leak-test-1", "item_id": item, "grade": "B"}
    grade["given_at"] = "2026-12-01T10:00:00Z"
    r = lena.post(
        f"/api/v1/campaigns/{cid}/grades", json={"grades": [grade]}, headers={"X-CSRF-Token": csrf}
    )
    assert r.status_code == 200, r.text
    return built, cid


def test_grades_of_a_labeller_answer_alike_for_real_and_unknown_emails(graded):
    built, cid = graded
    lars = client(built.root)
    log_in(lars, LABELLERS[1])
    answers = [
        lars.get(f"/api/v1/campaigns/{cid}/grades", params={"labeller": email})
        for email in (LABELLERS[0], REVIEWER, "nobody@nowhere.org", "not an email")
    ]
    assert {(r.status_code, r.text) for r in answers} == {(answers[0].status_code, answers[0].text)}
    assert answers[0].status_code == 403
    item = 1
    history = [
        lars.get(f"/api/v1/campaigns/{cid}/items/{item}/history", params={"labeller": email})
        for email in (LABELLERS[0], "nobody@nowhere.org")
    ]
    assert history[0].status_code == history[1].status_code and history[0].text == history[1].text


def _grade_annotation_ids(root: Path) -> set[int]:
    with Portal.open(root) as p, p.transaction() as s:
        return set(s.scalars(sa.select(GradeAnnotation.annotation_id)))


def test_nobody_sees_the_grade_annotations_of_a_running_campaign(graded):
    built, _ = graded
    hidden = _grade_annotation_ids(built.root)
    assert hidden
    run_id = built.run_ids[0]
    nobody, lars, reviewer = client(built.root), client(built.root), client(built.root)
    tokens = {id(nobody): "", id(lars): log_in(lars, LABELLERS[1])}
    log_in(reviewer, REVIEWER)
    lena_name = LABELLERS[0].split("@")[0]
    for c in (nobody, lars):
        listed = c.get("/api/v1/annotations?limit=1000").json()
        assert not {a["id"] for a in listed["items"]} & hidden
        for ident in hidden:
            assert c.get(f"/api/v1/annotations/{ident}").status_code == 404
        authors = c.get("/api/v1/annotation_authors?limit=1000").json()["items"]
        assert lena_name not in {a["name"] for a in authors}
        runs = c.get("/api/v1/runs?include=annotations&limit=1000").json()["items"]
        assert not {a["id"] for r in runs for a in r["annotations"]} & hidden
        datasets = c.get(
            "/api/v1/datasets?runs.annotations.object_id=cryocurate:class-average-quality"
        ).json()
        assert datasets["total"] == 0
        query = {"where": {"authors": {"name": {"_eq": lena_name}}}}
        headers = {"X-CSRF-Token": tokens[id(c)]}
        found = c.post("/api/v1/annotations/query", json=query, headers=headers).json()
        assert found["total"] == 0, found
        page = c.get(f"/runs/{run_id}.json").json()
        assert not {a["id"] for a in page["annotations"]} & hidden
        html = c.get(f"/runs/{run_id}").text
        assert "class average quality" not in html and lena_name not in html
        for ident in hidden:
            assert c.get(f"/download/annotation/{ident}.ndjson").status_code in (401, 403)
    # Those the rule lets see them still do.
    seen = reviewer.get(f"/runs/{run_id}.json").json()["annotations"]
    assert {a["id"] for a in seen} & hidden
    assert reviewer.get("/api/v1/annotations?limit=1000").json()["total"] >= len(hidden)
    lena = client(built.root)
    log_in(lena, LABELLERS[0])
    own = {a["id"] for a in lena.get(f"/runs/{run_id}.json").json()["annotations"]}
    assert own & hidden


def test_a_closed_campaigns_consensus_is_public_but_labellers_grades_are_not():
    closed, running = True, False
    assert access.sees_grade_annotation(None, None, closed)
    assert not access.sees_grade_annotation(None, None, running)
    assert not access.sees_grade_annotation(None, 7, closed)
    labeller = User(id=7, email="l@lab.org", role=accounts.Role.labeller)
    assert access.sees_grade_annotation(labeller, 7, running)
    assert not access.sees_grade_annotation(labeller, 8, closed)
    reviewer = User(id=9, email="r@lab.org", role=accounts.Role.reviewer)
    assert access.sees_grade_annotation(reviewer, 8, running)
    assert ADMIN  # the grading portal's admin sees everything (access.sees_all)
