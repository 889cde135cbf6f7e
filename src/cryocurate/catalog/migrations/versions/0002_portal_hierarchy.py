"""portal hierarchy

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21

The rest of the portal's hierarchy: tilt series (quality 1–5), voxel spacings, tomograms,
annotations with their shapes and files, identified objects, funding, and authors of
depositions, tomograms and annotations.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "object_settings",
        sa.Column("object_id", sa.String(length=100), nullable=False),
        sa.Column("object_name", sa.String(length=200), nullable=True),
        sa.Column("radius_a", sa.Float(), nullable=True),
        sa.Column("match_distance_a", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("object_id", name=op.f("pk_object_settings")),
    )
    op.create_table(
        "deposition_authors",
        sa.Column("deposition_id", sa.Integer(), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("orcid", sa.String(length=40), nullable=True),
        sa.Column("affiliation_name", sa.String(length=300), nullable=True),
        sa.Column("affiliation_address", sa.Text(), nullable=True),
        sa.Column("affiliation_identifier", sa.String(length=100), nullable=True),
        sa.Column("corresponding_author_status", sa.Boolean(), nullable=False),
        sa.Column("primary_author_status", sa.Boolean(), nullable=False),
        sa.Column("author_list_order", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["deposition_id"],
            ["depositions.id"],
            name=op.f("fk_deposition_authors_deposition_id_depositions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deposition_authors")),
    )
    with op.batch_alter_table("deposition_authors", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_deposition_authors_deposition_id"), ["deposition_id"], unique=False
        )

    op.create_table(
        "dataset_funding",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("dataset_id", sa.Integer(), nullable=False),
        sa.Column("funding_agency_name", sa.String(length=300), nullable=True),
        sa.Column("grant_id", sa.String(length=100), nullable=True),
        sa.ForeignKeyConstraint(
            ["dataset_id"],
            ["datasets.id"],
            name=op.f("fk_dataset_funding_dataset_id_datasets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dataset_funding")),
    )
    with op.batch_alter_table("dataset_funding", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_dataset_funding_dataset_id"), ["dataset_id"], unique=False
        )

    op.create_table(
        "annotations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("deposition_id", sa.Integer(), nullable=True),
        sa.Column("metadata_path", sa.Text(), nullable=True),
        sa.Column("annotation_publication", sa.Text(), nullable=True),
        sa.Column("annotation_method", sa.Text(), nullable=False),
        sa.Column("annotation_software", sa.String(length=200), nullable=True),
        sa.Column(
            "method_type",
            sa.Enum(
                "manual",
                "automated",
                "hybrid",
                "simulated",
                name="annotationmethodtype",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("ground_truth_status", sa.Boolean(), nullable=False),
        sa.Column("is_curator_recommended", sa.Boolean(), nullable=False),
        sa.Column("object_id", sa.String(length=100), nullable=False),
        sa.Column("object_name", sa.String(length=200), nullable=False),
        sa.Column("object_description", sa.Text(), nullable=True),
        sa.Column("object_state", sa.String(length=100), nullable=True),
        sa.Column("object_count", sa.Integer(), nullable=True),
        sa.Column("confidence_precision", sa.Float(), nullable=True),
        sa.Column("confidence_recall", sa.Float(), nullable=True),
        sa.Column("ground_truth_used", sa.Text(), nullable=True),
        sa.Column("ground_truth_annotation_id", sa.Integer(), nullable=True),
        sa.Column("confidence_rule", sa.JSON(), nullable=True),
        sa.Column("version", sa.String(length=20), nullable=False),
        sa.Column("deposition_date", sa.Date(), nullable=True),
        sa.Column("release_date", sa.Date(), nullable=True),
        sa.Column("last_modified_date", sa.Date(), nullable=True),
        sa.ForeignKeyConstraint(
            ["deposition_id"],
            ["depositions.id"],
            name=op.f("fk_annotations_deposition_id_depositions"),
        ),
        sa.ForeignKeyConstraint(
            ["ground_truth_annotation_id"],
            ["annotations.id"],
            name=op.f("fk_annotations_ground_truth_annotation_id_annotations"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name=op.f("fk_annotations_run_id_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_annotations")),
    )
    with op.batch_alter_table("annotations", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_annotations_object_id"), ["object_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_annotations_object_name"), ["object_name"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_annotations_run_id"), ["run_id"], unique=False)

    op.create_table(
        "identified_objects",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("object_id", sa.String(length=100), nullable=False),
        sa.Column("object_name", sa.String(length=200), nullable=False),
        sa.Column("object_description", sa.Text(), nullable=True),
        sa.Column("object_state", sa.String(length=100), nullable=True),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["runs.id"],
            name=op.f("fk_identified_objects_run_id_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_identified_objects")),
    )
    with op.batch_alter_table("identified_objects", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_identified_objects_run_id"), ["run_id"], unique=False)

    op.create_table(
        "tiltseries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("deposition_id", sa.Integer(), nullable=True),
        sa.Column("mrc_file", sa.Text(), nullable=True),
        sa.Column("omezarr_dir", sa.Text(), nullable=True),
        sa.Column("angle_list", sa.Text(), nullable=True),
        sa.Column("file_size_mrc", sa.BigInteger(), nullable=True),
        sa.Column("acceleration_voltage", sa.Float(), nullable=True),
        sa.Column("spherical_aberration_constant", sa.Float(), nullable=True),
        sa.Column(
            "microscope_manufacturer",
            sa.Enum(
                "FEI",
                "TFS",
                "JEOL",
                "SIMULATED",
                name="tiltseriesmicroscopemanufacturer",
                native_enum=False,
                length=16,
            ),
            nullable=True,
        ),
        sa.Column("microscope_model", sa.String(length=100), nullable=True),
        sa.Column("microscope_energy_filter", sa.String(length=100), nullable=True),
        sa.Column("microscope_phase_plate", sa.String(length=100), nullable=True),
        sa.Column("microscope_image_corrector", sa.String(length=100), nullable=True),
        sa.Column("microscope_additional_info", sa.Text(), nullable=True),
        sa.Column("camera_manufacturer", sa.String(length=100), nullable=True),
        sa.Column("camera_model", sa.String(length=100), nullable=True),
        sa.Column("tilt_min", sa.Float(), nullable=True),
        sa.Column("tilt_max", sa.Float(), nullable=True),
        sa.Column("tilt_range", sa.Float(), nullable=True),
        sa.Column("tilt_step", sa.Float(), nullable=True),
        sa.Column("tilting_scheme", sa.String(length=100), nullable=True),
        sa.Column("tilt_axis", sa.Float(), nullable=True),
        sa.Column("total_flux", sa.Float(), nullable=True),
        sa.Column("data_acquisition_software", sa.String(length=100), nullable=True),
        sa.Column("related_empiar_entry", sa.String(length=40), nullable=True),
        sa.Column("binning_from_frames", sa.Float(), nullable=True),
        sa.Column("tilt_series_quality", sa.Integer(), nullable=True),
        sa.Column("is_aligned", sa.Boolean(), nullable=False),
        sa.Column("pixel_spacing", sa.Float(), nullable=True),
        sa.Column("aligned_tiltseries_binning", sa.Float(), nullable=True),
        sa.Column("size_x", sa.Integer(), nullable=True),
        sa.Column("size_y", sa.Integer(), nullable=True),
        sa.Column("size_z", sa.Integer(), nullable=True),
        sa.CheckConstraint(
            "tilt_series_quality IS NULL OR tilt_series_quality BETWEEN 1 AND 5",
            name=op.f("ck_tiltseries_quality_1_to_5"),
        ),
        sa.ForeignKeyConstraint(
            ["deposition_id"],
            ["depositions.id"],
            name=op.f("fk_tiltseries_deposition_id_depositions"),
        ),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name=op.f("fk_tiltseries_run_id_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tiltseries")),
    )
    with op.batch_alter_table("tiltseries", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_tiltseries_run_id"), ["run_id"], unique=False)

    op.create_table(
        "tomogram_voxel_spacings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("voxel_spacing", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["runs.id"],
            name=op.f("fk_tomogram_voxel_spacings_run_id_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tomogram_voxel_spacings")),
        sa.UniqueConstraint(
            "run_id", "voxel_spacing", name=op.f("uq_tomogram_voxel_spacings_run_id")
        ),
    )
    op.create_table(
        "annotation_authors",
        sa.Column("annotation_id", sa.Integer(), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("orcid", sa.String(length=40), nullable=True),
        sa.Column("affiliation_name", sa.String(length=300), nullable=True),
        sa.Column("affiliation_address", sa.Text(), nullable=True),
        sa.Column("affiliation_identifier", sa.String(length=100), nullable=True),
        sa.Column("corresponding_author_status", sa.Boolean(), nullable=False),
        sa.Column("primary_author_status", sa.Boolean(), nullable=False),
        sa.Column("author_list_order", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["annotation_id"],
            ["annotations.id"],
            name=op.f("fk_annotation_authors_annotation_id_annotations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_annotation_authors")),
    )
    with op.batch_alter_table("annotation_authors", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_annotation_authors_annotation_id"), ["annotation_id"], unique=False
        )

    op.create_table(
        "annotation_shapes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("annotation_id", sa.Integer(), nullable=False),
        sa.Column(
            "shape_type",
            sa.Enum(
                "SegmentationMask",
                "OrientedPoint",
                "Point",
                "InstanceSegmentation",
                "InstanceSegmentationMask",
                "Mesh",
                "GlobalCaption",
                "AnnotationCaption",
                name="annotationshapetype",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["annotation_id"],
            ["annotations.id"],
            name=op.f("fk_annotation_shapes_annotation_id_annotations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_annotation_shapes")),
    )
    with op.batch_alter_table("annotation_shapes", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_annotation_shapes_annotation_id"), ["annotation_id"], unique=False
        )

    op.create_table(
        "tomograms",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("tomogram_voxel_spacing_id", sa.Integer(), nullable=False),
        sa.Column("deposition_id", sa.Integer(), nullable=True),
        sa.Column("size_x", sa.Integer(), nullable=False),
        sa.Column("size_y", sa.Integer(), nullable=False),
        sa.Column("size_z", sa.Integer(), nullable=False),
        sa.Column("voxel_spacing", sa.Float(), nullable=False),
        sa.Column(
            "fiducial_alignment_status",
            sa.Enum(
                "FIDUCIAL",
                "NON_FIDUCIAL",
                name="fiducialalignmentstatus",
                native_enum=False,
                length=16,
            ),
            nullable=True,
        ),
        sa.Column(
            "reconstruction_method",
            sa.Enum(
                "SART",
                "Fourier_Space",
                "SIRT",
                "WBP",
                "Unknown",
                name="tomogramreconstructionmethod",
                native_enum=False,
                length=16,
            ),
            nullable=True,
        ),
        sa.Column("reconstruction_software", sa.String(length=100), nullable=True),
        sa.Column(
            "processing",
            sa.Enum(
                "denoised",
                "filtered",
                "raw",
                "filtered_even",
                "filtered_odd",
                name="tomogramprocessing",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("processing_software", sa.String(length=100), nullable=True),
        sa.Column("tomogram_version", sa.Float(), nullable=True),
        sa.Column("is_portal_standard", sa.Boolean(), nullable=False),
        sa.Column("is_author_submitted", sa.Boolean(), nullable=False),
        sa.Column("is_visualization_default", sa.Boolean(), nullable=False),
        sa.Column("ctf_corrected", sa.Boolean(), nullable=True),
        sa.Column("offset_x", sa.Integer(), nullable=False),
        sa.Column("offset_y", sa.Integer(), nullable=False),
        sa.Column("offset_z", sa.Integer(), nullable=False),
        sa.Column("scale_0_dimensions", sa.String(length=60), nullable=True),
        sa.Column("scale_1_dimensions", sa.String(length=60), nullable=True),
        sa.Column("scale_2_dimensions", sa.String(length=60), nullable=True),
        sa.Column("mrc_file", sa.Text(), nullable=True),
        sa.Column("omezarr_dir", sa.Text(), nullable=True),
        sa.Column("file_size_mrc", sa.BigInteger(), nullable=True),
        sa.Column("file_size_omezarr", sa.BigInteger(), nullable=True),
        sa.Column("key_photo_url", sa.Text(), nullable=True),
        sa.Column("key_photo_thumbnail_url", sa.Text(), nullable=True),
        sa.Column("neuroglancer_config", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["deposition_id"],
            ["depositions.id"],
            name=op.f("fk_tomograms_deposition_id_depositions"),
        ),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name=op.f("fk_tomograms_run_id_runs"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["tomogram_voxel_spacing_id"],
            ["tomogram_voxel_spacings.id"],
            name=op.f("fk_tomograms_tomogram_voxel_spacing_id_tomogram_voxel_spacings"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tomograms")),
    )
    with op.batch_alter_table("tomograms", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_tomograms_run_id"), ["run_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_tomograms_tomogram_voxel_spacing_id"),
            ["tomogram_voxel_spacing_id"],
            unique=False,
        )

    op.create_table(
        "annotation_files",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("annotation_shape_id", sa.Integer(), nullable=False),
        sa.Column("tomogram_voxel_spacing_id", sa.Integer(), nullable=True),
        sa.Column("format", sa.String(length=16), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("file_size", sa.BigInteger(), nullable=True),
        sa.Column("is_visualization_default", sa.Boolean(), nullable=False),
        sa.Column(
            "source",
            sa.Enum(
                "dataset_author",
                "community",
                "portal_standard",
                name="annotationfilesource",
                native_enum=False,
                length=24,
            ),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["annotation_shape_id"],
            ["annotation_shapes.id"],
            name=op.f("fk_annotation_files_annotation_shape_id_annotation_shapes"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tomogram_voxel_spacing_id"],
            ["tomogram_voxel_spacings.id"],
            name=op.f("fk_annotation_files_tomogram_voxel_spacing_id_tomogram_voxel_spacings"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_annotation_files")),
    )
    with op.batch_alter_table("annotation_files", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_annotation_files_annotation_shape_id"),
            ["annotation_shape_id"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_annotation_files_tomogram_voxel_spacing_id"),
            ["tomogram_voxel_spacing_id"],
            unique=False,
        )

    op.create_table(
        "tomogram_authors",
        sa.Column("tomogram_id", sa.Integer(), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("orcid", sa.String(length=40), nullable=True),
        sa.Column("affiliation_name", sa.String(length=300), nullable=True),
        sa.Column("affiliation_address", sa.Text(), nullable=True),
        sa.Column("affiliation_identifier", sa.String(length=100), nullable=True),
        sa.Column("corresponding_author_status", sa.Boolean(), nullable=False),
        sa.Column("primary_author_status", sa.Boolean(), nullable=False),
        sa.Column("author_list_order", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tomogram_id"],
            ["tomograms.id"],
            name=op.f("fk_tomogram_authors_tomogram_id_tomograms"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tomogram_authors")),
    )
    with op.batch_alter_table("tomogram_authors", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_tomogram_authors_tomogram_id"), ["tomogram_id"], unique=False
        )

    with op.batch_alter_table("dataset_authors", schema=None) as batch_op:
        batch_op.add_column(sa.Column("affiliation_address", sa.Text(), nullable=True))
        batch_op.add_column(
            sa.Column("affiliation_identifier", sa.String(length=100), nullable=True)
        )

    with op.batch_alter_table("depositions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("deposition_types", sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column("key_photo_url", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("key_photo_thumbnail_url", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_table("object_settings")
    with op.batch_alter_table("depositions", schema=None) as batch_op:
        batch_op.drop_column("key_photo_thumbnail_url")
        batch_op.drop_column("key_photo_url")
        batch_op.drop_column("deposition_types")

    with op.batch_alter_table("dataset_authors", schema=None) as batch_op:
        batch_op.drop_column("affiliation_identifier")
        batch_op.drop_column("affiliation_address")

    with op.batch_alter_table("tomogram_authors", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tomogram_authors_tomogram_id"))

    op.drop_table("tomogram_authors")
    with op.batch_alter_table("annotation_files", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_annotation_files_tomogram_voxel_spacing_id"))
        batch_op.drop_index(batch_op.f("ix_annotation_files_annotation_shape_id"))

    op.drop_table("annotation_files")
    with op.batch_alter_table("tomograms", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tomograms_tomogram_voxel_spacing_id"))
        batch_op.drop_index(batch_op.f("ix_tomograms_run_id"))

    op.drop_table("tomograms")
    with op.batch_alter_table("annotation_shapes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_annotation_shapes_annotation_id"))

    op.drop_table("annotation_shapes")
    with op.batch_alter_table("annotation_authors", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_annotation_authors_annotation_id"))

    op.drop_table("annotation_authors")
    op.drop_table("tomogram_voxel_spacings")
    with op.batch_alter_table("tiltseries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tiltseries_run_id"))

    op.drop_table("tiltseries")
    with op.batch_alter_table("identified_objects", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_identified_objects_run_id"))

    op.drop_table("identified_objects")
    with op.batch_alter_table("annotations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_annotations_run_id"))
        batch_op.drop_index(batch_op.f("ix_annotations_object_name"))
        batch_op.drop_index(batch_op.f("ix_annotations_object_id"))

    op.drop_table("annotations")
    with op.batch_alter_table("dataset_funding", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_dataset_funding_dataset_id"))

    op.drop_table("dataset_funding")
    with op.batch_alter_table("deposition_authors", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_deposition_authors_deposition_id"))

    op.drop_table("deposition_authors")
