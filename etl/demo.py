"""The foundation demo: every moving part of the platform, end to end, then a clean shutdown.

It brings up the embedded Redis and PostgreSQL (in their own state folder, so it never touches
servers you run), migrates the database, starts a real worker and Flower through this project's
CLI, sends ``etl.selftest`` tasks through Redis, and waits for the rows the worker writes in
PostgreSQL. Whatever happens (success, failure, Ctrl-C, SIGTERM) every process it started is
stopped before it returns.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

from etl import infra
from etl.config import Settings
from etl.dispatch import enqueue
from etl.state import migrate
from etl.state.store import StateStore

__all__ = ["DemoError", "DemoReport", "run"]

T = TypeVar("T")
Say = Callable[[str], None]


class DemoError(RuntimeError):
    """A step of the demo failed; the message says which and where its log is."""


@dataclass
class DemoReport:
    """What the demo did, for the caller to print or check."""

    redis_url: str = ""
    database_url: str = ""
    migrations_applied: list[int] = field(default_factory=list)
    tasks_sent: int = 0
    rows_written: int = 0
    workers: set[str] = field(default_factory=set)
    flower_url: str = ""
    flower_user: str = ""
    flower_password: str = ""
    flower_tasks_seen: int = 0
    flower_rejects_anonymous: bool = False
    seconds: float = 0.0


def run(
    settings: Settings,
    tasks: int = 20,
    timeout: float = 60.0,
    hold: bool = False,
    say: Say = print,
) -> DemoReport:
    """Run the demo; raise ``DemoError`` if a step fails. Always cleans up.

    Args:
        settings: loaded with ``require=()``; external ``REDIS_URL``/``DATABASE_URL`` are used.
        tasks: how many ``etl.selftest`` tasks to send.
        timeout: seconds each waiting step may take.
        hold: keep Flower and the worker running until Ctrl-C before shutting down.
        say: where progress lines go.
    """
    report = DemoReport()
    started = time.monotonic()
    folder = Path(settings.etl_state_dir).resolve() / "demo"
    with _terminate_on_sigterm(), _cleanup_stack() as cleanup:
        settings = _servers(settings, folder, cleanup, say)
        assert settings.redis_url and settings.database_url
        report.redis_url, report.database_url = settings.redis_url, settings.database_url
        os.environ.update(settings.process_env())  # for etl.dispatch in this process

        report.migrations_applied = migrate.upgrade(settings.database_url)
        say(f"database migrated (applied: {report.migrations_applied or 'nothing new'})")

        env = dict(os.environ)
        node = f"demo-{os.getpid()}@%h"
        _spawn(
            "worker",
            ["worker", "--pool", "prefork", "--concurrency", "2", "--hostname", node],
            env, folder, cleanup,
        )
        say(f"worker started (log: {folder / 'worker.log'})")

        report.flower_user, report.flower_password = "demo", secrets.token_urlsafe(12)
        port = infra.free_port()
        report.flower_url = f"http://127.0.0.1:{port}"
        flower_env = {**env, "FLOWER_BASIC_AUTH": f"{report.flower_user}:{report.flower_password}"}
        flower = _spawn("flower", ["flower", "--port", str(port)], flower_env, folder, cleanup)
        auth = _basic(report.flower_user, report.flower_password)
        worker_name = node.replace("%h", socket.gethostname())  # as Celery expands %h
        # Flower's event-based metrics list the worker once its events flow: from then on
        # Flower records every task we send.
        online = f'flower_worker_online{{worker="{worker_name}"}} 1.0'
        _wait(
            lambda: online in _get(f"{report.flower_url}/metrics", auth),
            timeout, f"Flower did not see the worker online (logs in {folder})", watch=flower,
        )
        report.flower_rejects_anonymous = _status(f"{report.flower_url}/api/workers") == 401
        if not report.flower_rejects_anonymous:
            raise DemoError("Flower answered an anonymous request: authentication is off")
        say(f"Flower up at {report.flower_url} (user {report.flower_user}, "
            f"password {report.flower_password}); sees worker {worker_name}")

        tokens = [f"demo-{uuid.uuid4().hex[:8]}-{i}" for i in range(tasks)]
        for token in tokens:
            enqueue("etl.selftest", [token], "realtime")
        report.tasks_sent = len(tokens)
        say(f"sent {len(tokens)} etl.selftest tasks through Redis")

        store = StateStore(settings.database_url)
        cleanup.callback(store.close)
        rows = _wait(
            lambda: (found := store.selftest_tokens(tokens)) and len(found) == len(tokens)
            and found,
            timeout, f"not every selftest row arrived (log: {folder / 'worker.log'})",
        )
        report.rows_written, report.workers = len(rows), set(rows.values())
        say(f"PostgreSQL has {len(rows)}/{len(tokens)} rows, written by {sorted(report.workers)}")

        report.flower_tasks_seen = _wait(
            lambda: _flower_count(report.flower_url, auth, tokens) == len(tokens) and len(tokens),
            timeout, "Flower did not record every task (are worker events on?)",
        )
        say(f"Flower recorded {report.flower_tasks_seen} succeeded selftest tasks")
        report.seconds = time.monotonic() - started
        if hold:
            say(f"holding: browse {report.flower_url}; Ctrl-C to shut down")
            with contextlib.suppress(KeyboardInterrupt):
                while True:
                    time.sleep(1)
        say("shutting down worker, Flower and the demo's servers")
    return report


def _servers(settings: Settings, folder: Path, cleanup: contextlib.ExitStack, say: Say) -> Settings:
    """External URLs as given; otherwise embedded servers in the demo's own folder."""
    need_redis, need_postgres = not settings.redis_url, not settings.database_url
    if need_redis or need_postgres:
        with _signals_deferred():  # a server started is a server recorded for shutdown
            cleanup.callback(infra.down, folder)
            state = infra.up(folder, need_redis=need_redis, need_postgres=need_postgres)
        say(f"embedded servers up in {folder}")
        settings = Settings.from_env(
            {
                **os.environ,
                "REDIS_URL": settings.redis_url or state.redis_url,
                "DATABASE_URL": settings.database_url or state.database_url,
                "ETL_STATE_DIR": str(folder),
            },
            require=(),
        )
    return settings


