"""Extraction of jobs built around REAL files written by cryoSPARC and RELION.

The real files come from the cryodrgn 4.3.1 sdist on PyPI (GPL-3.0: downloaded at test time by
``tests/realdata.py``, never committed). What each holds, as checked when these tests were
written:

* ``cryosparc_J2_particles_exported.cs``: a cryoSPARC 2D-classification particles file (numpy
  ``.npy`` format), 22 rows, ``alignments2D/class`` 0–4 with counts 6, 7, 2, 3, 4, box 300 px,
  1.345 Å/px, every ``alignments2D/*`` field, ``blob/path`` pointing at a stack not shipped.
* RELION particle STAR files, all with every particle in ``rlnClassNumber`` 1:
  ``relion31.star`` (3.1: optics then 5 particles), ``relion31.v2.star`` (the same particles,
  the particles block *before* the optics block), ``relion31.6opticsgroups.star`` (6 optics
  groups, 139 particles, no ``# version`` line), ``relion5.star`` (``# version 50001``, 17
  particles) and ``FinalRefinement-OriginalParticles-PfCRT.star`` (RELION 3.0.6,
  ``data_images``, pixel size from ``rlnDetectorPixelSize``/``rlnMagnification``).
* ``relion31.mrcs``: 5 real particle images, 256×256 float32, with no ``MAP`` id and a zero
  machine stamp (strict mrcfile refuses it) and a header voxel size of 1 Å.

No class-average stack, ``class_averages.cs`` or ``model.star`` is among them, so each job gets
the fewest made-up companions: a ``class_averages.cs``/``model.star`` written here, and the real
``relion31.mrcs`` images standing in for the class averages. Since every real STAR file puts all
its particles in class 1, the RELION jobs get K = 5 classes (class 1 full, classes 2–5 empty,
which real Class2D runs have too, with 999 and ``inf`` resolutions), plus one job with
K = the largest class number (1). Everything goes through the public
CLI (``cryocurate init``/``extract``/``ls``), and the expected numbers are computed here from
the real files with numpy and ``starfile``, independently of cryocurate's readers.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import warnings
from collections import Counter
from pathlib import Path

import mrcfile
import numpy as np
import pytest
import starfile

from tests.cli_in_process import cli

from ..realdata import DataMismatch, DataUnavailable, cryodrgn_test_data

CS_PARTICLES = "cryosparc_J2_particles_exported.cs"
STACK = "relion31.mrcs"  # 5 real 256 px images, no MAP id, zero machine stamp
RELION_STARS = [
    "relion31.star",
    "relion31.v2.star",
    "relion31.6opticsgroups.star",
    "relion5.star",
    "FinalRefinement-OriginalParticles-PfCRT.star",
]

# Made-up per-class values for the companions. RELION writes 999 for a resolution it could
# not estimate; "inf" appears too. Both must come out as null.
CS_RESOLUTION = {0: 11.25, 1: 8.5, 2: math.inf, 3: 17.0, 4: 9.75}
CS_ROW_ORDER = [3, 0, 4, 1, 2]  # class_averages.cs rows are not in class order
RELION_RESOLUTION = ["8.412000", "999.000000", "inf", "14.730000", "999"]
RELION_DISTRIBUTION = [0.912345, 0.040000, 0.001000, 0.045000, 0.001655]
RELION_ACC_ROT = [2.114, 7.5, 999.0, 4.25, 12.0]
RELION_ACC_TRANS = [1.402, 3.5, 999.0, 2.25, 5.0]


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


@pytest.fixture(scope="session")
def real() -> dict[str, Path]:
    """The real sample files, downloaded once and cached (see ``tests/realdata.py``)."""
    try:
        return cryodrgn_test_data([CS_PARTICLES, STACK, *RELION_STARS])
    except DataMismatch as err:
        pytest.fail(f"real sample data is not what these tests expect: {err}", pytrace=False)
    except DataUnavailable as err:
        reason = f"real sample files (cryodrgn sdist from PyPI) unavailable: {err}"
        if _in_ci():
            pytest.fail(f"{reason} (CI is set, so this is an error, not a skip)", pytrace=False)
        pytest.skip(reason)


def new_root(capsys: pytest.CaptureFixture[str], folder: Path) -> Path:
    code, _, err = cli(capsys, "init", folder)
    assert code == 0, err
    return folder


def extract_one(capsys, root: Path, job_dir: Path, dataset: str) -> dict:
    """``cryocurate extract JOB --json``: the job's outcome, after checking it succeeded."""
    code, out, err = cli(capsys, "extract", job_dir, "--root", root, "--dataset", dataset, "--json")
    assert code == 0, f"exit {code}: {err}{out}"
    [outcome] = json.loads(out)
    assert outcome["status"] == "new", outcome["message"]
    return outcome


