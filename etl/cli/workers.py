"""``vtex-synerise worker | beat | flower``: the Celery programs, wired to the right servers.

Each command resolves Redis and PostgreSQL (starting the embedded ones if no URL is set), puts
``REDIS_URL``/``DATABASE_URL``/``ETL_STATE_DIR`` in the environment and then *replaces* itself
with the Celery program, so signals (Ctrl-C, ``docker stop``) reach Celery directly.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import click

from etl.config import Settings
from etl.errors import ConfigError
from etl.state.migrate import upgrade
from etl.sync.queues import QUEUES

__all__ = ["beat", "celery_argv", "flower", "worker"]

POOLS = ("prefork", "threads", "solo")


def celery_argv(program: str, *args: str) -> list[str]:
    """``python -m celery -A workers.app PROGRAM ARGS``: the same interpreter as this CLI."""
    return [sys.executable, "-m", "celery", "-A", "workers.app", program, *args]


def _exec(argv: Sequence[str], settings: Settings, extra_env: dict[str, str] | None = None) -> None:
    """Replace this process with ``argv`` (never returns).

    The Celery settings are loaded here first, so a bad beat variable (``SYNC_INCREMENTAL_CRON``
    ...) ends this command with one line instead of a traceback from inside Celery; and the
    database is migrated, so a worker started before anything else finds its tables.
    """
    with contextlib.suppress(ImportError):  # not importable here: Celery will say so itself
        importlib.import_module("celeryconfig").schedule()
    resolved = settings.with_infra()
    assert resolved.database_url  # with_infra() sets it
    upgrade(resolved.database_url)
    env = {**os.environ, **resolved.process_env(), **(extra_env or {})}
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(argv[0], list(argv), env)


def _log_level(ctx: click.Context) -> str:
    return str((ctx.obj or {}).get("log_level", "INFO"))


def _queues(ctx: click.Context, param: click.Parameter, value: str) -> str:
    names = [name.strip() for name in value.split(",") if name.strip()]
    unknown = sorted(set(names) - set(QUEUES))
    if not names or unknown:
        raise click.BadParameter(f"choose from {', '.join(QUEUES)} (comma-separated)")
    return ",".join(names)


@click.command()
@click.option("--queues", "-Q", default=",".join(QUEUES), show_default=True, callback=_queues,
              help="Queues to consume, comma-separated.")
@click.option("--concurrency", "-c", type=click.IntRange(min=1), default=None,
              help="Child processes or threads [default: number of CPUs].")
@click.option("--pool", "-P", type=click.Choice(POOLS), default="prefork", show_default=True,
              help="prefork for isolation and memory recycling; threads for I/O-bound tests.")
@click.option("--hostname", "-n", default=None, help="Node name, e.g. backfill1@%h.")
@click.pass_context
def worker(
    ctx: click.Context, queues: str, concurrency: int | None, pool: str, hostname: str | None
) -> None:
    """Run a Celery worker on the given queues."""
    settings = Settings.from_env(require=())
    # Without gossip: no worker here listens to the others' events (Flower does, apart), and
    # Celery's gossip step fails noisily to restart after a broker restart.
    args = ["--queues", queues, "--pool", pool, "--loglevel", _log_level(ctx), "--without-gossip"]
    if concurrency:
        args += ["--concurrency", str(concurrency)]
    if hostname:
        args += ["--hostname", hostname]
    _exec(celery_argv("worker", *args), settings)


@click.command()
@click.pass_context
def beat(ctx: click.Context) -> None:
    """Run the scheduler: upkeep every 30 s and cron-triggered incremental syncs.

    Incremental syncs run per SYNC_INCREMENTAL_CRON (default every 15 minutes) for
    SYNC_INCREMENTAL_SCOPES (default customers_updated,orders). Run exactly one beat.
    """
    settings = Settings.from_env(require=())
    schedule = Path(settings.etl_state_dir).resolve() / "celerybeat-schedule"
    schedule.parent.mkdir(parents=True, exist_ok=True)
    _exec(
        celery_argv("beat", "--schedule", str(schedule), "--loglevel", _log_level(ctx)), settings
    )


@click.command()
@click.option("--port", type=click.IntRange(1, 65535), default=5555, show_default=True)
@click.option("--address", default="127.0.0.1", show_default=True,
              help="Interface to listen on (0.0.0.0 in a container).")
@click.option("--basic-auth", default=None, metavar="USER:PASSWORD",
              help="Overrides FLOWER_BASIC_AUTH. Prefer the variable: arguments show in ps.")
@click.option("--no-auth", is_flag=True, help="Start without authentication (local use only).")
@click.pass_context
def flower(
    ctx: click.Context, port: int, address: str, basic_auth: str | None, no_auth: bool
) -> None:
    """Run Flower, the Celery monitor (with Prometheus metrics at /metrics).

    Authentication is on unless --no-auth, for the pages, the API and /metrics alike: Flower
    shows task arguments and can revoke tasks. /healthcheck stays open (it says only OK).
    """
    env = dict(os.environ)
    if basic_auth is not None:
        env["FLOWER_BASIC_AUTH"] = basic_auth
    settings = Settings.from_env(env, dotenv_path=".env", require=())
    extra: dict[str, str] = {}
    if settings.flower_basic_auth is not None:
        extra["FLOWER_BASIC_AUTH"] = settings.flower_basic_auth.reveal()  # Flower reads it
    elif not no_auth:
        raise ConfigError("FLOWER_BASIC_AUTH", "user:password (or --basic-auth; --no-auth to skip)")
    # workers.flower runs `celery flower` with /metrics as protected as the pages.
    argv = [
        sys.executable, "-m", "workers.flower",
        f"--port={port}", f"--address={address}", f"--logging={_log_level(ctx).lower()}",
    ]  # fmt: skip
    _exec(argv, settings, extra)
