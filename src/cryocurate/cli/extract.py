"""``cryocurate extract``: 2D classification jobs → runs of a portal root."""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cryocurate.cli import console
from cryocurate.cli.options import (
    Authors,
    Description,
    Lab,
    Organism,
    Related,
    RootOption,
    SampleType,
    TaxId,
    dataset_fields,
)
from cryocurate.errors import InputError

if TYPE_CHECKING:
    from cryocurate.ingest.extract import Outcome

_STYLE = {"new": "green", "replaced": "yellow", "unchanged": "dim", "error": "red"}


def _line(o: Outcome) -> str:
    """One summary line per job (markup-free text is escaped by the caller)."""
    if o.status == "error":
        return f"[red]error    [/red] {_escape(o.message)}"
    where = f"{o.dataset_id}/{o.run_name}"
    facts = (
        f"{o.software} it {o.iteration}, {o.n_classes} classes, {o.n_particles:,} particles"
        if o.n_classes is not None
        else ""
    )
    took = f"  {o.seconds:.1f} s" if o.seconds else ""
    note = f"  ({_escape(o.message)})" if o.message else ""
    return f"[{_STYLE[o.status]}]{o.status:<10}[/] {_escape(where):<28} {facts}{took}{note}"


def _escape(text: str) -> str:
    return text.replace("[", r"\[")


def extract(
    root: RootOption,
    dataset: Annotated[
        str,
        typer.Option(
            "--dataset", "-d", help="A dataset id, or a title (existing, or new: it is made)."
        ),
    ],
    job_dirs: Annotated[
        list[Path] | None,
        typer.Argument(
            help="Job folders (cryoSPARC or RELION 2D classification).", show_default=False
        ),
    ] = None,
    jobs_file: Path | None = typer.Option(
        None, "--jobs-file", help="A text file of job folders, one per line (# comments)."
    ),
    project: Path | None = typer.Option(
        None, "--project", help="A cryoSPARC (or RELION) project folder to find 2D jobs in."
    ),
    pick: str = typer.Option(
        "first,middle,last", "--pick", help="With --project: 'all' or any of first,middle,last."
    ),
    iteration: int | None = typer.Option(
        None,
        "--iteration",
        min=0,
        help="Extract this iteration (J12_005_…, run_it005_…) instead of each job's final one.",
        show_default=False,
    ),
    workers: int = typer.Option(
        os.cpu_count() or 1, "--workers", "-w", min=1, help="Jobs extracted in parallel."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the outcomes as JSON on stdout."),
    description: Description = None,
    lab: Lab = None,
    organism: Organism = None,
    taxid: TaxId = None,
    sample_type: SampleType = None,
    author: Authors = None,
    related: Related = None,
) -> int:
    """Extract class averages and their metadata from 2D classification jobs.

    Jobs already extracted and unchanged are skipped; changed ones are replaced. Dataset
    options (--lab, --organism…) apply when --dataset names a new dataset. Each job's final
    iteration is extracted, and refused if one of its files is missing; --iteration N picks
    another.

    Example: cryocurate extract J12 J40 J77 --root ./portal --dataset "Apoferritin" --lab Lander
    """
    from cryocurate.ingest.datasets import DatasetChoice
    from cryocurate.ingest.discover import (
        find_project_jobs,
        pick_jobs,
        read_jobs_file,
        unique_paths,
    )
    from cryocurate.ingest.extract import Extraction, summarize
    from cryocurate.portal import Portal

    jobs = list(job_dirs or [])
    if jobs_file is not None:
        jobs += read_jobs_file(jobs_file)
    if project is not None:
        jobs += pick_jobs(find_project_jobs(project), pick)
    jobs = unique_paths(jobs)
    if not jobs:
        raise InputError("no jobs given", hint="name job folders, or use --jobs-file or --project")
    fields = dataset_fields(
        description=description,
        lab=lab,
        organism=organism,
        taxid=taxid,
        sample_type=sample_type,
        authors=author,
        related=related,
    )
    choice = DatasetChoice(spec=dataset, fields=fields)
    with Portal.open(root) as portal:
        progress = console.counting_bar("extracting", quiet=as_json)
        with progress:
            task = progress.add_task("jobs", total=len(jobs))

            def report(outcome: Outcome) -> None:
                if not as_json:
                    progress.console.print(_line(outcome))
                progress.advance(task)

            outcomes = Extraction(
                portal, choice, workers=workers, on_outcome=report, iteration=iteration
            ).run(jobs)
    counts = summarize(outcomes)
    if as_json:
        console.out.print_json(json.dumps([asdict(o) for o in outcomes]))
    else:
        parts = [f"{n} {status}" for status, n in counts.items() if n]
        console.err.print(f"{len(outcomes)} job(s): " + ", ".join(parts))
    return 2 if counts["error"] else 0


def register(app: typer.Typer) -> None:
    app.command()(extract)
