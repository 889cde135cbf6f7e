"""Extraction into a portal root: what lands on disk and in the catalog, on both databases."""

from __future__ import annotations

import json
import math
import shutil

import mrcfile
import numpy as np
import pytest
from PIL import Image
from sqlalchemy import select

from cryocurate.catalog.models import Class2DJob, ClassAverage, Dataset, Run
from cryocurate.ingest.datasets import DatasetChoice, DatasetFields
from cryocurate.ingest.discover import find_job
from cryocurate.ingest.extract import Extraction
from cryocurate.store import layout
from cryocurate.synth import synth_cryosparc

from .conftest import tree_state, truth

CLASS_FIELDS = {
    "class_index",
    "resolution_A",
    "particle_count",
    "class_fraction",
    "mean_posterior",
    "mean_ess",
    "accuracy_rotations",
    "accuracy_translations_A",
    "pixel_size_A",
    "mass_estimate",
    "dmean_mass",
    "dmedian_mass",
    "dmode_mass",
}
JOB_FIELDS = {
    "software",
    "project_uid",
    "job_uid",
    "iteration",
    "pixel_size_A",
    "box_size",
    "n_classes",
    "n_particles",
    "source_path",
    "sha256",
    "extracted_at",
    "cryocurate_version",
    "classes",
}


def extract(portal, jobs, dataset="Test dataset", **kw):
    fields = kw.pop("fields", DatasetFields())
    return Extraction(portal, DatasetChoice(dataset, fields), **kw).run(jobs)


@pytest.mark.parametrize("kind", ["cryosparc", "cryosparc_csdat", "cryosparc_legacy"])
def test_cryosparc_job_lands_in_the_portal_layout(portal, job, kind):
    d = job(kind)
    files = find_job(d)
    [outcome] = extract(portal, [d], fields=DatasetFields(lab="Lander lab"))
    assert outcome.status == "new", outcome.message
    run_dir = layout.run_dir(portal.data_dir, outcome.dataset_id, outcome.run_name)
    assert outcome.dataset_id == 10000
    ds_meta = json.loads((run_dir.parent / "dataset_metadata.json").read_text())
    assert ds_meta["dataset_title"] == "Test dataset" and ds_meta["lab"] == "Lander lab"
    assert json.loads((run_dir / "run_metadata.json").read_text())["run_name"] == outcome.run_name

    meta = json.loads((run_dir / "ClassAverages/class_averages_metadata.json").read_text())
    assert set(meta) >= JOB_FIELDS
    assert meta["software"] == "cryosparc" and meta["iteration"] == files.iteration
    assert set(meta["sha256"]) == {f.name for f in files.inputs}
    expected = truth(d)
    assert meta["n_classes"] == len(expected) == len(meta["classes"])
    assert meta["n_particles"] == sum(int(t["particle_count"]) for t in expected)
    for row, want in zip(meta["classes"], expected, strict=True):
        assert set(row) >= CLASS_FIELDS
        assert row["class_index"] == int(want["class_index"])
        # class identity from blob/idx: the counts match the class the synth intended
        assert row["particle_count"] == int(want["particle_count"])
        assert row["class_fraction"] == pytest.approx(row["particle_count"] / meta["n_particles"])
        want_res = float(want["resolution_A"])
        if math.isfinite(want_res):
            assert row["resolution_A"] == pytest.approx(want_res, rel=1e-5)
        else:
            assert row["resolution_A"] is None
        assert row["accuracy_rotations"] is None  # RELION-only
        if row["particle_count"] == 0:
            assert row["mean_posterior"] is None
        else:
            assert 0 < row["mean_posterior"] <= 1
    assert any(r["particle_count"] == 0 for r in meta["classes"]), "empty classes are kept"

    # the stack: float32, values unchanged, pixel size in the header
    with mrcfile.open(files.averages, permissive=True) as src:
        original = np.array(src.data)
    with mrcfile.open(run_dir / "ClassAverages/class_averages.mrcs") as out:
        assert out.data.dtype == np.float32
        np.testing.assert_array_equal(out.data, original)
        assert out.voxel_size.x == pytest.approx(meta["pixel_size_A"], rel=1e-5)
    # previews: lossless 8-bit PNGs, one per class, zero-padded names
    pngs = sorted((run_dir / "ClassAverages/Images").iterdir())
    assert [p.name for p in pngs] == [f"class_{k:04d}.png" for k in range(meta["n_classes"])]
    with Image.open(pngs[0]) as im:
        assert im.format == "PNG" and im.mode == "L" and im.size == (meta["box_size"],) * 2

    # the catalog says the same
    with portal.transaction() as s:
        run = s.scalars(select(Run)).one()
        assert run.kind.value == "class2d" and run.name == outcome.run_name
        assert s.get(Class2DJob, run.id).fingerprint == meta["fingerprint"]
        rows = s.scalars(select(ClassAverage).order_by(ClassAverage.class_index)).all()
        assert [r.particle_count for r in rows] == [c["particle_count"] for c in meta["classes"]]


