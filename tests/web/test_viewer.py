"""View Tomogram: slice, points and outline endpoints, and the viewer driven in Chromium."""

from __future__ import annotations

import io
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from cryocurate.web.pages.viewer import outline
from tests.ingest import tomo_data as td
from tests.web.test_run_pages import build_portal, serve


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, Any]:
    return build_portal(tmp_path_factory.mktemp("viewer"))


@pytest.fixture(scope="module")
def server(built, live_server_module) -> str:
    return serve(live_server_module, built["root"])


def test_outline_of_a_square():
    mask = np.zeros((7, 7), dtype=np.int8)
    mask[2:5, 2:5] = 1
    edge = outline(mask)
    assert edge.sum() == 8 and not edge[3, 3]


def test_viewer_json_and_endpoints(server, built):
    data = httpx.get(f"{server}/runs/{built['run']}/view.json").json()
    assert data["tomogram"]["id"] == built["tomogram"]
    assert [lv["shape_zyx"] for lv in data["viewer"]["levels"]] == [
        [40, 96, 80],
        [20, 48, 40],
        [10, 24, 20],
    ]
    visible = {layer["annotation_id"]: layer["visible"] for layer in data["layers"]}
    assert visible == {built["gt"]: True, built["pred"]: False, built["mask"]: False}
    same = httpx.get(f"{server}/tomograms/{built['tomogram']}/view.json").json()
    assert same["viewer"] == data["viewer"]
    assert httpx.get(f"{server}/runs/999999/view").status_code == 404

    r = httpx.get(f"{server}/tomograms/{built['tomogram']}/slice.png?z=20&level=0")
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    img = Image.open(io.BytesIO(r.content))
    assert img.size == (80, 96) and img.mode == "L"
    small = Image.open(
        io.BytesIO(
            httpx.get(f"{server}/tomograms/{built['tomogram']}/slice.png?z=5&level=2").content
        )
    )
    assert small.size == (20, 24)
    assert httpx.get(f"{server}/tomograms/{built['tomogram']}/slice.png?z=40").status_code == 404
    assert (
        httpx.get(f"{server}/tomograms/{built['tomogram']}/slice.png?z=0&level=3").status_code
        == 404
    )

    pts = httpx.get(f"{server}/annotations/{built['pred']}/points.json").json()
    assert pts["kind"] == "orientedPoint" and pts["count"] == 12 and len(pts["x_axes"]) == 12
    assert all(abs(np.linalg.norm(a) - 1) < 1e-3 for a in pts["x_axes"])
    some = httpx.get(f"{server}/annotations/{built['gt']}/points.json?z0=0&z1=20").json()
    assert some["x_axes"] is None and all(z < 20 for _, _, z in some["xyz"])

    # the mask's outline around a particle centre, in the colour asked for
    cx, cy, cz = td.particle_centres()[0]
    r = httpx.get(
        f"{server}/annotations/{built['mask']}/outline.png?z={round(cz)}&level=0&colour=00ff00"
    )
    rgba = np.asarray(Image.open(io.BytesIO(r.content)))
    assert rgba.shape == (96, 80, 4)
    ys, xs = np.nonzero(rgba[..., 3])
    assert len(xs) > 0 and (rgba[ys, xs, :3] == (0, 255, 0)).all()
    assert np.min(np.hypot(xs - cx, ys - cy)) < 8
    assert httpx.get(f"{server}/annotations/{built['gt']}/outline.png?z=1").status_code == 404
    assert httpx.get(f"{server}/annotations/{built['mask']}/points.json").status_code == 404


def _open(page, server: str, built: dict[str, Any]):
    page.goto(f"{server}/runs/{built['run']}")
    page.get_by_role("link", name="View Tomogram").click()
    canvas = page.get_by_role("img", name="Slice of tomogram TS_026", exact=False)
    page.wait_for_function("() => document.getElementById('viewer-canvas').dataset.ready === '1'")
    return canvas


def _data(page, name: str) -> str:
    return page.evaluate(f"() => document.getElementById('viewer-canvas').dataset.{name}")


