"""``cryocurate import-magellon`` and ``cryocurate export-magellon``: Magellon / CryoSift lab
folders (``images/`` + ``metadata/`` + ``storage_<email>.db``) in and out of a portal root.

The summary and findings go to stderr; ``--json`` prints the whole result on stdout for
scripts. Bad input ends as one error line from the main CLI's error boundary.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cryocurate.cli import console
from cryocurate.cli.options import Lab
from cryocurate.errors import InputError

if TYPE_CHECKING:
    from cryocurate.ingest.extract import Outcome

_STYLE = {"new": "green", "replaced": "yellow", "unchanged": "dim", "error": "red"}


def _escape(text: str) -> str:
    return text.replace("[", r"\[")


def _line(o: Outcome) -> str:
    if o.status == "error":
        return f"[red]error    [/red] {_escape(o.message)}"
    where = _escape(f"{o.dataset_id}/{o.run_name}")
    note = f"  ({_escape(o.message)})" if o.message else ""
    return f"[{_STYLE[o.status]}]{o.status:<10}[/] {where}  {o.n_classes} classes{note}"


def import_magellon_command(
    root: Annotated[Path, typer.Argument(help="The portal root.")],
    folder: Annotated[
        Path, typer.Argument(help="The Magellon lab folder (holding images/ and metadata/).")
    ],
    dataset: int | None = typer.Option(None, "--dataset", help="Import into this dataset id."),
    dataset_title: str | None = typer.Option(
        None,
        "--dataset-title",
        help="Import into the dataset with this title (made if new). "
        "Default: 'Magellon labels: <folder name>'.",
    ),
    lab: Lab = None,
    campaign: str | None = typer.Option(
        None,
        "--campaign",
        help="The campaign the grades go to (made if new). Default: "
        "'Magellon import: <folder name>'.",
    ),
    labels: list[Path] | None = typer.Option(
        None,
        "--labels",
        help="A tkteach database to import (repeat for several). "
        "Default: every storage_*.db in FOLDER.",
    ),
    labeller: list[str] | None = typer.Option(
        None,
        "--labeller",
        metavar="DATABASE=EMAIL",
        help="Put a database's grades on this account, existing or new (repeat for several). "
        "Without it, a database whose email is an existing account is refused.",
        show_default=False,
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON on stdout."),
) -> int:
    """Import a Magellon lab folder: its jobs as runs, its tkteach databases as grades.

    One labeller per storage_<email>.db (made, without a password, if new; an email that is
    already an account must be mapped with --labeller DATABASE=EMAIL); images matched
    by file name, grades by category letter. Images with several categories are not graded
    but listed. Running it again changes nothing.

    Example: cryocurate import-magellon ./portal /mnt/onedrive/StaggLab --lab Stagg
    """
    from cryocurate.ingest.datasets import DatasetChoice, DatasetFields
    from cryocurate.ingest.magellon import default_dataset_title, import_magellon
    from cryocurate.portal import Portal

    if dataset is not None and dataset_title is not None:
        raise InputError("give --dataset or --dataset-title, not both")
    if dataset_title is not None and dataset_title.strip().isdigit():
        raise InputError(
            f"--dataset-title {dataset_title!r} looks like an id", hint="use --dataset ID"
        )
    spec = str(dataset) if dataset is not None else dataset_title or default_dataset_title(folder)
    choice = DatasetChoice(spec=spec, fields=DatasetFields(lab=lab))

    def report(outcome: Outcome) -> None:
        if not as_json:
            console.err.print(_line(outcome))

    with Portal.open(root) as portal:
        result = import_magellon(
            portal,
            folder,
            dataset=choice,
            campaign_name=campaign,
            labels=labels,
            labellers=labeller or [],
            on_outcome=report,
        )
    runs = result.run_counts
    if as_json:
        console.out.print_json(json.dumps(result.as_dict(), default=str))
    else:
        for finding in result.findings:
            console.err.print(f"note: {finding}", markup=False)
        grades = result.grade_counts()
        run_text = ", ".join(f"{n} {status}" for status, n in runs.items() if n)
        console.err.print(f"runs: {run_text or 'none'} (dataset {result.dataset_id})", markup=False)
        if result.campaign_id is not None:
            new = sum(1 for r in result.labellers if r.created)
            mapped = sum(1 for r in result.labellers if r.mapped)
            console.err.print(
                f"campaign {result.campaign_id} ({result.campaign}): "
                f"{len(result.labellers)} labeller(s), {new} new"
                + (f", {mapped} mapped with --labeller" if mapped else "")
                + "; "
                f"grades {grades['stored']} stored, {grades['unchanged']} unchanged, "
                f"{grades['kept_newer']} kept newer; not graded: "
                f"{grades['several']} with several categories, "
                f"{grades['unmatched']} matching no class average, "
                f"{grades['not_a_grade']} not a grade",
                markup=False,
            )
    return 2 if runs["error"] else 0


def export_magellon_command(
    root: Annotated[Path, typer.Argument(help="The portal root.")],
    out: Annotated[Path, typer.Argument(help="The folder to write (empty or new).")],
    campaign: int = typer.Option(..., "--campaign", help="The campaign id to export."),
    force: bool = typer.Option(False, "--force", help="Replace a non-empty OUT."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON on stdout."),
) -> int:
    """Write a campaign in Magellon's layout for CryoSift's training code.

    OUT/images/<job>/<job>_<i>.jpg, OUT/metadata/<job>.npy and one OUT/storage_<email>.db
    per labeller (their current grades, A=1 … F=5); OUT/cryocurate_export.json maps job
    names to runs. Written aside and renamed into place: nothing is half-written.

    Example: cryocurate export-magellon ./portal ./for-cryosift --campaign 3
    """
    from cryocurate.portal import Portal
    from cryocurate.transfer.magellon import export_magellon

    with Portal.open(root) as portal:
        result = export_magellon(portal, out, campaign, force=force)
    if as_json:
        console.out.print_json(json.dumps(result.as_dict()))
    else:
        console.err.print(
            f"{len(result.jobs)} job(s), {result.images} images, "
            f"{len(result.labellers)} labeller database(s) → {result.out}",
            markup=False,
        )
        if result.ungraded_images:
            console.err.print(
                f"note: {result.ungraded_images} image(s) have no grade from anyone "
                f"(CryoSift would train them on a target of 999)",
                markup=False,
            )
    return 0


def register(app: typer.Typer) -> None:
    app.command("import-magellon")(import_magellon_command)
    app.command("export-magellon")(export_magellon_command)
