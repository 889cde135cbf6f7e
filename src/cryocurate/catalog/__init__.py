"""The catalog: the portal's database, and nothing else.

It knows the data model (:mod:`.models`), how to connect to SQLite or PostgreSQL (:mod:`.db`),
and how the schema evolves (Alembic revisions in ``migrations/``). It knows nothing of files
or formats: paths in the data tree are the store's business.
"""