@pytest.mark.browser
def test_viewer_in_the_browser(server, built, page, screenshot_dir):
    canvas = _open(page, server, built)
    assert page.url.endswith(f"/runs/{built['run']}/view")
    assert _data(page, "z") == "20"
    # only the ground truth is shown by default
    assert page.get_by_label("cytosolic ribosome · Point · ground truth", exact=False).is_checked()
    assert not page.get_by_label("OrientedPoint", exact=False).is_checked()
    assert not page.get_by_label("SegmentationMask", exact=False).is_checked()
    page.wait_for_function(
        "() => Number(document.getElementById('viewer-canvas').dataset.drawnPoints) > 0"
    )
    gt_points = int(_data(page, "drawnPoints"))

    # keyboard: z up and down
    canvas.focus()
    page.keyboard.press("ArrowUp")
    page.wait_for_function("() => document.getElementById('viewer-canvas').dataset.z === '21'")
    page.keyboard.press("PageDown")
    page.wait_for_function("() => document.getElementById('viewer-canvas').dataset.z === '11'")
    page.keyboard.press("PageUp")
    page.wait_for_function("() => document.getElementById('viewer-canvas').dataset.z === '21'")
    page.keyboard.press("ArrowDown")
    page.wait_for_function("() => document.getElementById('viewer-canvas').dataset.z === '20'")
    assert page.get_by_label("Slice (z)").input_value() == "20"

    # layers on and off change what is drawn
    page.get_by_label("OrientedPoint", exact=False).check()
    page.wait_for_function(
        f"() => Number(document.getElementById('viewer-canvas').dataset.drawnPoints) > {gt_points}"
    )
    page.get_by_label("cytosolic ribosome · Point · ground truth", exact=False).uncheck()
    page.wait_for_function(
        "() => document.getElementById('viewer-canvas').dataset.visibleLayers === "
        f"'{built['pred']}'"
    )
    assert int(_data(page, "drawnPoints")) > 0
    assert _data(page, "drawnMasks") == "0"
    page.get_by_label("SegmentationMask", exact=False).check()
    page.wait_for_function(
        "() => document.getElementById('viewer-canvas').dataset.drawnMasks === '1'"
    )
    page.get_by_label("OrientedPoint", exact=False).uncheck()
    page.wait_for_function(
        "() => document.getElementById('viewer-canvas').dataset.drawnPoints === '0'"
    )
    page.get_by_label("cytosolic ribosome · Point · ground truth", exact=False).check()
    page.wait_for_function(
        f"() => document.getElementById('viewer-canvas').dataset.drawnPoints === '{gt_points}'"
    )

    # zoom with the keyboard and the buttons
    canvas.focus()
    zoom0 = float(_data(page, "zoom"))
    page.keyboard.press("+")
    assert float(_data(page, "zoom")) == pytest.approx(zoom0 * 1.25, rel=1e-3)
    page.get_by_role("button", name="Zoom out").click()
    assert float(_data(page, "zoom")) == pytest.approx(zoom0, rel=1e-3)
    # wheel scrolls z
    canvas.hover()
    page.mouse.wheel(0, 120)
    page.wait_for_function("() => document.getElementById('viewer-canvas').dataset.z === '21'")
    # a coarser level keeps the place
    page.get_by_label("Resolution").select_option("1")
    page.wait_for_function(
        "() => document.getElementById('viewer-canvas').dataset.level === '1'"
        " && document.getElementById('viewer-canvas').dataset.ready === '1'"
    )
    assert _data(page, "z") in ("10", "11")
    page.get_by_label("Resolution").select_option("0")
    page.wait_for_function(
        "() => document.getElementById('viewer-canvas').dataset.ready === '1'"
        " && document.getElementById('viewer-canvas').dataset.level === '0'"
    )
    page.keyboard.press("ArrowDown")
    page.wait_for_function("() => document.getElementById('viewer-canvas').dataset.ready === '1'")
    page.get_by_label("OrientedPoint", exact=False).check()
    page.get_by_label("Contrast").fill("1.6")
    page.wait_for_timeout(300)  # let the outline and prefetched slices settle
    page.screenshot(path=screenshot_dir / "viewer.png", full_page=True)


@pytest.mark.browser
def test_a_new_slice_shows_within_50_ms(server, built, page):
    canvas = _open(page, server, built)
    canvas.focus()
    page.keyboard.press("Home")
    page.wait_for_function("() => document.getElementById('viewer-canvas').dataset.z === '0'")
    page.evaluate("() => { window.viewerTimings.length = 0; }")
    for i in range(1, 21):
        # neighbours are prefetched after every draw: wait until the next slice is decoded
        page.wait_for_timeout(120)
        page.keyboard.press("ArrowUp")
        page.wait_for_function(
            f"() => document.getElementById('viewer-canvas').dataset.z === '{i}'"
            " && document.getElementById('viewer-canvas').dataset.ready === '1'"
        )
    page.wait_for_function("() => window.viewerTimings.length >= 20")
    timings = page.evaluate("() => window.viewerTimings")
    frames = sorted(t["frame_ms"] for t in timings)
    p95 = frames[int(0.95 * (len(frames) - 1))]
    print(f"slice after key press: p95 {p95:.1f} ms, max {frames[-1]:.1f} ms (to next frame)")
    assert p95 < 50, timings
    marks = page.evaluate("() => performance.getEntriesByName('viewer-key').length")
    assert marks >= 20
