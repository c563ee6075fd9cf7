"""Alembic environment for iop-bridge's store (SQLite embedded, PostgreSQL for scale-out).

Run programmatically by ``integration.db.migrate.migrate`` (which hands over an open
connection), or by hand from the repository root: ``.venv/bin/alembic upgrade head`` uses
``sqlalchemy.url`` from alembic.ini if set, else the one Settings object (IOP_BRIDGE_DATABASE_URL).
"""

from __future__ import annotations

from logging.config import fileConfig

from alembic import context
from sqlalchemy import Connection, create_engine, text

from integration.db.migrate import target_metadata
from integration.settings import Settings

config = context.config
# Only the command line configures logging: inside the app, fileConfig would silence the
# app's own loggers (it disables existing loggers by default).
if config.config_file_name is not None and config.attributes.get("connection") is None:
    fileConfig(config.config_file_name)

# An arbitrary constant: the advisory lock that serialises concurrent migrations on PostgreSQL
# (several iop-bridge processes starting at once against one database).
MIGRATION_LOCK_ID = 7_401_202_611


def database_url() -> str:
    """The URL to migrate when no connection was handed over."""
    return config.get_main_option("sqlalchemy.url") or Settings().database_url


def run_offline() -> None:
    """Emit SQL to stdout (``alembic upgrade head --sql``) without connecting."""
    context.configure(
        url=database_url(),
        target_metadata=target_metadata(),
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_on(connection: Connection) -> None:
    """Run the migrations on an open connection, one process at a time on PostgreSQL."""
    context.configure(
        connection=connection,
        target_metadata=target_metadata(),
        # SQLite cannot ALTER most things: batch mode rebuilds the table instead.
        render_as_batch=True,
        compare_type=True,
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": MIGRATION_LOCK_ID})
        context.run_migrations()


def run_online() -> None:
    """Use the connection handed over by ``migrate()``, or open one."""
    connection = config.attributes.get("connection")
    if connection is not None:
        run_on(connection)
        return
    engine = create_engine(database_url())
    try:
        with engine.connect() as own:
            run_on(own)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
