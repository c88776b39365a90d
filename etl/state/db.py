"""PostgreSQL connections for the state store: connect with retry, explicit transactions.

Also the two row helpers every aggregate module uses (``from_row``, ``check_choice``).

Workers start together with (or right after) the database, and the server may restart under a
long-lived worker, so connecting retries for a while (``CONNECT_PATIENCE``) and a connection
that died while idle is replaced before a transaction starts. Every connection has connect,
keepalive and TCP timeouts (``PG_OPTIONS``), so a server that vanished fails a call within
seconds instead of blocking a worker for minutes.

A connection lost midway raises ``NetworkError`` (retriable), never a rollback error that would
hide it: the first error decides. A transaction that fails midway is never replayed here:
whether it is safe to repeat is the caller's decision (Celery tasks retry whole units of work).
An unreachable server or a refused login after the patience is ``NetworkError`` or
``ConfigError("DATABASE_URL", ...)``, one line each.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import fields
from typing import Any, TypeVar

import psycopg2
import psycopg2.extras
from psycopg2.extensions import connection as Connection
from psycopg2.extensions import cursor as Cursor

from etl.errors import ConfigError, NetworkError

__all__ = [
    "CONNECT_PATIENCE",
    "PG_OPTIONS",
    "Connections",
    "check_choice",
    "connect",
    "connection_lost",
    "from_row",
    "transaction",
]

log = logging.getLogger(__name__)

Row = TypeVar("Row")

PG_OPTIONS = {
    "connect_timeout": "5",
    "keepalives": "1",
    "keepalives_idle": "10",
    "keepalives_interval": "5",
    "keepalives_count": "3",
    "tcp_user_timeout": "15000",
    "application_name": "vtex-synerise-etl",
}
"""libpq options for every connection, unless the DSN sets them itself: a connect gives up after
5 s, an idle or waiting connection to a vanished host is declared dead after about 25 s of
unanswered keepalives, and data left unacknowledged for 15 s breaks it (``tcp_user_timeout``,
ms). Unix sockets (the embedded server) ignore the TCP ones: a restart closes them at once."""

CONNECT_PATIENCE = 20.0
"""Seconds ``connect`` keeps trying an unreachable server: a restart takes a few (the CLI sets
a shorter wait for its one-off commands)."""

_LOST_SQLSTATES = ("57P01", "57P02", "57P03")
"""admin_shutdown, crash_shutdown, cannot_connect_now; class 08 (connection exception) too."""

_PASSING = (
    "could not connect", "connection refused", "timeout expired", "starting up",
    "shutting down", "server closed the connection", "no such file or directory",
    "could not translate host name", "connection timed out", "no route to host",
    "network is unreachable", "too many clients", "in recovery mode",
)  # fmt: skip
"""What a connect error says when waiting may cure it; anything else (authentication, a database
that does not exist, a malformed URL) is a configuration error."""


def connect(dsn: str, *, patience: float | None = None) -> Connection:
    """Open a connection, retrying while the server is unreachable (starting or restarting).

    Logs one warning when the first attempt fails, not one per attempt.

    Args:
        dsn: a libpq URI or key/value string; options it sets win over ``PG_OPTIONS``.
        patience: seconds to keep trying (default ``CONNECT_PATIENCE``, read at each call: the
            CLI shortens it); pauses double from 0.2 s up to 2 s.

    Raises:
        NetworkError: still unreachable after ``patience`` seconds.
        ConfigError: the server refused the login or has no such database (``DATABASE_URL``).
    """
    options = _options(dsn)
    patience = CONNECT_PATIENCE if patience is None else patience
    deadline = time.monotonic() + patience
    delay = 0.2
    while True:
        try:
            return psycopg2.connect(dsn, **options)
        except psycopg2.OperationalError as error:
            reason = _first_line(error)
            if not any(text in reason.lower() for text in _PASSING):
                raise ConfigError(
                    "DATABASE_URL", f"a database this server lets us into ({reason})"
                ) from None
            if time.monotonic() + delay > deadline:
                raise NetworkError(
                    f"PostgreSQL unreachable for {patience:g} s ({reason}); check that it runs "
                    "and that DATABASE_URL points at it (`vtex-synerise infra up` starts the "
                    "embedded one)"
                ) from error
            if delay == 0.2:
                log.warning(
                    "PostgreSQL not reachable (%s); retrying for up to %g s", reason, patience
                )
            time.sleep(delay)
            delay = min(delay * 2, 2.0)


def connection_lost(error: BaseException, conn: Connection) -> bool:
    """True when ``error`` means the connection is gone (server restarted, network cut)."""
    if isinstance(error, psycopg2.InterfaceError):  # "connection already closed"
        return True
    if not isinstance(error, psycopg2.OperationalError):
        return False
    code = error.pgcode or ""
    return bool(conn.closed) or code.startswith("08") or code in _LOST_SQLSTATES


@contextlib.contextmanager
def transaction(conn: Connection, cursor_factory: Any = None) -> Iterator[Cursor]:
    """Run the block in one transaction: commit on success, roll back on any exception.

    Raises:
        NetworkError: the connection was lost (in the block or at commit; a lost commit may or
            may not have been applied, so the caller must be able to repeat the work). The
            rollback of a dead connection is never allowed to replace the first error.
    """
    cur = conn.cursor(cursor_factory=cursor_factory)
    try:
        yield cur
        cur.close()
        conn.commit()
    except BaseException as error:
        if connection_lost(error, conn):
            with contextlib.suppress(psycopg2.Error):
                conn.close()
            raise NetworkError(f"PostgreSQL connection lost: {_first_line(error)}") from error
        try:
            conn.rollback()
        except psycopg2.Error as failed:
            if not connection_lost(failed, conn):
                raise
            with contextlib.suppress(psycopg2.Error):
                conn.close()  # the transaction died with it; the first error stands
        raise
    finally:
        with contextlib.suppress(psycopg2.Error):
            cur.close()


def _options(dsn: str) -> dict[str, str]:
    """``PG_OPTIONS`` minus what the DSN sets itself."""
    try:
        given = psycopg2.extensions.parse_dsn(dsn)
    except psycopg2.ProgrammingError as error:
        expected = f"a valid PostgreSQL URL ({_first_line(error)})"
        raise ConfigError("DATABASE_URL", expected) from None
    return {key: value for key, value in PG_OPTIONS.items() if key not in given}


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0].strip() if text else type(error).__name__


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

    def statement(self, query: str, params: Any) -> list[dict[str, Any]]:
        """Run one statement that is a whole transaction by itself (PostgreSQL commits it on
        its own); its rows as dicts. One round trip, where ``transaction`` spends three on one
        statement (``BEGIN``, the statement, ``COMMIT``).

        Raises:
            NetworkError: the connection was lost (the statement may or may not have run).
        """
        conn = self._connection()
        try:
            conn.autocommit = True
            with transaction(conn, psycopg2.extras.RealDictCursor) as cur:
                cur.execute(query, params)
                return [dict(row) for row in cur.fetchall()] if cur.description else []
        finally:
            self._local.used_at = time.monotonic()
            if conn.closed:
                self._local.conn = None  # lost midway: the next transaction reconnects
            else:
                conn.autocommit = False

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
            if (idle < self.idle_check_after and not _hung_up(conn)) or _alive(conn):
                return conn
        conn = connect(self.dsn)
        self._local.conn = conn
        return conn


def _hung_up(conn: Connection) -> bool:
    """Did the server send something while the connection sat idle between transactions?

    It only does that when it ends the session (a restart: "terminating connection due to
    administrator command", then EOF), so a readable idle socket means "check before use". One
    ``select`` with no wait: cheap enough for every transaction, and it spares a busy worker a
    failed transaction after each restart.
    """
    try:
        readable, _, _ = select.select([conn.fileno()], [], [], 0)
    except (OSError, ValueError, psycopg2.Error):
        return True
    return bool(readable)


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
