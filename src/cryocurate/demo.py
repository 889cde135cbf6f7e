"""The demo: sample jobs in real formats, a portal root, and their extraction.

Everything lands under one folder (``cryocurate-demo/`` by default)::

    jobs/CS-demo/J…        a synthetic cryoSPARC project with several 2D classification jobs
    jobs/relion/Class2D/job006   a synthetic RELION Class2D job
    jobs/tomo/TS_01, TS_02 two small tomography runs with tilt series (a clean one and a
                           marginal one), for the tilt-series quality campaign
    portal/                the portal root they are extracted into

Built once; running it again finds the jobs unchanged and rewrites nothing.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import select

from cryocurate import accounts, grading
from cryocurate.catalog.models import GradeScale, Run, RunKind
from cryocurate.errors import NotFoundError
from cryocurate.ingest.datasets import DatasetChoice, DatasetFields, create_dataset, find_dataset
from cryocurate.ingest.discover import find_project_jobs, pick_jobs
from cryocurate.ingest.extract import Extraction, Outcome
from cryocurate.ingest.tomography import Acquisition, RunFiles, ingest_run
from cryocurate.portal import Portal
from cryocurate.store import tree
from cryocurate.synth import synth_cryosparc_project, synth_relion
from cryocurate.synth.tomography import synth_tilt_series_run

DEMO_CAMPAIGN = "Demo grading"
TILT_CAMPAIGN = "Demo tilt-series quality"
DEMO_PASSWORD = "cryocurate-demo"
DEMO_USERS = (
    ("admin@demo.local", "admin"),
    ("labeller@demo.local", "labeller"),
    ("reviewer@demo.local", "reviewer"),
)
CRYOSPARC_TITLE = "Synthetic complex, cryoSPARC 2D classification (demo)"
RELION_TITLE = "Synthetic complex, RELION Class2D (demo)"
TOMO_TITLE = "Synthetic tomograms with tilt series (demo)"
#: The demo's tomography runs and the quality their tilt series were made with.
TOMO_RUNS = (("TS_01", 5), ("TS_02", 2))


def _build_once(target: Path, build: Callable[[Path], object]) -> None:
    """Build ``target`` in a temporary sibling and rename it, so a Ctrl-C leaves no half job."""
    if target.exists():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".tmp-{target.name}-{os.getpid()}"
    tree.discard(tmp)
    try:
        build(tmp)
        os.rename(tmp, target)
    finally:
        tree.discard(tmp)


def build_demo(directory: Path, *, report: Callable[[str], object] = print) -> Path:
    """Make (or reuse) the demo's jobs and portal root; returns the portal root."""
    directory = Path(directory).absolute()
    project = directory / "jobs" / "CS-demo"
    relion = directory / "jobs" / "relion"
    report(f"Sample jobs in {directory / 'jobs'}")
    _build_once(project, lambda p: synth_cryosparc_project(p, n_class2d_jobs=5, seed=7))
    _build_once(
        relion,
        lambda p: synth_relion(
            p / "Class2D" / "job006", n_classes=40, box=96, n_particles=30_000, seed=11
        ),
    )
    root = directory / "portal"
    with Portal.create(root) as portal:

        def show(o: Outcome) -> None:
            where = o.message if o.status == "error" else f"dataset {o.dataset_id}, {o.run_name}"
            report(f"  {o.status:<10} {where}")

        lab = DatasetFields(
            lab="Demo lab",
            organism_name="synthetic",
            sample_type="in_silico",
            authors=["cryocurate demo"],
        )
        Extraction(portal, DatasetChoice(CRYOSPARC_TITLE, lab), workers=2, on_outcome=show).run(
            pick_jobs(find_project_jobs(project), "first,middle,last")
        )
        Extraction(portal, DatasetChoice(RELION_TITLE, lab), on_outcome=show).run(
            [relion / "Class2D" / "job006"]
        )
        tomo = directory / "jobs" / "tomo"
        for name, quality in TOMO_RUNS:
            _build_once(
                tomo / name,
                lambda p, n=name, q=quality: synth_tilt_series_run(p, quality=q, seed=q, name=n),
            )
        _demo_tomography(portal, tomo, lab, report)
        _demo_campaign(portal, report)
    return root


def _demo_tomography(
    portal: Portal, tomo: Path, lab: DatasetFields, report: Callable[[str], object]
) -> None:
    """The tomography runs (tomogram + tilt series), once: a rerun finds them there."""
    with portal.transaction() as session:
        found = find_dataset(session, DatasetChoice(TOMO_TITLE))
        dataset_id = found.id if found is not None else None
        existing = (
            set(session.scalars(select(Run.name).where(Run.dataset_id == dataset_id)))
            if dataset_id is not None
            else set()
        )
    if dataset_id is None:
        fields = DatasetFields(
            title=TOMO_TITLE,
            lab=lab.lab,
            organism_name=lab.organism_name,
            sample_type=lab.sample_type,
            authors=lab.authors,
        )
        dataset_id = create_dataset(portal, fields)
    for name, _ in TOMO_RUNS:
        if name in existing:
            report(f"  {'unchanged':<10} dataset {dataset_id}, {name}")
            continue
        folder = tomo / name
        files = RunFiles(folder / f"{name}.mrc", folder / f"{name}.st", folder / f"{name}.rawtlt")
        ingest_run(portal, dataset_id, files, acquisition=Acquisition(tilt_step=3.0))
        report(f"  {'new':<10} dataset {dataset_id}, {name}")


def _demo_campaign(portal: Portal, report: Callable[[str], object]) -> None:
    """Demo accounts and a campaign over every run, so the served demo shows grading too.

    The passwords are printed and fixed: this is a sample portal served on loopback, never a
    real one (a real portal's users come from ``cryocurate users add`` and invite links)."""
    with portal.transaction() as session:
        for email, role in DEMO_USERS:
            try:
                accounts.get_user(session, email)
            except NotFoundError:
                user = accounts.add_user(session, email, role, display_name=email.split("@")[0])
                user.password_hash = accounts.hash_password(DEMO_PASSWORD)
        if not any(c.name == DEMO_CAMPAIGN for c in grading.list_campaigns(session)):
            runs = session.scalars(select(Run.id).where(Run.kind == RunKind.class2d)).all()
            labellers = [email for email, role in DEMO_USERS if role != "reviewer"]
            spec = grading.CampaignSpec(DEMO_CAMPAIGN, runs, labellers=labellers, seed=1)
            grading.create_campaign(session, spec)
        if not any(c.name == TILT_CAMPAIGN for c in grading.list_campaigns(session)):
            runs = session.scalars(select(Run.id).where(Run.kind == RunKind.tomography)).all()
            labellers = [email for email, role in DEMO_USERS if role != "reviewer"]
            spec = grading.CampaignSpec(
                TILT_CAMPAIGN,
                runs,
                scale=GradeScale.tilt_series,
                labellers=labellers,
                repeat_share=0.0,
                seed=2,
            )
            grading.create_campaign(session, spec)
    logins = ", ".join(email for email, _ in DEMO_USERS)
    report(
        f"Demo campaigns {DEMO_CAMPAIGN!r} and {TILT_CAMPAIGN!r}: log in as {logins} "
        f"with password {DEMO_PASSWORD!r}"
    )
