"""Tilt-series quality campaigns, graded in the browser: the tilts as the grader needs them.

A tilt series is not one picture. The server renders each tilt (in angle order, binned) and a
montage of all of them from the tilt-series MRC; the grading screen shows one tilt at a time
to scrub (↑/↓, the slider) or the montage (T, a click on a tile opens that tilt), and the
1–5 keys grade with the seed's rubric. Checked against real files (synthetic tilt series in
a dose-symmetric order, ingested through the real pipeline) and a real Chromium.
"""

from __future__ import annotations

import io
import re
import sys
import tracemalloc
from pathlib import Path
from typing import Any

import mrcfile
import numpy as np
import pytest
import sqlalchemy as sa
from PIL import Image

from cryocurate import grading
from cryocurate.catalog.models import Grade, GradeScale, TiltSeries
from cryocurate.formats.mrc import read_section
from cryocurate.grading.scales import TILT_SERIES_RUBRIC
from cryocurate.ingest.datasets import DatasetFields, create_dataset
from cryocurate.ingest.tomography import Acquisition, RunFiles, ingest_run
from cryocurate.portal import Portal
from cryocurate.synth.tomography import dose_symmetric, synth_tilt_series_run
from cryocurate.web.app import create_app
from tests.conftest import VIEWPORT
from tests.grading.portal import LABELLERS, PASSWORD, build_grading_portal
from tests.web.test_auth import Client, log_in

TS_CAMPAIGN = "Tilt-series quality"


def add_tomography_runs(root: Path, jobs: Path, qualities: tuple[int, ...] = (5, 2)) -> list[int]:
    """A dataset of tomography runs with tilt series (one per quality); their run ids."""
    run_ids = []
    with Portal.open(root) as portal:
        dataset_id = create_dataset(portal, DatasetFields(title="Synthetic tomograms", lab="Lab A"))
        for n, quality in enumerate(qualities):
            files = synth_tilt_series_run(jobs / f"TS_{n + 1:02d}", quality=quality, seed=n)
            ingested = ingest_run(
                portal,
                dataset_id,
                RunFiles(files.tomogram, files.tilt_series, files.angles),
                acquisition=Acquisition(tilt_step=3.0),
            )
            run_ids.append(ingested.run_id)
    return run_ids


def tilt_series_campaign(root: Path, run_ids: list[int], labellers: list[str]) -> int:
    with Portal.open(root) as portal, portal.transaction() as session:
        spec = grading.CampaignSpec(
            TS_CAMPAIGN,
            run_ids,
            scale=GradeScale.tilt_series,
            labellers=labellers,
            repeat_share=0.0,
            seed=3,
        )
        return grading.create_campaign(session, spec).id


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("tiltseries")
    built = build_grading_portal(base, n_classes=4)
    run_ids = add_tomography_runs(built.root, base / "tomo")
    cid = tilt_series_campaign(built.root, run_ids, [LABELLERS[0]])
    with Portal.open(built.root) as portal, portal.transaction() as s:
        ts_ids = list(s.scalars(sa.select(TiltSeries.id).order_by(TiltSeries.id)))
    return {"root": built.root, "campaign_id": cid, "ts_ids": ts_ids, "run_ids": run_ids}


def _client(world: dict[str, Any]) -> Client:
    return Client(create_app(world["root"]), "http://portal")


def _png(body: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(body)))


def test_tilts_come_in_angle_order_with_their_angles(world):
    c = _client(world)
    info = c.get(f"/tiltseries/{world['ts_ids'][0]}/tilts.json").json()
    angles = list(dose_symmetric())
    assert info["count"] == len(angles) == 41
    assert info["angles"] == angles  # file order, as acquired: 0, +3, −3, −6, +6 …
    assert [info["angles"][i] for i in info["order"]] == sorted(angles)
    assert info["angles"][info["zero"]] == 0.0
    layout = info["montage"]
    assert layout["columns"] * layout["rows"] >= 41


def test_a_tilt_image_is_that_tilt_of_the_mrc_and_is_cached(world):
    c = _client(world)
    ts = world["ts_ids"][0]
    info = c.get(f"/tiltseries/{ts}/tilts.json").json()
    with Portal.open(world["root"]) as portal, portal.transaction() as s:
        path = portal.data_dir / s.get(TiltSeries, ts).mrc_file
    last = info["order"][-1]  # +60°, the 41st tilt in the file
    r = c.get(f"/tiltseries/{ts}/tilts/{last}.png")
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert "max-age" in r.headers["cache-control"]
    pixels = _png(r.content)
    truth = read_section(path, last)
    assert pixels.shape == truth.shape
    # The same picture: brighter where the MRC is brighter (rank correlation of the pixels).
    ranks = np.corrcoef(
        np.argsort(np.argsort(pixels.ravel())), np.argsort(np.argsort(truth.ravel()))
    )
    assert ranks[0, 1] > 0.95
    # Another tilt is another picture.
    other = _png(c.get(f"/tiltseries/{ts}/tilts/{info['zero']}.png").content)
    assert not np.array_equal(other, pixels)
    again = c.get(
        f"/tiltseries/{ts}/tilts/{last}.png", headers={"If-None-Match": r.headers["etag"]}
    )
    assert again.status_code == 304 and not again.content
    montage = _png(c.get(f"/tiltseries/{ts}/montage.png").content)
    tile_w, tile_h = info["montage"]["tile"]
    assert montage.shape == (
        info["montage"]["rows"] * (tile_h + 2) - 2,
        info["montage"]["columns"] * (tile_w + 2) - 2,
    )


