"""Datasets: finding or creating the container runs are extracted into, and describing it.

A dataset is chosen by id (``10003``) or by title: an existing title is reused, so the same
command can be run again; a new title makes a new dataset. Its ``dataset_metadata.json`` is
written in the portal's nested shape (``dataset_title``, ``authors``, ``organism``…).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cryocurate import atomic
from cryocurate.catalog.models import Dataset, DatasetAuthor, SampleType
from cryocurate.errors import ConflictError, InputError, NotFoundError
from cryocurate.portal import Portal
from cryocurate.store import layout


@dataclass(frozen=True)
class DatasetFields:
    """What a user can say about a dataset when making or editing it (None: leave as is)."""

    title: str | None = None
    description: str | None = None
    lab: str | None = None
    organism_name: str | None = None
    organism_taxid: int | None = None
    sample_type: str | None = None
    sample_preparation: str | None = None
    grid_preparation: str | None = None
    related_database_entries: str | None = None
    dataset_publications: str | None = None
    authors: list[str] = field(default_factory=list)

    def check(self) -> None:
        if self.sample_type is not None and self.sample_type not in SampleType.__members__:
            raise InputError(
                f"sample type {self.sample_type!r} is not one of the portal's",
                hint="use one of " + ", ".join(SampleType.__members__),
            )
        if self.title is not None and not self.title.strip():
            raise InputError("a dataset title cannot be empty")


@dataclass(frozen=True)
class DatasetChoice:
    """``--dataset ID_OR_NEW_TITLE``: an existing id, an existing title, or a new title."""

    spec: str
    fields: DatasetFields = field(default_factory=DatasetFields)

    @property
    def dataset_id(self) -> int | None:
        return int(self.spec) if self.spec.strip().isdigit() else None


def find_dataset(session: Session, choice: DatasetChoice) -> Dataset | None:
    """The dataset ``choice`` names, or None if it is a title not used yet."""
    if choice.dataset_id is not None:
        dataset = session.get(Dataset, choice.dataset_id)
        if dataset is None:
            raise NotFoundError(
                f"no dataset {choice.dataset_id}",
                hint="list datasets with `cryocurate ls ROOT`, or give a title to make one",
            )
        return dataset
    matches = session.scalars(select(Dataset).where(Dataset.title == choice.spec)).all()
    if len(matches) > 1:
        ids = ", ".join(str(d.id) for d in matches)
        raise ConflictError(
            f"several datasets are titled {choice.spec!r} ({ids})", hint="give the id instead"
        )
    return matches[0] if matches else None


def apply_fields(dataset: Dataset, fields: DatasetFields) -> None:
    """Set the fields that were given; authors given replace the author list."""
    fields.check()
    for name in (
        "title",
        "description",
        "lab",
        "organism_name",
        "organism_taxid",
        "sample_preparation",
        "grid_preparation",
        "related_database_entries",
        "dataset_publications",
    ):
        value = getattr(fields, name)
        if value is not None:
            setattr(dataset, name, value)
    if fields.sample_type is not None:
        dataset.sample_type = SampleType(fields.sample_type)
    if fields.authors:
        dataset.authors = [
            DatasetAuthor(name=name, author_list_order=i, primary_author_status=(i == 0))
            for i, name in enumerate(fields.authors)
        ]
    dataset.last_modified_date = dt.date.today()


def new_dataset(session: Session, title: str, fields: DatasetFields) -> Dataset:
    dataset = Dataset(title=title, deposition_date=dt.date.today())
    apply_fields(dataset, fields)
    session.add(dataset)
    session.flush()
    return dataset


def _date(value: dt.date | None) -> str | None:
    return value.isoformat() if value else None


def dataset_metadata(dataset: Dataset) -> dict[str, Any]:
    """The portal's ``dataset_metadata.json`` shape (nested, unlike the flat API)."""
    return {
        "dataset_identifier": dataset.id,
        "dataset_title": dataset.title,
        "dataset_description": dataset.description,
        "lab": dataset.lab,
        "authors": [
            {
                "name": a.name,
                "ORCID": a.orcid,
                "email": a.email,
                "affiliation_name": a.affiliation_name,
                "corresponding_author_status": a.corresponding_author_status,
                "primary_author_status": a.primary_author_status,
            }
            for a in dataset.authors
        ],
        "organism": {"name": dataset.organism_name, "taxonomy_id": dataset.organism_taxid},
        "sample_type": dataset.sample_type.value if dataset.sample_type else None,
        "sample_preparation": dataset.sample_preparation,
        "grid_preparation": dataset.grid_preparation,
        "other_setup": dataset.other_setup,
        "cross_references": {
            "publications": dataset.dataset_publications,
            "related_database_entries": dataset.related_database_entries,
        },
        "dates": {
            "deposition_date": _date(dataset.deposition_date),
            "release_date": _date(dataset.release_date),
            "last_modified_date": _date(dataset.last_modified_date),
        },
        "deposition_id": dataset.deposition_id,
    }


def write_dataset_metadata(portal: Portal, dataset: Dataset) -> None:
    path = layout.dataset_dir(portal.data_dir, dataset.id) / layout.DATASET_METADATA
    atomic.write_json(path, dataset_metadata(dataset))


def create_dataset(portal: Portal, fields: DatasetFields) -> int:
    """Make a dataset with ``fields`` (a title is required); returns its id."""
    if not fields.title:
        raise InputError("a new dataset needs a title")
    with portal.transaction() as session:
        dataset = new_dataset(session, fields.title, fields)
        write_dataset_metadata(portal, dataset)
        return dataset.id


def edit_dataset(portal: Portal, dataset_id: int, fields: DatasetFields) -> None:
    """Change the given fields of a dataset, in the catalog and its metadata file together."""
    with portal.transaction() as session:
        dataset = session.get(Dataset, dataset_id)
        if dataset is None:
            raise NotFoundError(f"no dataset {dataset_id}")
        apply_fields(dataset, fields)
        session.flush()
        write_dataset_metadata(portal, dataset)