def listed_runs(capsys, root: Path) -> list[dict]:
    code, out, err = cli(capsys, "ls", root, "--json")
    assert code == 0, err
    [dataset] = json.loads(out)
    return dataset["runs"]


def class_averages_dir(root: Path, outcome: dict) -> Path:
    return root / "data" / str(outcome["dataset_id"]) / outcome["run_name"] / "ClassAverages"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_images(path: Path) -> np.ndarray:
    """An MRC stack as ``(n, ny, nx)`` float32, however its header is (mis)labelled."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # no MAP id, zero machine stamp
        with mrcfile.open(path, permissive=True) as mrc:
            data = np.array(mrc.data, dtype=np.float32)
    return data.reshape(-1, *data.shape[-2:])  # one image reads as 2D


def test_the_stack_really_needs_permissive_reading(real):
    """``relion31.mrcs`` is a real file strict readers refuse (no MAP id, zero stamp)."""
    with pytest.raises(ValueError, match="Map ID"), mrcfile.open(real[STACK]):
        pass  # strict mode
    assert read_images(real[STACK]).shape == (5, 256, 256)


# ----------------------------------------------------------------------------------------------
# cryoSPARC


def write_class_averages_cs(path: Path, psize: float, box: int, k: int) -> None:
    """A cryoSPARC ``class_averages.cs`` (numpy format), rows deliberately out of class order."""
    dtype = [
        ("uid", "<u8"),
        ("blob/path", "S64"),
        ("blob/idx", "<u4"),
        ("blob/shape", "<u4", (2,)),
        ("blob/psize_A", "<f4"),
        ("blob/res_A", "<f4"),
    ]
    order = CS_ROW_ORDER[:k]
    rows = np.zeros(k, dtype=dtype)
    rows["uid"] = np.random.default_rng(2).integers(1, 2**63, size=k, dtype=np.uint64)
    rows["blob/path"] = f"J2/{path.name.replace('.cs', '.mrc')}".encode()
    rows["blob/idx"] = order
    rows["blob/shape"] = box
    rows["blob/psize_A"] = psize
    rows["blob/res_A"] = [CS_RESOLUTION[i] for i in order]
    with open(path, "wb") as fh:  # np.save to a path would append ".npy"
        np.save(fh, rows)


def cryosparc_job(real, base: Path, encoding: str = "numpy") -> Path:
    """``J2`` around the real particles: class_averages.cs made up, real images as averages.

    ``encoding="csdat"``: the same real particles re-encoded by cryosparc-tools in its CSDAT
    stream format, which newer cryoSPARC versions write.
    """
    particles = np.load(real[CS_PARTICLES], allow_pickle=False)
    psize = float(np.unique(particles["alignments2D/psize_A"])[0])
    images = read_images(real[STACK])
    job = base / "J2"  # no job.json, no project.json: the seed's bare folder
    job.mkdir(parents=True)
    if encoding == "csdat":
        from cryosparc.dataset import CSDAT_FORMAT, Dataset

        Dataset.load(real[CS_PARTICLES]).save(job / "J2_020_particles.cs", format=CSDAT_FORMAT)
    else:
        shutil.copyfile(real[CS_PARTICLES], job / "J2_020_particles.cs")  # the real bytes
    write_class_averages_cs(
        job / "J2_020_class_averages.cs", psize, images.shape[1], images.shape[0]
    )
    shutil.copyfile(real[STACK], job / "J2_020_class_averages.mrc")  # the real file, as is
    return job


@pytest.mark.parametrize("encoding", ["numpy", "csdat"])
def test_real_cryosparc_particles_extract_through_the_cli(real, tmp_path, capsys, encoding):
    particles = np.load(real[CS_PARTICLES], allow_pickle=False)
    assigned = particles["alignments2D/class"].astype(np.int64)
    k = int(assigned.max()) + 1
    assert (len(particles), k) == (22, 5)  # the file the docstring describes
    psize_values = np.unique(particles["alignments2D/psize_A"])
    assert len(psize_values) == 1
    psize = float(psize_values[0])
    images = read_images(real[STACK])
    assert images.shape[0] == k
    job = cryosparc_job(real, tmp_path / "project", encoding)

    root = new_root(capsys, tmp_path / "portal")
    outcome = extract_one(capsys, root, job, "Real cryoSPARC")
    assert outcome["run_name"] == "J2"
    assert (outcome["software"], outcome["iteration"]) == ("cryosparc", 20)
    assert (outcome["n_classes"], outcome["n_particles"]) == (5, 22)

    [run] = listed_runs(capsys, root)
    assert run["name"] == "J2" and run["software"] == "cryosparc" and run["iteration"] == 20
    assert (run["n_classes"], run["n_particles"], run["box_size"]) == (5, 22, 256)
    assert run["pixel_size_a"] == pytest.approx(psize)

    folder = class_averages_dir(root, outcome)
    meta = json.loads((folder / "class_averages_metadata.json").read_text())
    assert meta["software"] == "cryosparc" and meta["job_uid"] == "J2"
    assert meta["project_uid"] is None
    assert (meta["n_classes"], meta["n_particles"], meta["box_size"]) == (5, 22, 256)
    assert meta["pixel_size_A"] == pytest.approx(1.345, abs=1e-4)
    assert meta["sha256"] == {p.name: sha256(p) for p in job.iterdir()}

    # Independent expectations: numpy's bincount and per-class masks on the real file.
    counts = np.bincount(assigned, minlength=k)
    assert counts.tolist() == [6, 7, 2, 3, 4]
    posterior = particles["alignments2D/class_posterior"].astype(np.float64)
    ess = particles["alignments2D/class_ess"].astype(np.float64)
    classes = meta["classes"]
    assert [c["class_index"] for c in classes] == list(range(k))
    for c in classes:
        i = c["class_index"]
        in_class = assigned == i
        assert c["particle_count"] == counts[i]
        assert c["class_fraction"] == pytest.approx(counts[i] / 22)
        assert c["mean_posterior"] == pytest.approx(posterior[in_class].mean(), rel=1e-6)
        assert c["mean_ess"] == pytest.approx(ess[in_class].mean(), rel=1e-6)
        want_res = CS_RESOLUTION[i]
        assert c["resolution_A"] == (pytest.approx(want_res) if math.isfinite(want_res) else None)
        assert c["accuracy_rotations"] is None and c["relion_class_distribution"] is None
        assert c["pixel_size_A"] == pytest.approx(psize)
        assert c["mass_estimate"] is not None and math.isfinite(c["mass_estimate"])
    assert sum(c["particle_count"] for c in classes) == 22

    # Class k is image k of the MRC (blob/idx), whatever the row order of class_averages.cs;
    # the values are unchanged and the job's pixel size replaces the header's 1 Å.
    out_stack = folder / "class_averages.mrcs"
    np.testing.assert_array_equal(read_images(out_stack), images)
    with mrcfile.open(out_stack) as mrc:  # ours is a valid MRC even for strict readers
        assert float(mrc.voxel_size.x) == pytest.approx(psize, abs=1e-4)
    assert sorted(p.name for p in (folder / "Images").iterdir()) == [
        f"class_{i:04d}.png" for i in range(k)
    ]

    # Extracting again says unchanged and rewrites nothing.
    code, out, err = cli(capsys, "extract", job, "--root", root, "--dataset", "Real cryoSPARC",
                         "--json")  # fmt: skip
    assert code == 0, err
    assert [o["status"] for o in json.loads(out)] == ["unchanged"]


# ----------------------------------------------------------------------------------------------
# RELION


def particle_block(path: Path) -> tuple[str, object]:
    """The particles loop of a real data STAR file, read by ``starfile`` (not cryocurate)."""
    blocks = starfile.read(path, always_dict=True)
    for name in ("particles", "images", ""):
        if name in blocks and "rlnClassNumber" in blocks[name]:
            return name, blocks[name]
    raise AssertionError(f"{path.name}: no particles loop with rlnClassNumber")


def relion_pixel_size(path: Path) -> tuple[float, bool]:
    """The particles' pixel size, and whether the file is RELION 3.0 (no optics block)."""
    blocks = starfile.read(path, always_dict=True)
    optics = blocks.get("optics")
    if optics is not None:
        return float(optics["rlnImagePixelSize"].iloc[0]), False
    _, particles = particle_block(path)
    row = particles.iloc[0]
    return float(row["rlnDetectorPixelSize"]) * 1e4 / float(row["rlnMagnification"]), True


