"""Exit codes of ``vtex-synerise`` and the one line each infrastructure failure becomes.

A user meets Redis or PostgreSQL down, a database that is not migrated or a bad URL as one
line on stderr that names the variable or the command that fixes it, and a documented exit
code; ``vtex-synerise --debug ...`` shows the traceback instead.
"""

from __future__ import annotations

from etl.errors import ConfigError, MissingExtraError, NetworkError
from etl.state.migrate import MigrationError

__all__ = [
    "EXIT_CODES_HELP",
    "EXIT_CONFIG",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_NOT_FOUND",
    "EXIT_NO_SLOT",
    "EXIT_UNAVAILABLE",
    "explain",
]

EXIT_FAILED = 1
EXIT_CONFIG = 2
EXIT_NO_SLOT = 3
EXIT_NOT_FOUND = 4
EXIT_UNAVAILABLE = 5
EXIT_INTERRUPTED = 130

EXIT_CODES_HELP = """\b
Exit codes:
  0    done
  1    a run ended failed or cancelled; a check failed; nothing to do
  2    bad usage or configuration (the line names the option or variable)
  3    no free sync slot (sync start --no-queue)
  4    no such run
  5    Redis or PostgreSQL unreachable, or the database is newer than this code
  130  interrupted (Ctrl-C); a run you were following goes on in the background
"""
"""The epilog of ``vtex-synerise --help`` (the README has the same table)."""

_REDIS_FIX = (
    "check that Redis runs and that REDIS_URL points at it "
    "(`vtex-synerise infra up` starts the embedded one)"
)
_POSTGRES_FIX = (
    "check that PostgreSQL runs and that DATABASE_URL points at it "
    "(`vtex-synerise infra up` starts the embedded one)"
)


def explain(error: BaseException) -> tuple[str, int] | None:
    """The line and exit code for an infrastructure or configuration failure; ``None`` for
    anything else (a bug keeps its traceback)."""
    import psycopg2
    import redis
    from kombu.exceptions import OperationalError as BrokerError

    from etl.sync.engines import UnknownConnectionError

    if isinstance(error, ConfigError | MissingExtraError | UnknownConnectionError):
        return f"error: {error}", EXIT_CONFIG
    if isinstance(error, NetworkError):
        text, cause = _first_line(error), error.__cause__
        if isinstance(cause, redis.RedisError | BrokerError) and "REDIS_URL" not in text:
            return f"error: {text}; {_REDIS_FIX}", EXIT_UNAVAILABLE
        if isinstance(cause, psycopg2.Error) and "DATABASE_URL" not in text:
            return f"error: {text}; {_POSTGRES_FIX}", EXIT_UNAVAILABLE
        return f"error: {text}", EXIT_UNAVAILABLE
    if isinstance(error, redis.ConnectionError | redis.TimeoutError | BrokerError):
        return f"error: Redis unreachable: {_first_line(error)}; {_REDIS_FIX}", EXIT_UNAVAILABLE
    if isinstance(error, psycopg2.errors.UndefinedTable):
        return (
            f"error: the database is not migrated ({_first_line(error)}); "
            "run `vtex-synerise db upgrade`",
            EXIT_UNAVAILABLE,
        )
    if isinstance(error, psycopg2.OperationalError | psycopg2.InterfaceError):
        return f"error: PostgreSQL: {_first_line(error)}; {_POSTGRES_FIX}", EXIT_UNAVAILABLE
    if isinstance(error, MigrationError):
        return f"error: {error}", EXIT_UNAVAILABLE
    return None


def _first_line(error: BaseException) -> str:
    """The error's first line, without its final full stop (a fix follows it)."""
    text = str(error).strip()
    return text.splitlines()[0].strip().rstrip(".") if text else type(error).__name__
