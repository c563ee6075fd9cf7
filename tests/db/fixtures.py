"""Database fixtures: an empty, migrated store on SQLite and on PostgreSQL.

Test modules import the fixtures they use (``from tests.db.fixtures import db_url``).
PostgreSQL comes from ``IOP_BRIDGE_TEST_POSTGRES_URL`` (set by scripts/test.sh, which starts
scripts/postgres.sh). Like the live tier: without ``--require-live`` a missing URL skips the
PostgreSQL cases; with it (the test command, CI) a missing URL is a failure, never a skip.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from integration.db.migrate import migrate

POSTGRES_URL_ENV = "IOP_BRIDGE_TEST_POSTGRES_URL"
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


def postgres_admin_url(config: pytest.Config) -> str:
    """The test cluster's URL, or fail (``--require-live``) / skip when it is not configured."""
    url = os.environ.get(POSTGRES_URL_ENV)
    if url:
        return url
    message = f"{POSTGRES_URL_ENV} is not set (start the cluster: scripts/postgres.sh start)"
    if config.getoption("--require-live"):
        pytest.fail(message + " (--require-live: PostgreSQL tests must run)", pytrace=False)
    pytest.skip(message)


@contextmanager
def fresh_postgres_database(admin_url: str) -> Iterator[str]:
    """A new, empty database on the cluster for one test; dropped afterwards."""
    name = f"iop_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
        finally:
            _drop_database(admin, name)
    finally:
        admin.dispose()


def _drop_database(admin: Engine, name: str) -> None:
    """Drop a test database, ending the test's own leftover connections (a failed test may leave
    some). Not WITH (FORCE): it must also terminate any autovacuum worker in the database, which
    a non-superuser may not ("must be a member of the role whose process is being terminated"),
    whereas a plain DROP has PostgreSQL stop that worker itself."""
    leftovers = text(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE datname = :name AND usename = current_user AND pid <> pg_backend_pid()"
    )
    with admin.connect() as connection:
        for attempt in range(5):
            try:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
                return
            except OperationalError:  # "being accessed by other users"
                if attempt == 4:
                    raise
                connection.execute(leftovers, {"name": name})
                time.sleep(0.2)


@pytest.fixture(params=BACKENDS)
def empty_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database (no tables): a SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
        return
    with fresh_postgres_database(postgres_admin_url(request.config)) as url:
        yield url


@pytest.fixture
def db_url(empty_db_url: str) -> str:
    """A database migrated to the newest revision, on each backend."""
    migrate(empty_db_url)
    return empty_db_url


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """An engine on the migrated database of ``db_url``."""
    engine = create_engine(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def postgres_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A migrated PostgreSQL database only (for tests about concurrent workers)."""
    with fresh_postgres_database(postgres_admin_url(request.config)) as url:
        migrate(url)
        yield url
