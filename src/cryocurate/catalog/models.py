"""The portal's data model, in the CryoET Data Portal's words.

::

    Deposition ── Dataset ── Run ─┬─ Class2DJob ── ClassAverage × K     (kind "class2d")
                     │            ├─ TiltSeries                        (kind "tomography")
                     │            ├─ TomogramVoxelSpacing ── Tomogram
                     │            ├─ Annotation ── AnnotationShape ── AnnotationFile
                     │            └─ IdentifiedObject
                     ├─ DatasetAuthor, DatasetFunding
    (Deposition, Tomogram and Annotation authors have the same shape as DatasetAuthor)

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
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Identity,
    Index,
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

    deposition_types: Mapped[str | None] = mapped_column(String(100))  # comma-separated
    key_photo_url: Mapped[str | None] = mapped_column(Text)
    key_photo_thumbnail_url: Mapped[str | None] = mapped_column(Text)

    datasets: Mapped[list[Dataset]] = relationship(back_populates="deposition")
    authors: Mapped[list[DepositionAuthor]] = relationship(
        back_populates="deposition",
        order_by="DepositionAuthor.author_list_order",
        cascade="all, delete-orphan",
    )


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
    funding_sources: Mapped[list[DatasetFunding]] = relationship(
        back_populates="dataset", cascade="all, delete-orphan"
    )
    runs: Mapped[list[Run]] = relationship(back_populates="dataset", order_by="Run.name")


class AuthorFields:
    """An author, shaped like the portal's author records (datasets, depositions, tomograms,
    annotations all use these fields)."""

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320))
    orcid: Mapped[str | None] = mapped_column(String(40))
    affiliation_name: Mapped[str | None] = mapped_column(String(300))
    affiliation_address: Mapped[str | None] = mapped_column(Text)
    affiliation_identifier: Mapped[str | None] = mapped_column(String(100))
    corresponding_author_status: Mapped[bool] = mapped_column(default=False)
    primary_author_status: Mapped[bool] = mapped_column(default=False)
    author_list_order: Mapped[int] = mapped_column(default=0)


class DatasetAuthor(AuthorFields, Base):
    """An author of a dataset."""

    __tablename__ = "dataset_authors"

    dataset_id: Mapped[int] = mapped_column(
        ForeignKey("datasets.id", ondelete="CASCADE"), index=True
    )

    dataset: Mapped[Dataset] = relationship(back_populates="authors")


class DatasetFunding(Base):
    """A grant that paid for a dataset."""

    __tablename__ = "dataset_funding"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(
        ForeignKey("datasets.id", ondelete="CASCADE"), index=True
    )
    funding_agency_name: Mapped[str | None] = mapped_column(String(300))
    grant_id: Mapped[str | None] = mapped_column(String(100))

    dataset: Mapped[Dataset] = relationship(back_populates="funding_sources")


class DepositionAuthor(AuthorFields, Base):
    """An author of a deposition."""

    __tablename__ = "deposition_authors"

    deposition_id: Mapped[int] = mapped_column(
        ForeignKey("depositions.id", ondelete="CASCADE"), index=True
    )

    deposition: Mapped[Deposition] = relationship(back_populates="authors")


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
    tiltseries: Mapped[list[TiltSeries]] = relationship(
        back_populates="run", cascade="all, delete-orphan"
    )
    tomogram_voxel_spacings: Mapped[list[TomogramVoxelSpacing]] = relationship(
        back_populates="run",
        order_by="TomogramVoxelSpacing.voxel_spacing",
        cascade="all, delete-orphan",
    )
    tomograms: Mapped[list[Tomogram]] = relationship(
        back_populates="run", cascade="all, delete-orphan", viewonly=False
    )
    annotations: Mapped[list[Annotation]] = relationship(
        back_populates="run", order_by="Annotation.id", cascade="all, delete-orphan"
    )
    identified_objects: Mapped[list[IdentifiedObject]] = relationship(
        back_populates="run", cascade="all, delete-orphan"
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
    resolution_a: Mapped[float | None] = mapped_column(Float, index=True)
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


class TiltSeriesMicroscopeManufacturer(enum.StrEnum):
    """The portal's ``tiltseries_microscope_manufacturer_enum``."""

    FEI = "FEI"
    TFS = "TFS"
    JEOL = "JEOL"
    SIMULATED = "SIMULATED"


