"""Exporting a campaign in Magellon's layout, so CryoSift's training code reads our labels.

::

    OUT/images/<job>/<job>_<i>.jpg        every class average of every run of the campaign
    OUT/metadata/<job>.npy                six float64 fields per class, Magellon's order
    OUT/storage_<email>.db                one tkteach database per labeller (original schema)
    OUT/cryocurate_export.json            which run each <job> is, and what was written

**Job names.** CryoSift parses ``<job>_<i>.jpg`` with ``str.strip('.jpg')`` and
``split('_')[-1]``, so a job name must pass :func:`cryocurate.formats.magellon.check_job_name`
(no ``.``, no separator, not starting with ``. j p g``) and be unique in ``images/``. A run
imported from Magellon keeps its original job name (the export then reads back with the same
image names the labellers saw); any other run gets ``<P>_<J>_<dataset id>`` from its
cryoSPARC uids (a RELION ``job006`` is ``J6``; ``P0``/``J<run id>`` where unknown), and
``-2``, ``-3``… on a clash.

**Images** are written as :mod:`cryocurate.formats.magellon` writes them: the per-image
min–max stretch CryoSift itself re-applies, rounded, in 8-bit greyscale JPEGs at quality 100
(within one grey level of the 8-bit image; Magellon's own quality 75 moved pixels by up to 40).

**Metadata**: ``est_res`` = resolution (inf where unknown, as extract_mrc.py writes an empty
class), ``class_dist`` = class fraction, ``pixel_size``, and the three mass differences (NaN
where unknown: CryoSift fills NaN with 999, so check before training on such runs).

**Labels**: each labeller's current grade (not the repeat looks) of each image, as a single
category, in a database written with tkteach's own statements and Magellon's categories file
(ids A=1 … F=5, which CryoSift uses as the grade). Only graded images are listed; an image
graded by nobody gets no label from anyone (CryoSift would train it on a target of 999), and
the summary counts them.

Nothing is half-written: everything goes to a hidden folder next to ``OUT`` and is renamed
into place at the end; a non-empty ``OUT`` is refused unless ``force`` replaces it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import secrets
import shutil
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa

from cryocurate import __version__, atomic, grading
from cryocurate.catalog.models import (
    CampaignItem,
    ClassAverage,
    GradeScale,
    Run,
)
from cryocurate.errors import ConflictError, FormatError, InputError
from cryocurate.formats import magellon as mg
from cryocurate.formats import tkteach
from cryocurate.formats.mrc import read_stack
from cryocurate.portal import Portal
from cryocurate.store import layout, names

MANIFEST = "cryocurate_export.json"
_P = re.compile(r"P\d+")
_J = re.compile(r"J\d+")
_RELION_JOB = re.compile(r"job(\d+)")


@dataclass(frozen=True)
class ExportedJob:
    job: str
    run_id: int
    run_name: str
    dataset_id: int
    n_classes: int


@dataclass
class MagellonExport:
    """What :func:`export_magellon` wrote, for the summary and ``--json``."""

    out: str
    campaign_id: int
    campaign: str
    jobs: list[ExportedJob] = field(default_factory=list)
    labellers: dict[str, int] = field(default_factory=dict)  # email → images labelled
    images: int = 0
    ungraded_images: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "out": self.out,
            "campaign_id": self.campaign_id,
            "campaign": self.campaign,
            "jobs": [j.__dict__ for j in self.jobs],
            "labellers": self.labellers,
            "images": self.images,
            "ungraded_images": self.ungraded_images,
        }


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "-", text)


def job_name(run: Run, taken: set[str]) -> str:
    """A CryoSift-safe job name for ``run``, unique among ``taken`` (which it joins)."""
    job = run.class2d_job
    wanted = ""
    if job is not None and job.software == "magellon":
        wanted = Path(job.source_path).name
        try:
            mg.check_job_name(wanted)
        except ValueError:
            wanted = ""
    if not wanted:
        project = job.project_uid if job is not None and job.project_uid else ""
        uid = job.job_uid if job is not None and job.job_uid else ""
        p = project if _P.fullmatch(project) else "P0"
        relion = _RELION_JOB.fullmatch(uid)
        if _J.fullmatch(uid):
            j = uid
        elif relion:  # RELION's job006 is job 6: J6, not the run's id
            j = f"J{int(relion.group(1))}"
        else:
            j = f"J{run.id}"
        wanted = _safe(f"{p}_{j}_{run.dataset_id}")
    name, n = wanted, 2
    while name in taken:
        name, n = f"{wanted}-{n}", n + 1
    taken.add(name)
    return name


def _metadata(rows: list[ClassAverage]) -> np.ndarray:
    def value(x: float | None, missing: float) -> float:
        return float(x) if x is not None else missing

    return mg.metadata_records(
        {
            "est_res": [value(r.resolution_a, np.inf) for r in rows],
            "class_dist": [value(r.class_fraction, 0.0) for r in rows],
            "pixel_size": [float(r.pixel_size_a) for r in rows],
            "dmean_mass": [value(r.dmean_mass, np.nan) for r in rows],
            "dmedian_mass": [value(r.dmedian_mass, np.nan) for r in rows],
            "dmode_mass": [value(r.dmode_mass, np.nan) for r in rows],
        }
    )


def _check_out(out: Path, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise ConflictError("exists and is not a folder", where=out)
    if out.is_dir() and any(out.iterdir()) and not force:
        raise ConflictError(
            "folder is not empty", where=out, hint="choose an empty folder, or pass --force"
        )


def _publish(staging: Path, out: Path) -> None:
    """Rename the finished ``staging`` folder to ``out`` (replacing what is there)."""
    old: Path | None = None
    if out.is_dir():
        if any(out.iterdir()):
            old = out.parent / f".{out.name}.old-{secrets.token_hex(4)}"
            os.rename(out, old)
        else:
            out.rmdir()
    try:
        os.rename(staging, out)
    except BaseException:
        if old is not None:
            os.rename(old, out)
        raise
    atomic.fsync_dir(out.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def export_magellon(
    portal: Portal, out: str | os.PathLike[str], campaign_id: int, *, force: bool = False
) -> MagellonExport:
    """Write campaign ``campaign_id`` to ``out`` in Magellon's layout (see the module).

    Raises:
        NotFoundError: no such campaign.
        InputError: a campaign of tilt series (Magellon's layout holds class averages).
        ConflictError: ``out`` is a file, or a non-empty folder and ``force`` is False.
        FormatError: a run's stored class averages do not match its catalog rows.
    """
    out = Path(os.path.abspath(out))
    names.check_export_folder(out, portal.root, portal.data_dir)
    _check_out(out, force)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.parent / f".{out.name}.partial-{secrets.token_hex(4)}"
    staging.mkdir()
    try:
        with portal.transaction() as session:
            result = _write(session, portal, staging, out, campaign_id)
        atomic.fsync_tree(staging)
        _check_out(out, force)
        _publish(staging, out)
    finally:
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(staging)
    return result


def _write(
    session: Any, portal: Portal, staging: Path, out: Path, campaign_id: int
) -> MagellonExport:
    campaign = grading.load_campaign(session, campaign_id)
    if campaign.scale is not GradeScale.letters:
        raise InputError(
            f"campaign {campaign.id} grades tilt series; Magellon's layout holds class averages"
        )
    result = MagellonExport(out=str(out), campaign_id=campaign.id, campaign=campaign.name)
    taken: set[str] = set()
    where: dict[int, tuple[str, int]] = {}  # class average id → (job, class index)
    for campaign_run in sorted(campaign.runs, key=lambda cr: cr.run_id):
        run = campaign_run.run
        rows = list(run.class_averages)
        if not rows:
            continue
        if [r.class_index for r in rows] != list(range(len(rows))):
            raise FormatError(f"run {run.id} ({run.name}): class indices are not 0…n-1")
        job = job_name(run, taken)
        stack_path = (
            layout.run_dir(portal.data_dir, run.dataset_id, run.name)
            / layout.CLASS_AVERAGES
            / layout.CLASS_AVERAGES_STACK
        )
        images = read_stack(stack_path, require_square=False).data
        if len(images) != len(rows):
            raise FormatError(
                f"{len(images)} images for {len(rows)} catalogued classes of run {run.id}",
                where=stack_path,
            )
        mg.write_job(staging, job, images, _metadata(rows), durable=False)
        for row in rows:
            where[row.id] = (job, row.class_index)
        result.jobs.append(ExportedJob(job, run.id, run.name, run.dataset_id, len(rows)))
        result.images += len(rows)

    item_class = dict(
        session.execute(
            sa.select(CampaignItem.id, CampaignItem.class_average_id).where(
                CampaignItem.campaign_id == campaign.id
            )
        ).all()
    )
    letters: dict[str, dict[tuple[str, int], str]] = defaultdict(dict)
    for user in sorted((cl.user for cl in campaign.labellers), key=lambda u: u.email):
        letters[user.email] = {}
    for row in grading.grade_rows(session, campaign, repeats=False):
        ca = item_class.get(row["item_id"])
        if ca in where:
            letters[row["labeller"]][where[ca]] = row["grade"]
    graded: set[tuple[str, int]] = set()
    for email in sorted(letters):
        by_image = letters[email]
        tkteach.write_labels(
            staging / tkteach.db_name(email),
            [
                tkteach.ImageLabel(
                    dataset=job, name=mg.image_name(job, index), letters=frozenset({letter})
                )
                for (job, index), letter in sorted(by_image.items())
            ],
            lab_dir=str(out),
            durable=False,
        )
        result.labellers[email] = len(by_image)
        graded |= by_image.keys()
    result.ungraded_images = result.images - len(graded)
    atomic.write_json(
        staging / MANIFEST,
        {
            "campaign": {"id": campaign.id, "name": campaign.name},
            "exported_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "cryocurate_version": __version__,
            "image_format": f"8-bit greyscale JPEG, quality {mg.JPEG_QUALITY}, min-max stretched",
            "jobs": [j.__dict__ for j in result.jobs],
            "labellers": result.labellers,
            "ungraded_images": result.ungraded_images,
        },
        durable=False,
    )
    return result


__all__ = ["MANIFEST", "MagellonExport", "export_magellon", "job_name"]
