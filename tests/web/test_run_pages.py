"""Run Overview pages: the query, the JSON twin, and the page opened in Chromium."""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from cryocurate.catalog.run_pages import default_layers, run_overview, viewer_setup
from cryocurate.ingest.annotations import AnnotationSpec, ingest_annotation
from cryocurate.ingest.datasets import DatasetChoice, DatasetFields, create_dataset
from cryocurate.ingest.extract import Extraction
from cryocurate.ingest.objects import set_object
from cryocurate.ingest.tomography import Acquisition, RunFiles, ingest_run
from cryocurate.portal import Portal
from cryocurate.synth import synth_cryosparc
from tests.ingest import tomo_data as td


def build_portal(base: Path, database_url: str | None = None) -> dict[str, Any]:
    """A portal with a tomography run (ground-truth points, predicted oriented points, a mask)
    and a 2D classification run. Returns the ids."""
    src = base / "src"
    src.mkdir(parents=True)
    centres = td.particle_centres()
    tomo = td.write_tomogram(src / "TS_026.mrc", centres)
    ts = td.write_tilt_series(src / "TS_026.st")
    angles = td.write_rawtlt(src / "TS_026.rawtlt")
    truth = td.write_points_ndjson(src / "truth.ndjson", centres)
    rng = np.random.default_rng(5)
    predicted_xyz = np.vstack([centres[:9] + rng.normal(0, 0.5, (9, 3)), centres[9:] + 20])
    predicted_xyz = np.clip(predicted_xyz, 1, np.array(td.SHAPE_ZYX[::-1]) - 2)
    rotations = Rotation.random(len(predicted_xyz), random_state=1).as_matrix()
    pred = td.write_points_ndjson(src / "pred.ndjson", predicted_xyz, rotations)
    mask = td.write_mask(src / "cytoplasm.mrc", centres, radius=6.0)
    cs = synth_cryosparc(base / "jobs" / "J12", n_classes=12, box=48, n_particles=3000, seed=3)
    kwargs = {"database_url": database_url} if database_url else {}
    with Portal.create(base / "portal", **kwargs) as portal:
        dataset_id = create_dataset(
            portal, DatasetFields(title="HeLa cells", organism_name="Homo sapiens")
        )
        run = ingest_run(
            portal,
            dataset_id,
            RunFiles(tomogram=tomo, tilt_series=ts, angles=angles),
            acquisition=Acquisition(
                tilt_series_quality=4,
                microscope_manufacturer="TFS",
                microscope_model="Krios",
                acceleration_voltage=300000,
                total_flux=120,
            ),
        )
        ribosome = {"object_name": "cytosolic ribosome", "object_id": "GO:0022626"}
        gt = ingest_annotation(
            portal,
            run.run_id,
            truth,
            AnnotationSpec(
                **ribosome,
                method_type="manual",
                method="by hand",
                ground_truth=True,
                authors=["Ada Picker"],
            ),
        )
        pr = ingest_annotation(
            portal,
            run.run_id,
            pred,
            AnnotationSpec(
                **ribosome, method_type="automated", method="template matching", software="pytom"
            ),
        )
        mk = ingest_annotation(
            portal,
            run.run_id,
            mask,
            AnnotationSpec(
                object_name="cytoplasm",
                object_id="GO:0005737",
                method_type="automated",
                method="U-Net",
            ),
        )
        set_object(portal, "GO:0022626", radius_a=40.0)  # 4 voxels; matched within 2
        Extraction(portal, DatasetChoice("Spliceosome, Lab A", DatasetFields(lab="Lab A"))).run(
            [cs]
        )
        with portal.transaction() as s:
            from sqlalchemy import select

            from cryocurate.catalog.models import Run

            class_run = s.scalars(select(Run.id).where(Run.name == "P1_J12")).one()
    return {
        "root": base / "portal",
        "run": run.run_id,
        "tomogram": run.tomogram_id,
        "gt": gt.annotation_id,
        "pred": pr.annotation_id,
        "mask": mk.annotation_id,
        "class_run": class_run,
    }


def serve(live_server, root: Path) -> str:
    return live_server(
        lambda port: [sys.executable, "-m", "cryocurate", "serve", str(root), "--port", str(port)]
    )


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, Any]:
    return build_portal(tmp_path_factory.mktemp("runpages"))


@pytest.fixture(scope="module")
def server(built, live_server_module) -> str:
    return serve(live_server_module, built["root"])


