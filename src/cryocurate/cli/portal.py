"""``init``, ``migrate`` and ``ls``: making, upgrading and listing a portal root."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import typer

from cryocurate.cli import console

ROOT = typer.Argument(..., help="The portal root folder.", show_default=False)


def init(
    root: Path = ROOT,
    database: str | None = typer.Option(
        None,
        "--database",
        help="A PostgreSQL URL (postgresql+psycopg://user@host/db) instead of SQLite in ROOT.",
    ),
) -> None:
    """Make a portal root: settings, a catalog database, and an empty data tree.

    Example: cryocurate init ./portal
    """
    from cryocurate.portal import Portal

    with Portal.create(root, database_url=database) as p:
        console.out.print(f"Portal root ready at {p.root} (catalog: {p.database_url})")


def migrate(root: Path = ROOT) -> None:
    """Upgrade a portal root's catalog to this version's schema.

    Example: cryocurate migrate ./portal
    """
    from cryocurate.portal import Portal

    with Portal.open(root, check=False) as p:
        p.migrate()
        console.out.print(f"Catalog of {p.root} is up to date.")


def ls(
    root: Path = ROOT,
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """List datasets and their runs, with class and particle counts.

    Example: cryocurate ls ./portal --json
    """
    from rich.table import Table

    from cryocurate.catalog.queries import dataset_summaries
    from cryocurate.portal import Portal

    with Portal.open(root) as p, p.transaction() as session:
        summaries = dataset_summaries(session)
    if as_json:
        console.out.print_json(json.dumps([asdict(s) for s in summaries]))
        return
    if not summaries:
        console.out.print("No datasets yet: add some with `cryocurate extract`.")
        return
    from rich.text import Text

    for n, d in enumerate(summaries):
        # The title gets a line of its own (the terminal's whole width, wrapped there if
        # need be) instead of a table column that squeezes it into a few characters.
        heading = Text(no_wrap=False)
        heading.append(f"{d.id}  ", style="bold")
        heading.append(d.title, style="bold")  # Text, not markup: a title's [ ] stay text
        if d.lab:
            heading.append(f" — {d.lab}")
        runs = f"{len(d.runs)} run" + ("" if len(d.runs) == 1 else "s")
        counts = f"{runs}, {d.n_classes:,} classes, {d.n_particles:,} particles"
        if n:
            console.out.print()
        console.out.print(heading, soft_wrap=False)
        console.out.print(Text(counts, style="dim"), soft_wrap=False)
        if not d.runs:
            console.out.print("  no runs yet", style="dim")
            continue
        table = Table(show_edge=False, pad_edge=False, box=None, padding=(0, 2, 0, 0))
        for column, justify in (
            ("run id", "right"),
            ("run", "left"),
            ("kind", "left"),
            ("software", "left"),
            ("iter", "right"),
            ("classes", "right"),
            ("particles", "right"),
        ):
            # Names fold (never cut) when the terminal is narrow; the rest stays on one line.
            table.add_column(
                column,
                justify=justify,  # type: ignore[arg-type]
                no_wrap=column != "run",
                overflow="fold",
                min_width=12 if column == "run" else None,
                style="bold" if column == "run" else None,
                header_style="dim",
            )
        for r in d.runs:
            table.add_row(
                str(r.id),
                r.name,
                r.kind,
                r.software or "",
                "" if r.iteration is None else str(r.iteration),
                f"{r.n_classes:,}",
                f"{r.n_particles:,}",
            )
        console.out.print(table, soft_wrap=False)


def register(app: typer.Typer) -> None:
    app.command()(init)
    app.command()(migrate)
    app.command()(ls)