def write_model_star(path: Path, *, k: int, box: int, pixel_size: float, relion30: bool) -> None:
    """A RELION Class2D ``run_itNNN_model.star`` as RELION writes it (blocks and columns)."""
    stack = f"Class2D/job010/{path.name.replace('_model.star', '_classes.mrcs')}"
    translations = "rlnAccuracyTranslations" if relion30 else "rlnAccuracyTranslationsAngst"
    version = "" if relion30 else "\n# version 30001\n"
    general = {
        "rlnReferenceDimensionality": 2,
        "rlnDataDimensionality": 2,
        "rlnOriginalImageSize": box,
        "rlnCurrentResolution": "8.412000",
        "rlnCurrentImageSize": box // 2,
        "rlnPaddingFactor": "2.000000",
        "rlnIsHelix": 0,
        "rlnFourierSpaceInterpolator": 1,
        "rlnMinRadiusNnInterpolation": 10,
        "rlnPixelSize": f"{pixel_size:.6f}",
        "rlnNrClasses": k,
        "rlnNrBodies": 1,
        "rlnNrGroups": 1,
        "rlnTau2FudgeFactor": "2.000000",
        "rlnNormCorrectionAverage": "0.891387",
        "rlnSigmaOffsetsAngst": "9.811310",
        "rlnOrientationalPriorMode": 0,
        "rlnSigmaPriorRotAngle": "0.000000",
        "rlnLogLikelihood": "2.586789e+05",
        "rlnAveragePmax": "0.095431",
    }
    lines = [version, "data_model_general", ""]
    lines += [f"_{key:<40} {value:>14}" for key, value in general.items()]
    lines += [version, "data_model_classes", "", "loop_ "]
    columns = [
        "rlnReferenceImage",
        "rlnClassDistribution",
        "rlnAccuracyRotations",
        translations,
        "rlnEstimatedResolution",
        "rlnOverallFourierCompleteness",
        "rlnClassPriorOffsetX",
        "rlnClassPriorOffsetY",
    ]
    lines += [f"_{c} #{n} " for n, c in enumerate(columns, 1)]
    for i in range(k):
        trans = RELION_ACC_TRANS[i]
        if relion30 and trans < 999:  # pixels before 3.1; "not estimated" is 999 in any unit
            trans /= pixel_size
        lines.append(
            f"{i + 1:06d}@{stack} {RELION_DISTRIBUTION[i]:12.6f} {RELION_ACC_ROT[i]:12.6f} "
            f"{trans:12.6f} {RELION_RESOLUTION[i]:>12} {1.0:12.6f} {0.0:12.6f} {0.0:12.6f} "
        )
    # A per-class spectrum block and the groups block follow in real files; they are skipped.
    lines += [version, "data_model_class_1", "", "loop_ "]
    lines += ["_rlnSpectralIndex #1 ", "_rlnResolution #2 ", "_rlnSsnrMap #3 "]
    lines += [f"{j:12d} {j / (box * pixel_size):12.6f} {100.0 / (j + 1):12.6f} " for j in range(4)]
    lines += [version, "data_model_groups", "", "loop_ "]
    lines += ["_rlnGroupNumber #1 ", "_rlnGroupName #2 ", "_rlnGroupNrParticles #3 "]
    lines += ["           1      group_1           5 ", ""]
    path.write_text("\n".join(lines) + "\n")


