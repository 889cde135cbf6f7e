"""The first portal page, served for real and opened in Debian's Chromium."""

from __future__ import annotations

import sys

import httpx
import pytest

from cryocurate.ingest.datasets import DatasetChoice, DatasetFields
from cryocurate.ingest.extract import Extraction
from cryocurate.portal import Portal
from cryocurate.synth import synth_cryosparc, synth_relion


@pytest.fixture(scope="module")
def served_root(tmp_path_factory, live_server_module):
    base = tmp_path_factory.mktemp("web")
    cs = synth_cryosparc(base / "jobs" / "J12", n_classes=16, box=64, n_particles=4000, seed=3)
    rl = synth_relion(
        base / "jobs" / "Class2D" / "job006", n_classes=10, box=64, n_particles=2000, seed=4
    )
    with Portal.create(base / "portal") as portal:
        Extraction(portal, DatasetChoice("Spliceosome, Lab A", DatasetFields(lab="Lab A"))).run(
            [cs]
        )
        Extraction(portal, DatasetChoice("Ribosome, Lab B")).run([rl])
    url = live_server_module(
        lambda port: [
            sys.executable,
            "-m",
            "cryocurate",
            "serve",
            str(base / "portal"),
            "--port",
            str(port),
        ]
    )
    return url


def test_index_json_lists_datasets(served_root):
    data = httpx.get(f"{served_root}/index.json").json()
    titles = [d["title"] for d in data["datasets"]]
    assert titles == ["Spliceosome, Lab A", "Ribosome, Lab B"]
    assert [d["n_runs"] for d in data["datasets"]] == [1, 1]
    image = httpx.get(served_root + data["datasets"][0]["key_photo"])
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"


@pytest.mark.browser
def test_index_page_is_the_browse_page(served_root, page, screenshot_dir):
    page.goto(served_root)
    assert page.title() == "Browse datasets · cryocurate portal"
    table = page.get_by_role("table", name="Datasets")
    table.get_by_role("link", name="Spliceosome, Lab A").wait_for()
    table.get_by_role("link", name="Ribosome, Lab B").wait_for()
    page.wait_for_function(
        "() => [...document.images].every(i => i.complete && i.naturalWidth > 0)"
    )
    page.screenshot(path=screenshot_dir / "index.png", full_page=True)
