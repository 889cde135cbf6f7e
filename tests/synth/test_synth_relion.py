"""RELION Class2D folders from ``synth_relion``: files, STAR blocks and columns, counts."""

from __future__ import annotations

import csv
import time
from pathlib import Path

import mrcfile
import numpy as np
import pytest
import starfile

from cryocurate.errors import InputError
from cryocurate.synth import synth_relion
from cryocurate.synth.relion import total_rows

SMALL = {"n_classes": 12, "box": 48, "n_particles": 2500}

PARTICLES_31 = {
    "rlnImageName",
    "rlnMicrographName",
    "rlnCoordinateX",
    "rlnCoordinateY",
    "rlnAnglePsi",
    "rlnOriginXAngst",
    "rlnOriginYAngst",
    "rlnClassNumber",
    "rlnMaxValueProbDistribution",
    "rlnNrOfSignificantSamples",
    "rlnNormCorrection",
    "rlnLogLikeliContribution",
    "rlnGroupNumber",
    "rlnOpticsGroup",
    "rlnDefocusU",
    "rlnDefocusV",
    "rlnDefocusAngle",
}
CLASSES_31 = [
    "rlnReferenceImage",
    "rlnClassDistribution",
    "rlnAccuracyRotations",
    "rlnAccuracyTranslationsAngst",
    "rlnEstimatedResolution",
    "rlnOverallFourierCompleteness",
    "rlnClassPriorOffsetX",
    "rlnClassPriorOffsetY",
]


