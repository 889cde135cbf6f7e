"""cryoSPARC job folders from ``synth_cryosparc``: names, fields, dtypes, counts, traps."""

from __future__ import annotations

import csv
import io
import json
import math
import re
import time
from pathlib import Path

import mrcfile
import numpy as np
import pytest
from cryosparc.dataset import Dataset

from cryocurate.errors import FormatError, InputError, MissingFileError
from cryocurate.synth import synth_cryosparc
from cryocurate.synth.cryosparc import total_rows
from cryocurate.synth.particles import CHUNK_ROWS

SMALL = {"n_classes": 12, "box": 48, "n_particles": 3000}

PARTICLE_FIELDS = [
    ("uid", "<u8", ()),
    ("blob/path", "S", ()),
    ("blob/idx", "<u4", ()),
    ("blob/shape", "<u4", (2,)),
    ("blob/psize_A", "<f4", ()),
    ("blob/sign", "<f4", ()),
    ("ctf/type", "S", ()),
    ("ctf/exp_group_id", "<u4", ()),
    ("ctf/accel_kv", "<f4", ()),
    ("ctf/cs_mm", "<f4", ()),
    ("ctf/amp_contrast", "<f4", ()),
    ("ctf/df1_A", "<f4", ()),
    ("ctf/df2_A", "<f4", ()),
    ("ctf/df_angle_rad", "<f4", ()),
    ("ctf/phase_shift_rad", "<f4", ()),
    ("ctf/scale", "<f4", ()),
    ("ctf/scale_const", "<f4", ()),
    ("ctf/shift_A", "<f4", (2,)),
    ("ctf/tilt_A", "<f4", (2,)),
    ("ctf/trefoil_A", "<f4", (2,)),
    ("ctf/tetra_A", "<f4", (4,)),
    ("ctf/anisomag", "<f4", (4,)),
    ("ctf/bfactor", "<f4", ()),
    ("alignments2D/split", "<u4", ()),
    ("alignments2D/shift", "<f4", (2,)),
    ("alignments2D/pose", "<f4", ()),
    ("alignments2D/psize_A", "<f4", ()),
    *[
        (f"alignments2D/{n}", "<f4", ())
        for n in (
            "error",
            "error_min",
            "resid_pow",
            "slice_pow",
            "image_pow",
            "cross_cor",
            "alpha",
            "alpha_min",
            "weight",
            "pose_ess",
            "shift_ess",
            "class_posterior",
        )
    ],
    ("alignments2D/class", "<u4", ()),
    ("alignments2D/class_ess", "<f4", ()),
]


