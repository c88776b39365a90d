"""``vtex-synerise health``: container health checks (exit 0 healthy, 1 not, with one line why).

``worker`` pings this host's Celery worker through the broker; ``beat`` checks that the
scheduler saved its schedule recently (it does every few minutes while it ticks: ``etl.sweep``
is due every 30 s); ``url`` asks an HTTP health endpoint (Flower's ``/healthcheck``, the
webhook service's and the console's ``/healthz``).
"""

from __future__ import annotations

import socket
import sys
import time
from pathlib import Path

import click
import requests

from etl.config import Settings

__all__ = ["health"]

BEAT_MAX_AGE = 420.0
"""Seconds: beat saves its schedule at least every 3 minutes while tasks are due."""


def _unhealthy(message: str) -> None:
    click.echo(f"unhealthy: {message}", err=True)
    sys.exit(1)


@click.group()
def health() -> None:
    """Health checks for containers and supervisors (exit 0 healthy, 1 not)."""


@health.command("worker")
@click.option("--node", default=None, help="Worker node name [default: celery@HOSTNAME].")
@click.option("--timeout", type=click.FloatRange(min=0.1), default=10.0, show_default=True)
def worker(node: str | None, timeout: float) -> None:
    """Ping this host's Celery worker through the broker."""
    from workers.app import app  # the Celery seam: only this command needs it

    name = node or f"celery@{socket.gethostname()}"
    try:
        replies = app.control.ping(destination=[name], timeout=timeout)
    except Exception as error:  # the broker is unreachable: that is the answer
        _unhealthy(f"cannot reach the broker: {type(error).__name__}: {error}")
    if not any(name in reply for reply in replies or ()):
        _unhealthy(f"worker {name} did not answer a ping within {timeout:g} s")
    click.echo(f"{name}: pong")


@health.command("beat")
@click.option("--max-age", type=click.FloatRange(min=1), default=BEAT_MAX_AGE, show_default=True,
              help="Seconds since beat last saved its schedule.")
def beat(max_age: float) -> None:
    """Check that beat saved its schedule (in ETL_STATE_DIR) recently."""
    folder = Path(Settings.from_env(require=()).etl_state_dir).resolve()
    saved = [path.stat().st_mtime for path in folder.glob("celerybeat-schedule*")]
    if not saved:
        _unhealthy(f"no beat schedule in {folder}: is beat running there?")
    age = time.time() - max(saved)
    if age > max_age:
        _unhealthy(f"beat last saved its schedule {age:.0f} s ago (more than {max_age:g} s)")
    click.echo(f"beat saved its schedule {age:.0f} s ago")


@health.command("url")
@click.argument("url")
@click.option("--timeout", type=click.FloatRange(min=0.1), default=5.0, show_default=True)
def url(url: str, timeout: float) -> None:
    """GET URL and expect a 2xx answer."""
    try:
        status = requests.get(url, timeout=timeout).status_code
    except requests.RequestException as error:
        _unhealthy(f"{url}: {type(error).__name__}")
    if not 200 <= status < 300:
        _unhealthy(f"{url} answered {status}")
    click.echo(f"{url}: {status}")
