"""The README's first command: ``cryocurate demo`` builds sample jobs, a portal, and serves it."""

from __future__ import annotations

import json
import subprocess
import sys

import httpx
import pytest


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("demo") / "cryocurate-demo"


def _cli(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cryocurate", *argv], capture_output=True, text=True, timeout=600
    )


@pytest.mark.slow
def test_demo_builds_once_and_reruns_unchanged(demo_dir):
    first = _cli("demo", "--dir", str(demo_dir), "--no-serve")
    assert first.returncode == 0, first.stderr
    # first, middle and last cryoSPARC jobs + RELION + two tomography runs with tilt series
    assert first.stderr.count("new") == 6
    listing = json.loads(_cli("ls", str(demo_dir / "portal"), "--json").stdout)
    assert [len(d["runs"]) for d in listing] == [3, 1, 2]
    campaigns = _cli("campaign", "list", str(demo_dir / "portal"), "--json")
    assert "Demo grading" in campaigns.stdout, campaigns.stderr
    assert "Demo tilt-series quality" in campaigns.stdout
    assert "labeller@demo.local" in first.stderr and "cryocurate-demo" in first.stderr
    again = _cli("demo", "--dir", str(demo_dir), "--no-serve")
    assert again.returncode == 0 and again.stderr.count("unchanged") == 6, again.stderr
    assert again.stderr.count("Demo campaign") == 1  # reused, not made twice


@pytest.mark.slow
@pytest.mark.browser
def test_demo_serves_its_page(demo_dir, live_server, page, screenshot_dir):
    url = live_server(
        lambda port: [
            sys.executable,
            "-m",
            "cryocurate",
            "demo",
            "--dir",
            str(demo_dir),
            "--port",
            str(port),
        ],
        timeout=300,
    )
    assert len(httpx.get(f"{url}/index.json").json()["datasets"]) == 3
    page.goto(url)
    page.get_by_role("table", name="Datasets").get_by_role(
        "link", name="Synthetic complex, cryoSPARC 2D classification (demo)"
    ).wait_for()
    # the datasets' key photos (a class average each) have loaded
    page.wait_for_function(
        "() => [...document.images].every(i => i.complete && i.naturalWidth > 0)"
    )
    page.screenshot(path=screenshot_dir / "demo.png", full_page=False)
