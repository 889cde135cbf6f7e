"""A cryoSPARC project folder with several 2D Classification jobs among other jobs.

Labs are asked to extract the first, middle and last 2D jobs of a project, so a finder must
tell 2D Classification jobs from the rest by ``job.json`` and order them by job number.
This builds such a project::

    CS-synthetic/
      project.json  workspaces.json
      J1/  job.json                      import_particles (the particles' source)
      J2/  job.json + the 2D job files   class_2D (the older job type)
      J3/  job.json                      select_2D
      J4/  …                             class_2D_new
      …
      Jn/  job.json                      homo_refine_new

All 2D jobs classify the same particle (one density), with quality rising from the first
job to the last, as in a real project where junk is removed between rounds.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

from cryocurate.atomic import write_json
from cryocurate.errors import InputError
from cryocurate.synth.cryosparc import (
    base_time,
    hex_id,
    job_document,
    mongo_date,
    resolve_density,
    synth_cryosparc,
    total_rows,
)
from cryocurate.synth.density import Density
from cryocurate.synth.plan import Progress, check_options

_OTHER_TITLES = {
    "import_particles": "Import Particle Stack",
    "select_2D": "Select 2D Classes",
    "homo_abinit": "Ab-Initio Reconstruction",
    "homo_refine_new": "Homogeneous Refinement",
}


def project_layout(n_class2d_jobs: int) -> list[str]:
    """Job types in job-number order (J1 first): 2D jobs interleaved with other jobs."""
    types = ["import_particles"]
    for i in range(n_class2d_jobs):
        types.append("class_2D" if i == 0 and n_class2d_jobs > 1 else "class_2D_new")
        if i < n_class2d_jobs - 1:
            types.append("homo_abinit" if i == n_class2d_jobs // 2 else "select_2D")
    types.append("homo_refine_new")
    return types


def project_total_rows(
    n_class2d_jobs: int, n_particles: int, n_classes: int = 50, iterations: int = 2
) -> int:
    """All particle rows the project's 2D jobs write (for a progress bar's total)."""
    return sum(
        total_rows(_job_particles(i, n_particles, n_classes), iterations)
        for i in range(n_class2d_jobs)
    )


def _job_particles(i: int, n_particles: int, n_classes: int) -> int:
    return max(min(n_particles, n_classes), int(n_particles * 0.75**i))


def synth_cryosparc_project(
    out_dir: str | os.PathLike[str],
    *,
    n_class2d_jobs: int = 5,
    seed: int = 0,
    n_classes: int = 50,
    box: int = 128,
    pixel_size: float = 1.5,
    n_particles: int = 20_000,
    iterations: int = 2,
    density: str | os.PathLike[str] | Density | None = None,
    project_uid: str = "P1",
    title: str = "Synthetic project",
    cs_format: str = "numpy",
    progress: Progress | None = None,
) -> Path:
    """Write a cryoSPARC project folder with ``n_class2d_jobs`` 2D jobs; return its path.

    The k-th 2D job (0-based) classifies ``n_particles × 0.75^k`` particles with a rising
    share of good classes. Non-2D jobs hold only a ``job.json``. ``progress`` receives the
    particle rows written so far across all jobs (total: :func:`project_total_rows`).

    Raises:
        InputError: an impossible option, or an unreadable density map.
    """
    if n_class2d_jobs < 1:
        raise InputError(f"--jobs must be at least 1, not {n_class2d_jobs}")
    check_options(
        n_classes=n_classes,
        box=box,
        pixel_size=pixel_size,
        n_particles=n_particles,
        iterations=iterations,
    )
    out = Path(out_dir)
    the_density = resolve_density(density, box=box, pixel_size=pixel_size, seed=seed)
    out.mkdir(parents=True, exist_ok=True)
    start = base_time(seed)
    owner = hex_id(seed, "user")
    slug = title.lower().replace(" ", "-")
    write_json(
        out / "project.json",
        {
            "_id": hex_id(seed, project_uid),
            "uid": project_uid,
            "title": title,
            "description": "",
            "project_dir": f"/data/cryosparc_projects/CS-{slug}",
            "owner_user_id": owner,
            "created_at": mongo_date(start - dt.timedelta(hours=2)),
            "last_accessed": {"name": "cryosparcuser", "accessed_at": mongo_date(start)},
            "archived": False,
            "deleted": False,
            "size": 0,
        },
    )
    write_json(
        out / "workspaces.json",
        [
            {
                "uid": "W1",
                "project_uid": project_uid,
                "title": "Workspace 1",
                "created_at": mongo_date(start - dt.timedelta(hours=2)),
            }
        ],
    )
    done = 0
    k = 0
    previous = None
    for number, job_type in enumerate(project_layout(n_class2d_jobs), start=1):
        job_uid = f"J{number}"
        created = start + dt.timedelta(hours=3 * number)
        parents = [previous] if previous else []
        if job_type.startswith("class_2D"):
            n = _job_particles(k, n_particles, n_classes)

            def report(rows: int, offset: int = done) -> None:
                if progress is not None:
                    progress(offset + rows)

            synth_cryosparc(
                out / job_uid,
                n_classes=n_classes,
                box=box,
                pixel_size=pixel_size,
                n_particles=n,
                seed=seed * 1000 + number,
                density=the_density,
                iterations=iterations,
                project_uid=project_uid,
                job_uid=job_uid,
                cs_format=cs_format,
                progress=report,
                quality=0.15 + 0.7 * (k / max(n_class2d_jobs - 1, 1)),
                job_type=job_type,
                version="v4.2.1" if job_type == "class_2D" else "v4.6.2",
                source_job_uid="J1",
                created_at=created,
            )
            done += total_rows(n, iterations)
            k += 1
        else:
            write_json(
                out / job_uid / "job.json",
                job_document(
                    seed=seed,
                    project_uid=project_uid,
                    job_uid=job_uid,
                    job_type=job_type,
                    version="v4.6.2",
                    title=_OTHER_TITLES[job_type],
                    created=created,
                    parents=parents,
                ),
            )
        previous = job_uid
    return out
