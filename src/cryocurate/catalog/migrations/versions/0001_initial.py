"""initial catalog: datasets, runs, 2D class averages

Revision ID: 0001
Revises:
Create Date: 2026-11-21

The portal's first tables: depositions, datasets (ids from 10000), their authors, runs, and
the 2D classification jobs and class averages of runs of kind ``class2d``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "depositions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=500), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("tag", sa.String(length=200), nullable=True),
        sa.Column("deposition_publications", sa.Text(), nullable=True),
        sa.Column("related_database_entries", sa.Text(), nullable=True),
        sa.Column("deposition_date", sa.Date(), nullable=True),
        sa.Column("release_date", sa.Date(), nullable=True),
        sa.Column("last_modified_date", sa.Date(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_depositions")),
    )
    op.create_table(
        "datasets",
        sa.Column("id", sa.Integer(), sa.Identity(always=False, start=10000), nullable=False),
        sa.Column("deposition_id", sa.Integer(), nullable=True),
        sa.Column("title", sa.String(length=500), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("lab", sa.String(length=200), nullable=True),
        sa.Column("organism_name", sa.String(length=200), nullable=True),
        sa.Column("organism_taxid", sa.Integer(), nullable=True),
        sa.Column(
            "sample_type",
            sa.Enum(
                "cell",
                "cell_line",
                "in_silico",
                "in_vitro",
                "organelle",
                "organism",
                "organoid",
                "other",
                "primary_cell_culture",
                "tissue",
                "virus",
                name="sampletype",
                native_enum=False,
                length=32,
            ),
            nullable=True,
        ),
        sa.Column("sample_preparation", sa.Text(), nullable=True),
        sa.Column("grid_preparation", sa.Text(), nullable=True),
        sa.Column("other_setup", sa.Text(), nullable=True),
        sa.Column("dataset_publications", sa.Text(), nullable=True),
        sa.Column("related_database_entries", sa.Text(), nullable=True),
        sa.Column("deposition_date", sa.Date(), nullable=True),
        sa.Column("release_date", sa.Date(), nullable=True),
        sa.Column("last_modified_date", sa.Date(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["deposition_id"],
            ["depositions.id"],
            name=op.f("fk_datasets_deposition_id_depositions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_datasets")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("datasets", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_datasets_deposition_id"), ["deposition_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_datasets_lab"), ["lab"], unique=False)
    if op.get_bind().dialect.name == "sqlite":
        # PostgreSQL's identity starts at 10000; SQLite's AUTOINCREMENT continues from here.
        op.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('datasets', 9999)")

    op.create_table(
        "dataset_authors",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("dataset_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("orcid", sa.String(length=40), nullable=True),
        sa.Column("affiliation_name", sa.String(length=300), nullable=True),
        sa.Column("corresponding_author_status", sa.Boolean(), nullable=False),
        sa.Column("primary_author_status", sa.Boolean(), nullable=False),
        sa.Column("author_list_order", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["dataset_id"],
            ["datasets.id"],
            name=op.f("fk_dataset_authors_dataset_id_datasets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dataset_authors")),
    )
    with op.batch_alter_table("dataset_authors", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_dataset_authors_dataset_id"), ["dataset_id"], unique=False
        )

    op.create_table(
        "runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("dataset_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column(
            "kind",
            sa.Enum("class2d", "tomography", name="runkind", native_enum=False, length=32),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["dataset_id"], ["datasets.id"], name=op.f("fk_runs_dataset_id_datasets")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_runs")),
        sa.UniqueConstraint("dataset_id", "name", name=op.f("uq_runs_dataset_id")),
    )
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_runs_dataset_id"), ["dataset_id"], unique=False)

    op.create_table(
        "class2d_jobs",
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("software", sa.String(length=20), nullable=False),
        sa.Column("project_uid", sa.String(length=40), nullable=True),
        sa.Column("job_uid", sa.String(length=40), nullable=True),
        sa.Column("iteration", sa.Integer(), nullable=False),
        sa.Column("pixel_size_a", sa.Float(), nullable=False),
        sa.Column("box_size", sa.Integer(), nullable=False),
        sa.Column("n_classes", sa.Integer(), nullable=False),
        sa.Column("n_particles", sa.BigInteger(), nullable=False),
        sa.Column("source_path", sa.Text(), nullable=False),
        sa.Column("input_files", sa.JSON(), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("extracted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cryocurate_version", sa.String(length=40), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name=op.f("fk_class2d_jobs_run_id_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("run_id", name=op.f("pk_class2d_jobs")),
    )
    op.create_table(
        "class_averages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("class_index", sa.Integer(), nullable=False),
        sa.Column("resolution_a", sa.Float(), nullable=True),
        sa.Column("particle_count", sa.BigInteger(), nullable=False),
        sa.Column("class_fraction", sa.Float(), nullable=False),
        sa.Column("mean_posterior", sa.Float(), nullable=True),
        sa.Column("mean_ess", sa.Float(), nullable=True),
        sa.Column("accuracy_rotations", sa.Float(), nullable=True),
        sa.Column("accuracy_translations_a", sa.Float(), nullable=True),
        sa.Column("pixel_size_a", sa.Float(), nullable=False),
        sa.Column("mass_estimate", sa.Float(), nullable=True),
        sa.Column("dmean_mass", sa.Float(), nullable=True),
        sa.Column("dmedian_mass", sa.Float(), nullable=True),
        sa.Column("dmode_mass", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name=op.f("fk_class_averages_run_id_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_class_averages")),
        sa.UniqueConstraint("run_id", "class_index", name=op.f("uq_class_averages_run_id")),
    )


def downgrade() -> None:
    op.drop_table("class_averages")
    op.drop_table("class2d_jobs")
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_runs_dataset_id"))

    op.drop_table("runs")
    with op.batch_alter_table("dataset_authors", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_dataset_authors_dataset_id"))

    op.drop_table("dataset_authors")
    with op.batch_alter_table("datasets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_datasets_lab"))
        batch_op.drop_index(batch_op.f("ix_datasets_deposition_id"))

    op.drop_table("datasets")
    op.drop_table("depositions")
