"""``vtex-synerise``: the command line of the project.

Each command group lives in its own module and is registered below, explicitly. Commands load
only the settings they need, so ``infra``, ``db`` and the Celery programs run without VTEX or
Synerise credentials. Any ``ConfigError`` or ``MissingExtraError`` ends the command with one line
on stderr and exit 2.
"""

from __future__ import annotations

import logging
import warnings
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import click

from etl.cli.console import console
from etl.cli.db import db
from etl.cli.demo import demo
from etl.cli.doctor import doctor
from etl.cli.health import health
from etl.cli.infra import infra
from etl.cli.sandbox import sandbox
from etl.cli.sync import sync
from etl.cli.vtex import vtex
from etl.cli.webhooks import webhooks
from etl.cli.workers import beat, flower, worker
from etl.errors import ConfigError, MissingExtraError
from etl.redaction import install_log_redaction
from etl.sync.engines import UnknownConnectionError

__all__ = ["EXIT_CONFIG", "main"]

EXIT_CONFIG = 2
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def _version() -> str:
    try:
        return version("vtex-synerise-etl")
    except PackageNotFoundError:  # running from a checkout that was never installed
        return "unknown"


class _Main(click.Group):
    """The root group: a ``ConfigError`` or ``MissingExtraError`` raised by any command becomes
    one line on stderr and exit code 2."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (ConfigError, MissingExtraError, UnknownConnectionError) as error:
            click.echo(f"error: {error}", err=True)
            ctx.exit(EXIT_CONFIG)


@click.group(cls=_Main)
@click.version_option(_version(), prog_name="vtex-synerise")
@click.option("--log-level", type=click.Choice(LOG_LEVELS, case_sensitive=False),
              default="INFO", show_default=True, help="Logging threshold (stderr).")
@click.pass_context
def main(ctx: click.Context, log_level: str) -> None:
    """Sync VTEX orders and customers into Synerise with Celery workers."""
    level = logging.getLevelName(log_level.upper())
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("pgserver").setLevel(max(level, logging.WARNING))  # chatty at INFO
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")  # pgserver, harmless
    install_log_redaction()
    ctx.obj = {"log_level": log_level.upper()}


for _command in (
    infra, db, worker, beat, flower, demo, doctor, sync, sandbox, webhooks, vtex, console, health
):
    main.add_command(_command)