def test_bad_tilt_requests_are_refused(world):
    pytest.importorskip("cryocurate.web.errors", reason="the web's error boundary (branch errors)")
    c = _client(world)
    ts = world["ts_ids"][0]
    assert c.get(f"/tiltseries/{ts}/tilts/41.png").status_code == 404
    assert c.get("/tiltseries/99999/tilts.json").status_code == 404


def test_a_catalog_path_out_of_the_tree_is_not_served(world, tmp_path):
    """A catalog row naming a file outside the data tree (an import gone wrong, or worse)
    never makes the server read that file."""
    secret = tmp_path / "secret.mrc"
    with mrcfile.new(secret) as m:
        m.set_data(np.full((2, 8, 8), 7, dtype=np.float32))
    with Portal.open(world["root"]) as portal, portal.transaction() as s:
        ts = TiltSeries(run_id=world["run_ids"][0], mrc_file=f"../../../../../..{secret}")
        s.add(ts)
        s.flush()
        bad = ts.id
    try:
        app = create_app(world["root"])
        c = Client(app, "http://portal")
        try:
            r = c.get(f"/tiltseries/{bad}/tilts/0.png")
        except Exception as err:  # no error boundary yet: the refusal surfaces as the error
            assert "no file in this portal" in str(err)
        else:
            assert r.status_code == 404
    finally:
        with Portal.open(world["root"]) as portal, portal.transaction() as s:
            s.delete(s.get(TiltSeries, bad))


def test_one_tilt_costs_the_memory_of_one_tilt(tmp_path):
    """A 40-tilt series of 1024² float32 (160 MB): reading one tilt allocates about one tilt
    (4 MB), not the stack."""
    path = tmp_path / "big.st"
    with mrcfile.new_mmap(path, shape=(40, 1024, 1024), mrc_mode=2) as m:
        for i in range(40):
            m.data[i] = i
    tracemalloc.start()
    try:
        plane = read_section(path, 33)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert plane.shape == (1024, 1024) and float(plane[5, 5]) == 33.0
    assert peak < 12 * 2**20, peak


def test_the_rubric_is_the_seeds_table(world):
    c = _client(world)
    log_in(c, LABELLERS[0])
    body = c.get(f"/api/v1/campaigns/{world['campaign_id']}").json()
    levels = {int(lv["key"]): (lv["name"], lv["description"]) for lv in body["levels"]}
    assert levels[5] == ("Excellent", TILT_SERIES_RUBRIC[5])
    assert levels[1][0] == "Low" and "not alignable" in levels[1][1]
    assert [lv["key"] for lv in body["levels"]] == ["5", "4", "3", "2", "1"]


@pytest.mark.browser
def test_a_labeller_grades_tilt_series_by_keyboard(world, live_server, browser, screenshot_dir):
    root, cid = world["root"], world["campaign_id"]
    url = live_server(
        lambda port: [sys.executable, "-m", "cryocurate", "serve", str(root), "--port", str(port)]
    )
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    try:
        page.goto(url)
        page.click("#login-link")
        page.fill("#email", LABELLERS[0])
        page.fill("#password", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(re.compile(r".*/home$"))
        page.click(f"#home-grading tr[data-campaign-id='{cid}'] a[data-action='grade']")
        page.wait_for_selector("body[data-ready='1']")
        page.wait_for_selector("#stage[data-view='stack'] img.tilt")
        assert page.locator("#levels .level").count() == 5
        first_item = page.get_attribute("#stage", "data-item-id")
        assert page.text_content("#tilt-angle").endswith("+0.0°")
        zero = int(page.get_attribute("#stage", "data-tilt-slot"))
        for _ in range(3):
            page.keyboard.press("ArrowUp")
        page.wait_for_function(
            f"() => document.querySelector('#stage').dataset.tiltSlot === '{zero + 3}'"
        )
        assert page.text_content("#tilt-angle").endswith("+9.0°")
        page.keyboard.press("End")
        page.wait_for_function(
            "() => document.querySelector('#tilt-angle').textContent.endsWith('+60.0°')"
        )
        page.wait_for_function(
            "() => { const i = document.querySelector('#stage img');"
            " return i && i.complete && i.naturalWidth > 0; }"
        )
        page.screenshot(path=screenshot_dir / "grading-tiltseries-stack.png")
        # The montage, and a click on its first tile opens the −60° tilt.
        page.keyboard.press("t")
        page.wait_for_selector("#stage[data-view='montage'] img")
        page.wait_for_function("() => document.querySelector('#stage img').naturalWidth > 0")
        page.screenshot(path=screenshot_dir / "grading-tiltseries-montage.png")
        page.locator("#stage img").click(position={"x": 5, "y": 5})
        page.wait_for_selector("#stage[data-view='stack']")
        assert page.text_content("#tilt-angle").endswith("-60.0°")
        # The rubric is the seed's table.
        page.keyboard.press("?")
        assert "publication ready figures" in page.text_content("#rubric")
        page.keyboard.press("Escape")
        # Grade: 5 for the first, 2 for the second; the screen moves on at each key.
        page.keyboard.press("5")
        page.wait_for_function(
            f"() => document.querySelector('#stage').dataset.itemId !== '{first_item}'"
            " || !document.querySelector('#done').hidden"
        )
        second_item = page.get_attribute("#stage", "data-item-id")
        page.wait_for_selector("#stage img.tilt")
        page.keyboard.press("2")
        page.wait_for_selector("#done:not([hidden])")
        page.wait_for_selector("#save-state[data-state='saved']", timeout=20_000)
        page.screenshot(path=screenshot_dir / "grading-tiltseries-done.png")
    finally:
        context.close()
    with Portal.open(root) as portal, portal.transaction() as s:
        stored = dict(
            s.execute(sa.select(Grade.item_id, Grade.value).where(Grade.campaign_id == cid)).all()
        )
    assert stored == {int(first_item): 5, int(second_item): 2}