# ── queries, on SQLite and PostgreSQL ───────────────────────────────────────────────────────


def test_run_overview_query(tmp_path, database_url):
    ids = build_portal(tmp_path, database_url)
    with Portal.open(ids["root"]) as portal, portal.transaction() as s:
        ctx = run_overview(s, ids["run"])
        assert ctx is not None
        assert run_overview(s, 999_999) is None
        assert ctx["run"]["kind"] == "tomography"
        assert ctx["quality"]["score"] == 4
        assert ctx["summary"]["Microscope"] == "TFS Krios"
        files = {f["type"]: f["count"] for f in ctx["files"]}
        assert files["Tomogram (MRC)"] == 1 and files["Annotation (ndjson)"] == 2
        assert files["Annotation (mrc)"] == 1 and files["Tilt series (MRC)"] == 1
        rows = {a["id"]: a for a in ctx["annotations"]}
        assert rows[ids["gt"]]["ground_truth_status"] is True
        pred = rows[ids["pred"]]
        assert pred["shape_types"] == ["OrientedPoint"]
        assert pred["confidence_precision"] == pytest.approx(75.0)
        assert pred["confidence_recall"] == pytest.approx(75.0)
        assert pred["download"]["format"] == "ndjson"
        assert rows[ids["mask"]]["download"]["format"] == "mrc"
        assert pred["metadata"]["annotation_software"] == "pytom"
        assert ctx["classes"] == []

        classes = run_overview(s, ids["class_run"])
        assert classes is not None and len(classes["classes"]) == 12
        assert all(c["grade"] is None and c["grades"] == [] for c in classes["classes"])

        setup = viewer_setup(s, run_id=ids["run"])
        assert setup is not None
        shown = {layer["annotation_id"] for layer in setup["layers"] if layer["visible"]}
        # ground truth before predictions; no cytoplasm mask over the picks
        assert shown == {ids["gt"]}
        assert viewer_setup(s, tomogram_id=ids["tomogram"])["tomogram"]["id"] == ids["tomogram"]


def _layer(aid: int, kind: str, obj: str, gt: bool = False, cur: bool = False) -> dict[str, Any]:
    return {
        "annotation_id": aid,
        "kind": kind,
        "object_id": obj,
        "ground_truth_status": gt,
        "is_curator_recommended": cur,
    }


def test_default_layers_rule():
    # a lone mask is shown
    assert default_layers([_layer(1, "mask", "GO:1")]) == {1}
    # predictions alone: the first of each object is shown
    assert default_layers([_layer(1, "points", "A"), _layer(2, "points", "A")]) == {1}
    # ground truth first; masks hidden under picks unless a curator recommended them
    layers = [
        _layer(1, "points", "A"),
        _layer(2, "points", "A", gt=True),
        _layer(3, "points", "B"),
        _layer(4, "mask", "C"),
        _layer(5, "mask", "D", cur=True),
    ]
    assert default_layers(layers) == {2, 3, 5}


# ── JSON twins ──────────────────────────────────────────────────────────────────────────────


def test_run_json_twin(server, built):
    data = httpx.get(f"{server}/runs/{built['run']}.json").json()
    assert data["run"]["name"] == "TS_026"
    assert [a["id"] for a in data["annotations"]] == [built["gt"], built["pred"], built["mask"]]
    same = httpx.get(f"{server}/runs/{built['run']}", headers={"Accept": "application/json"})
    assert same.json() == data
    assert httpx.get(f"{server}/runs/999999.json").status_code == 404
    html = httpx.get(f"{server}/runs/{built['run']}")
    assert html.headers["content-type"].startswith("text/html") and "Annotations" in html.text
    cls = httpx.get(f"{server}/runs/{built['class_run']}.json").json()
    assert cls["run"]["kind"] == "class2d" and len(cls["classes"]) == 12
    img = httpx.get(server + cls["classes"][0]["image_url"])
    assert img.status_code == 200 and img.headers["content-type"] == "image/png"


# ── in the browser ──────────────────────────────────────────────────────────────────────────


