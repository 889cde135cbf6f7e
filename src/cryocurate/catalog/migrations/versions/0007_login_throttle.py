"""login throttle

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02

Login attempts counted in the catalog, per account at an address and per address, so every
server process (``serve --workers N``) and a restart see the same counts
(:mod:`cryocurate.accounts.throttle`).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "login_throttle",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("next_at", sa.Float(), nullable=False),
        sa.Column("last_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_login_throttle")),
    )
    with op.batch_alter_table("login_throttle") as batch:
        batch.create_index(batch.f("ix_login_throttle_last_at"), ["last_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("login_throttle") as batch:
        batch.drop_index(batch.f("ix_login_throttle_last_at"))
    op.drop_table("login_throttle")