def relion_job(real, base: Path, star: str, k: int) -> Path:
    """``Class2D/job010`` around a real data STAR: model.star made up, real images."""
    job = base / "Class2D" / "job010"
    job.mkdir(parents=True)
    shutil.copyfile(real[star], job / "run_it025_data.star")
    images = read_images(real[STACK])
    if k == images.shape[0]:
        shutil.copyfile(real[STACK], job / "run_it025_classes.mrcs")  # the real file, as is
    else:
        with mrcfile.new(job / "run_it025_classes.mrcs") as mrc:
            mrc.set_data(images[:k])
            mrc.set_image_stack()
    pixel_size, relion30 = relion_pixel_size(real[star])
    write_model_star(
        job / "run_it025_model.star",
        k=k,
        box=images.shape[1],
        pixel_size=pixel_size,
        relion30=relion30,
    )
    return job


@pytest.mark.parametrize(
    ("star", "k"),
    [
        *[pytest.param(s, 5, id=f"{s.removesuffix('.star')}-K5") for s in RELION_STARS],
        # rlnNrClasses = the largest class number in the real file (all real files use only 1)
        pytest.param("relion31.star", None, id="relion31-Kmax"),
    ],
)
def test_real_relion_data_star_extracts_through_the_cli(real, tmp_path, capsys, star, k):
    block, particles = particle_block(real[star])
    numbers = [int(n) for n in particles["rlnClassNumber"]]
    by_class = Counter(numbers)  # an independent count of the real file's rlnClassNumber
    k = k or max(numbers)
    n = len(numbers)
    job = relion_job(real, tmp_path / "relion", star, k)
    pixel_size, relion30 = relion_pixel_size(real[star])
    assert block == ("images" if relion30 else "particles")

    root = new_root(capsys, tmp_path / "portal")
    outcome = extract_one(capsys, root, job, "Real RELION")
    assert outcome["run_name"] == "job010"
    assert (outcome["software"], outcome["iteration"]) == ("relion", 25)
    assert (outcome["n_classes"], outcome["n_particles"]) == (k, n)

    [run] = listed_runs(capsys, root)
    assert (run["name"], run["software"], run["iteration"]) == ("job010", "relion", 25)
    assert (run["n_classes"], run["n_particles"], run["box_size"]) == (k, n, 256)
    assert run["pixel_size_a"] == pytest.approx(pixel_size)

    folder = class_averages_dir(root, outcome)
    meta = json.loads((folder / "class_averages_metadata.json").read_text())
    assert meta["software"] == "relion" and meta["job_uid"] == "job010"
    assert (meta["n_classes"], meta["n_particles"]) == (k, n)
    assert meta["pixel_size_A"] == pytest.approx(pixel_size)
    assert meta["sha256"] == {p.name: sha256(p) for p in job.iterdir()}

    classes = meta["classes"]
    assert [c["class_index"] for c in classes] == list(range(k))
    for c in classes:
        i = c["class_index"]
        assert c["particle_count"] == by_class.get(i + 1, 0)
        assert c["class_fraction"] == pytest.approx(by_class.get(i + 1, 0) / n)
        res = float(RELION_RESOLUTION[i])
        assert c["resolution_A"] == (None if res >= 999 else pytest.approx(res)), i
        assert c["relion_class_distribution"] == pytest.approx(RELION_DISTRIBUTION[i])
        for key, written in (
            ("accuracy_rotations", RELION_ACC_ROT[i]),
            ("accuracy_translations_A", RELION_ACC_TRANS[i]),
        ):
            if written >= 999:  # RELION's "not estimated" becomes null
                assert c[key] is None, (key, i)
            else:
                assert c[key] == pytest.approx(written, rel=1e-5), (key, i)
        assert c["mean_posterior"] is None and c["mean_ess"] is None
        assert c["pixel_size_A"] == pytest.approx(pixel_size)
    assert sum(c["particle_count"] for c in classes) == n
    if k >= 3:  # both spellings of "no resolution" were in the model and came out null
        assert classes[1]["resolution_A"] is None and classes[2]["resolution_A"] is None
        assert [c["particle_count"] for c in classes[1:]] == [0] * (k - 1)  # empty classes kept

    np.testing.assert_array_equal(
        read_images(folder / "class_averages.mrcs"), read_images(real[STACK])[:k]
    )
    assert len(list((folder / "Images").iterdir())) == k


