"""The operations console: runs, their progress and rejects, cursors, the realtime day, and
business metrics for Prometheus, served as server-rendered pages and JSON.

``vtex-synerise console`` builds the app with ``build_app``; see ``etl.console.app`` for the
routes. Like the CLI and the webhook service it is a door: it reads the state store and drives
runs only through the engine's functions (``etl.console.actions``); the core never imports it.
"""

from __future__ import annotations

from collections.abc import Callable

from etl.console.app import ConsoleApp
from etl.console.auth import BasicAuth
from etl.console.csrf import CsrfTokens
from etl.console.metrics import Scrape, celery_consumers
from etl.console.views import Services

__all__ = ["ConsoleApp", "Services", "build_app"]


def build_app(
    services: Services,
    basic_auth: str | None,
    csrf_key: bytes,
    queues: tuple[str, ...],
    consumers: Callable[[], dict[str, int]] | None = celery_consumers,
) -> ConsoleApp:
    """The console app.

    Args:
        services: the store, engine and Redis, built lazily.
        basic_auth: ``user:password[,user:password]``; ``None`` serves without authentication.
        csrf_key: the form token key (the same in every worker process).
        queues: the Celery queues ``/metrics`` measures.
        consumers: counts each queue's consuming workers for ``/metrics`` (``None``: skipped).
    """
    scrape: Scrape | None = None

    def scraper() -> Scrape:
        nonlocal scrape
        if scrape is None:
            scrape = Scrape(services.store(), services.redis(), queues, consumers)
        return scrape

    auth = BasicAuth(basic_auth) if basic_auth is not None else None
    return ConsoleApp(services, auth, CsrfTokens(csrf_key), scraper)
