"""``cryocurate import-magellon`` / ``export-magellon`` through the real CLI entry point.

The lab folder is Magellon's layout (``images/<job>/<job>_<i>.jpg`` + ``metadata/<job>.npy``,
written with :mod:`cryocurate.formats.magellon`, plus a stray ``.DS_Store``); the label
databases are built with raw ``sqlite3`` exactly as tkteach builds them (its verbatim CREATE
statements, INSERT OR IGNORE of the categories file, images inserted on "Load Data Set" under
the path as typed, labels rewritten on "Save & Next"): see ``tests/formats/test_tkteach.py``.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from cryocurate import accounts, grading
from cryocurate.catalog.models import ClassAverage, Dataset, GradeEvent, Role, Run
from cryocurate.formats import magellon as mg
from cryocurate.formats import tkteach
from cryocurate.portal import Portal
from cryocurate.store import layout
from tests.cli_in_process import cli
from tests.formats.test_tkteach import CATEGORIES_TXT, REVERSED_TXT, Tkteach

J1, J2 = "P3_J12_64a1b2c3d4e5f6a7b8c9d0e1", "P3_J40_64a1b2c3d4e5f6a7b8c9d0e1"
ANN, BOB = "ann@lab.edu", "bob@lab.edu"
# What each labeller saved (one letter per image), by (job, class index).
ANN_GRADES = {(J1, 0): "A", (J1, 1): "B", (J1, 3): "F", (J2, 0): "C"}
BOB_GRADES = {(J1, 0): "A", (J1, 1): "C", (J1, 3): "D", (J2, 1): "B", (J2, 2): "F"}
CRYOSIFT_ID = {"A": 1, "B": 2, "C": 3, "D": 4, "F": 5}


def _metadata(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    est_res = rng.uniform(6, 20, n)
    est_res[2 % n] = np.inf  # an empty class, as extract_mrc.py writes it
    dist = rng.dirichlet(np.ones(n))
    dist[2 % n] = 0.0
    return mg.metadata_records(
        {
            "est_res": est_res,
            "class_dist": dist,
            "pixel_size": np.full(n, 1.31),
            "dmean_mass": rng.uniform(0, 5e5, n),
            "dmedian_mass": rng.uniform(0, 5e5, n),
            "dmode_mass": rng.uniform(0, 5e5, n),
        }
    )


def _images(n: int, seed: int, box: int = 32) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:box, :box] - box / 2
    blob = np.exp(-(xx**2 + yy**2) / 40.0)
    return np.stack([blob * (k + 1) + rng.normal(0, 0.1, (box, box)) for k in range(n)])


@pytest.fixture
def lab(tmp_path: Path) -> Path:
    """A Magellon lab folder with two jobs and two labellers' tkteach databases."""
    folder = tmp_path / "StaggLab"
    mg.write_job(folder, J1, _images(4, 1), _metadata(4, 1))
    mg.write_job(folder, J2, _images(3, 2), _metadata(3, 2))
    (folder / "images" / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")

    def files(job: str, n: int) -> list[str]:
        return sorted((mg.image_name(job, i) for i in range(n)), reverse=True)  # listdir order

    # Ann typed the folder by a relative path; one image got two categories; one image is
    # from a job not in this folder.
    ann = Tkteach(folder / tkteach.db_name(ANN), CATEGORIES_TXT, "StaggLab")
    paths = dict(zip(files(J1, 4), ann.load_dataset(J1, files(J1, 4)), strict=True))
    for (job, i), letter in ANN_GRADES.items():
        if job == J1:
            ann.save(paths[mg.image_name(J1, i)], letter)
    ann.save(paths[mg.image_name(J1, 2)], "B", "D")
    paths = dict(zip(files(J2, 3), ann.load_dataset(J2, files(J2, 3)), strict=True))
    ann.save(paths[mg.image_name(J2, 0)], "C")
    (stray,) = ann.load_dataset("P9_J1_ffff", ["P9_J1_ffff_0.jpg"])
    ann.save(stray, "A")
    ann.close()

    # Bob typed an absolute path and used a reordered categories file (F=1 … A=5 in his db).
    bob = Tkteach(folder / tkteach.db_name(BOB), REVERSED_TXT, f"{folder}/")
    for job, n in ((J1, 4), (J2, 3)):
        paths = dict(zip(files(job, n), bob.load_dataset(job, files(job, n)), strict=True))
        for (graded_job, i), letter in BOB_GRADES.items():
            if graded_job == job:
                bob.save(paths[mg.image_name(job, i)], letter)
    bob.close()
    return folder


def _grades(root: Path, campaign_id: int) -> dict[str, dict[tuple[str, int], str]]:
    with Portal.open(root) as portal, portal.transaction() as s:
        campaign = grading.get_campaign(s, campaign_id)
        out: dict[str, dict[tuple[str, int], str]] = {}
        for row in grading.grade_rows(s, campaign):
            ca = s.get(ClassAverage, row["class_average_id"])
            out.setdefault(row["labeller"], {})[(ca.run.name, ca.class_index)] = row["grade"]
        return out


def test_round_trip(tmp_path: Path, lab: Path, capsys, database_url: str) -> None:
    root = tmp_path / "portal"
    Portal.create(root, database_url=database_url).close()

    code, out, err = cli(capsys, "import-magellon", root, lab, "--lab", "Stagg", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["run_counts"] == {"new": 2, "replaced": 0, "unchanged": 0, "error": 0}
    assert result["grade_counts"]["stored"] == len(ANN_GRADES) + len(BOB_GRADES)
    assert result["grade_counts"]["several"] == 1
    assert result["grade_counts"]["unmatched"] == 1
    kinds = sorted(f["kind"] for f in result["findings"])
    assert kinds == ["ignored_entry", "several_categories", "unmatched"]
    messages = " | ".join(f["message"] for f in result["findings"])
    assert f"{mg.image_name(J1, 2)}: several categories (B+D); not graded" in messages
    assert "P9_J1_ffff_0.jpg (A) matches no imported class average" in messages
    assert "images/.DS_Store" in messages
    cid = result["campaign_id"]
    assert result["campaign"] == "Magellon import: StaggLab"

    # Runs and their classes, as the project stores class averages.
    with Portal.open(root) as portal, portal.transaction() as s:
        dataset = s.scalars(sa.select(Dataset)).one()
        assert (dataset.title, dataset.lab) == ("Magellon labels: StaggLab", "Stagg")
        runs = {r.name: r for r in s.scalars(sa.select(Run))}
        assert set(runs) == {J1, J2}
        for job, n, seed in ((J1, 4, 1), (J2, 3, 2)):
            run = runs[job]
            assert run.class2d_job.software == "magellon"
            assert (run.class2d_job.project_uid, run.class2d_job.n_classes) == ("P3", n)
            meta = _metadata(n, seed)
            rows = run.class_averages
            assert [r.class_index for r in rows] == list(range(n))
            for r, m in zip(rows, meta, strict=True):
                want_res = float(m["est_res"]) if np.isfinite(m["est_res"]) else None
                assert r.resolution_a == pytest.approx(want_res)
                assert r.class_fraction == pytest.approx(float(m["class_dist"]))
                assert r.pixel_size_a == pytest.approx(1.31)
                assert r.dmean_mass == pytest.approx(float(m["dmean_mass"]))
                assert r.dmedian_mass == pytest.approx(float(m["dmedian_mass"]))
                assert r.dmode_mass == pytest.approx(float(m["dmode_mass"]))
                assert r.particle_count == 0
            folder = layout.run_dir(portal.data_dir, dataset.id, job) / layout.CLASS_AVERAGES
            stored = json.loads((folder / layout.CLASS_AVERAGES_METADATA).read_text())
            assert stored["classes"][2]["resolution_A"] is None
            assert len(list((folder / layout.IMAGES).glob("class_*.png"))) == n
        users = {u.email: u for u in accounts.list_users(s)}
        assert {users[ANN].role, users[BOB].role} == {Role.labeller}
        assert users[ANN].password_hash is None
        stack_mtime = (
            (
                layout.run_dir(portal.data_dir, dataset.id, J1)
                / layout.CLASS_AVERAGES
                / layout.CLASS_AVERAGES_STACK
            )
            .stat()
            .st_mtime_ns
        )
        events = s.scalar(sa.select(sa.func.count()).select_from(GradeEvent))

    # Grades by letter, whatever path was typed and whatever the category ids were.
    assert _grades(root, cid) == {ANN: ANN_GRADES, BOB: BOB_GRADES}

    # Importing again changes nothing.
    code, out, err = cli(capsys, "import-magellon", root, lab, "--lab", "Stagg")
    assert code == 0, err
    assert "runs: 2 unchanged" in err
    assert "grades 0 stored, 9 unchanged" in err
    assert "several categories (B+D); not graded" in err
    with Portal.open(root) as portal, portal.transaction() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(GradeEvent)) == events
        assert (
            layout.run_dir(portal.data_dir, dataset.id, J1)
            / layout.CLASS_AVERAGES
            / layout.CLASS_AVERAGES_STACK
        ).stat().st_mtime_ns == stack_mtime
    assert _grades(root, cid) == {ANN: ANN_GRADES, BOB: BOB_GRADES}

    # Export, and read it back with the format readers.
    export = tmp_path / "for-cryosift"
    code, out, err = cli(capsys, "export-magellon", root, export, "--campaign", cid, "--json")
    assert code == 0, err
    assert json.loads(out)["labellers"] == {ANN: len(ANN_GRADES), BOB: len(BOB_GRADES)}
    assert mg.list_jobs(export).jobs == (J1, J2)
    for job, n, seed in ((J1, 4, 1), (J2, 3, 2)):
        back = mg.read_job(export, job)
        original = mg.read_job(lab, job)
        assert back.metadata.dtype.names == mg.METADATA_FIELDS
        for name in mg.METADATA_FIELDS:
            np.testing.assert_allclose(back.metadata[name], _metadata(n, seed)[name])
        assert np.abs(back.images.images - original.images.images).max() <= 2
    for email, expected in ((ANN, ANN_GRADES), (BOB, BOB_GRADES)):
        labels = tkteach.read_labels(export / tkteach.db_name(email))
        assert labels.findings == ()
        got = {name: set(image.letters) for name, image in labels.by_name().items()}
        assert got == {mg.image_name(job, i): {letter} for (job, i), letter in expected.items()}
    manifest = json.loads((export / "cryocurate_export.json").read_text())
    assert [j["job"] for j in manifest["jobs"]] == [J1, J2]

    # What CryoSift's JPGPreprocessor makes of it (its own string handling, verbatim).
    for email, expected in ((ANN, ANN_GRADES), (BOB, BOB_GRADES)):
        con = sqlite3.connect(export / tkteach.db_name(email))
        rows = con.execute(
            "SELECT imageName, category_id FROM images "
            "LEFT JOIN labels ON images.id = labels.image_id"
        ).fetchall()
        con.close()
        grades: dict[str, int] = {}
        for image_name, category_id in rows:
            grades.setdefault(os.path.basename(image_name).strip(".jpg"), category_id)
        want = {f"{job}_{i}": CRYOSIFT_ID[letter] for (job, i), letter in expected.items()}
        assert grades == want
    for job, n in ((J1, 4), (J2, 3)):
        names = os.listdir(export / "images" / job)
        assert sorted(int(name.strip(".jpg").split("_")[-1]) for name in names) == list(range(n))


def test_findings_in_text_summary_and_export_refuses_non_empty(
    tmp_path: Path, lab: Path, capsys
) -> None:
    root = tmp_path / "portal"
    Portal.create(root).close()
    code, _, err = cli(
        capsys, "import-magellon", root, lab, "--dataset-title", "Stagg 2024",
        "--campaign", "Stagg grades", "--labels", lab / tkteach.db_name(BOB),
    )  # fmt: skip
    assert code == 0, err
    assert "runs: 2 new" in err
    assert "campaign 1 (Stagg grades): 1 labeller(s), 1 new; grades 5 stored" in err
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    code, _, err = cli(capsys, "export-magellon", root, out, "--campaign", 1)
    assert code == 2
    assert err.startswith("Error:") and "not empty" in err and "Traceback" not in err
    assert (out / "keep.txt").read_text() == "mine"
    code, _, err = cli(capsys, "export-magellon", root, out, "--campaign", 1, "--force")
    assert code == 0, err
    assert not (out / "keep.txt").exists()
    assert sorted(p.name for p in out.iterdir()) == [
        "cryocurate_export.json",
        "images",
        "metadata",
        tkteach.db_name(BOB),
    ]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.")]


def test_bad_input_is_one_line_and_writes_nothing(tmp_path: Path, lab: Path, capsys) -> None:
    root = tmp_path / "portal"
    Portal.create(root).close()
    (lab / "storage_carl@lab.edu.db").write_bytes(b"not a database at all, just bytes" * 10)
    code, _, err = cli(capsys, "import-magellon", root, lab)
    assert code == 2
    assert err.startswith("Error:") and "storage_carl@lab.edu.db" in err
    assert len(err.strip().splitlines()) == 1
    with Portal.open(root) as portal, portal.transaction() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(Run)) == 0

    code, _, err = cli(capsys, "import-magellon", root, tmp_path / "nowhere")
    assert code == 2 and err.startswith("Error:") and "Traceback" not in err

    code, _, err = cli(capsys, "export-magellon", root, tmp_path / "x", "--campaign", 99)
    assert code == 2 and "no campaign" in err
