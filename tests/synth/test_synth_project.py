"""cryoSPARC project folders from ``synth_cryosparc_project``."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cryocurate.errors import InputError
from cryocurate.synth import synth_cryosparc_project
from cryocurate.synth.project import project_layout, project_total_rows


def test_project_layout_and_jobs(tmp_path):
    seen: list[int] = []
    p = synth_cryosparc_project(
        tmp_path / "CS-x",
        n_class2d_jobs=4,
        seed=2,
        n_classes=10,
        box=32,
        n_particles=600,
        progress=seen.append,
    )
    project = json.loads((p / "project.json").read_text())
    assert project["uid"] == "P1" and project["title"]
    layout = project_layout(4)
    assert layout[0] == "import_particles" and layout[-1] == "homo_refine_new"
    jobs = sorted((d for d in p.iterdir() if d.is_dir()), key=lambda d: int(d.name[1:]))
    assert [d.name for d in jobs] == [f"J{i}" for i in range(1, len(layout) + 1)]
    class2d = []
    for d, kind in zip(jobs, layout, strict=True):
        doc = json.loads((d / "job.json").read_text())
        assert doc["job_type"] == kind and doc["uid"] == d.name and doc["project_uid"] == "P1"
        if kind.startswith("class_2D"):
            class2d.append(d)
            assert (d / f"{d.name}_020_class_averages.mrc").exists()
            particles = np.load(d / f"{d.name}_020_particles.cs")
            assert particles["blob/path"][0].startswith(b"J1/imported/")
        else:
            assert [f.name for f in d.iterdir()] == ["job.json"]
    assert len(class2d) == 4
    assert json.loads((class2d[0] / "job.json").read_text())["job_type"] == "class_2D"
    assert seen[-1] == project_total_rows(4, 600, 10)
    created = [json.loads((d / "job.json").read_text())["created_at"]["$date"] for d in jobs]
    assert created == sorted(created)


def test_project_bad_options(tmp_path):
    with pytest.raises(InputError):
        synth_cryosparc_project(tmp_path / "p", n_class2d_jobs=0)
