"""Tomography runs and their annotations, through the real CLI, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import mrcfile
import numpy as np
import pytest
import zarr
from PIL import Image
from sqlalchemy import select

from cryocurate.catalog.models import Annotation, Run, TiltSeries, Tomogram
from cryocurate.ingest.datasets import DatasetFields, create_dataset
from cryocurate.portal import Portal
from tests.cli_in_process import cli

from . import tomo_data as td


@pytest.fixture
def root(tmp_path, database_url) -> Path:
    with Portal.create(tmp_path / "portal", database_url=database_url) as p:
        create_dataset(p, DatasetFields(title="Cells", organism_name="Homo sapiens"))
    return tmp_path / "portal"


@pytest.fixture
def centres() -> np.ndarray:
    return td.particle_centres()


@pytest.fixture
def tomo_run(root, tmp_path, centres, capsys) -> int:
    """A tomography run (tomogram + tilt series + angles) ingested through the CLI."""
    tomo = td.write_tomogram(tmp_path / "TS_026.mrc", centres)
    ts = td.write_tilt_series(tmp_path / "TS_026.st")
    angles = td.write_rawtlt(tmp_path / "TS_026.rawtlt")
    code, out, err = cli(
        capsys,
        "ingest",
        "run",
        root,
        "--dataset",
        "10000",
        tomo,
        ts,
        angles,
        "--quality",
        "4",
        "--microscope",
        "TFS",
        "--voltage",
        "300000",
        "--total-dose",
        "120",
    )
    assert code == 0, err
    assert "TS_026" in out
    with Portal.open(root) as p, p.transaction() as s:
        return s.scalars(select(Run.id).where(Run.name == "TS_026")).one()


def test_tomography_run_lands_in_the_seed_layout(root, tomo_run, tmp_path):
    run_dir = root / "data" / "10000" / "TS_026"
    vs_dir = run_dir / "Tomograms" / "VoxelSpacing10.000"
    mrc = vs_dir / "CanonicalTomogram" / "TS_026.mrc"
    assert mrc.read_bytes() == (tmp_path / "TS_026.mrc").read_bytes()
    pyramid = zarr.open_group(str(vs_dir / "CanonicalTomogram" / "TS_026.zarr"), mode="r")
    shapes = [pyramid[str(level)].shape for level in range(3)]
    assert shapes[0] == td.SHAPE_ZYX
    assert shapes[1] == tuple(n // 2 for n in td.SHAPE_ZYX)
    multiscales = pyramid.attrs["multiscales"][0]
    assert [a["unit"] for a in multiscales["axes"]] == ["angstrom"] * 3
    with Image.open(vs_dir / "KeyPhotos" / "key-photo-snapshot.png") as im:
        assert im.mode == "L"
    assert (vs_dir / "KeyPhotos" / "key-photo-thumbnail.png").is_file()
    meta = json.loads((vs_dir / "CanonicalTomogram" / "tomogram_metadata.json").read_text())
    assert meta["voxel_spacing"] == 10.0 and meta["size"] == {"z": 40, "y": 96, "x": 80}
    ts_meta = json.loads((run_dir / "TiltSeries" / "tiltseries_metadata.json").read_text())
    assert ts_meta["tilt_series_quality"] == 4 and ts_meta["tilt_min"] == -60.0
    assert json.loads((run_dir / "run_metadata.json").read_text())["kind"] == "tomography"

    with Portal.open(root) as p, p.transaction() as s:
        tomo = s.scalars(select(Tomogram)).one()
        assert (tomo.size_x, tomo.size_y, tomo.size_z) == (80, 96, 40)
        assert tomo.scale_1_dimensions == "40,48,20"
        ts = s.scalars(select(TiltSeries)).one()
        assert ts.tilt_series_quality == 4 and ts.tilt_step == pytest.approx(3.0)
        assert (ts.tilt_min, ts.tilt_max, ts.tilt_range) == (-60.0, 60.0, 120.0)
        assert ts.microscope_manufacturer == "TFS" and ts.total_flux == 120


def test_run_refusals_are_one_line_and_store_nothing(root, tmp_path, centres, capsys):
    tomo = td.write_tomogram(tmp_path / "t.mrc", centres, voxel_a=None)
    code, _, err = cli(capsys, "ingest", "run", root, "--dataset", "10000", tomo)
    assert code == 2 and "voxel spacing" in err and "--voxel-spacing" in err
    tomo = td.write_tomogram(tmp_path / "t.mrc", centres)
    ts = td.write_tilt_series(tmp_path / "t.st", n=10)
    angles = td.write_rawtlt(tmp_path / "t.rawtlt")
    code, _, err = cli(capsys, "ingest", "run", root, "--dataset", "10000", tomo, ts, angles)
    assert code == 2 and "angles" in err and "10 images" in err
    code, _, err = cli(capsys, "ingest", "run", root, "--dataset", "10000", tomo, "--quality", "7")
    assert code == 2
    code, _, err = cli(capsys, "ingest", "run", root, "--dataset", "10999", tomo)
    assert code == 2 and "no dataset 10999" in err
    assert "Traceback" not in err
    assert not (root / "data" / "10000" / "t").exists()
    staging = root / "data" / ".staging"
    assert not staging.exists() or not any(staging.iterdir())
    code, _, _ = cli(capsys, "ingest", "run", root, "--dataset", "10000", tomo)
    assert code == 0
    code, _, err = cli(capsys, "ingest", "run", root, "--dataset", "10000", tomo)
    assert code == 2 and "already has a run" in err


def _annotate(capsys, root, run_id, path, *extra):
    return cli(
        capsys,
        "ingest",
        "annotation",
        root,
        "--run",
        run_id,
        "--object-name",
        "ribosome",
        "--object-id",
        "GO:0022626",
        path,
        *extra,
    )


def test_point_annotations_are_scored_against_ground_truth(
    root, tomo_run, tmp_path, centres, capsys
):
    # ground truth: the 12 particle centres; predictions: 8 near ones (within 7.5 voxels = 75 Å,
    # half a ribosome's 150 Å radius) and 2 far off
    truth = td.write_points_ndjson(tmp_path / "gt.ndjson", centres)
    near = centres[:8] + np.array([2.0, -1.5, 1.0])
    far = centres[8:10] + np.array([20.0, 0.0, 0.0])
    far[:, 0] = np.clip(far[:, 0], 0, td.SHAPE_ZYX[2] - 1)
    pred = td.write_relion_star(tmp_path / "picks.star", np.vstack([near, far]))

    code, out, err = _annotate(
        capsys, root, tomo_run, pred, "--method-type", "automated", "--method", "template matching"
    )
    assert code == 0, err
    assert "Precision" not in out  # no ground truth yet
    code, out, err = _annotate(
        capsys,
        root,
        tomo_run,
        truth,
        "--method-type",
        "manual",
        "--method",
        "by hand",
        "--ground-truth",
    )
    assert code == 0, err
    assert "Re-scored annotation(s) 1" in out

    with Portal.open(root) as p, p.transaction() as s:
        scored = s.get(Annotation, 1)
        assert scored.confidence_precision == pytest.approx(80.0)  # 8 of 10 predictions
        assert scored.confidence_recall == pytest.approx(100 * 8 / 12)
        assert scored.ground_truth_annotation_id == 2
        assert scored.confidence_rule["match_distance_a"] == 75.0
        assert scored.object_count == 10
    vs_dir = root / "data" / "10000" / "TS_026" / "Tomograms" / "VoxelSpacing10.000"
    files = sorted(p.name for p in (vs_dir / "Annotations").iterdir())
    assert files == [
        "1-ribosome-1.0.json",
        "1-ribosome-1.0_orientedpoint.ndjson",
        "2-ribosome-1.0.json",
        "2-ribosome-1.0_point.ndjson",
    ]
    meta = json.loads((vs_dir / "Annotations" / "1-ribosome-1.0.json").read_text())
    assert meta["confidence"]["precision"] == pytest.approx(80.0)
    assert meta["method_type"] == "automated"
    first = json.loads(
        (vs_dir / "Annotations" / "1-ribosome-1.0_orientedpoint.ndjson").read_text().splitlines()[0]
    )
    assert first["type"] == "orientedPoint" and set(first["location"]) == {"x", "y", "z"}

    # a tighter rule for this object re-scores: the 2.7-voxel offsets no longer match
    code, out, _ = cli(capsys, "objects", "set", root, "GO:0022626", "--match-distance", "20")
    assert code == 0 and "1 annotation(s) re-scored" in out
    with Portal.open(root) as p, p.transaction() as s:
        assert s.get(Annotation, 1).confidence_precision == 0.0


def test_bad_annotation_files_store_nothing(root, tomo_run, tmp_path, centres, capsys):
    outside = centres.copy()
    outside[3, 0] = 500.0
    bad = td.write_points_ndjson(tmp_path / "out.ndjson", outside)
    code, _, err = _annotate(
        capsys, root, tomo_run, bad, "--method-type", "manual", "--method", "m"
    )
    assert code == 2 and "out.ndjson" in err and "Traceback" not in err
    rotations = np.repeat(np.eye(3)[None], len(centres), axis=0)
    rotations[0] = np.diag([1.0, 1.0, -1.0])  # a reflection: det −1
    bad = td.write_points_ndjson(tmp_path / "rot.ndjson", centres, rotations)
    code, _, err = _annotate(
        capsys, root, tomo_run, bad, "--method-type", "manual", "--method", "m"
    )
    assert code == 2 and "rot.ndjson" in err
    mask = td.write_mask(tmp_path / "mask.mrc", centres, shape_zyx=(40, 96, 81))
    code, _, err = _annotate(
        capsys, root, tomo_run, mask, "--method-type", "manual", "--method", "m"
    )
    assert code == 2 and "mask.mrc" in err
    code, _, err = _annotate(
        capsys,
        root,
        tomo_run,
        td.write_points_ndjson(tmp_path / "ok.ndjson", centres),
        "--method-type",
        "guessed",
        "--method",
        "m",
    )
    assert code == 2 and "method type" in err
    with Portal.open(root) as p, p.transaction() as s:
        assert s.scalars(select(Annotation)).all() == []
    vs_dir = root / "data" / "10000" / "TS_026" / "Tomograms" / "VoxelSpacing10.000"
    assert not (vs_dir / "Annotations").exists() or not any((vs_dir / "Annotations").iterdir())


def test_mask_annotations_get_voxel_precision_recall_and_dice(
    root, tomo_run, tmp_path, centres, capsys
):
    truth = td.write_mask(tmp_path / "gt.mrc", centres)
    pred = td.write_mask(tmp_path / "pred.mrc", centres[:6])
    code, _, err = _annotate(
        capsys,
        root,
        tomo_run,
        truth,
        "--method-type",
        "manual",
        "--method",
        "painted",
        "--ground-truth",
    )
    assert code == 0, err
    code, _, err = _annotate(
        capsys, root, tomo_run, pred, "--method-type", "automated", "--method", "U-Net"
    )
    assert code == 0, err
    with mrcfile.open(truth) as t, mrcfile.open(pred) as q:
        t_fg, q_fg = t.data != 0, q.data != 0
        overlap = np.count_nonzero(t_fg & q_fg)
        want_recall = 100 * overlap / np.count_nonzero(t_fg)
        want_dice = 2 * overlap / (np.count_nonzero(t_fg) + np.count_nonzero(q_fg))
    with Portal.open(root) as p, p.transaction() as s:
        a = s.get(Annotation, 2)
        assert a.confidence_precision == pytest.approx(100.0)
        assert a.confidence_recall == pytest.approx(want_recall)
        assert a.confidence_rule["dice"] == pytest.approx(want_dice)
    vs_dir = root / "data" / "10000" / "TS_026" / "Tomograms" / "VoxelSpacing10.000"
    assert (vs_dir / "Annotations" / "2-ribosome-1.0_segmentationmask.zarr").is_dir()
    assert (vs_dir / "Annotations" / "2-ribosome-1.0_segmentationmask.mrc").is_file()


@pytest.mark.parametrize("kind", ["instance", "copick", "csv"])
def test_every_point_format_is_ingested_as_portal_ndjson(
    root, tomo_run, tmp_path, centres, capsys, kind
):
    if kind == "instance":
        path = tmp_path / "inst.ndjson"
        path.write_text(
            "".join(
                json.dumps(
                    {
                        "type": "instancePoint",
                        "location": {"x": x, "y": y, "z": z},
                        "instance_id": i // 3,
                    }
                )
                + "\n"
                for i, (x, y, z) in enumerate(centres.tolist())
            )
        )
        want_type, want_count, suffix = "instancePoint", 4, "instancesegmentation"
    elif kind == "copick":
        path = tmp_path / "picks.json"
        path.write_text(
            json.dumps(
                {
                    "pickable_object_name": "ribosome",
                    "user_id": "me",
                    "session_id": "0",
                    "run_name": "TS_026",
                    "voxel_spacing": td.VOXEL_A,
                    "unit": "angstrom",
                    "points": [
                        {
                            "location": {
                                "x": x * td.VOXEL_A,
                                "y": y * td.VOXEL_A,
                                "z": z * td.VOXEL_A,
                            },
                            "transformation_": np.eye(4).tolist(),
                            "instance_id": 0,
                            "score": 1.0,
                        }
                        for x, y, z in centres.tolist()
                    ],
                }
            )
        )
        # identity transforms and instance 0 everywhere: plain points, as copick means them
        want_type, want_count, suffix = "point", 12, "point"
    else:
        path = tmp_path / "picks.csv"
        path.write_text("x,y,z\n" + "".join(f"{x},{y},{z}\n" for x, y, z in centres.tolist()))
        want_type, want_count, suffix = "point", 12, "point"
    code, out, err = _annotate(
        capsys, root, tomo_run, path, "--method-type", "manual", "--method", "by hand"
    )
    assert code == 0, err
    assert f"{want_count} object(s)" in out
    vs_dir = root / "data" / "10000" / "TS_026" / "Tomograms" / "VoxelSpacing10.000"
    stored = vs_dir / "Annotations" / f"1-ribosome-1.0_{suffix}.ndjson"
    rows = [json.loads(line) for line in stored.read_text().splitlines()]
    assert len(rows) == 12 and {r["type"] for r in rows} == {want_type}
    got = np.array([[r["location"][k] for k in "xyz"] for r in rows])
    np.testing.assert_allclose(got, centres, atol=1e-6)