def _spawn(
    name: str, args: list[str], env: dict[str, str], folder: Path, cleanup: contextlib.ExitStack
) -> subprocess.Popen[bytes]:
    """Start ``vtex-synerise ARGS`` in its own process group, logging to ``folder/NAME.log``."""
    folder.mkdir(parents=True, exist_ok=True)
    log = open(folder / f"{name}.log", "wb")  # noqa: SIM115 - closed by the cleanup stack
    cleanup.callback(log.close)
    with _signals_deferred():  # a process started is a process recorded for shutdown
        proc = subprocess.Popen(
            [sys.executable, "-m", "etl.cli", "--log-level", "INFO", *args],
            env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        cleanup.callback(_stop_group, proc)
    return proc


def _stop_group(proc: subprocess.Popen[bytes], grace: float = 20.0) -> None:
    """SIGTERM the process group (Celery's warm shutdown), SIGKILL what is left after ``grace``."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(grace)
    # Children (prefork pool) may outlive the parent briefly; the group id is the parent's pid.
    deadline = time.monotonic() + grace
    while _group_alive(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _wait(
    check: Callable[[], T | bool | None],
    timeout: float,
    message: str,
    watch: subprocess.Popen[bytes] | None = None,
) -> Any:
    """Poll ``check`` until it returns something truthy; raise ``DemoError`` on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        if watch is not None and watch.poll() is not None:
            raise DemoError(f"{message}; it exited with {watch.returncode}")
        time.sleep(0.2)
    raise DemoError(f"{message} within {timeout:g} s")


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def _request(url: str, auth: str | None) -> urllib.request.Request:
    request = urllib.request.Request(url)
    if auth:
        request.add_header("Authorization", auth)
    return request


def _get(url: str, auth: str) -> str:
    """The body of a GET, or "" while the server is not up."""
    try:
        with urllib.request.urlopen(_request(url, auth), timeout=5) as response:
            return str(response.read().decode())
    except (OSError, ValueError):
        return ""


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(_request(url, None), timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return 0


def _flower_count(url: str, auth: str, tokens: list[str]) -> int:
    body = _get(f"{url}/api/tasks?taskname=etl.selftest&state=SUCCESS", auth)
    tasks = json.loads(body) if body else {}
    wanted = set(tokens)
    return sum(1 for task in tasks.values() if _token_of(task) in wanted)


def _token_of(task: dict[str, Any]) -> str:
    args = str(task.get("args") or "")
    return args.strip("()[],' \"")


@contextlib.contextmanager
def _signals_deferred() -> Iterator[None]:
    """Hold SIGINT/SIGTERM until the block ends, then raise ``KeyboardInterrupt`` if one came.

    Used where an interruption would leak a process: between starting it and recording it for
    cleanup, and while cleaning up.
    """
    caught: list[int] = []

    def record(signum: int, frame: FrameType | None) -> None:
        caught.append(signum)

    previous = {sig: signal.signal(sig, record) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if caught:
        raise KeyboardInterrupt


@contextlib.contextmanager
def _cleanup_stack() -> Iterator[contextlib.ExitStack]:
    """An ``ExitStack`` whose unwinding a second Ctrl-C cannot cut short."""
    stack = contextlib.ExitStack()
    try:
        yield stack
    finally:
        with _signals_deferred():
            stack.close()


@contextlib.contextmanager
def _terminate_on_sigterm() -> Iterator[None]:
    """Turn SIGTERM into KeyboardInterrupt so the cleanup stack runs (default would just die)."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
