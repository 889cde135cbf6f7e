"""Options shared by several commands, declared once (typer ``Annotated`` aliases)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from cryocurate.ingest.datasets import DatasetFields

RootOption = Annotated[
    Path, typer.Option("--root", "-r", help="The portal root (made by `cryocurate init`).")
]
Description = Annotated[str | None, typer.Option("--description", help="Dataset description.")]
Lab = Annotated[str | None, typer.Option("--lab", help="The lab the data comes from.")]
Organism = Annotated[
    str | None, typer.Option("--organism", help="Organism name, e.g. 'Homo sapiens'.")
]
TaxId = Annotated[int | None, typer.Option("--taxid", help="NCBI taxonomy id of the organism.")]
SampleType = Annotated[
    str | None,
    typer.Option("--sample-type", help="One of the portal's sample types, e.g. in_vitro, cell."),
]
Authors = Annotated[
    list[str] | None,
    typer.Option("--author", help="An author, in order; repeat for several (replaces the list)."),
]
Related = Annotated[
    str | None,
    typer.Option("--related", help="Related database entries, e.g. 'EMPIAR-10025, EMD-1234'."),
]


def dataset_fields(
    *,
    title: str | None = None,
    description: str | None = None,
    lab: str | None = None,
    organism: str | None = None,
    taxid: int | None = None,
    sample_type: str | None = None,
    authors: list[str] | None = None,
    related: str | None = None,
) -> DatasetFields:
    from cryocurate.ingest.datasets import DatasetFields

    return DatasetFields(
        title=title,
        description=description,
        lab=lab,
        organism_name=organism,
        organism_taxid=taxid,
        sample_type=sample_type,
        authors=list(authors or []),
        related_database_entries=related,
    )
