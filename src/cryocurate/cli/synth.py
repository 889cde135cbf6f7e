"""``cryocurate synth cryosparc|relion|project``: write synthetic 2D classification jobs.

Each command is a few lines over :mod:`cryocurate.synth`: parse the options, run the writer
with a progress bar over its particle rows (on stderr), print one summary line (on stdout).
Bad options raise :class:`~cryocurate.errors.InputError` in the library, which the main
command renders as one ``Error: …`` line with exit status 2.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import typer

from cryocurate.cli import console

app = typer.Typer(
    help="Write synthetic 2D classification jobs (cryoSPARC, RELION) in their exact on-disk "
    "formats, with truth.csv giving each class's intended grade.\n\n"
    "Example: cryocurate synth cryosparc ./P1/J12 --classes 50 --particles 20000 --seed 1",
    no_args_is_help=True,
)

_CLASSES = typer.Option(50, "--classes", help="Number of classes (K).")
_BOX = typer.Option(128, "--box", help="Image edge in pixels (at least 16).")
_PIXEL = typer.Option(1.5, "--pixel-size", help="Pixel size in Å.")
_PARTICLES = typer.Option(20_000, "--particles", help="Particles in the job.")
_SEED = typer.Option(0, "--seed", help="Seed: the same seed writes byte-identical files.")
_DENSITY = typer.Option(
    None,
    "--density",
    help="An MRC map to project (default: a random protein-like density).",
    metavar="MAP.mrc",
)
_ITERATIONS = typer.Option(2, "--iterations", help="Iterations kept (the last is the final one).")


def _run(label: str, total: int, write: Callable[[Callable[[int], None]], Path]) -> float:
    """Run ``write`` with a progress bar over ``total`` particle rows; return the seconds."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    start = time.perf_counter()
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console.err,
        transient=True,
    ) as bar:
        task = bar.add_task(label, total=max(total, 1))
        write(lambda done: bar.update(task, completed=done))
    return time.perf_counter() - start


@app.command()
def cryosparc(
    out: Path = typer.Argument(..., help="The job folder to write (made if missing)."),
    classes: int = _CLASSES,
    box: int = _BOX,
    pixel_size: float = _PIXEL,
    particles: int = _PARTICLES,
    seed: int = _SEED,
    density: Path | None = _DENSITY,
    iterations: int = _ITERATIONS,
    cs_format: str = typer.Option("numpy", "--cs-format", help="numpy (as on disk) or csdat."),
    legacy_names: bool = typer.Option(
        False, "--legacy-names", help="Pre-v4 names: cryosparc_P1_J12_020_class_averages.mrc."
    ),
    job_uid: str = typer.Option("J12", "--job", help="The job uid (J<n>)."),
    project_uid: str = typer.Option("P1", "--project-uid", help="The project uid (P<n>)."),
) -> None:
    """Write a cryoSPARC 2D Classification job folder.

    Example: cryocurate synth cryosparc ./P1/J12 --classes 50 --particles 20000 --seed 1
    """
    from cryocurate.synth import cryosparc as cs_synth
    from cryocurate.synth.plan import check_options, iteration_numbers

    check_options(
        n_classes=classes,
        box=box,
        pixel_size=pixel_size,
        n_particles=particles,
        iterations=iterations,
    )
    total = cs_synth.total_rows(particles, iterations)
    seconds = _run(
        "particles",
        total,
        lambda progress: cs_synth.synth_cryosparc(
            out,
            n_classes=classes,
            box=box,
            pixel_size=pixel_size,
            n_particles=particles,
            seed=seed,
            density=density,
            iterations=iterations,
            project_uid=project_uid,
            job_uid=job_uid,
            cs_format=cs_format,
            legacy_names=legacy_names,
            progress=progress,
        ),
    )
    final = iteration_numbers(iterations, cs_synth.FINAL_ITERATION)[-1]
    console.out.print(
        f"Wrote cryoSPARC job {job_uid} to {out}: {classes} classes, {particles:,} particles, "
        f"final iteration {final:03d} ({seconds:.1f} s).",
        markup=False,
    )


@app.command()
def relion(
    out: Path = typer.Argument(..., help="The job folder to write, e.g. Class2D/job006."),
    classes: int = _CLASSES,
    box: int = _BOX,
    pixel_size: float = _PIXEL,
    particles: int = _PARTICLES,
    seed: int = _SEED,
    density: Path | None = _DENSITY,
    iterations: int = _ITERATIONS,
    relion_version: str = typer.Option(
        "3.1", "--relion-version", help="3.0, 3.1, 4.0 or 5.0 (file layout and defaults)."
    ),
    continued: bool = typer.Option(
        False, "--continued", help="Name the iterations after a restart run_ct<N>_itNNN_*."
    ),
) -> None:
    """Write a RELION Class2D job folder.

    Example: cryocurate synth relion ./Class2D/job006 --relion-version 3.1 --classes 50
    """
    from cryocurate.synth import relion as relion_synth
    from cryocurate.synth.plan import check_options

    check_options(
        n_classes=classes,
        box=box,
        pixel_size=pixel_size,
        n_particles=particles,
        iterations=iterations,
    )
    numbers = relion_synth.iterations_for(iterations, relion_version, continued=continued)
    seconds = _run(
        "particles",
        particles * len(numbers),
        lambda progress: relion_synth.synth_relion(
            out,
            n_classes=classes,
            box=box,
            pixel_size=pixel_size,
            n_particles=particles,
            seed=seed,
            density=density,
            iterations=iterations,
            relion_version=relion_version,
            continued=continued,
            progress=progress,
        ),
    )
    console.out.print(
        f"Wrote RELION {relion_version} Class2D job to {out}: {classes} classes, "
        f"{particles:,} particles, final iteration {numbers[-1]:03d} ({seconds:.1f} s).",
        markup=False,
    )


@app.command()
def project(
    out: Path = typer.Argument(..., help="The project folder to write (made if missing)."),
    jobs: int = typer.Option(5, "--jobs", help="Number of 2D Classification jobs."),
    classes: int = _CLASSES,
    box: int = _BOX,
    pixel_size: float = _PIXEL,
    particles: int = _PARTICLES,
    seed: int = _SEED,
    density: Path | None = _DENSITY,
    iterations: int = _ITERATIONS,
) -> None:
    """Write a cryoSPARC project folder with several 2D jobs among other jobs.

    Example: cryocurate synth project ./CS-demo --jobs 5 --classes 50 --particles 20000
    """
    from cryocurate.synth import project as project_synth
    from cryocurate.synth.plan import check_options

    check_options(
        n_classes=classes,
        box=box,
        pixel_size=pixel_size,
        n_particles=particles,
        iterations=iterations,
    )
    total = project_synth.project_total_rows(max(jobs, 0), particles, classes, iterations)
    seconds = _run(
        "particles",
        total,
        lambda progress: project_synth.synth_cryosparc_project(
            out,
            n_class2d_jobs=jobs,
            seed=seed,
            n_classes=classes,
            box=box,
            pixel_size=pixel_size,
            n_particles=particles,
            iterations=iterations,
            density=density,
            progress=progress,
        ),
    )
    n_jobs = len(project_synth.project_layout(jobs))
    console.out.print(
        f"Wrote cryoSPARC project to {out}: {n_jobs} jobs, {jobs} of them 2D classification "
        f"({seconds:.1f} s).",
        markup=False,
    )


def register(parent: typer.Typer) -> None:
    parent.add_typer(app, name="synth")
