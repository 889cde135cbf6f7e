"""The portal's data model, in the CryoET Data Portal's words.

::

    Deposition ── Dataset ── Run ─┬─ Class2DJob ── ClassAverage × K     (kind "class2d")
                     │            └─ (tilt series, voxel spacings, tomograms, annotations:
                     └─ DatasetAuthor                  later revisions, same shape)

Field names follow the portal's schema (``organism_name``, ``sample_type``,
``related_database_entries``…) so its users recognise them; units are in the names
(``pixel_size_a``, ``resolution_a``). A Run has a ``kind``, so 2D classification jobs and
tomography runs hang off datasets the same way and are browsed, searched and downloaded alike.
Dataset ids start at 10000, as on the portal.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Identity,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy import Enum as SAEnum
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# Named constraints: Alembic's batch mode on SQLite needs names to alter or drop them.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

FIRST_DATASET_ID = 10000


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dict[str, Any]: JSON, dt.datetime: DateTime(timezone=True)}


class RunKind(enum.StrEnum):
    """What a run holds: a 2D classification job's class averages, or a tomography session."""

    class2d = "class2d"
    tomography = "tomography"


class SampleType(enum.StrEnum):
    """The portal's ``sample_type_enum``."""

    cell = "cell"
    cell_line = "cell_line"
    in_silico = "in_silico"
    in_vitro = "in_vitro"
    organelle = "organelle"
    organism = "organism"
    organoid = "organoid"
    other = "other"
    primary_cell_culture = "primary_cell_culture"
    tissue = "tissue"
    virus = "virus"


class Deposition(Base):
    """What was submitted together (a paper's data, a lab's batch of jobs)."""

    __tablename__ = "depositions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    title: Mapped[str] = mapped_column(String(500))
    description: Mapped[str | None] = mapped_column(Text)
    tag: Mapped[str | None] = mapped_column(String(200))
    deposition_publications: Mapped[str | None] = mapped_column(Text)
    related_database_entries: Mapped[str | None] = mapped_column(Text)
    deposition_date: Mapped[dt.date | None]
    release_date: Mapped[dt.date | None]
    last_modified_date: Mapped[dt.date | None]

    datasets: Mapped[list[Dataset]] = relationship(back_populates="deposition")


class Dataset(Base):
    """One sample under one set of conditions; for 2D work, usually one lab's project."""

    __tablename__ = "datasets"
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, Identity(start=FIRST_DATASET_ID), primary_key=True)
    deposition_id: Mapped[int | None] = mapped_column(ForeignKey("depositions.id"), index=True)
    title: Mapped[str] = mapped_column(String(500))
    description: Mapped[str | None] = mapped_column(Text)
    lab: Mapped[str | None] = mapped_column(String(200), index=True)
    organism_name: Mapped[str | None] = mapped_column(String(200))
    organism_taxid: Mapped[int | None]
    sample_type: Mapped[SampleType | None] = mapped_column(
        SAEnum(SampleType, native_enum=False, length=32)
    )
    sample_preparation: Mapped[str | None] = mapped_column(Text)
    grid_preparation: Mapped[str | None] = mapped_column(Text)
    other_setup: Mapped[str | None] = mapped_column(Text)
    dataset_publications: Mapped[str | None] = mapped_column(Text)
    related_database_entries: Mapped[str | None] = mapped_column(Text)
    deposition_date: Mapped[dt.date | None]
    release_date: Mapped[dt.date | None]
    last_modified_date: Mapped[dt.date | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    deposition: Mapped[Deposition | None] = relationship(back_populates="datasets")
    authors: Mapped[list[DatasetAuthor]] = relationship(
        back_populates="dataset",
        order_by="DatasetAuthor.author_list_order",
        cascade="all, delete-orphan",
    )
    runs: Mapped[list[Run]] = relationship(back_populates="dataset", order_by="Run.name")


class DatasetAuthor(Base):
    """An author of a dataset, shaped like the portal's author records."""

    __tablename__ = "dataset_authors"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(
        ForeignKey("datasets.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320))
    orcid: Mapped[str | None] = mapped_column(String(40))
    affiliation_name: Mapped[str | None] = mapped_column(String(300))
    corresponding_author_status: Mapped[bool] = mapped_column(default=False)
    primary_author_status: Mapped[bool] = mapped_column(default=False)
    author_list_order: Mapped[int] = mapped_column(default=0)

    dataset: Mapped[Dataset] = relationship(back_populates="authors")


class Run(Base):
    """One experiment of a dataset; ``name`` is the author's name for it, and its folder's."""

    __tablename__ = "runs"
    __table_args__ = (UniqueConstraint("dataset_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[RunKind] = mapped_column(SAEnum(RunKind, native_enum=False, length=32))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    dataset: Mapped[Dataset] = relationship(back_populates="runs")
    class2d_job: Mapped[Class2DJob | None] = relationship(
        back_populates="run", cascade="all, delete-orphan", uselist=False
    )
    class_averages: Mapped[list[ClassAverage]] = relationship(
        back_populates="run", order_by="ClassAverage.class_index", cascade="all, delete-orphan"
    )


class Class2DJob(Base):
    """The 2D classification job a ``class2d`` run was extracted from, and how."""

    __tablename__ = "class2d_jobs"

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    software: Mapped[str] = mapped_column(String(20))
    project_uid: Mapped[str | None] = mapped_column(String(40))
    job_uid: Mapped[str | None] = mapped_column(String(40))
    iteration: Mapped[int]
    pixel_size_a: Mapped[float] = mapped_column(Float)
    box_size: Mapped[int]
    n_classes: Mapped[int]
    n_particles: Mapped[int] = mapped_column(BigInteger)
    source_path: Mapped[str] = mapped_column(Text)
    # name → {"sha256", "size", "mtime_ns"}: the stat part lets a rerun say "unchanged"
    # without hashing gigabytes again.
    input_files: Mapped[dict[str, Any]] = mapped_column(JSON)
    fingerprint: Mapped[str] = mapped_column(String(64))
    extracted_at: Mapped[dt.datetime]
    cryocurate_version: Mapped[str] = mapped_column(String(40))

    run: Mapped[Run] = relationship(back_populates="class2d_job")


class ClassAverage(Base):
    """One image of a 2D classification job, with what the job says about it."""

    __tablename__ = "class_averages"
    __table_args__ = (UniqueConstraint("run_id", "class_index"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    class_index: Mapped[int]
    resolution_a: Mapped[float | None] = mapped_column(Float)
    particle_count: Mapped[int] = mapped_column(BigInteger)
    class_fraction: Mapped[float] = mapped_column(Float)
    mean_posterior: Mapped[float | None] = mapped_column(Float)
    mean_ess: Mapped[float | None] = mapped_column(Float)
    accuracy_rotations: Mapped[float | None] = mapped_column(Float)
    accuracy_translations_a: Mapped[float | None] = mapped_column(Float)
    pixel_size_a: Mapped[float] = mapped_column(Float)
    mass_estimate: Mapped[float | None] = mapped_column(Float)
    dmean_mass: Mapped[float | None] = mapped_column(Float)
    dmedian_mass: Mapped[float | None] = mapped_column(Float)
    dmode_mass: Mapped[float | None] = mapped_column(Float)

    run: Mapped[Run] = relationship(back_populates="class_averages")