# ----------------------------------------------------------------------------------------------
# All at once


def test_all_real_jobs_in_one_parallel_extraction(real, tmp_path, capsys):
    """Every job above in one ``extract`` call with worker processes, as a lab would run it."""
    jobs = [cryosparc_job(real, tmp_path / "cs")]
    for star in RELION_STARS:
        jobs.append(relion_job(real, tmp_path / star.removesuffix(".star"), star, 5))
    root = new_root(capsys, tmp_path / "portal")
    argv = ["extract", *jobs, "--root", root, "--dataset", "Real files", "--workers", "3"]
    code, out, err = cli(capsys, *argv, "--json")
    assert code == 0, f"exit {code}: {err}{out}"
    outcomes = json.loads(out)
    assert sorted(o["status"] for o in outcomes) == ["new"] * len(jobs)
    # Five RELION jobs are all called job010: each run still gets its own name.
    assert sorted(o["run_name"] for o in outcomes) == [
        "J2", "job010", "job010-2", "job010-3", "job010-4", "job010-5",
    ]  # fmt: skip

    expected = {str(jobs[0]): 22}
    for job, star in zip(jobs[1:], RELION_STARS, strict=True):
        expected[str(job)] = len(particle_block(real[star])[1])
    assert {o["job_dir"]: o["n_particles"] for o in outcomes} == expected
    runs = listed_runs(capsys, root)
    assert sorted(r["n_particles"] for r in runs) == sorted(expected.values())
    assert all(r["n_classes"] == 5 for r in runs)

    code, out, err = cli(capsys, *argv)  # the human-readable summary, on stderr
    assert code == 0, err
    assert f"{len(jobs)} job(s): {len(jobs)} unchanged" in err