TILT_SERIES_QUALITY = {
    5: "Excellent: full tilt series, suitable for publication figures",
    4: "Good: usable for subtomogram averaging and segmentation",
    3: "Medium: minor parts of the tilt series had to be discarded",
    2: "Marginal: major parts discarded; heavy manual work to align",
    1: "Low: not alignable; a test case only",
}
"""The seed's tilt-series quality scale (author-assigned, relative within a dataset)."""


class TiltSeries(Base):
    """The tilt series of a tomography run, with its acquisition metadata and quality 1–5."""

    __tablename__ = "tiltseries"
    __table_args__ = (
        CheckConstraint(
            "tilt_series_quality IS NULL OR tilt_series_quality BETWEEN 1 AND 5",
            name="quality_1_to_5",
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    deposition_id: Mapped[int | None] = mapped_column(ForeignKey("depositions.id"))
    mrc_file: Mapped[str | None] = mapped_column(Text)  # relative to the data tree
    omezarr_dir: Mapped[str | None] = mapped_column(Text)
    angle_list: Mapped[str | None] = mapped_column(Text)  # the .rawtlt file
    file_size_mrc: Mapped[int | None] = mapped_column(BigInteger)
    acceleration_voltage: Mapped[float | None] = mapped_column(Float)  # volts
    spherical_aberration_constant: Mapped[float | None] = mapped_column(Float)  # mm
    microscope_manufacturer: Mapped[TiltSeriesMicroscopeManufacturer | None] = mapped_column(
        SAEnum(TiltSeriesMicroscopeManufacturer, native_enum=False, length=16)
    )
    microscope_model: Mapped[str | None] = mapped_column(String(100))
    microscope_energy_filter: Mapped[str | None] = mapped_column(String(100))
    microscope_phase_plate: Mapped[str | None] = mapped_column(String(100))
    microscope_image_corrector: Mapped[str | None] = mapped_column(String(100))
    microscope_additional_info: Mapped[str | None] = mapped_column(Text)
    camera_manufacturer: Mapped[str | None] = mapped_column(String(100))
    camera_model: Mapped[str | None] = mapped_column(String(100))
    tilt_min: Mapped[float | None] = mapped_column(Float)
    tilt_max: Mapped[float | None] = mapped_column(Float)
    tilt_range: Mapped[float | None] = mapped_column(Float)
    tilt_step: Mapped[float | None] = mapped_column(Float)
    tilting_scheme: Mapped[str | None] = mapped_column(String(100))
    tilt_axis: Mapped[float | None] = mapped_column(Float)
    total_flux: Mapped[float | None] = mapped_column(Float)  # e⁻/Å²
    data_acquisition_software: Mapped[str | None] = mapped_column(String(100))
    related_empiar_entry: Mapped[str | None] = mapped_column(String(40))
    binning_from_frames: Mapped[float | None] = mapped_column(Float)
    tilt_series_quality: Mapped[int | None]
    is_aligned: Mapped[bool] = mapped_column(default=False)
    pixel_spacing: Mapped[float | None] = mapped_column(Float)  # Å
    aligned_tiltseries_binning: Mapped[float | None] = mapped_column(Float)
    size_x: Mapped[int | None]
    size_y: Mapped[int | None]
    size_z: Mapped[int | None]

    run: Mapped[Run] = relationship(back_populates="tiltseries")


class TomogramVoxelSpacing(Base):
    """One voxel spacing of a run's tomograms; annotations are in its voxel coordinates."""

    __tablename__ = "tomogram_voxel_spacings"
    __table_args__ = (UniqueConstraint("run_id", "voxel_spacing"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    voxel_spacing: Mapped[float] = mapped_column(Float)  # Å

    run: Mapped[Run] = relationship(back_populates="tomogram_voxel_spacings")
    tomograms: Mapped[list[Tomogram]] = relationship(
        back_populates="tomogram_voxel_spacing", cascade="all, delete-orphan"
    )
    annotation_files: Mapped[list[AnnotationFile]] = relationship(
        back_populates="tomogram_voxel_spacing"
    )


class FiducialAlignmentStatus(enum.StrEnum):
    FIDUCIAL = "FIDUCIAL"
    NON_FIDUCIAL = "NON_FIDUCIAL"


class TomogramReconstructionMethod(enum.StrEnum):
    SART = "SART"
    Fourier_Space = "Fourier_Space"
    SIRT = "SIRT"
    WBP = "WBP"
    Unknown = "Unknown"


class TomogramProcessing(enum.StrEnum):
    denoised = "denoised"
    filtered = "filtered"
    raw = "raw"
    filtered_even = "filtered_even"
    filtered_odd = "filtered_odd"


class Tomogram(Base):
    """A reconstructed volume: an MRC, its OME-Zarr pyramid and key photos."""

    __tablename__ = "tomograms"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    tomogram_voxel_spacing_id: Mapped[int] = mapped_column(
        ForeignKey("tomogram_voxel_spacings.id", ondelete="CASCADE"), index=True
    )
    deposition_id: Mapped[int | None] = mapped_column(ForeignKey("depositions.id"))
    size_x: Mapped[int]
    size_y: Mapped[int]
    size_z: Mapped[int]
    voxel_spacing: Mapped[float] = mapped_column(Float)
    fiducial_alignment_status: Mapped[FiducialAlignmentStatus | None] = mapped_column(
        SAEnum(FiducialAlignmentStatus, native_enum=False, length=16)
    )
    reconstruction_method: Mapped[TomogramReconstructionMethod | None] = mapped_column(
        SAEnum(TomogramReconstructionMethod, native_enum=False, length=16)
    )
    reconstruction_software: Mapped[str | None] = mapped_column(String(100))
    processing: Mapped[TomogramProcessing] = mapped_column(
        SAEnum(TomogramProcessing, native_enum=False, length=16), default=TomogramProcessing.raw
    )
    processing_software: Mapped[str | None] = mapped_column(String(100))
    tomogram_version: Mapped[float | None] = mapped_column(Float)
    is_portal_standard: Mapped[bool] = mapped_column(default=False)
    is_author_submitted: Mapped[bool] = mapped_column(default=True)
    is_visualization_default: Mapped[bool] = mapped_column(default=True)
    ctf_corrected: Mapped[bool | None]
    offset_x: Mapped[int] = mapped_column(default=0)
    offset_y: Mapped[int] = mapped_column(default=0)
    offset_z: Mapped[int] = mapped_column(default=0)
    scale_0_dimensions: Mapped[str | None] = mapped_column(String(60))  # "x,y,z"
    scale_1_dimensions: Mapped[str | None] = mapped_column(String(60))
    scale_2_dimensions: Mapped[str | None] = mapped_column(String(60))
    mrc_file: Mapped[str | None] = mapped_column(Text)  # relative to the data tree
    omezarr_dir: Mapped[str | None] = mapped_column(Text)
    file_size_mrc: Mapped[int | None] = mapped_column(BigInteger)
    file_size_omezarr: Mapped[int | None] = mapped_column(BigInteger)
    key_photo_url: Mapped[str | None] = mapped_column(Text)
    key_photo_thumbnail_url: Mapped[str | None] = mapped_column(Text)
    neuroglancer_config: Mapped[str | None] = mapped_column(Text)

    run: Mapped[Run] = relationship(back_populates="tomograms")
    tomogram_voxel_spacing: Mapped[TomogramVoxelSpacing] = relationship(back_populates="tomograms")
    authors: Mapped[list[TomogramAuthor]] = relationship(
        back_populates="tomogram",
        order_by="TomogramAuthor.author_list_order",
        cascade="all, delete-orphan",
    )


class TomogramAuthor(AuthorFields, Base):
    __tablename__ = "tomogram_authors"

    tomogram_id: Mapped[int] = mapped_column(
        ForeignKey("tomograms.id", ondelete="CASCADE"), index=True
    )

    tomogram: Mapped[Tomogram] = relationship(back_populates="authors")


class AnnotationMethodType(enum.StrEnum):
    """The portal's ``annotation_method_type_enum``."""

    manual = "manual"
    automated = "automated"
    hybrid = "hybrid"
    simulated = "simulated"


class AnnotationShapeType(enum.StrEnum):
    """The portal's ``annotation_file_shape_type_enum``."""

    SegmentationMask = "SegmentationMask"
    OrientedPoint = "OrientedPoint"
    Point = "Point"
    InstanceSegmentation = "InstanceSegmentation"
    InstanceSegmentationMask = "InstanceSegmentationMask"
    Mesh = "Mesh"
    GlobalCaption = "GlobalCaption"
    AnnotationCaption = "AnnotationCaption"


class AnnotationFileSource(enum.StrEnum):
    dataset_author = "dataset_author"
    community = "community"
    portal_standard = "portal_standard"


class Annotation(Base):
    """Anything said about a run's data: picks, segmentations and, later, grades.

    ``confidence_precision``/``confidence_recall`` are percentages (0–100) as on the portal.
    Unlike the portal, cryocurate computes them itself against the run's ground truth of the
    same object and records how: ``ground_truth_annotation_id`` and ``confidence_rule``.
    """

    __tablename__ = "annotations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    deposition_id: Mapped[int | None] = mapped_column(ForeignKey("depositions.id"))
    metadata_path: Mapped[str | None] = mapped_column(Text)  # relative to the data tree
    annotation_publication: Mapped[str | None] = mapped_column(Text)
    annotation_method: Mapped[str] = mapped_column(Text)
    annotation_software: Mapped[str | None] = mapped_column(String(200))
    method_type: Mapped[AnnotationMethodType] = mapped_column(
        SAEnum(AnnotationMethodType, native_enum=False, length=16)
    )
    ground_truth_status: Mapped[bool] = mapped_column(default=False)
    is_curator_recommended: Mapped[bool] = mapped_column(default=False)
    object_id: Mapped[str] = mapped_column(String(100), index=True)
    object_name: Mapped[str] = mapped_column(String(200), index=True)
    object_description: Mapped[str | None] = mapped_column(Text)
    object_state: Mapped[str | None] = mapped_column(String(100))
    object_count: Mapped[int | None]
    confidence_precision: Mapped[float | None] = mapped_column(Float, index=True)
    confidence_recall: Mapped[float | None] = mapped_column(Float)
    ground_truth_used: Mapped[str | None] = mapped_column(Text)
    ground_truth_annotation_id: Mapped[int | None] = mapped_column(
        ForeignKey("annotations.id", ondelete="SET NULL")
    )
    confidence_rule: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    version: Mapped[str] = mapped_column(String(20), default="1.0")
    deposition_date: Mapped[dt.date | None]
    release_date: Mapped[dt.date | None]
    last_modified_date: Mapped[dt.date | None]

    run: Mapped[Run] = relationship(back_populates="annotations")
    annotation_shapes: Mapped[list[AnnotationShape]] = relationship(
        back_populates="annotation", cascade="all, delete-orphan"
    )
    authors: Mapped[list[AnnotationAuthor]] = relationship(
        back_populates="annotation",
        order_by="AnnotationAuthor.author_list_order",
        cascade="all, delete-orphan",
    )


class AnnotationAuthor(AuthorFields, Base):
    __tablename__ = "annotation_authors"

    annotation_id: Mapped[int] = mapped_column(
        ForeignKey("annotations.id", ondelete="CASCADE"), index=True
    )

    annotation: Mapped[Annotation] = relationship(back_populates="authors")


class AnnotationShape(Base):
    """One shape of an annotation (its points, or its mask), with the files holding it."""

    __tablename__ = "annotation_shapes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    annotation_id: Mapped[int] = mapped_column(
        ForeignKey("annotations.id", ondelete="CASCADE"), index=True
    )
    shape_type: Mapped[AnnotationShapeType] = mapped_column(
        SAEnum(AnnotationShapeType, native_enum=False, length=32)
    )

    annotation: Mapped[Annotation] = relationship(back_populates="annotation_shapes")
    annotation_files: Mapped[list[AnnotationFile]] = relationship(
        back_populates="annotation_shape", cascade="all, delete-orphan"
    )


class AnnotationFile(Base):
    """A file of an annotation shape, in the coordinates of one voxel spacing."""

    __tablename__ = "annotation_files"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    annotation_shape_id: Mapped[int] = mapped_column(
        ForeignKey("annotation_shapes.id", ondelete="CASCADE"), index=True
    )
    tomogram_voxel_spacing_id: Mapped[int | None] = mapped_column(
        ForeignKey("tomogram_voxel_spacings.id", ondelete="CASCADE"), index=True
    )
    format: Mapped[str] = mapped_column(String(16))  # ndjson, mrc, zarr
    path: Mapped[str] = mapped_column(Text)  # relative to the data tree
    file_size: Mapped[int | None] = mapped_column(BigInteger)
    is_visualization_default: Mapped[bool] = mapped_column(default=True)
    source: Mapped[AnnotationFileSource] = mapped_column(
        SAEnum(AnnotationFileSource, native_enum=False, length=24),
        default=AnnotationFileSource.dataset_author,
    )

    annotation_shape: Mapped[AnnotationShape] = relationship(back_populates="annotation_files")
    tomogram_voxel_spacing: Mapped[TomogramVoxelSpacing | None] = relationship(
        back_populates="annotation_files"
    )


class IdentifiedObject(Base):
    """An object noted as present in a run without an annotation file."""

    __tablename__ = "identified_objects"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    object_id: Mapped[str] = mapped_column(String(100))
    object_name: Mapped[str] = mapped_column(String(200))
    object_description: Mapped[str | None] = mapped_column(Text)
    object_state: Mapped[str | None] = mapped_column(String(100))

    run: Mapped[Run] = relationship(back_populates="identified_objects")


class ObjectSetting(Base):
    """Per-object settings for scoring point annotations against ground truth.

    A predicted point matches a ground-truth point within ``match_distance_a``; when that is
    not set, within half of ``radius_a`` (the rule of the CZII CryoET object-identification
    challenge).
    """

    __tablename__ = "object_settings"

    object_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    object_name: Mapped[str | None] = mapped_column(String(200))
    radius_a: Mapped[float | None] = mapped_column(Float)
    match_distance_a: Mapped[float | None] = mapped_column(Float)


# ----------------------------------------------------------------------------------------------
# Accounts: who may grade, review and administer (see cryocurate.accounts). Secrets handed to
# people (session cookies, invite links, API tokens) are stored only as their SHA-256 hashes,
# so a copy of the catalog does not let anyone log in.


class Role(enum.StrEnum):
    """What a user may do: manage users and campaigns, grade, or review everyone's grades."""

    admin = "admin"
    labeller = "labeller"
    reviewer = "reviewer"


class User(Base):
    """A person, identified by a lower-cased email. No password until their invite is used."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    display_name: Mapped[str | None] = mapped_column(String(200))
    role: Mapped[Role] = mapped_column(SAEnum(Role, native_enum=False, length=16))
    password_hash: Mapped[str | None] = mapped_column(String(200))
    lab: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    disabled: Mapped[bool] = mapped_column(default=False)

    __table_args__ = (CheckConstraint("email = lower(email)", name="email_lower_case"),)

    sessions: Mapped[list[UserSession]] = relationship(
        back_populates="user", cascade="all, delete-orphan", passive_deletes=True
    )
    invites: Mapped[list[Invite]] = relationship(
        back_populates="user", cascade="all, delete-orphan", passive_deletes=True
    )
    api_tokens: Mapped[list[ApiToken]] = relationship(
        back_populates="user", cascade="all, delete-orphan", passive_deletes=True
    )


class UserSession(Base):
    """A logged-in browser: the hash of its cookie's token, with a sliding expiry."""

    __tablename__ = "user_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime]
    last_seen: Mapped[dt.datetime] = mapped_column(default=utcnow)

    user: Mapped[User] = relationship(back_populates="sessions")


class Invite(Base):
    """A one-time, expiring link that lets a user set their password."""

    __tablename__ = "invites"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime]
    used_at: Mapped[dt.datetime | None]

    user: Mapped[User] = relationship(back_populates="invites")


class ApiToken(Base):
    """A named, revocable bearer token a user's scripts send as ``Authorization: Bearer``."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_used: Mapped[dt.datetime | None]
    revoked: Mapped[bool] = mapped_column(default=False)

    user: Mapped[User] = relationship(back_populates="api_tokens")


class LoginThrottle(Base):
    """Login attempts counted per key (an account at an address, or an address), shared by
    every server process (:mod:`cryocurate.accounts.throttle`). ``key`` is a SHA-256 of what
    it counts, so the table holds no emails or addresses; times are Unix seconds, compared
    as numbers in the conditional updates that make counting atomic."""

    __tablename__ = "login_throttle"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    next_at: Mapped[float] = mapped_column(Float)  # no attempt is considered before this
    last_at: Mapped[float] = mapped_column(Float, index=True)  # the latest attempt


# ----------------------------------------------------------------------------------------------
# Grading (see cryocurate.grading): campaigns of labellers grading items on a scale. A campaign
# does not own the data it grades: its items point at class averages or tilt series, and its
# grades become manual annotations of their runs (one per labeller per run).


class GradeScale(enum.StrEnum):
    """A–F for class averages (A = 1 … F = 5, Magellon's numbering), or the seed's tilt-series
    quality 1–5 (5 = excellent)."""

    letters = "letters"
    tilt_series = "tilt_series"


class ItemKind(enum.StrEnum):
    class_average = "class_average"
    tiltseries = "tiltseries"


class Campaign(Base):
    """The grading work: which runs, which scale, who grades, how many grades an item needs.

    ``levels`` holds the scale as the labellers see it: ``[{"value", "key", "name",
    "description"}]``, descriptions editable by admins. ``grades_per_item`` None means every
    labeller grades every item (the seed's rule). ``repeat_share`` of each labeller's items are
    shown a second time, unannounced, to measure consistency.
    """

    __tablename__ = "campaigns"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str | None] = mapped_column(Text)
    item_kind: Mapped[ItemKind] = mapped_column(SAEnum(ItemKind, native_enum=False, length=24))
    scale: Mapped[GradeScale] = mapped_column(SAEnum(GradeScale, native_enum=False, length=24))
    levels: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    grades_per_item: Mapped[int | None]
    repeat_share: Mapped[float] = mapped_column(Float, default=0.05)
    seed: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    closed: Mapped[bool] = mapped_column(default=False)

    runs: Mapped[list[CampaignRun]] = relationship(
        back_populates="campaign", cascade="all, delete-orphan", passive_deletes=True
    )
    labellers: Mapped[list[CampaignLabeller]] = relationship(
        back_populates="campaign", cascade="all, delete-orphan", passive_deletes=True
    )
    rubric_examples: Mapped[list[RubricExample]] = relationship(
        back_populates="campaign",
        order_by="RubricExample.id",
        cascade="all, delete-orphan",
        passive_deletes=True,
    )


class CampaignRun(Base):
    __tablename__ = "campaign_runs"

    campaign_id: Mapped[int] = mapped_column(
        ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True
    )
    run_id: Mapped[int] = mapped_column(
        ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True, index=True
    )

    campaign: Mapped[Campaign] = relationship(back_populates="runs")
    run: Mapped[Run] = relationship()


class CampaignLabeller(Base):
    __tablename__ = "campaign_labellers"

    campaign_id: Mapped[int] = mapped_column(
        ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    added_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    campaign: Mapped[Campaign] = relationship(back_populates="labellers")
    user: Mapped[User] = relationship()


class CampaignItem(Base):
    """One thing to grade: a class average or a tilt series, with the job fingerprint it had
    when the campaign took it (a re-extracted job's grades can then be flagged)."""

    __tablename__ = "campaign_items"
    __table_args__ = (
        UniqueConstraint("campaign_id", "class_average_id", name="uq_campaign_items_class_average"),
        UniqueConstraint("campaign_id", "tiltseries_id", name="uq_campaign_items_tiltseries"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    class_average_id: Mapped[int | None] = mapped_column(
        ForeignKey("class_averages.id", ondelete="CASCADE"), index=True
    )
    tiltseries_id: Mapped[int | None] = mapped_column(
        ForeignKey("tiltseries.id", ondelete="CASCADE"), index=True
    )
    fingerprint: Mapped[str | None] = mapped_column(String(64))

    class_average: Mapped[ClassAverage | None] = relationship()
    tiltseries: Mapped[TiltSeries | None] = relationship()
    run: Mapped[Run] = relationship()


class QueueEntry(Base):
    """A labeller's own order of the campaign's items (shuffled with a seed of theirs), with the
    unannounced repeats placed later. Stored, so resuming is a query and no one's order changes
    when runs are added."""

    __tablename__ = "campaign_queue"
    __table_args__ = (Index("ix_campaign_queue_user_item", "campaign_id", "user_id", "item_id"),)

    campaign_id: Mapped[int] = mapped_column(
        ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    item_id: Mapped[int] = mapped_column(ForeignKey("campaign_items.id", ondelete="CASCADE"))
    repeat: Mapped[bool] = mapped_column(default=False)
    skipped_at: Mapped[dt.datetime | None]


class Grade(Base):
    """A labeller's current grade of an item (``repeat``: their second, unannounced look).

    ``given_at`` is the browser's clock when the key was pressed: a late retry of an older
    change never overwrites a newer one. Every change is also in :class:`GradeEvent`.
    """

    __tablename__ = "grades"
    __table_args__ = (
        UniqueConstraint("item_id", "user_id", "repeat"),
        Index("ix_grades_campaign_user", "campaign_id", "user_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    item_id: Mapped[int] = mapped_column(ForeignKey("campaign_items.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    repeat: Mapped[bool] = mapped_column(default=False)
    value: Mapped[int]
    given_at: Mapped[dt.datetime]
    received_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    seconds_on_item: Mapped[float | None] = mapped_column(Float)
    request_id: Mapped[str] = mapped_column(String(64))
    fingerprint: Mapped[str | None] = mapped_column(String(64))

    item: Mapped[CampaignItem] = relationship()
    user: Mapped[User] = relationship()


class GradeEvent(Base):
    """Every grade or skip as it arrived, once per browser-made ``request_id``: the history,
    and what makes a retried request harmless. ``value`` None is a skip."""

    __tablename__ = "grade_events"
    __table_args__ = (Index("ix_grade_events_item_user", "item_id", "user_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[str] = mapped_column(String(64), unique=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    item_id: Mapped[int] = mapped_column(ForeignKey("campaign_items.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    repeat: Mapped[bool] = mapped_column(default=False)
    value: Mapped[int | None]
    given_at: Mapped[dt.datetime]
    received_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    seconds_on_item: Mapped[float | None] = mapped_column(Float)


class RubricExample(Base):
    """An example image for one level of a campaign's scale: a class average or a tilt series
    of the portal, with a caption saying why it earns that grade."""

    __tablename__ = "rubric_examples"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(
        ForeignKey("campaigns.id", ondelete="CASCADE"), index=True
    )
    value: Mapped[int]
    class_average_id: Mapped[int | None] = mapped_column(
        ForeignKey("class_averages.id", ondelete="CASCADE")
    )
    tiltseries_id: Mapped[int | None] = mapped_column(
        ForeignKey("tiltseries.id", ondelete="CASCADE")
    )
    caption: Mapped[str | None] = mapped_column(Text)

    campaign: Mapped[Campaign] = relationship(back_populates="rubric_examples")
    class_average: Mapped[ClassAverage | None] = relationship()
    tiltseries: Mapped[TiltSeries | None] = relationship()


class GradeAnnotation(Base):
    """Which portal annotation holds whose grades: one per labeller per run per campaign
    (``user_id`` None: the campaign's consensus for that run)."""

    __tablename__ = "grade_annotations"
    __table_args__ = (UniqueConstraint("campaign_id", "run_id", "user_id"),)

    annotation_id: Mapped[int] = mapped_column(
        ForeignKey("annotations.id", ondelete="CASCADE"), primary_key=True
    )
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))

    annotation: Mapped[Annotation] = relationship()
    campaign: Mapped[Campaign] = relationship()
    user: Mapped[User | None] = relationship()


class ConsensusGrade(Base):
    """The consensus of one item as last computed (:mod:`cryocurate.grading.consensus_store`):
    the simple summaries, the bias-corrected model's grade and its probability, and whether
    the grades differ by two levels or more (``flagged``: a reviewer should look).

    Recomputed wholesale from the current grades; a reviewer's word is kept apart in
    :class:`ReviewDecision` so a recomputation never loses it.
    """

    __tablename__ = "consensus_grades"

    campaign_id: Mapped[int] = mapped_column(
        ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True
    )
    item_id: Mapped[int] = mapped_column(
        ForeignKey("campaign_items.id", ondelete="CASCADE"), primary_key=True
    )
    n_grades: Mapped[int]
    median: Mapped[float | None] = mapped_column(Float)
    mean: Mapped[float | None] = mapped_column(Float)
    spread: Mapped[int | None]
    model_value: Mapped[int | None]
    model_probability: Mapped[float | None] = mapped_column(Float)
    flagged: Mapped[bool] = mapped_column(default=False)
    computed_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ReviewDecision(Base):
    """A reviewer's final grade for an item, which overrides the model's consensus."""

    __tablename__ = "review_decisions"

    campaign_id: Mapped[int] = mapped_column(
        ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True
    )
    item_id: Mapped[int] = mapped_column(
        ForeignKey("campaign_items.id", ondelete="CASCADE"), primary_key=True
    )
    value: Mapped[int]
    reviewer_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    decided_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    note: Mapped[str | None] = mapped_column(Text)

    reviewer: Mapped[User | None] = relationship()
