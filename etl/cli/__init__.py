"""``vtex-synerise``: the command line of the project.

Each command group lives in its own module and is registered below, explicitly. Commands load
only the settings they need, so ``infra``, ``db`` and the Celery programs run without VTEX or
Synerise credentials. A configuration or infrastructure failure (``etl.cli.errors.explain``)
ends any command with one line on stderr and its exit code (listed in ``--help``); ``--debug``
shows the traceback instead.
"""

from __future__ import annotations

import logging
import warnings
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import click

from etl import infra as embedded
from etl.cli.console import console
from etl.cli.db import db
from etl.cli.demo import demo
from etl.cli.doctor import doctor
from etl.cli.errors import EXIT_CODES_HELP, EXIT_CONFIG, EXIT_INTERRUPTED, explain
from etl.cli.health import health
from etl.cli.infra import infra
from etl.cli.sandbox import sandbox
from etl.cli.sync import sync
from etl.cli.vtex import vtex
from etl.cli.webhooks import webhooks
from etl.cli.workers import beat, flower, worker
from etl.redaction import install_log_redaction
from etl.state import db as state_db

__all__ = ["EXIT_CONFIG", "main"]

CLI_CONNECT_PATIENCE = 5.0
"""Seconds a command waits for an unreachable PostgreSQL before it says so (workers wait 20)."""
CLI_REDIS_RETRIES = 3
"""Retries of a command's Redis calls, about 1.5 s (workers retry for about 15 s)."""
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def _version() -> str:
    try:
        return version("vtex-synerise-etl")
    except PackageNotFoundError:  # running from a checkout that was never installed
        return "unknown"


class _Main(click.Group):
    """The root group: a configuration or infrastructure failure raised by any command becomes
    one line on stderr and its exit code (``etl.cli.errors``); Ctrl-C exits 130."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            if (ctx.obj or {}).get("debug"):
                raise
            click.echo("interrupted", err=True)
            ctx.exit(EXIT_INTERRUPTED)
        except Exception as error:
            explained = explain(error)
            if explained is None or (ctx.obj or {}).get("debug"):
                raise
            message, code = explained
            click.echo(message, err=True)
            ctx.exit(code)


@click.group(cls=_Main, epilog=EXIT_CODES_HELP)
@click.version_option(_version(), prog_name="vtex-synerise")
@click.option("--log-level", type=click.Choice(LOG_LEVELS, case_sensitive=False),
              default="INFO", show_default=True, help="Logging threshold (stderr).")
@click.option("--debug", is_flag=True,
              help="Show the traceback of an error instead of its one-line explanation.")
@click.pass_context
def main(ctx: click.Context, log_level: str, debug: bool) -> None:
    """Sync VTEX orders and customers into Synerise with Celery workers."""
    level = logging.getLevelName(log_level.upper())
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("pgserver").setLevel(max(level, logging.WARNING))  # chatty at INFO
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")  # pgserver, harmless
    install_log_redaction()
    _wait_less(ctx, quiet=not debug)
    ctx.obj = {"log_level": log_level.upper(), "debug": debug}


def _wait_less(ctx: click.Context, quiet: bool) -> None:
    """A command says "unreachable" after seconds, not the minutes a worker waits; and it says it
    once, in its error line, instead of the database module's "retrying" warning too. Undone
    when the command ends (tests run many commands in one process)."""
    db_log = logging.getLogger(state_db.__name__)
    before = (state_db.CONNECT_PATIENCE, embedded.REDIS_RETRY_ATTEMPTS, db_log.level)
    state_db.CONNECT_PATIENCE = CLI_CONNECT_PATIENCE
    embedded.REDIS_RETRY_ATTEMPTS = CLI_REDIS_RETRIES
    if quiet:
        db_log.setLevel(logging.ERROR)

    def restore() -> None:
        state_db.CONNECT_PATIENCE, embedded.REDIS_RETRY_ATTEMPTS, level = before
        db_log.setLevel(level)

    ctx.call_on_close(restore)


for _command in (
    infra, db, worker, beat, flower, demo, doctor, sync, sandbox, webhooks, vtex, console, health
):
    main.add_command(_command)