@pytest.mark.browser
def test_run_page_in_the_browser(server, built, page, screenshot_dir, tmp_path):
    page.goto(f"{server}/runs/{built['run']}")
    page.get_by_role("heading", name="TS_026").wait_for()
    assert "4/5" in page.locator(".quality").inner_text()
    table = page.get_by_role("table", name="Annotations")
    header = table.locator("thead").inner_text()
    for col in (
        "Annotation ID",
        "Object",
        "Shape type",
        "Method type",
        "Precision",
        "Recall",
        "Ground truth",
    ):
        assert col in header
    pred_row = page.locator(f"#annotation-{built['pred']}")
    assert "75.0%" in pred_row.inner_text() and "OrientedPoint" in pred_row.inner_text()
    assert "Ground truth" in page.locator(f"#annotation-{built['gt']}").inner_text()
    assert "NA" in page.locator(f"#annotation-{built['mask']}").inner_text()

    # info panel
    info = page.get_by_role("button", name=f"Info about annotation {built['pred']}")
    panel = page.get_by_role("region", name=f"Metadata of annotation {built['pred']}")
    assert not panel.is_visible()
    info.click()
    panel.wait_for()
    assert info.get_attribute("aria-expanded") == "true"
    assert "pytom" in panel.inner_text() and "template matching" in panel.inner_text()

    # a download button
    with page.expect_download() as dl_info:
        page.get_by_role("link", name=f"Download annotation {built['gt']} (ndjson)").click()
    download = dl_info.value
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    assert saved.name.endswith("_point.ndjson")
    assert len(saved.read_text().splitlines()) == 12

    page.screenshot(path=screenshot_dir / "run.png", full_page=True)

    # the Download Run dialog
    page.get_by_role("button", name="Download Run").click()
    dialog = page.get_by_role("dialog", name="Download Run TS_026")
    dialog.wait_for()
    link = dialog.get_by_role("link", name="Download tomogram")
    assert link.get_attribute("href").endswith("TS_026.mrc")
    dialog.get_by_label("OME-Zarr").check()
    assert link.get_attribute("href") == f"/download/tomogram/{built['tomogram']}.zip"
    dialog.get_by_label("MRC").check()
    with page.expect_download() as dl_info:
        link.click()
    assert dl_info.value.suggested_filename == "TS_026.mrc"
    with page.expect_download() as run_zip:
        dialog.get_by_role("link", name="The whole run as a zip").click()
    saved = tmp_path / "run.zip"
    run_zip.value.save_as(saved)
    names = zipfile.ZipFile(saved).namelist()
    assert any(n.endswith("TS_026/run_metadata.json") for n in names)
    assert any(n.endswith("CanonicalTomogram/TS_026.mrc") for n in names)
    assert "Annotation.find" in dialog.inner_text()
    dialog.get_by_role("button", name="Close").click()
    assert not dialog.is_visible()


@pytest.mark.browser
def test_class_gallery_sorts(server, built, page, screenshot_dir):
    page.goto(f"{server}/runs/{built['class_run']}")
    gallery = page.get_by_role("list", name="Class averages of P1_J12")
    cards = gallery.get_by_role("listitem")
    assert cards.count() == 12
    page.wait_for_function(
        "() => [...document.images].every(i => i.complete && i.naturalWidth > 0)"
    )

    def values(attr: str) -> list[float]:
        return [
            float(v) if v else float("inf")
            for v in cards.evaluate_all(f"els => els.map(e => e.dataset.{attr})")
        ]

    assert values("class_index") == sorted(values("class_index"))
    page.get_by_label("Sort by").select_option("particle_count")
    counts = values("particle_count")
    assert counts == sorted(counts, reverse=True)
    page.get_by_label("Sort by").select_option("resolution_a")
    res = values("resolution_a")
    assert res == sorted(res)
    page.get_by_role("button", name="Reverse the order (now ascending)").click()
    finite = [r for r in values("resolution_a") if r != float("inf")]
    assert finite == sorted(finite, reverse=True)
    page.get_by_label("Sort by").select_option("class_index")
    assert values("class_index") == sorted(values("class_index"))
    assert "No grades yet." in page.locator(".class-gallery").inner_text()
    assert "Not graded in any campaign yet." in page.locator(".grading-summary").inner_text()
    page.screenshot(path=screenshot_dir / "run-class2d.png", full_page=True)


def test_run_zip_still_downloads(server, built, tmp_path):
    # the dialog's "whole run" link
    r = httpx.get(f"{server}/download/run/{built['run']}.zip", timeout=60)
    assert r.status_code == 200
    (tmp_path / "r.zip").write_bytes(r.content)
    names = zipfile.ZipFile(tmp_path / "r.zip").namelist()
    assert any(n.endswith("TS_026.mrc") for n in names)
