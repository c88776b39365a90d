"""PostgreSQL connections for the state store: connect with retry, explicit transactions.

Also the two row helpers every aggregate module uses (``from_row``, ``check_choice``).

Workers start together with (or right after) the database, and the server may restart under a
long-lived worker, so connecting retries for a few seconds and a connection that died while idle
is replaced before a transaction starts. A transaction that fails midway is never replayed here:
whether it is safe to repeat is the caller's decision (Celery tasks retry whole units of work).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import fields
from typing import Any, TypeVar

import psycopg2
import psycopg2.extras
from psycopg2.extensions import connection as Connection
from psycopg2.extensions import cursor as Cursor

__all__ = ["Connections", "check_choice", "connect", "from_row", "transaction"]

log = logging.getLogger(__name__)

Row = TypeVar("Row")


def connect(dsn: str, *, attempts: int = 10, delay: float = 0.2) -> Connection:
    """Open a connection, retrying ``OperationalError`` (server starting or restarting).

    Args:
        dsn: a libpq URI or key/value string.
        attempts: how many times to try before giving up.
        delay: first pause between tries; doubles up to 2 s.

    Raises:
        psycopg2.OperationalError: the last error once attempts are used up.
    """
    for attempt in range(1, attempts + 1):
        try:
            return psycopg2.connect(dsn, connect_timeout=5, application_name="vtex-synerise-etl")
        except psycopg2.OperationalError:
            if attempt == attempts:
                raise
            log.warning("PostgreSQL not reachable (attempt %d/%d); retrying", attempt, attempts)
            time.sleep(delay)
            delay = min(delay * 2, 2.0)
    raise AssertionError("unreachable")  # the loop returns or raises


@contextlib.contextmanager
def transaction(conn: Connection, cursor_factory: Any = None) -> Iterator[Cursor]:
    """Run the block in one transaction: commit on success, roll back on any exception."""
    with conn, conn.cursor(cursor_factory=cursor_factory) as cur:
        yield cur


class Connections:
    """One connection per thread and process, checked before a transaction after idling.

    Per thread because psycopg2 connections must not run two transactions at once (Celery's
    thread pool, the web server); per process because a connection inherited through ``fork``
    belongs to the parent. No pool size to tune: a thread's connection closes when it ends.
    """

    idle_check_after = 5.0
    """Seconds of idleness after which a connection is pinged before use."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self._local = threading.local()
        self._pid = os.getpid()
        self._inherited: list[Connection] = []  # kept, never used, never closed in the child

    @contextlib.contextmanager
    def transaction(self, dict_rows: bool = True) -> Iterator[Cursor]:
        """A transaction on this thread's connection; rows are dicts unless ``dict_rows=False``."""
        conn = self._connection()
        factory = psycopg2.extras.RealDictCursor if dict_rows else None
        try:
            with transaction(conn, factory) as cur:
                yield cur
        finally:
            self._local.used_at = time.monotonic()
            if conn.closed:
                self._local.conn = None  # lost midway: the next transaction reconnects

    def fetch_one(self, query: str, params: Any) -> dict[str, Any] | None:
        """The first row of one query in its own transaction (a dict), or ``None``."""
        with self.transaction() as cur:
            cur.execute(query, params)
            row = cur.fetchone()
        return dict(row) if row is not None else None

    def close(self) -> None:
        """Close this thread's connection (others close when their threads end)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None and os.getpid() == self._pid:
            conn.close()
        self._local.conn = None

    def _connection(self) -> Connection:
        if os.getpid() != self._pid:
            inherited = getattr(self._local, "conn", None)
            if inherited is not None:
                self._inherited.append(inherited)
            self._local = threading.local()
            self._pid = os.getpid()
        conn: Connection | None = getattr(self._local, "conn", None)
        if conn is not None and not conn.closed:
            idle = time.monotonic() - getattr(self._local, "used_at", 0.0)
            if idle < self.idle_check_after or _alive(conn):
                return conn
        conn = connect(self.dsn)
        self._local.conn = conn
        return conn


def _alive(conn: Connection) -> bool:
    """Cheap round trip; a server restart leaves idle connections dead until used."""
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1")
        conn.rollback()
        return True
    except (psycopg2.OperationalError, psycopg2.InterfaceError):
        with contextlib.suppress(psycopg2.Error):
            conn.close()
        return False


def from_row(cls: type[Row], row: dict[str, Any]) -> Row:
    """Build the dataclass ``cls`` from the row's columns it declares (later migrations may add
    columns)."""
    return cls(**{field.name: row[field.name] for field in fields(cls)})  # type: ignore[arg-type]


def check_choice(value: str, allowed: Sequence[str], what: str) -> None:
    """Refuse a value the schema's CHECK constraint would refuse, with a readable message."""
    if value not in allowed:
        raise ValueError(f"{what} must be one of {', '.join(allowed)}; got {value!r}")
