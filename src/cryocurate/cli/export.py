"""``cryocurate export``: a grading campaign → a training set (images, tables, datasheet).

A thin layer over :func:`cryocurate.learn.export.export_campaign`; see there for what is
written and why. torch is not needed here (only the loader of an export uses it).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from cryocurate.cli import console


def export(
    root: Annotated[Path, typer.Argument(help="The portal root.", show_default=False)],
    out: Annotated[
        Path,
        typer.Argument(
            help="The folder to write (absent or empty; see --force).", show_default=False
        ),
    ],
    campaign: Annotated[
        int, typer.Option("--campaign", "-c", help="The campaign's id (see `campaign list`).")
    ],
    seed: Annotated[
        int, typer.Option("--seed", min=0, help="Seed of the train/validation/test split.")
    ] = 0,
    fractions: Annotated[
        str,
        typer.Option("--fractions", help="Shares of each lab's jobs: train,validation,test."),
    ] = "0.8,0.1,0.1",
    force: Annotated[
        bool, typer.Option("--force", help="Replace OUT even if it is not empty.")
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print a summary as JSON on stdout.")
    ] = False,
) -> int:
    """Export a grading campaign as training data: float32 image stacks (one per job), a
    table of class averages with metadata and consensus, every grade, a split by job
    (seeded, stratified by lab), a README datasheet and a manifest of sha256 hashes.

    Example: cryocurate export ./portal ./campaign-3 --campaign 3 --seed 1
    """
    from cryocurate.learn.export import export_campaign
    from cryocurate.learn.splits import parse_fractions
    from cryocurate.portal import Portal

    shares = parse_fractions(fractions)
    with Portal.open(root) as portal:
        progress = console.counting_bar("copying images", quiet=as_json)
        with progress:
            task = progress.add_task("runs", total=None)

            def on_run(done: int, total: int) -> None:
                progress.update(task, completed=done, total=total)

            summary = export_campaign(
                portal, campaign, out, seed=seed, fractions=shares, force=force, on_run=on_run
            )
    if as_json:
        console.out.print_json(json.dumps(summary.to_dict()))
        return 0
    alpha = "n/a" if summary.alpha is None else f"{summary.alpha:.3f}"
    per_split = ", ".join(
        f"{split} {summary.items_per_split[split]} items / {summary.jobs_per_split[split]} jobs"
        for split in summary.items_per_split
    )
    console.err.print(
        f"Exported campaign {summary.campaign_id} to {summary.out}: {summary.n_items} class "
        f"averages ({summary.n_labelled} labelled) from {summary.n_runs} jobs, "
        f"{summary.n_grades} grades by {summary.n_labellers} labellers, alpha {alpha}; "
        f"{per_split}.",
        markup=False,
    )
    return 0


def register(app: typer.Typer) -> None:
    app.command()(export)
