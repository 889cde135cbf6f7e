"""``cryocurate download`` and ``cryocurate import-czportal``: data out of and into a portal root.

Both show a byte progress bar on stderr (so stdout stays clean for scripts) and end with one
summary line; problems end as one error line from the main CLI.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from cryocurate.cli import console
from cryocurate.transfer.choices import DatasetIdPolicy, Kind

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

LayoutOption = typer.Option(
    "v1",
    "--layout",
    help="Folder layout: v1 (the seed's, as stored: Tomograms/VoxelSpacing…/CanonicalTomogram)"
    " or v2 (the CZ portal's today: Reconstructions/VoxelSpacing…/Tomograms/100).",
    case_sensitive=False,
)


def _mb(n: int) -> str:
    return f"{n / 1e6:,.1f} MB"


class _Bar:
    """A byte progress bar on stderr, or nothing when stderr is not a terminal (so logs and
    captured output stay clean)."""

    def __init__(self) -> None:
        self.progress: Progress | None = None
        self.task: TaskID | None = None

    def start(self, label: str, total: int) -> None:
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        if not console.err.is_terminal:
            return
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=console.err,
            transient=True,
        )
        self.progress.start()
        self.task = self.progress.add_task(label, total=total)

    def advance(self, n: int) -> None:
        if self.progress is not None and self.task is not None:
            self.progress.advance(self.task, n)

    def stop(self) -> None:
        if self.progress is not None:
            self.progress.stop()


@contextmanager
def _bar() -> Iterator[_Bar]:
    bar = _Bar()
    try:
        yield bar
    finally:
        bar.stop()


def download(
    root: Path = typer.Argument(..., help="The portal root."),
    kind: Kind = typer.Argument(..., help="What to download: dataset, run, annotation, tomogram."),
    entity_id: int = typer.Argument(..., metavar="ID", help="Its id."),
    dest: Path = typer.Argument(..., help="Folder to write into (made if missing)."),
    layout: str = LayoutOption,
) -> None:
    """Copy a dataset, run, annotation or tomogram out of a portal root, as the CZ portal's
    downloads are laid out: DEST/<dataset_id>/<run_name>/… with the metadata JSON. Files
    already in DEST with the same size are skipped, so an interrupted download resumes.

    Example: cryocurate download ./portal dataset 10000 ./downloads --layout v2
    """
    from cryocurate.portal import Portal
    from cryocurate.store.layouts import LAYOUT_NAMES
    from cryocurate.transfer.download import copy_entries, list_entity

    layout = layout.lower()
    if layout not in LAYOUT_NAMES:
        raise typer.BadParameter("use v1 or v2", param_hint="--layout")
    with Portal.open(root) as portal:
        listing = list_entity(portal, kind, entity_id, layout)
    with _bar() as bar:
        bar.start(f"{kind.value} {entity_id}", listing.total_bytes)
        report = copy_entries(listing, dest, progress=bar.advance)
    skipped = f", {report.skipped} already there" if report.skipped else ""
    console.out.print(
        f"Downloaded {kind.value} {entity_id} ({layout}) to {dest / str(listing.dataset_id)}: "
        f"{report.written} files, {_mb(report.bytes_written)}{skipped}.",
        markup=False,
    )


def import_czportal_command(
    root: Path = typer.Argument(..., help="The portal root."),
    folder: Path = typer.Argument(
        ..., help="The dataset folder downloaded from the portal (named by its id)."
    ),
    dataset_id: DatasetIdPolicy = typer.Option(
        DatasetIdPolicy.keep,
        "--dataset-id",
        help="keep: use the portal's dataset id (refused if taken); new: take a new id.",
    ),
    as_json: bool = typer.Option(
        False, "--json", help="Print what was imported (and every file not copied) as JSON."
    ),
) -> None:
    """Import a dataset downloaded from the CZ CryoET Data Portal (v1 or v2 layout): its
    metadata, runs, tilt series, tomograms, key photos and annotations. Nothing is stored
    unless all of it is. Only the portal's kinds of file are copied (MRC, OME-Zarr, JSON,
    ndjson, images, tilt angles…); any other file is named in a note and not copied.

    Example: cryocurate import-czportal ./portal ./downloads/10000 --dataset-id new
    """
    from cryocurate.portal import Portal
    from cryocurate.transfer.czportal import import_czportal

    with Portal.open(root) as portal, _bar() as bar:
        result = import_czportal(
            portal,
            folder,
            dataset_id=dataset_id,
            progress=bar.advance,
            on_plan=lambda plan: bar.start(f"importing {folder.name}", plan.total_bytes),
        )
    for note in result.notes:
        console.err.print(f"note: {note}", markup=False)
    if as_json:
        console.out.print_json(json.dumps(dataclasses.asdict(result)))
        return
    skipped = f", {len(result.skipped)} not copied (see the notes)" if result.skipped else ""
    console.out.print(
        f"Imported dataset {result.dataset_id} ({result.layout} layout): "
        f"{len(result.runs)} runs, {result.n_tomograms} tomograms, "
        f"{result.n_annotations} annotations, {result.n_files} files, {_mb(result.n_bytes)}"
        f"{skipped}.",
        markup=False,
    )


def register(app: typer.Typer) -> None:
    app.command("download")(download)
    app.command("import-czportal")(import_czportal_command)
