"""Portal roots and the catalog schema, on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import sqlalchemy as sa

from cryocurate.catalog import db
from cryocurate.catalog.models import Dataset
from cryocurate.errors import ConflictError, PortalError
from cryocurate.ingest.datasets import DatasetFields, create_dataset, edit_dataset
from cryocurate.portal import Portal


def test_init_makes_a_root_at_the_newest_schema(tmp_path, database_url):
    with Portal.create(tmp_path / "root", database_url=database_url) as p:
        assert (p.root / "cryocurate.toml").is_file() and p.data_dir.is_dir()
        assert db.current_revision(p.engine) == db.head_revision()
        tables = set(sa.inspect(p.engine).get_table_names())
        assert {"datasets", "runs", "class_averages", "class2d_jobs", "depositions"} <= tables
    # init again: harmless; open: checks the revision
    Portal.create(tmp_path / "root", database_url=database_url).close()
    Portal.open(tmp_path / "root").close()


def test_dataset_ids_start_at_10000(tmp_path, database_url):
    with Portal.create(tmp_path / "root", database_url=database_url) as p:
        first = create_dataset(p, DatasetFields(title="One", lab="A lab", authors=["X", "Y"]))
        second = create_dataset(p, DatasetFields(title="Two"))
        assert (first, second) == (10000, 10001)
        edit_dataset(p, first, DatasetFields(organism_name="Homo sapiens", organism_taxid=9606))
        with p.transaction() as s:
            d = s.get(Dataset, first)
            assert d.organism_name == "Homo sapiens" and [a.name for a in d.authors] == ["X", "Y"]
        meta = (p.data_dir / "10000" / "dataset_metadata.json").read_text()
        assert '"taxonomy_id": 9606' in meta


def test_the_schema_constant_names_the_newest_migration():
    assert db.head_revision() == db.SCHEMA_REVISION


def test_sqlite_is_in_wal_mode(tmp_path):
    with Portal.create(tmp_path / "root") as p, p.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_migrations_go_down_and_up(tmp_path, database_url):
    from alembic import command

    with Portal.create(tmp_path / "root", database_url=database_url) as p:
        cfg = db._alembic_config(p.engine)
        command.downgrade(cfg, "base")
        assert "datasets" not in sa.inspect(p.engine).get_table_names()
        command.upgrade(cfg, "head")
        assert "datasets" in sa.inspect(p.engine).get_table_names()


def test_refusals(tmp_path):
    try:
        Portal.open(tmp_path)
    except PortalError as err:
        assert "not a portal root" in str(err)
    else:
        raise AssertionError("opened a folder that is no portal root")
    Portal.create(tmp_path / "r").close()
    try:
        Portal.create(tmp_path / "r", database_url="postgresql+psycopg://x@127.0.0.1:1/y")
    except ConflictError as err:
        assert "already a portal root" in str(err)
    else:
        raise AssertionError("silently switched databases")
    # a catalog whose schema is behind: a clear hint to migrate
    with Portal.open(tmp_path / "r") as p, p.engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM alembic_version")
    try:
        Portal.open(tmp_path / "r")
    except PortalError as err:
        assert "cryocurate init" in str(err)
    else:
        raise AssertionError("opened a catalog without a schema")


def test_migrations_build_exactly_the_models(tmp_path, database_url):
    """Autogenerate finds nothing to do: the revision chain and the models agree."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from cryocurate.catalog.models import Base

    with Portal.create(tmp_path / "root", database_url=database_url) as p, p.engine.connect() as c:
        context = MigrationContext.configure(c, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []
