"""``vtex-synerise infra``: the embedded Redis and PostgreSQL (see ``etl.infra``).

``up`` also migrates the database, so a worker started next finds its tables. Both servers come
back on the same address after ``down`` or a crash; processes connected to them reconnect.
"""

from __future__ import annotations

import json
from typing import Any, cast

import click

from etl import infra as embedded
from etl.config import Settings
from etl.state.migrate import upgrade

__all__ = ["infra"]


@click.group()
def infra() -> None:
    """Start, stop and inspect the embedded Redis and PostgreSQL."""


@infra.command()
def up() -> None:
    """Start the embedded servers that are not running (external URLs are left alone) and
    migrate the database. A server comes back on the address it had before."""
    settings = Settings.from_env(require=()).with_infra()
    assert settings.database_url  # with_infra() sets it
    applied = upgrade(settings.database_url)
    if applied:
        click.echo(f"database migrated: applied {', '.join(f'{v:04d}' for v in applied)}", err=True)
    shown = settings.snapshot()  # URL passwords masked
    click.echo(f"REDIS_URL={shown['redis_url']}")
    click.echo(f"DATABASE_URL={shown['database_url']}")
    click.echo(f"ETL_STATE_DIR={settings.process_env()['ETL_STATE_DIR']}")


@infra.command()
@click.option("--only", type=click.Choice(embedded.SERVERS), default=None,
              help="Stop this server only (restart it with `infra up`).")
def down(only: str | None) -> None:
    """Stop the embedded servers. Their data stays, and so do their addresses: `infra up`
    brings them back where running workers will find them."""
    settings = Settings.from_env(require=())
    stopped = embedded.down(settings.etl_state_dir, (only,) if only else embedded.SERVERS)
    click.echo(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")


@infra.command()
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
def status(as_json: bool) -> None:
    """Show whether the embedded servers run, and their URLs; starts nothing."""
    settings = Settings.from_env(require=())
    state = embedded.status(settings.etl_state_dir)
    if as_json:
        click.echo(json.dumps(state, indent=2))
        return
    servers = cast(dict[str, dict[str, Any]], state)
    click.echo(f"state dir  {state['state_dir']}")
    for name in ("redis", "postgres"):
        running = "running" if servers[name]["running"] else "stopped"
        click.echo(f"{name:<10} {running}  {servers[name]['url'] or ''}".rstrip())
    for variable, is_set in servers["external"].items():
        if is_set:
            click.echo(f"{variable} is set: that server is used instead of the embedded one")
