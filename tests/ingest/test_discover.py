"""Recognising jobs by their files: every format variant, the final iteration, the run name."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from cryocurate.errors import FormatError, MissingFileError, NotAJobError
from cryocurate.ingest.discover import (
    find_job,
    find_project_jobs,
    pick_jobs,
    read_jobs_file,
)
from cryocurate.synth import synth_cryosparc_project


def test_cryosparc_v4_final_iteration_and_names(job):
    d = job("cryosparc")
    files = find_job(d)
    assert files.software == "cryosparc"
    names = sorted(p.name for p in d.iterdir())
    iterations = sorted({int(n.split("_")[1]) for n in names if n.endswith("class_averages.mrc")})
    assert len(iterations) >= 2, "the synthetic job should have several iterations"
    assert files.iteration == iterations[-1]
    assert files.averages.name == f"J12_{files.iteration:03d}_class_averages.mrc"
    assert files.particles.name == f"J12_{files.iteration:03d}_particles.cs"
    assert "passthrough" not in files.particles.name
    assert files.run_name == "P3_J12"  # from job.json


def test_highest_iteration_is_numeric_not_lexical(job):
    d = job("cryosparc")
    final = find_job(d)
    for suffix in ("class_averages.mrc", "class_averages.cs", "particles.cs"):
        shutil.copy(d / f"J12_{final.iteration:03d}_{suffix}", d / f"J12_1000_{suffix}")
    assert find_job(d).iteration == 1000


def test_legacy_names_give_project_without_job_json(job):
    d = job("cryosparc_legacy")
    (d / "job.json").unlink(missing_ok=True)
    files = find_job(d)
    assert files.averages.name.startswith("cryosparc_P209_J18_")
    assert files.run_name == "P209_J18"


def test_three_files_alone_are_a_job(job, tmp_path):
    """The seed's 'fake job folder': only the final iteration's three files, no job.json."""
    full = find_job(job("cryosparc"))
    fake = tmp_path / "fake"
    fake.mkdir()
    for f in (full.averages, full.classes, full.particles):
        shutil.copy(f, fake / f.name)
    files = find_job(fake)
    assert files.job_json is None
    assert files.run_name == "fake"  # no project uid known: the folder's name


def test_relion_variants(job):
    files = find_job(job("relion"))
    assert files.software == "relion"
    assert files.averages.name.endswith("_classes.mrcs")
    assert files.run_name == "job006"
    continued = find_job(job("relion_continued"))
    assert "_ct" in continued.averages.name


def test_relion_continued_wins_at_same_iteration(job):
    d = job("relion")
    files = find_job(d)
    stem = files.averages.name.removesuffix("_classes.mrcs")
    it = stem.rsplit("_it", 1)[1]
    for suffix in ("classes.mrcs", "model.star", "data.star"):
        shutil.copy(d / f"{stem}_{suffix}", d / f"run_ct3_it{it}_{suffix}")
    assert find_job(d).averages.name == f"run_ct3_it{it}_classes.mrcs"


def test_missing_companion_file_is_named(job):
    d = job("cryosparc")
    files = find_job(d)
    files.particles.unlink()
    with pytest.raises(MissingFileError, match="particles") as info:
        find_job(d)
    assert str(d) in str(info.value)


def test_dangling_symlink_is_missing(job):
    d = job("cryosparc")
    files = find_job(d)
    files.classes.unlink()
    files.classes.symlink_to(d / "nowhere.cs")
    with pytest.raises(MissingFileError, match="class metadata"):
        find_job(d)


def test_no_iteration_found(tmp_path):
    d = tmp_path / "J5"
    d.mkdir()
    (d / "J5_class_averages.mrc").write_bytes(b"\0" * 2048)
    with pytest.raises(FormatError, match="no iteration found"):
        find_job(d)


def test_not_a_job(tmp_path):
    d = tmp_path / "refine"
    d.mkdir()
    (d / "notes.txt").write_text("hello")
    with pytest.raises(NotAJobError, match="not a 2D classification job"):
        find_job(d)
    (d / "run_it025_class001.mrc").write_bytes(b"")
    with pytest.raises(NotAJobError, match="3D"):
        find_job(d)
    with pytest.raises(MissingFileError, match="not found"):
        find_job(tmp_path / "absent")


def test_jobs_file(tmp_path):
    listing = tmp_path / "jobs.txt"
    listing.write_text("# my jobs\n\nJ1\n  /abs/J2  # the middle one\n\n")
    assert read_jobs_file(listing) == [tmp_path / "J1", Path("/abs/J2")]
    with pytest.raises(MissingFileError):
        read_jobs_file(tmp_path / "none.txt")


def test_project_first_middle_last(tmp_path):
    project = synth_cryosparc_project(tmp_path / "CS-proj", n_class2d_jobs=5, seed=3)
    jobs = find_project_jobs(project)
    assert len(jobs) == 5
    numbers = [int(j.name[1:]) for j in jobs]
    assert numbers == sorted(numbers)
    for j in jobs:
        assert json.loads((j / "job.json").read_text())["job_type"].startswith("class_2D")
    picked = pick_jobs(jobs, "first,middle,last")
    assert picked == [jobs[0], jobs[2], jobs[4]]
    assert pick_jobs(jobs, "all") == jobs
    assert pick_jobs(jobs[:2], "first,middle,last") == jobs[:2]
    with pytest.raises(Exception, match="--pick"):
        pick_jobs(jobs, "best")
