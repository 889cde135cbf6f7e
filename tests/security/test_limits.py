"""Request bodies and filter trees past the portal's bounds, sent as an attacker would.

The body tests run against a served process (uvicorn in a subprocess, as ``cryocurate serve``
runs it) and watch its resident memory with psutil: a 200 MB body must be refused with 413
before it is read, whether it announces its length or comes chunked. The filter-tree tests
send, anonymously, searches too deep or too wide to run and expect one clear 400 line.
"""

from __future__ import annotations

import json
import socket
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from cryocurate.catalog import spec_limits
from cryocurate.web.app import create_app
from cryocurate.web.grading_api import MAX_BATCH
from cryocurate.web.limits import limit_for
from tests.web.test_auth import Client, make_portal

BIG = 200 << 20  # the body of finding 6
CHUNK = 1 << 20


def _rss(pid: int) -> int:
    process = psutil.Process(pid)
    return process.memory_info().rss + sum(
        c.memory_info().rss for c in process.children(recursive=True)
    )


@pytest.fixture
def served(tmp_path: Path, live_server: Any) -> Any:
    root = make_portal(tmp_path / "portal")
    argv = [
        sys.executable, "-m", "uvicorn", "--factory", "cryocurate.web.app:app_from_environment",
        "--host", "{host}", "--port", "{port}", "--no-access-log",
    ]  # fmt: skip
    return live_server(argv, env={"CRYOCURATE_ROOT": str(root)})


