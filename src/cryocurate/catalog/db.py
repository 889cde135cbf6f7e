"""Connecting to the catalog: one engine per portal, SQLite tuned for many readers.

SQLite is the default (a file in the portal root), in WAL mode so the web server reads
while an extraction writes; PostgreSQL is used when the portal's settings give a
``postgresql+psycopg://`` URL. The schema is created and upgraded only through Alembic
(:func:`upgrade`), never by ``create_all``, so every portal follows one revision chain.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from cryocurate.errors import PortalError

if TYPE_CHECKING:
    from alembic.config import Config

# Alembic is imported inside the functions that migrate: opening a portal only needs to read
# the revision, and every CLI command pays for its imports at start-up.

MIGRATIONS = Path(__file__).parent / "migrations"
# The newest revision in migrations/versions (a test keeps the two in step). Knowing it here
# lets every command check a catalog without importing Alembic, which costs start-up time.
SCHEMA_REVISION = "0007"


def _sqlite_pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
    # busy_timeout first: switching to WAL can itself meet a lock held by another process.
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def create_engine(url: str) -> Engine:
    """An engine for ``url`` with our SQLite pragmas, or plain for PostgreSQL."""
    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError as err:
        raise PortalError(
            f"not a database URL: {url!r}", hint="use sqlite:///path or postgresql+psycopg://…"
        ) from err
    if parsed.get_backend_name() == "sqlite":
        engine = sa.create_engine(parsed)
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if parsed.get_backend_name() == "postgresql":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        # The catalog's queries are short and index-driven: JIT compilation only adds tens of
        # milliseconds, and the default random_page_cost (tuned for spinning disks) makes the
        # planner prefer whole-table scans of the class averages over their indexes.
        options = "-c jit=off -c random_page_cost=1.1"
        return sa.create_engine(parsed, pool_pre_ping=True, connect_args={"options": options})
    raise PortalError(
        f"unsupported database {parsed.get_backend_name()!r}",
        hint="cryocurate runs on SQLite or PostgreSQL",
    )


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: committed if the block succeeds, rolled back if it raises."""
    with factory() as session, session.begin():
        yield session


def _alembic_config(engine: Engine) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def head_revision() -> str:
    """The newest schema revision this version of cryocurate knows."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(_alembic_config(sa.create_engine("sqlite://")))
    head = script.get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    """The catalog's schema revision, or None for a database without our schema."""
    try:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table("alembic_version"):
                return None
            return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
    except sa.exc.OperationalError as err:
        raise PortalError(f"cannot open the catalog database: {err.orig}") from err


def upgrade(engine: Engine) -> None:
    """Bring the schema to the newest revision (creating it on an empty database)."""
    from alembic import command

    try:
        command.upgrade(_alembic_config(engine), "head")
    except sa.exc.OperationalError as err:
        raise PortalError(f"cannot migrate the catalog database: {err.orig}") from err


def check_revision(engine: Engine) -> None:
    """Refuse a catalog older or newer than this cryocurate, with what to do about it."""
    current, head = current_revision(engine), SCHEMA_REVISION
    if current == head:
        return
    if current is None:
        raise PortalError(
            "the catalog database has no cryocurate schema",
            hint="run `cryocurate init ROOT` to make a portal root",
        )
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(_alembic_config(engine))
    if script.get_revision(current) is None:
        raise PortalError(
            f"the catalog is at schema revision {current}, which this cryocurate does not know",
            hint="upgrade cryocurate",
        )
    raise PortalError(
        f"the catalog is at schema revision {current}, older than {head}",
        hint="run `cryocurate migrate ROOT`",
    )
