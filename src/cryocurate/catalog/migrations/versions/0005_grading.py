"""grading

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-21

Grading campaigns: their runs, labellers and items; each labeller's stored order (with
unannounced repeats); current grades (one per labeller, item and look) and every grade event
as it arrived (idempotent by the browser-made request id); rubric examples; and which portal
annotation holds whose grades.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "campaigns",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column(
            "item_kind",
            sa.Enum("class_average", "tiltseries", name="itemkind", native_enum=False, length=24),
            nullable=False,
        ),
        sa.Column(
            "scale",
            sa.Enum("letters", "tilt_series", name="gradescale", native_enum=False, length=24),
            nullable=False,
        ),
        sa.Column("levels", sa.JSON(), nullable=False),
        sa.Column("grades_per_item", sa.Integer(), nullable=True),
        sa.Column("repeat_share", sa.Float(), nullable=False),
        sa.Column("seed", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("closed", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["created_by_id"],
            ["users.id"],
            name=op.f("fk_campaigns_created_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaigns")),
        sa.UniqueConstraint("name", name=op.f("uq_campaigns_name")),
    )
    op.create_table(
        "campaign_labellers",
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_campaign_labellers_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_campaign_labellers_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("campaign_id", "user_id", name=op.f("pk_campaign_labellers")),
    )
    with op.batch_alter_table("campaign_labellers", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_campaign_labellers_user_id"), ["user_id"], unique=False
        )

    op.create_table(
        "campaign_runs",
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_campaign_runs_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name=op.f("fk_campaign_runs_run_id_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("campaign_id", "run_id", name=op.f("pk_campaign_runs")),
    )
    with op.batch_alter_table("campaign_runs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_campaign_runs_run_id"), ["run_id"], unique=False)

    op.create_table(
        "campaign_items",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("class_average_id", sa.Integer(), nullable=True),
        sa.Column("tiltseries_id", sa.Integer(), nullable=True),
        sa.Column("fingerprint", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_campaign_items_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["class_average_id"],
            ["class_averages.id"],
            name=op.f("fk_campaign_items_class_average_id_class_averages"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name=op.f("fk_campaign_items_run_id_runs"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["tiltseries_id"],
            ["tiltseries.id"],
            name=op.f("fk_campaign_items_tiltseries_id_tiltseries"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaign_items")),
        sa.UniqueConstraint(
            "campaign_id", "class_average_id", name=op.f("uq_campaign_items_class_average")
        ),
        sa.UniqueConstraint(
            "campaign_id", "tiltseries_id", name=op.f("uq_campaign_items_tiltseries")
        ),
    )
    with op.batch_alter_table("campaign_items", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_campaign_items_class_average_id"), ["class_average_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_campaign_items_run_id"), ["run_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_campaign_items_tiltseries_id"), ["tiltseries_id"], unique=False
        )

    op.create_table(
        "grade_annotations",
        sa.Column("annotation_id", sa.Integer(), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["annotation_id"],
            ["annotations.id"],
            name=op.f("fk_grade_annotations_annotation_id_annotations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_grade_annotations_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["runs.id"],
            name=op.f("fk_grade_annotations_run_id_runs"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_grade_annotations_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("annotation_id", name=op.f("pk_grade_annotations")),
        sa.UniqueConstraint(
            "campaign_id", "run_id", "user_id", name=op.f("uq_grade_annotations_campaign_id")
        ),
    )
    with op.batch_alter_table("grade_annotations", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_grade_annotations_run_id"), ["run_id"], unique=False)

    op.create_table(
        "rubric_examples",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("value", sa.Integer(), nullable=False),
        sa.Column("class_average_id", sa.Integer(), nullable=True),
        sa.Column("tiltseries_id", sa.Integer(), nullable=True),
        sa.Column("caption", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_rubric_examples_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["class_average_id"],
            ["class_averages.id"],
            name=op.f("fk_rubric_examples_class_average_id_class_averages"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tiltseries_id"],
            ["tiltseries.id"],
            name=op.f("fk_rubric_examples_tiltseries_id_tiltseries"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rubric_examples")),
    )
    with op.batch_alter_table("rubric_examples", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_rubric_examples_campaign_id"), ["campaign_id"], unique=False
        )

    op.create_table(
        "campaign_queue",
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("repeat", sa.Boolean(), nullable=False),
        sa.Column("skipped_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_campaign_queue_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["item_id"],
            ["campaign_items.id"],
            name=op.f("fk_campaign_queue_item_id_campaign_items"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_campaign_queue_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "campaign_id", "user_id", "position", name=op.f("pk_campaign_queue")
        ),
    )
    with op.batch_alter_table("campaign_queue", schema=None) as batch_op:
        batch_op.create_index(
            "ix_campaign_queue_user_item", ["campaign_id", "user_id", "item_id"], unique=False
        )

    op.create_table(
        "grade_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.String(length=64), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("repeat", sa.Boolean(), nullable=False),
        sa.Column("value", sa.Integer(), nullable=True),
        sa.Column("given_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("seconds_on_item", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_grade_events_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["item_id"],
            ["campaign_items.id"],
            name=op.f("fk_grade_events_item_id_campaign_items"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_grade_events_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_grade_events")),
        sa.UniqueConstraint("request_id", name=op.f("uq_grade_events_request_id")),
    )
    with op.batch_alter_table("grade_events", schema=None) as batch_op:
        batch_op.create_index("ix_grade_events_item_user", ["item_id", "user_id"], unique=False)

    op.create_table(
        "grades",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("repeat", sa.Boolean(), nullable=False),
        sa.Column("value", sa.Integer(), nullable=False),
        sa.Column("given_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("seconds_on_item", sa.Float(), nullable=True),
        sa.Column("request_id", sa.String(length=64), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_grades_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["item_id"],
            ["campaign_items.id"],
            name=op.f("fk_grades_item_id_campaign_items"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_grades_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_grades")),
        sa.UniqueConstraint("item_id", "user_id", "repeat", name=op.f("uq_grades_item_id")),
    )
    with op.batch_alter_table("grades", schema=None) as batch_op:
        batch_op.create_index("ix_grades_campaign_user", ["campaign_id", "user_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("grades", schema=None) as batch_op:
        batch_op.drop_index("ix_grades_campaign_user")

    op.drop_table("grades")
    with op.batch_alter_table("grade_events", schema=None) as batch_op:
        batch_op.drop_index("ix_grade_events_item_user")

    op.drop_table("grade_events")
    with op.batch_alter_table("campaign_queue", schema=None) as batch_op:
        batch_op.drop_index("ix_campaign_queue_user_item")

    op.drop_table("campaign_queue")
    with op.batch_alter_table("rubric_examples", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_rubric_examples_campaign_id"))

    op.drop_table("rubric_examples")
    with op.batch_alter_table("grade_annotations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_grade_annotations_run_id"))

    op.drop_table("grade_annotations")
    with op.batch_alter_table("campaign_items", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_campaign_items_tiltseries_id"))
        batch_op.drop_index(batch_op.f("ix_campaign_items_run_id"))
        batch_op.drop_index(batch_op.f("ix_campaign_items_class_average_id"))

    op.drop_table("campaign_items")
    with op.batch_alter_table("campaign_runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_campaign_runs_run_id"))

    op.drop_table("campaign_runs")
    with op.batch_alter_table("campaign_labellers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_campaign_labellers_user_id"))

    op.drop_table("campaign_labellers")
    op.drop_table("campaigns")
