"""Alembic environment: migrations run on the engine cryocurate hands over, never from a URL
in an ini file, so the CLI, the tests and the server all migrate the same way."""

from __future__ import annotations

from alembic import context

from cryocurate.catalog.models import Base

config = context.config
engine = config.attributes["engine"]

with engine.begin() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=True,  # SQLite can only alter tables by copying them
        compare_type=True,
    )
    context.run_migrations()
