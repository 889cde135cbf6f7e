"""The shared fixtures in conftest.py work for real: databases, live servers, the browser."""

from __future__ import annotations

import sys
import urllib.request
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text


def test_database_url_connects(database_url: str, request: pytest.FixtureRequest) -> None:
    engine = create_engine(database_url)
    try:
        with engine.begin() as conn:
            assert conn.execute(text("SELECT 1")).scalar_one() == 1
            conn.execute(text("CREATE TABLE probe (id INTEGER PRIMARY KEY, name TEXT)"))
            conn.execute(text("INSERT INTO probe (id, name) VALUES (1, 'x')"))
        with engine.connect() as conn:
            assert conn.execute(text("SELECT name FROM probe")).scalar_one() == "x"
    finally:
        engine.dispose()
    backend = request.node.callspec.id
    assert engine.dialect.name == backend


# A test that needs one backend only selects it with indirect parametrization:
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_postgresql_is_a_real_fresh_server(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            assert "PostgreSQL" in conn.execute(text("SELECT version()")).scalar_one()
            tables = conn.execute(
                text("SELECT count(*) FROM information_schema.tables WHERE table_schema='public'")
            ).scalar_one()
            assert tables == 0  # a fresh database per test
            name = conn.execute(text("SELECT current_database()")).scalar_one()
            assert name.startswith("cryocurate_test_")
    finally:
        engine.dispose()


def test_live_server_serves_and_restarts(live_server, tmp_path: Path) -> None:
    (tmp_path / "hello.txt").write_text("hello")
    url = live_server(
        [sys.executable, "-m", "http.server", "{port}", "--bind", "{host}"], cwd=tmp_path
    )
    assert url.startswith("http://127.0.0.1:")
    with urllib.request.urlopen(f"{url}/hello.txt", timeout=10) as resp:
        assert resp.read() == b"hello"
    url.restart()
    with urllib.request.urlopen(f"{url}/hello.txt", timeout=10) as resp:
        assert resp.read() == b"hello"
    url.stop()
    assert url.process is not None and url.process.poll() is not None


def test_live_server_reports_a_crashing_command(live_server) -> None:
    with pytest.raises(pytest.fail.Exception, match="boom"):
        live_server(lambda port: [sys.executable, "-c", "import sys; sys.exit('boom')"])


@pytest.mark.browser
def test_browser_renders_a_page_and_takes_a_screenshot(
    live_server, page, screenshot_dir: Path, tmp_path: Path
) -> None:
    (tmp_path / "index.html").write_text(
        "<!doctype html><html><head><meta charset='utf-8'><title>cryocurate probe</title></head>"
        "<body style='font-family: sans-serif'>"
        "<h1 id='greeting'>Hello from cryocurate</h1>"
        "<button id='b' onclick=\"document.getElementById('out').textContent = 'clicked'\">"
        "Click me</button><p id='out'></p></body></html>"
    )
    url = live_server(
        [sys.executable, "-m", "http.server", "{port}", "--bind", "{host}"], cwd=tmp_path
    )
    page.goto(f"{url}/index.html")
    assert page.title() == "cryocurate probe"
    assert page.text_content("#greeting") == "Hello from cryocurate"
    page.click("#b")
    page.wait_for_selector("#out:text('clicked')")
    assert page.viewport_size == {"width": 1280, "height": 900}

    shot = screenshot_dir / "infrastructure-probe.png"
    shot.unlink(missing_ok=True)
    page.screenshot(path=str(shot))
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 2000  # a page with text, not an empty image
