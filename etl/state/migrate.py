"""Schema migrations: numbered SQL files applied in order, once, under an advisory lock.

Files are ``etl/state/migrations/NNNN_name.sql``, read as package data so an installed wheel
migrates the same way as a checkout. Each file runs in its own transaction together with its
``schema_migrations`` row, so a failing file leaves no trace and the next ``upgrade`` retries it.
The advisory lock lets every process call ``upgrade`` at start without racing the others.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from importlib import resources

from etl.state.db import connect, transaction

__all__ = ["Migration", "MigrationError", "available", "upgrade"]

log = logging.getLogger(__name__)

LOCK_ID = 0x7654_5359  # arbitrary, constant: "vtex-synerise-etl migrations"
_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

_BOOKKEEPING = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    int PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


class MigrationError(RuntimeError):
    """The migration files or the database's migration history are inconsistent."""


@dataclass(frozen=True)
class Migration:
    """One SQL file."""

    version: int
    name: str
    sql: str


def available() -> list[Migration]:
    """The packaged migrations in version order.

    Raises:
        MigrationError: a file is misnamed or two files share a version.
    """
    found: dict[int, Migration] = {}
    for entry in resources.files("etl.state").joinpath("migrations").iterdir():
        if not entry.name.endswith(".sql"):
            continue
        match = _FILE.match(entry.name)
        if not match:
            raise MigrationError(f"migration file {entry.name!r} is not named NNNN_name.sql")
        version = int(match[1])
        if version in found:
            raise MigrationError(f"two migration files have version {version:04d}")
        found[version] = Migration(version, match[2], entry.read_text(encoding="utf-8"))
    return [found[version] for version in sorted(found)]


def upgrade(dsn: str) -> list[int]:
    """Apply every migration the database lacks; return the versions applied (empty if none).

    Raises:
        MigrationError: the database has versions this code does not know (it is newer).
    """
    migrations = available()
    conn = connect(dsn)
    try:
        conn.autocommit = True  # the session lock must outlive the per-file transactions
        with conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_lock(%s)", (LOCK_ID,))
        conn.autocommit = False
        try:
            with transaction(conn) as cur:
                cur.execute(_BOOKKEEPING)
                cur.execute("SELECT version FROM schema_migrations")
                done = {row[0] for row in cur.fetchall()}
            unknown = done - {m.version for m in migrations}
            if unknown:
                raise MigrationError(
                    f"the database has migrations {sorted(unknown)} that this code does not "
                    "know; upgrade the code"
                )
            applied = []
            for migration in migrations:
                if migration.version in done:
                    continue
                with transaction(conn) as cur:
                    cur.execute(migration.sql)
                    cur.execute(
                        "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                        (migration.version, migration.name),
                    )
                log.info("applied migration %04d_%s", migration.version, migration.name)
                applied.append(migration.version)
            return applied
        finally:
            if not conn.closed:  # a lost connection has released the lock already
                conn.autocommit = True
                with conn.cursor() as cur:
                    cur.execute("SELECT pg_advisory_unlock(%s)", (LOCK_ID,))
    finally:
        conn.close()
