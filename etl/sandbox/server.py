"""Run sandbox aiohttp applications on loopback.

`SandboxServer` hosts one application in a daemon thread with its own event loop, so synchronous
code (tests, the demo, benchmarks, `requests`-based clients) can talk to a real HTTP server without
owning an event loop. `serve_forever` is the blocking variant used by
``vtex-synerise sandbox serve``: every application shares one loop in the main thread and the call
returns on SIGINT/SIGTERM.

Handlers of an application always run in that application's loop thread, so emulator state needs no
locks as long as it is only mutated from handlers (or via ``loop.call_soon_threadsafe``).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import threading
from collections.abc import Callable
from types import TracebackType
from typing import TypeVar

from aiohttp import web

# In-flight requests (e.g. an injected hang) get this long to finish when a server stops.
SHUTDOWN_TIMEOUT = 1.0
# Listen backlog: benchmarks open thousands of connections at once.
BACKLOG = 4096
# How long a call from another thread waits for the serving loop to run it.
CALL_TIMEOUT = 30.0

_T = TypeVar("_T")


def call_in_loop(loop: asyncio.AbstractEventLoop | None, fn: Callable[[], _T]) -> _T:
    """Run ``fn`` in ``loop``'s thread and return its result.

    Emulator state is only touched from the serving loop, so the emulators' public Python
    methods hop in here. ``fn`` runs right away when there is no running loop (the app is not
    being served) or when the caller is already in that loop.
    """
    if loop is None or loop.is_closed() or not loop.is_running():
        return fn()
    try:
        if asyncio.get_running_loop() is loop:
            return fn()
    except RuntimeError:
        pass

    async def call() -> _T:
        return fn()

    return asyncio.run_coroutine_threadsafe(call(), loop).result(timeout=CALL_TIMEOUT)


def _bind(host: str, port: int) -> socket.socket:
    """Bind a listening-ready TCP socket; port 0 picks a free port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


async def _start(app: web.Application, sock: socket.socket) -> web.AppRunner:
    """Start serving ``app`` on an already bound socket.

    ``handler_cancellation`` cancels a handler whose client went away, so thousands of abandoned
    hung requests do not pile up; access logging is off because it costs more than a handler.
    """
    runner = web.AppRunner(
        app, handler_cancellation=True, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT
    )
    await runner.setup()
    site = web.SockSite(runner, sock, backlog=BACKLOG)
    await site.start()
    return runner


class SandboxServer:
    """Runs an aiohttp Application on loopback in a daemon thread with its own event loop.

    Usage::

        with SandboxServer(SyneriseSandbox().make_app()) as server:
            requests.post(server.url + "/v4/auth/login/profile", json={...})
    """

    def __init__(self, app: web.Application, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app = app
        self.host = host
        self._requested_port = port
        self._port: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopped = False

    def start(self) -> SandboxServer:
        """Bind and start serving; returns once the socket accepts connections.

        Raises:
            OSError: the address cannot be bound.
            RuntimeError: the server was already stopped (an Application cannot be served twice).
        """
        if self._stopped:
            raise RuntimeError("a stopped SandboxServer cannot be restarted; create a new one")
        if self._thread is not None:
            return self
        sock = _bind(self.host, self._requested_port)
        self._port = sock.getsockname()[1]
        ready = threading.Event()
        failure: list[BaseException] = []
        loop = asyncio.new_event_loop()
        self._loop = loop

        def run() -> None:
            asyncio.set_event_loop(loop)
            runner: web.AppRunner | None = None
            try:
                runner = loop.run_until_complete(_start(self.app, sock))
            except BaseException as exc:  # reported to start()'s caller
                failure.append(exc)
                sock.close()
            ready.set()
            if runner is not None:
                loop.run_forever()
                loop.run_until_complete(runner.cleanup())
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

        self._thread = threading.Thread(
            target=run, name=f"sandbox-server-{self._port}", daemon=True
        )
        self._thread.start()
        ready.wait()
        if failure:
            self._thread.join()
            self._stopped = True
            raise failure[0]
        return self

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("server not started")
        return self._port

    @property
    def url(self) -> str:
        """Base URL without a trailing slash, e.g. ``http://127.0.0.1:54321``."""
        return _url(self.host, self.port)

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The server's event loop (to schedule state changes from other threads)."""
        if self._loop is None:
            raise RuntimeError("server not started")
        return self._loop

    def stop(self) -> None:
        """Stop accepting, give in-flight requests `SHUTDOWN_TIMEOUT` s, close. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        with contextlib.suppress(RuntimeError):  # loop already closed
            loop.call_soon_threadsafe(loop.stop)
        thread.join()

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "stopped" if self._stopped else ("running" if self._thread else "new")
        where = _url(self.host, self._port) if self._port else f"{self.host}:{self._requested_port}"
        return f"SandboxServer({where}, {state})"


def serve_forever(
    apps: list[tuple[web.Application, str, int]],
    on_ready: Callable[[list[str]], None] | None = None,
) -> None:
    """Serve every ``(app, host, port)`` in the current thread until SIGINT/SIGTERM.

    Args:
        apps: applications and where to bind them (port 0 = a free port).
        on_ready: called with the base URLs (same order as ``apps``) once all are listening,
            so the CLI can print them even when ports were chosen by the OS.
    """
    socks = [_bind(host, port) for _, host, port in apps]
    urls = [
        _url(host, sock.getsockname()[1]) for (_, host, _), sock in zip(apps, socks, strict=True)
    ]

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        runners: list[web.AppRunner] = []
        try:
            for (app, _, _), sock in zip(apps, socks, strict=True):
                runners.append(await _start(app, sock))
            if on_ready is not None:
                on_ready(urls)
            await stop.wait()
        finally:
            for runner in reversed(runners):
                await runner.cleanup()

    try:
        asyncio.run(main())
    finally:
        for sock in socks:
            sock.close()
