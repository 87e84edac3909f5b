"""Alembic environment: runs on the connection `escalator db upgrade` hands it.

Run directly with the `alembic` command, it connects to ESCALATOR_DATABASE_URL.
"""

from alembic import context

from escalator.store.db import default_database_url, make_engine
from escalator.store.tables import Base

connection = context.config.attributes.get("connection")


def _run(conn) -> None:  # type: ignore[no-untyped-def]
    context.configure(connection=conn, target_metadata=Base.metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


if connection is not None:
    _run(connection)
else:
    with make_engine(default_database_url()).begin() as conn:
        _run(conn)