def _send_body(url: Any, path: str, *, chunked: bool, total: int = BIG) -> tuple[int, int]:
    """POST ``total`` bytes of JSON-ish filler to ``path`` on a raw socket, stopping as soon as
    the server answers; the answer's status and how many body bytes went out."""
    head = [
        f"POST {path} HTTP/1.1",
        f"Host: {url.host}:{url.port}",
        "Content-Type: application/json",
        "Transfer-Encoding: chunked" if chunked else f"Content-Length: {total}",
        "",
        "",
    ]
    sent = 0
    block = b"[" + b"1," * (CHUNK // 2 - 1) + b"1"  # 1 MiB of a plausible JSON list
    with socket.create_connection((url.host, url.port), timeout=30) as sock:
        sock.sendall("\r\n".join(head).encode())
        sock.settimeout(0.0)
        answer = b""
        deadline = time.monotonic() + 60
        while sent < total and time.monotonic() < deadline:
            try:
                answer += sock.recv(65536)
                if answer:
                    break
            except BlockingIOError:
                pass
            except OSError:
                break
            piece = block[: min(CHUNK, total - sent)]
            data = (f"{len(piece):x}\r\n".encode() + piece + b"\r\n") if chunked else piece
            try:
                sock.settimeout(5.0)
                sock.sendall(data)
                sock.settimeout(0.0)
            except OSError:  # the server answered and closed: it stopped reading
                break
            sent += len(piece)
        sock.settimeout(10.0)
        while b"\r\n" not in answer:
            try:
                more = sock.recv(65536)
            except OSError:
                break
            if not more:
                break
            answer += more
    status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/") else 0
    return status, sent


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_200_mb_json_body_is_refused_before_it_is_read(served: Any, chunked: bool) -> None:
    pid = served.process.pid
    # Warm the server up (first request, templates, the database) before measuring.
    status, _ = _send_body(served, "/api/v1/datasets/query", chunked=False, total=2)
    assert status in (200, 400)
    before = _rss(pid)
    status, sent = _send_body(served, "/api/v1/datasets/query", chunked=chunked)
    grown = _rss(pid) - before
    assert status == 413, served.output()
    assert grown < 16 << 20, f"server grew by {grown >> 20} MiB"
    assert sent < 64 << 20, f"the server read {sent >> 20} MiB before refusing"
    # ... and the server still answers.
    status, _ = _send_body(served, "/api/v1/datasets/query", chunked=False, total=2)
    assert status in (200, 400)


def test_the_refusal_is_the_apis_envelope_and_login_forms_are_capped_lower(tmp_path) -> None:
    c = Client(create_app(make_portal(tmp_path / "portal")), "http://portal")
    r = c.post("/api/v1/datasets/query", content=b" " * (3 << 20), headers=_json())
    assert r.status_code == 413
    assert r.json()["ok"] is False and "2 MiB" in r.json()["error"]
    r = c.post("/login", content=b"email=" + b"a" * (100 << 10), headers=_form())
    assert r.status_code == 413
    page = c.post(
        "/login", content=b"email=" + b"a" * (100 << 10), headers={**_form(), "Accept": "text/html"}
    )
    assert page.status_code == 413 and "cryocurate portal" in page.text  # the portal's header


def test_the_grading_cap_leaves_room_for_the_largest_valid_batch() -> None:
    grade = {
        "request_id": "r" * 64,
        "item_id": 2**63 - 1,
        "grade": "A" * 16,
        "repeat": False,
        "given_at": "2026-12-02T17:21:49.123456+00:00",
        "seconds_on_item": 123456.789,
    }
    batch = json.dumps({"grades": [grade] * MAX_BATCH}).encode()
    cap = limit_for("/api/v1/campaigns/1/grades").max_bytes
    assert len(batch) < cap < limit_for("/api/v1/datasets/query").max_bytes


def _json() -> dict[str, str]:
    return {"content-type": "application/json"}


def _form() -> dict[str, str]:
    return {"content-type": "application/x-www-form-urlencoded"}


def _chain(n: int) -> dict[str, Any]:
    spec: dict[str, Any] = {"id": {"_gte": 0}}
    for i in reversed(range(n)):
        spec = {("runs" if i % 2 == 0 else "dataset"): spec}
    return spec


@pytest.fixture
def anonymous(tmp_path: Path, database_url: str) -> Client:
    return Client(create_app(make_portal(tmp_path / "portal", database_url)), "http://portal")


@pytest.mark.parametrize(
    ("where", "words"),
    [
        ({"_or": [{"id": i} for i in range(20_000)]}, ["more than 500 conditions"]),
        ({"_and": [{"title": {"_contains": str(i)}} for i in range(501)]}, ["500 conditions"]),
        ({"id": {"_in": list(range(10_001))}}, ["10000 values"]),
        (_chain(100), ["more than 8 relationships"]),
        (_chain(spec_limits.MAX_LINKS + 1), ["relationships"]),
        (
            json.loads('{"_not": ' * 40 + '{"id": 1}' + "}" * 40),
            ["nested more than 32 levels"],
        ),
    ],
    ids=["or-20000", "and-501", "in-10001", "chain-100", "chain-9", "not-40"],
)
def test_filters_too_wide_or_too_deep_get_one_clear_400(anonymous, where, words) -> None:
    r = anonymous.post("/api/v1/datasets/query", json={"where": where})
    assert r.status_code == 400, r.text
    body = r.json()
    assert body == {"ok": False, "error": body["error"], "status": 400}
    for word in words:
        assert word in body["error"]


def test_filters_at_the_bounds_still_run(anonymous) -> None:
    ok = [
        {"_or": [{"id": i} for i in range(spec_limits.MAX_CONDITIONS)]},
        {"id": {"_in": list(range(spec_limits.MAX_VALUES))}},
        _chain(spec_limits.MAX_LINKS),
        json.loads('{"_not": ' * 30 + '{"id": 1}' + "}" * 30),
    ]
    for where in ok:
        r = anonymous.post("/api/v1/datasets/query", json={"where": where, "limit": 1})
        assert r.status_code == 200, r.text


def test_the_flat_query_string_is_bounded_too(anonymous) -> None:
    ids = ",".join(str(i) for i in range(10_001))
    r = anonymous.get(f"/api/v1/datasets?id__in={ids}")
    assert r.status_code == 400 and "10000 values" in r.json()["error"]
    r = anonymous.get("/api/v1/datasets?" + ".".join(["runs", "dataset"] * 5) + ".id=1")
    assert r.status_code == 400 and "relationships" in r.json()["error"]
