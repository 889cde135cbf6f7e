"""Read queries that return plain dataclasses, for the CLI, the web pages and the API alike."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cryocurate.catalog.models import Class2DJob, ClassAverage, Dataset, Run


@dataclass(frozen=True)
class RunSummary:
    id: int
    name: str
    kind: str
    software: str | None
    iteration: int | None
    n_classes: int
    n_particles: int
    pixel_size_a: float | None
    box_size: int | None


@dataclass(frozen=True)
class DatasetSummary:
    id: int
    title: str
    lab: str | None
    organism_name: str | None
    sample_type: str | None
    runs: list[RunSummary] = field(default_factory=list)

    @property
    def n_classes(self) -> int:
        return sum(r.n_classes for r in self.runs)

    @property
    def n_particles(self) -> int:
        return sum(r.n_particles for r in self.runs)


def natural_key(name: str) -> list[int | str]:
    """Sort key that puts J2 before J10, as people count jobs."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def dataset_summaries(session: Session) -> list[DatasetSummary]:
    """Every dataset with its runs and their class and particle counts, in id order."""
    counts = (
        select(ClassAverage.run_id, func.count().label("n"))
        .group_by(ClassAverage.run_id)
        .subquery()
    )
    rows = session.execute(
        select(Run, Class2DJob, counts.c.n)
        .outerjoin(Class2DJob, Class2DJob.run_id == Run.id)
        .outerjoin(counts, counts.c.run_id == Run.id)
        .order_by(Run.dataset_id, Run.name)
    ).all()
    runs: dict[int, list[RunSummary]] = {}
    for run, job, n in rows:
        runs.setdefault(run.dataset_id, []).append(
            RunSummary(
                id=run.id,
                name=run.name,
                kind=run.kind.value,
                software=job.software if job else None,
                iteration=job.iteration if job else None,
                n_classes=int(n or 0),
                n_particles=int(job.n_particles) if job else 0,
                pixel_size_a=job.pixel_size_a if job else None,
                box_size=job.box_size if job else None,
            )
        )
    for listed in runs.values():
        listed.sort(key=lambda r: natural_key(r.name))
    return [
        DatasetSummary(
            id=d.id,
            title=d.title,
            lab=d.lab,
            organism_name=d.organism_name,
            sample_type=d.sample_type.value if d.sample_type else None,
            runs=runs.get(d.id, []),
        )
        for d in session.scalars(select(Dataset).order_by(Dataset.id))
    ]


def class_averages(session: Session, run_id: int) -> list[ClassAverage]:
    return list(
        session.scalars(
            select(ClassAverage)
            .where(ClassAverage.run_id == run_id)
            .order_by(ClassAverage.class_index)
        )
    )
