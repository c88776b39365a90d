"""``vtex-synerise db``: schema migrations of the state database."""

from __future__ import annotations

import click

from etl.config import Settings
from etl.state import migrate

__all__ = ["db"]


@click.group()
def db() -> None:
    """Manage the state database."""


@db.command()
def upgrade() -> None:
    """Apply pending migrations (idempotent; safe to run from several processes)."""
    settings = Settings.from_env(require=()).with_infra()
    assert settings.database_url is not None
    applied = migrate.upgrade(settings.database_url)
    if applied:
        click.echo("applied: " + ", ".join(f"{version:04d}" for version in applied))
    else:
        click.echo("database is up to date")
