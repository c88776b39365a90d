"""Serving the webhook app: werkzeug's threaded server for development, gunicorn for production.

Gunicorn runs as a library (``BaseApplication``), not a second CLI, so it gets the same settings
and the same embedded-server resolution as every other command. Each worker builds its own app
after the fork (no ``preload``): Redis connections are never shared between processes.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import Any

from gunicorn.app.base import BaseApplication
from werkzeug.serving import run_simple

__all__ = ["THREADS", "WORKERS", "GunicornServer", "parse_bind", "serve_dev"]

AppFactory = Callable[[], Any]
WORKERS = 2
"""Gunicorn processes by default: one per core of a small machine."""
THREADS = 4
"""Threads per process by default: the app waits on Redis for well under a millisecond, so a
few threads pay and more only contend for the GIL (4 beat 8 on 2 cores, docs/benchmarks.md)."""


def parse_bind(bind: str) -> tuple[str, int]:
    """``HOST:PORT`` (IPv6 as ``[::1]:8000``) to ``(host, port)``.

    Raises:
        ValueError: no port, or one outside 0..65535.
    """
    host, sep, port = bind.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"expected HOST:PORT, got {bind!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


def serve_dev(factory: AppFactory, bind: str, threads: bool = True) -> None:
    """Werkzeug's development server (threaded, one process); blocks until Ctrl-C."""
    host, port = parse_bind(bind)
    run_simple(host, port, factory(), threaded=threads, use_reloader=False)


class GunicornServer(BaseApplication):
    """Gunicorn with the ``gthread`` worker: ``workers`` processes of ``threads`` threads.

    Args:
        factory: builds the WSGI app, called once in each worker process.
        bind: ``HOST:PORT``.
        workers: processes.
        threads: threads per process.
        options: any other gunicorn setting (``accesslog``, ``timeout``, ``keepalive``...).
    """

    def __init__(
        self,
        factory: AppFactory,
        bind: str,
        workers: int = WORKERS,
        threads: int = THREADS,
        **options: Any,
    ) -> None:
        parse_bind(bind)  # fail here, with our message, not inside gunicorn
        self.factory = factory
        self.options = {
            "bind": bind,
            "workers": workers,
            "threads": threads,
            "worker_class": "gthread",
            "keepalive": 75,  # longer than the idle timeout of common load balancers
            "timeout": 30,
            "graceful_timeout": 20,
            # The runtime control socket sits at one path per user ($HOME/.gunicorn): a second
            # service on the host would take it over. Signals manage the workers instead.
            "control_socket_disable": True,
            **options,
        }
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            if value is not None:
                self.cfg.set(key, value)

    def load(self) -> Any:
        app = self.factory()
        # A full collection over the ~60,000 objects of the imported modules stalls every
        # thread for ~40 ms: the p99 of the whole service. They live as long as the process,
        # so they leave the collector's generations; requests' own garbage is still collected.
        gc.collect()
        gc.freeze()
        return app