@pytest.mark.parametrize("kind", ["relion", "relion30", "relion_continued"])
def test_relion_job(portal, job, kind):
    d = job(kind)
    [outcome] = extract(portal, [d])
    assert outcome.status == "new", outcome.message
    assert outcome.run_name == d.name
    run_dir = layout.run_dir(portal.data_dir, outcome.dataset_id, outcome.run_name)
    meta = json.loads((run_dir / "ClassAverages/class_averages_metadata.json").read_text())
    assert meta["software"] == "relion"
    expected = truth(d)
    for row, want in zip(meta["classes"], expected, strict=True):
        assert row["particle_count"] == int(want["particle_count"])
        assert row["mean_posterior"] is None and row["mean_ess"] is None
        if row["particle_count"] == 0:  # RELION's 999 means "not estimated"
            assert row["resolution_A"] is None and row["accuracy_rotations"] is None
        else:
            assert row["accuracy_rotations"] is not None
            assert row["accuracy_translations_A"] is not None


def test_png_contrast_is_robust_and_row_zero_on_top(sqlite_portal, job):
    d = job("cryosparc")
    files = find_job(d)
    with mrcfile.open(files.averages, mode="r+", permissive=True) as m:
        data = np.array(m.data)
        img = np.zeros_like(data[0])
        img[: img.shape[0] // 4] = 1.0  # a bright band at the top
        img[-1, -1] = 1e6  # one hot pixel must not wash the picture out
        data[0] = img
        m.set_data(data)
    [outcome] = extract(sqlite_portal, [d])
    run_dir = layout.run_dir(sqlite_portal.data_dir, outcome.dataset_id, outcome.run_name)
    pixels = np.asarray(Image.open(run_dir / "ClassAverages/Images/class_0000.png"))
    assert pixels[0].mean() == 255 and pixels[-2].mean() == 0


def test_rerun_is_unchanged_and_rewrites_nothing(portal, job):
    d = job("cryosparc")
    extract(portal, [d])
    before = tree_state(portal.data_dir)
    [again] = extract(portal, [d], dataset="10000")
    assert again.status == "unchanged"
    for f in find_job(d).inputs:  # touched, same bytes: hashed again, still unchanged
        f.touch()
    [touched] = extract(portal, [d], dataset="Test dataset")
    assert touched.status == "unchanged"
    assert tree_state(portal.data_dir) == before


def test_changed_job_replaces_its_run_without_stale_files(portal, job, tmp_path):
    d = job("cryosparc")
    [first] = extract(portal, [d])
    # the job is re-run in place with fewer classes
    shutil.rmtree(d)
    synth_cryosparc(d, n_classes=8, box=48, n_particles=2000, seed=99, project_uid="P3")
    [second] = extract(portal, [d])
    assert second.status == "replaced" and second.run_id == first.run_id
    run_dir = layout.run_dir(portal.data_dir, second.dataset_id, second.run_name)
    assert len(list((run_dir / "ClassAverages/Images").iterdir())) == 8
    with portal.transaction() as s:
        assert s.scalar(select(Run.id).where(Run.name == second.run_name)) == first.run_id
        assert len(s.scalars(select(ClassAverage)).all()) == 8
    assert not (portal.data_dir / ".swaps").exists() or not any(
        (portal.data_dir / ".swaps").iterdir()
    )
    assert not any((portal.data_dir / ".staging").iterdir())


def test_parallel_extraction_of_several_jobs(portal, job):
    dirs = [job("cryosparc"), job("relion"), job("cryosparc_csdat"), job("relion30")]
    outcomes = extract(portal, dirs, workers=2)
    assert sorted(o.status for o in outcomes) == ["new"] * 4
    with portal.transaction() as s:
        assert len(s.scalars(select(Run)).all()) == 4
        assert len(s.scalars(select(Dataset)).all()) == 1


def test_same_run_name_from_another_job_gets_its_own_run(sqlite_portal, job):
    a = job("relion", name="a")
    b = job("relion", name="b")  # another project's job006
    (b / "note.txt").write_text("different")
    outcomes = extract(sqlite_portal, [a, b])
    assert sorted(o.run_name for o in outcomes) == ["job006", "job006-2"]


def test_failed_jobs_leave_no_dataset(sqlite_portal, tmp_path):
    (tmp_path / "empty").mkdir()
    [outcome] = extract(sqlite_portal, [tmp_path / "empty"], dataset="Never made")
    assert outcome.status == "error"
    with sqlite_portal.transaction() as s:
        assert s.scalars(select(Dataset)).all() == []
    assert [p.name for p in sqlite_portal.data_dir.iterdir() if not p.name.startswith(".")] == []
