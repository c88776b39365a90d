"""Database and Redis URLs for tests that need their own: scratch databases, other Redis dbs."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import psycopg2

__all__ = ["admin", "scratch_database", "with_database", "with_redis_db"]


def with_database(dsn: str, name: str) -> str:
    """Return ``dsn`` pointing at database ``name`` (works for socket and TCP URIs)."""
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


def with_redis_db(url: str, db: int) -> str:
    """Return the Redis ``url`` pointing at database number ``db``."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{db}", parts.query, parts.fragment))


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
