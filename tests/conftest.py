"""Session-wide real servers: embedded Redis and PostgreSQL (or REDIS_URL / DATABASE_URL).

Fixtures:
    infra          (session) ``.redis_url`` and ``.database_url`` (maintenance DSN)
    redis_url      (session) the broker URL (db 0)
    redis_client   (function) a client on db 2, flushed for each test
    database_url   (function) a fresh database with every migration applied

Helpers for tests that need their own databases: `scratch_database`, `admin`, `with_database`.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg2
import pytest
import redis

from etl import infra as embedded


@dataclass(frozen=True)
class Infra:
    redis_url: str
    database_url: str


def with_database(dsn: str, name: str) -> str:
    """Return ``dsn`` pointing at database ``name`` (works for socket and TCP URIs)."""
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


def with_redis_db(url: str, db: int) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{db}", parts.query, parts.fragment))


@pytest.fixture(scope="session")
def infra() -> Iterator[Infra]:
    external_redis = os.environ.get("REDIS_URL")
    external_pg = os.environ.get("DATABASE_URL")
    # Not pytest's tmp_path: pytest prunes old session folders while another session may run.
    folder = Path(tempfile.mkdtemp(prefix="etl-test-infra-"))
    started = None
    if not (external_redis and external_pg):
        started = embedded.up(
            folder, need_redis=not external_redis, need_postgres=not external_pg
        )
    redis_url = external_redis or (started.redis_url if started else "")
    database_url = external_pg or (started.database_url if started else "")
    os.environ["ETL_TEST_STATE_DIR"] = str(folder)
    yield Infra(redis_url=redis_url, database_url=database_url)
    if started:
        embedded.down(folder)
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_url(infra: Infra) -> str:
    return with_redis_db(infra.redis_url, 0)


@pytest.fixture
def redis_client(infra: Infra) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(with_redis_db(infra.redis_url, 2))
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


_db_counter = itertools.count()


@pytest.fixture(scope="session")
def _template_database(infra: Infra) -> str:
    """A migrated template; each test clones it (CREATE DATABASE ... TEMPLATE is fast)."""
    from etl.state.migrate import upgrade

    name = f"etl_template_{os.getpid()}"
    admin(infra.database_url, f'DROP DATABASE IF EXISTS "{name}"')
    admin(infra.database_url, f'CREATE DATABASE "{name}"')
    upgrade(with_database(infra.database_url, name))
    return name


@pytest.fixture
def database_url(infra: Infra, _template_database: str) -> Iterator[str]:
    name = f"etl_test_{os.getpid()}_{next(_db_counter)}"
    with scratch_database(infra.database_url, name, template=_template_database) as dsn:
        yield dsn


@contextlib.contextmanager
def scratch_database(dsn: str, name: str, template: str | None = None) -> Iterator[str]:
    """Create database ``name`` (a copy of ``template`` if given), yield its DSN, then drop it.

    ``dsn`` is a maintenance connection (``infra.database_url``).
    """
    from_template = f' TEMPLATE "{template}"' if template else ""
    admin(dsn, f'CREATE DATABASE "{name}"{from_template}')
    try:
        yield with_database(dsn, name)
    finally:
        admin(dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def admin(dsn: str, statement: str) -> None:
    """Run one statement outside a transaction (``CREATE``/``DROP DATABASE``)."""
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(statement)
    finally:
        conn.close()
