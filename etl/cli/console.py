"""``vtex-synerise console``: serve the operations console (runs, rejects, cursors, metrics).

Gunicorn (``gthread`` workers) serves it by default, as it runs in production; ``--dev`` uses
werkzeug's development server. ``CONSOLE_BASIC_AUTH=user:password`` is required: the console
starts and cancels syncs and shows rejected records. ``--no-auth`` is accepted only on a
loopback address.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import secrets

import click

from etl.cli import runtime
from etl.cli.webhooks import check_bind
from etl.config import Settings
from etl.console import Services, build_app
from etl.errors import ConfigError
from etl.infra import redis_client
from etl.sync.queues import QUEUES
from etl.webhooks.server import THREADS, WORKERS, GunicornServer, parse_bind, serve_dev

__all__ = ["console", "is_loopback"]


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (``127.0.0.0/8``, ``::1``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@click.command()
@click.option("--bind", default="127.0.0.1:8080", show_default=True, callback=check_bind,
              help="HOST:PORT to listen on (0.0.0.0:8080 in a container).")
@click.option("--no-auth", is_flag=True,
              help="Serve without authentication; only allowed on a loopback address.")
@click.option("--dev", is_flag=True, help="Werkzeug's development server instead of gunicorn.")
@click.option("--workers", type=click.IntRange(min=1), default=WORKERS, show_default=True,
              help="Gunicorn worker processes.")
@click.option("--threads", type=click.IntRange(min=1), default=THREADS, show_default=True,
              help="Threads per gunicorn worker.")
@click.option("--access-log/--no-access-log", default=False, show_default=True,
              help="Gunicorn access log on stderr.")
def console(
    bind: str, no_auth: bool, dev: bool, workers: int, threads: int, access_log: bool
) -> None:
    """Serve the web console: runs with progress, a run's chunks and rejects, cursors and
    their lag, the realtime day, start / cancel / resume / replay forms, the same data as
    JSON under /api/, and Prometheus metrics at /metrics (needs CONSOLE_BASIC_AUTH)."""
    settings = Settings.from_env(require=())
    host, _ = parse_bind(bind)
    if no_auth and not is_loopback(host):
        raise click.BadParameter(
            f"--no-auth is only allowed on a loopback address, not {host}", param_hint="--no-auth"
        )
    pairs = None
    if not no_auth:
        if settings.console_basic_auth is None:
            raise ConfigError("CONSOLE_BASIC_AUTH", "user:password (--no-auth only on loopback)")
        pairs = settings.console_basic_auth.reveal()
    resolved = runtime.settings()  # servers resolved (embedded ones started) and schema migrated
    os.environ.update(resolved.process_env())  # Celery, in this process, sends to this Redis
    redis_url, csrf_key = resolved.redis_url, secrets.token_bytes(32)

    def factory() -> object:
        services = Services(
            store=runtime.store,
            engine=runtime.engine,
            redis=functools.cache(lambda: redis_client(str(redis_url), retries=1)),
            engine_of_run=runtime.engine_of_run,
        )
        return build_app(services, pairs, csrf_key, QUEUES)

    auth = "no authentication" if pairs is None else "basic auth"
    if dev:
        click.echo(f"console: development server on http://{bind} ({auth})", err=True)
        serve_dev(factory, bind)
    else:
        click.echo(f"console: gunicorn on http://{bind} ({workers} x {threads} threads, {auth})",
                   err=True)  # fmt: skip
        GunicornServer(
            factory, bind, workers=workers, threads=threads, accesslog="-" if access_log else None
        ).run()
