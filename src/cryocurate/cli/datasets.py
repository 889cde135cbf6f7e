"""``cryocurate dataset create|edit``: describing datasets (title, lab, organism, authors…)."""

from __future__ import annotations

from pathlib import Path

import typer

from cryocurate.cli import console
from cryocurate.cli.options import (
    Authors,
    Description,
    Lab,
    Organism,
    Related,
    SampleType,
    TaxId,
    dataset_fields,
)

app = typer.Typer(help="Make and describe datasets.", no_args_is_help=True)


@app.command()
def create(
    root: Path = typer.Argument(..., help="The portal root."),
    title: str = typer.Option(..., "--title", help="The dataset's title."),
    description: Description = None,
    lab: Lab = None,
    organism: Organism = None,
    taxid: TaxId = None,
    sample_type: SampleType = None,
    author: Authors = None,
    related: Related = None,
) -> None:
    """Make an empty dataset and print its id.

    Example: cryocurate dataset create ./portal --title "Apoferritin, Lander lab" --lab Lander
    """
    from cryocurate.ingest.datasets import create_dataset
    from cryocurate.portal import Portal

    fields = dataset_fields(
        title=title,
        description=description,
        lab=lab,
        organism=organism,
        taxid=taxid,
        sample_type=sample_type,
        authors=author,
        related=related,
    )
    with Portal.open(root) as portal:
        dataset_id = create_dataset(portal, fields)
    console.out.print(f"Dataset {dataset_id} created.")


@app.command()
def edit(
    root: Path = typer.Argument(..., help="The portal root."),
    dataset_id: int = typer.Argument(..., help="The dataset's id."),
    title: str | None = typer.Option(None, "--title", help="A new title."),
    description: Description = None,
    lab: Lab = None,
    organism: Organism = None,
    taxid: TaxId = None,
    sample_type: SampleType = None,
    author: Authors = None,
    related: Related = None,
) -> None:
    """Change a dataset's description; fields not given stay as they are.

    Example: cryocurate dataset edit ./portal 10000 --organism "Homo sapiens" --taxid 9606
    """
    from cryocurate.ingest.datasets import edit_dataset
    from cryocurate.portal import Portal

    fields = dataset_fields(
        title=title,
        description=description,
        lab=lab,
        organism=organism,
        taxid=taxid,
        sample_type=sample_type,
        authors=author,
        related=related,
    )
    with Portal.open(root) as portal:
        edit_dataset(portal, dataset_id, fields)
    console.out.print(f"Dataset {dataset_id} updated.")


def register(parent: typer.Typer) -> None:
    parent.add_typer(app, name="dataset")