def read_truth(job: Path) -> list[dict[str, str]]:
    with open(job / "truth.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def load(path: Path) -> np.ndarray:
    return np.load(path, allow_pickle=False, max_header_size=10**6)


@pytest.fixture(scope="module")
def jobs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("cs")
    return {
        "v4": synth_cryosparc(base / "J12", seed=1, iterations=3, **SMALL),
        "legacy": synth_cryosparc(
            base / "J18", seed=1, legacy_names=True, project_uid="P209", job_uid="J18", **SMALL
        ),
        "csdat": synth_cryosparc(base / "csdat" / "J12", seed=1, cs_format="csdat", **SMALL),
    }


def test_file_names(jobs):
    names = {p.name for p in jobs["v4"].iterdir()}
    iters = ["000", "010", "020"]
    expected = {
        f"J12_{i}_{s}"
        for i in iters
        for s in ("class_averages.mrc", "class_averages.cs", "particles.cs")
    }
    expected |= {"J12_passthrough_particles.cs", "job.json", "truth.csv"}
    assert names == expected


def test_legacy_names(jobs):
    d = jobs["legacy"]
    names = {p.name for p in d.iterdir()}
    assert {
        "cryosparc_P209_J18_000_class_averages.mrc",
        "cryosparc_P209_J18_020_class_averages.mrc",
        "cryosparc_P209_J18_020_class_averages.cs",
        "cryosparc_P209_J18_020_particles.cs",
        "cryosparc_P209_J18_passthrough_particles.cs",
    } <= names
    table = load(d / "cryosparc_P209_J18_020_class_averages.cs")
    assert set(table["blob/path"]) == {b"J18/cryosparc_P209_J18_020_class_averages.mrc"}
    doc = json.loads((d / "job.json").read_text())
    assert doc["job_type"] == "class_2D" and doc["version"].startswith("v3")


def test_class_averages_mrc(jobs):
    path = jobs["v4"] / "J12_020_class_averages.mrc"
    with mrcfile.open(path) as mrc:
        assert mrc.data.shape == (12, 48, 48)
        assert mrc.data.dtype == np.float32
        assert int(mrc.header.mode) == 2 and int(mrc.header.ispg) == 0
        assert mrc.voxel_size.x == pytest.approx(1.5)
        assert mrc.is_image_stack()
    assert mrcfile.validate(path, print_file=io.StringIO())


def test_class_averages_cs_fields_and_shuffled_rows(jobs):
    d = jobs["v4"]
    table = load(d / "J12_020_class_averages.cs")
    assert table.dtype.names == (
        "uid",
        "blob/path",
        "blob/idx",
        "blob/shape",
        "blob/psize_A",
        "blob/sign",
        "blob/res_A",
    )
    assert table.dtype["uid"] == np.dtype("<u8")
    assert table.dtype["blob/path"].kind == "S"
    assert table.dtype["blob/idx"] == np.dtype("<u4")
    assert table.dtype["blob/shape"].shape == (2,) and table.dtype["blob/shape"].base == np.dtype(
        "<u4"
    )
    for f in ("blob/psize_A", "blob/sign", "blob/res_A"):
        assert table.dtype[f] == np.dtype("<f4")
    assert len(table) == 12
    idx = table["blob/idx"]
    assert sorted(idx.tolist()) == list(range(12))
    assert not np.array_equal(idx, np.arange(12)), "row order must not be class order"
    assert set(table["blob/path"]) == {b"J12/J12_020_class_averages.mrc"}
    assert (table["blob/shape"] == 48).all()
    assert len(set(table["uid"].tolist())) == 12
    # cryosparc-tools reads it too
    ds = Dataset.load(d / "J12_020_class_averages.cs")
    assert list(ds["blob/idx"]) == idx.tolist()


def test_particles_cs_fields_and_dtypes(jobs):
    d = jobs["v4"]
    particles = load(d / "J12_020_particles.cs")
    assert list(particles.dtype.names) == [f for f, _, _ in PARTICLE_FIELDS]
    for name, kind, shape in PARTICLE_FIELDS:
        dt = particles.dtype[name]
        assert dt.shape == shape, name
        if kind == "S":
            assert dt.kind == "S", name
        else:
            assert dt.base == np.dtype(kind), name
    assert 250 <= particles.dtype.itemsize <= 400
    assert particles["ctf/type"][0] == b"spline"
    p = particles["alignments2D/class_posterior"]
    assert ((p > 0) & (p <= 1)).all()
    assert (
        (particles["alignments2D/pose"] >= 0) & (particles["alignments2D/pose"] < 2 * np.pi)
    ).all()
    assert (particles["alignments2D/class_ess"] >= 1).all()
    assert particles["blob/path"][0].startswith(b"J10/extract/")
    ds = Dataset.load(d / "J12_020_particles.cs")
    assert len(ds) == 3000 and "alignments2D/class" in ds.fields()


def test_counts_agree_with_truth_and_empty_classes_exist(jobs):
    d = jobs["v4"]
    truth = read_truth(d)
    table = load(d / "J12_020_class_averages.cs")
    particles = load(d / "J12_020_particles.cs")
    counts = np.bincount(particles["alignments2D/class"], minlength=12)
    assert counts.tolist() == [int(t["particle_count"]) for t in truth]
    assert len(particles) == 3000
    empty = [int(t["class_index"]) for t in truth if int(t["particle_count"]) == 0]
    assert empty, "a job with ≥10 classes has empty classes"
    res = dict(zip(table["blob/idx"].tolist(), table["blob/res_A"].tolist(), strict=True))
    with mrcfile.open(d / "J12_020_class_averages.mrc") as mrc:
        images = np.array(mrc.data)
    for t in truth:
        k = int(t["class_index"])
        if k in empty:
            assert t["grade"] == "F" and t["kind"] == "empty"
            assert math.isinf(res[k]) and math.isinf(float(t["resolution_A"]))
            assert not images[k].any()
        else:
            assert res[k] == pytest.approx(float(t["resolution_A"]), rel=1e-5)
            assert images[k].std() > 0


def test_passthrough_has_no_class_and_same_particles(jobs):
    d = jobs["v4"]
    passthrough = load(d / "J12_passthrough_particles.cs")
    particles = load(d / "J12_020_particles.cs")
    assert "alignments2D/class" not in passthrough.dtype.names
    assert not any(n.startswith("alignments2D/") for n in passthrough.dtype.names)
    assert {"location/micrograph_path", "location/center_x_frac", "ctf/df1_A"} <= set(
        passthrough.dtype.names
    )
    assert np.array_equal(passthrough["uid"], particles["uid"])
    assert len(np.unique(particles["uid"])) == len(particles)
    assert np.array_equal(passthrough["ctf/df1_A"], particles["ctf/df1_A"])


def test_earlier_iterations_are_smaller_or_equal(jobs):
    d = jobs["v4"]
    final = load(d / "J12_020_particles.cs")
    for it in ("000", "010"):
        early = load(d / f"J12_{it}_particles.cs")
        assert len(early) <= len(final)
        assert np.array_equal(early["uid"], final["uid"][: len(early)])
        table = load(d / f"J12_{it}_class_averages.cs")
        counts = np.bincount(early["alignments2D/class"], minlength=12)
        res = table["blob/res_A"][np.argsort(table["blob/idx"])]
        assert np.isinf(res[counts == 0]).all() and np.isfinite(res[counts > 0]).all()


def test_job_json(jobs):
    doc = json.loads((jobs["v4"] / "job.json").read_text())
    assert doc["project_uid"] == "P1" and doc["uid"] == "J12"
    assert doc["job_type"] == "class_2D_new" and doc["status"] == "completed"
    assert re.fullmatch(r"[0-9a-f]{24}", doc["created_by_user_id"])
    assert doc["version"] == "v4.6.2"
    assert doc["params_spec"]["class2D_K"]["value"] == 12
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", doc["created_at"]["$date"])
    assert doc["title"]


def test_csdat_encoding_matches_numpy(jobs):
    numpy_job, csdat_job = jobs["v4"], jobs["csdat"]
    for name in (
        "J12_020_particles.cs",
        "J12_020_class_averages.cs",
        "J12_passthrough_particles.cs",
    ):
        assert (csdat_job / name).read_bytes()[:6] == b"\x95CSDAT"
        assert (numpy_job / name).read_bytes()[:6] == b"\x93NUMPY"
        a = Dataset.load(csdat_job / name)
        b = load(numpy_job / name)
        assert len(a) == len(b)
        for field in b.dtype.names:
            got, want = a[field], b[field]
            if want.dtype.kind == "S":
                assert list(got) == [s.decode() for s in want], field
            else:
                assert np.array_equal(got, want), field


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    kw = {"n_classes": 10, "box": 32, "n_particles": 700, "iterations": 2}
    a = synth_cryosparc(tmp_path / "a" / "J12", seed=5, **kw)
    time.sleep(1.05)  # a wall-clock stamp anywhere (an MRC label…) would now differ
    b = synth_cryosparc(tmp_path / "b" / "J12", seed=5, **kw)
    c = synth_cryosparc(tmp_path / "c" / "J12", seed=6, **kw)
    names = sorted(p.name for p in a.iterdir())
    assert names == sorted(p.name for p in b.iterdir())
    for n in names:
        assert (a / n).read_bytes() == (b / n).read_bytes(), n
    assert (a / "J12_020_class_averages.mrc").read_bytes() != (
        c / "J12_020_class_averages.mrc"
    ).read_bytes()


def test_density_map_input(tmp_path):
    z, y, x = np.mgrid[-16:16, -16:16, -16:16].astype(np.float32)
    vol = np.exp(-((x - 5) ** 2 + y**2 + z**2) / 20) + np.exp(
        -((x + 6) ** 2 + (y - 4) ** 2 + z**2) / 30
    )
    map_path = tmp_path / "map.mrc"
    with mrcfile.new(map_path) as mrc:
        mrc.set_data(vol.astype(np.float32))
        mrc.voxel_size = 2.0
    d = synth_cryosparc(tmp_path / "J5", density=map_path, seed=2, job_uid="J5", **SMALL)
    with mrcfile.open(d / "J5_020_class_averages.mrc") as mrc:
        images = np.array(mrc.data)
    truth = read_truth(d)
    particle = [int(t["class_index"]) for t in truth if t["kind"] == "particle"]
    assert particle and all(images[k].std() > 0 for k in particle)
    with pytest.raises(MissingFileError):
        synth_cryosparc(tmp_path / "x", density=tmp_path / "missing.mrc", **SMALL)
    garbage = tmp_path / "garbage.mrc"
    garbage.write_bytes(b"not a map" * 300)
    with pytest.raises(FormatError):
        synth_cryosparc(tmp_path / "y", density=garbage, **SMALL)
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


@pytest.mark.parametrize(
    "bad",
    [
        {"n_classes": 0},
        {"box": 15},
        {"n_particles": -1},
        {"pixel_size": 0.0},
        {"iterations": 0},
        {"cs_format": "json"},
        {"job_uid": "12"},
    ],
)
def test_bad_options(tmp_path, bad):
    with pytest.raises(InputError):
        synth_cryosparc(tmp_path / "J1", **{**SMALL, **bad})


def test_many_particles_are_chunked_and_exact(tmp_path):
    n = CHUNK_ROWS * 2 + 1234
    seen: list[int] = []
    d = synth_cryosparc(
        tmp_path / "J12",
        n_classes=10,
        box=16,
        n_particles=n,
        iterations=1,
        seed=3,
        progress=seen.append,
    )
    particles = np.load(d / "J12_020_particles.cs", mmap_mode="r")
    assert len(particles) == n
    counts = np.bincount(particles["alignments2D/class"], minlength=10)
    assert counts.tolist() == [int(t["particle_count"]) for t in read_truth(d)]
    assert seen == sorted(seen) and seen[-1] == total_rows(n, 1) == 2 * n