def read_truth(job: Path) -> list[dict[str, str]]:
    with open(job / "truth.csv", newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def jobs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("relion")
    return {
        v: synth_relion(base / v / "Class2D" / "job006", seed=4, relion_version=v, **SMALL)
        for v in ("3.0", "3.1", "5.0")
    } | {
        "ct": synth_relion(base / "ct" / "Class2D" / "job011", seed=4, continued=True, **SMALL),
    }


def final_stem(version: str) -> str:
    return "run_it200" if version == "5.0" else "run_it025"


@pytest.mark.parametrize("version", ["3.0", "3.1", "5.0"])
def test_files(jobs, version):
    d = jobs[version]
    names = {p.name for p in d.iterdir()}
    last = final_stem(version)
    for stem in ("run_it000", last):
        for suffix in (
            "classes.mrcs",
            "model.star",
            "data.star",
            "optimiser.star",
            "sampling.star",
        ):
            assert f"{stem}_{suffix}" in names
    assert {"note.txt", "RELION_JOB_EXIT_SUCCESS", "truth.csv"} <= names
    assert ("run.job" if version == "3.0" else "job.star") in names
    assert (d / "RELION_JOB_EXIT_SUCCESS").stat().st_size == 0


@pytest.mark.parametrize("version", ["3.0", "3.1", "5.0"])
def test_version_comments(jobs, version):
    d = jobs[version]
    text = (d / f"{final_stem(version)}_data.star").read_text()
    tag = {"3.0": None, "3.1": "# version 30001", "5.0": "# version 50001"}[version]
    if tag:
        assert text.lstrip().startswith(tag)
        assert text.count(tag) == 2  # optics and particles
    else:
        assert "# version" not in text
        assert text.lstrip().startswith("data_\n")


@pytest.mark.parametrize("version", ["3.1", "5.0"])
def test_data_star_31(jobs, version):
    d = jobs[version]
    data = starfile.read(d / f"{final_stem(version)}_data.star", always_dict=True)
    assert list(data) == ["optics", "particles"]
    optics, particles = data["optics"], data["particles"]
    assert optics["rlnImagePixelSize"].tolist() == [1.5]
    assert optics["rlnImageSize"].tolist() == [48]
    assert set(particles.columns) >= PARTICLES_31
    assert "rlnOriginX" not in particles.columns
    assert len(particles) == 2500
    assert particles["rlnClassNumber"].min() >= 1
    counts = np.bincount(particles["rlnClassNumber"] - 1, minlength=12)
    assert counts.tolist() == [int(t["particle_count"]) for t in read_truth(d)]
    p = particles["rlnMaxValueProbDistribution"]
    assert ((p > 0) & (p <= 1)).all()
    names = particles["rlnImageName"].astype(str)
    assert names.str.match(r"^\d{6}@Extract/job005/Movies/.+\.mrcs$").all()


def test_data_star_30(jobs):
    data = starfile.read(jobs["3.0"] / "run_it025_data.star", always_dict=True)
    assert list(data) == [""]
    particles = data[""]
    assert {
        "rlnOriginX",
        "rlnOriginY",
        "rlnClassNumber",
        "rlnMaxValueProbDistribution",
        "rlnAnglePsi",
        "rlnImageName",
        "rlnMicrographName",
        "rlnDetectorPixelSize",
        "rlnMagnification",
    } <= set(particles.columns)
    assert "rlnOriginXAngst" not in particles.columns
    counts = np.bincount(particles["rlnClassNumber"] - 1, minlength=12)
    assert counts.tolist() == [int(t["particle_count"]) for t in read_truth(jobs["3.0"])]


@pytest.mark.parametrize("version", ["3.0", "3.1", "5.0"])
def test_model_star(jobs, version):
    d = jobs[version]
    stem = final_stem(version)
    model = starfile.read(d / f"{stem}_model.star", always_dict=True)
    general = model["model_general"]
    assert general["rlnPixelSize"] == pytest.approx(1.5)
    assert general["rlnNrClasses"] == 12
    assert general["rlnReferenceDimensionality"] == 2
    assert ("rlnNrOpticsGroups" in general) == (version != "3.0")
    classes = model["model_classes"]
    want = (
        CLASSES_31
        if version != "3.0"
        else [c.replace("TranslationsAngst", "Translations") for c in CLASSES_31]
    )
    assert list(classes.columns) == want
    assert classes["rlnReferenceImage"].tolist() == [
        f"{k:06d}@Class2D/job006/{stem}_classes.mrcs" for k in range(1, 13)
    ]
    assert all(f"model_class_{k}" in model for k in range(1, 13))
    assert ("model_optics_group_1" in model) == (version != "3.0")
    assert "model_groups" in model
    truth = read_truth(d)
    counts = np.array([int(t["particle_count"]) for t in truth])
    assert classes["rlnClassDistribution"].to_numpy() == pytest.approx(
        counts / counts.sum(), abs=1e-6
    )
    res = classes["rlnEstimatedResolution"].to_numpy()
    assert (res[counts == 0] == 999).all() and (counts == 0).any()
    assert res[counts > 0] == pytest.approx(
        [float(t["resolution_A"]) for t in truth if int(t["particle_count"])], abs=1e-5
    )
    assert (classes["rlnAccuracyRotations"].to_numpy()[counts == 0] == 999).all()
    # per-class SSNR falls through 1 at the class resolution
    k = int(np.flatnonzero(counts)[0])
    spectrum = model[f"model_class_{k + 1}"]
    shell = int(np.argmax(spectrum["rlnSsnrMap"].to_numpy() < 1.0)) - 1
    assert 48 * 1.5 / shell == pytest.approx(res[k], rel=0.2)
    with mrcfile.open(d / f"{stem}_classes.mrcs") as mrc:
        assert mrc.data.shape == (12, 48, 48) and mrc.voxel_size.x == pytest.approx(1.5)
        assert not np.array(mrc.data)[counts == 0].any()


@pytest.mark.parametrize("version", ["3.0", "3.1", "5.0"])
def test_optimiser_sampling_job(jobs, version):
    d = jobs[version]
    stem = final_stem(version)
    opt = starfile.read(d / f"{stem}_optimiser.star")
    assert opt["rlnModelStarFile"] == f"Class2D/job006/{stem}_model.star"
    assert opt["rlnExperimentalDataStarFile"] == f"Class2D/job006/{stem}_data.star"
    assert opt["rlnCurrentIteration"] == int(stem[-3:])
    assert "rlnPsiStep" in starfile.read(d / f"{stem}_sampling.star")
    if version != "3.0":
        job = starfile.read(d / "job.star", always_dict=True)
        assert set(job) == {"job", "joboptions_values"}
        options = dict(
            zip(
                job["joboptions_values"]["rlnJobOptionVariable"],
                job["joboptions_values"]["rlnJobOptionValue"],
                strict=True,
            )
        )
        assert int(options["nr_classes"]) == 12
    assert "relion_refine" in (d / "note.txt").read_text()


def test_continued(jobs):
    d = jobs["ct"]
    names = sorted(p.name for p in d.iterdir())
    finals = [n for n in names if n.endswith("_classes.mrcs")]
    assert finals == [
        "run_ct15_it025_classes.mrcs",
        "run_it000_classes.mrcs",
        "run_it015_classes.mrcs",
    ]
    model = starfile.read(d / "run_ct15_it025_model.star", read_n_blocks=2, always_dict=True)
    assert model["model_classes"]["rlnReferenceImage"][0] == (
        "000001@Class2D/job011/run_ct15_it025_classes.mrcs"
    )
    job = starfile.read(d / "job.star", always_dict=True)
    assert job["job"]["rlnJobIsContinue"] == 1


def test_determinism_and_rows(tmp_path):
    seen: list[int] = []
    kw = {"n_classes": 10, "box": 32, "n_particles": 800, "relion_version": "3.1"}
    a = synth_relion(tmp_path / "a" / "job006", seed=9, progress=seen.append, **kw)
    time.sleep(1.05)  # a wall-clock stamp anywhere would now differ
    b = synth_relion(tmp_path / "b" / "job006", seed=9, **kw)
    names = sorted(p.name for p in a.iterdir())
    for n in names:
        assert (a / n).read_bytes() == (b / n).read_bytes(), n
    assert seen[-1] == total_rows(800, 2, "3.1") == 1600


@pytest.mark.parametrize("bad", [{"relion_version": "2.1"}, {"box": 8}, {"n_classes": -3}])
def test_bad_options(tmp_path, bad):
    with pytest.raises(InputError):
        synth_relion(tmp_path / "job001", **{**SMALL, **bad})
