"""``vtex-synerise doctor``: check that this deployment can sync, each check with its fix.

Exit codes: 0 every needed check passed (warnings allowed); 1 a needed check failed (the report
names the setting to fix); 2 bad usage.
"""

from __future__ import annotations

import json
import sys

import click

from etl import connections
from etl import doctor as checks
from etl.cli.vtex import hook_url

__all__ = ["doctor"]

EXIT_FAILED = 1
_MARKS = {"pass": "ok  ", "fail": "FAIL", "warn": "warn", "skip": "skip"}


def _orders_url(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    return hook_url(value) if value else None


@click.command()
@click.option("--connection", default=None, metavar="NAME",
              help="Which VTEX account and Synerise workspace pair to check (an ETL_CONNECTIONS"
              " table; optional when there is only one).")
@click.option("--scope", "scopes", multiple=True, type=click.Choice(checks.SCOPES),
              help="What this deployment syncs (repeatable) [default: every scope].")
@click.option("--webhooks-url", "orders_url", default=None, callback=_orders_url,
              metavar="URL", help="Public URL of this deployment's webhook service: the VTEX "
              "order hook must point there (with WEBHOOK_SECRET set).")
@click.option("--max-skew", type=click.FloatRange(min=0), default=5.0, show_default=True,
              help="Seconds another server's clock may differ from this one.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def doctor(
    connection: str | None,
    scopes: tuple[str, ...],
    orders_url: str | None,
    max_skew: float,
    as_json: bool,
) -> None:
    """Check settings, Redis and PostgreSQL, VTEX roles, the Synerise key and its
    permissions, clocks and the order hook: one line per check, with the fix.

    Exit 0 only when every check the scopes need passed; 1 otherwise.
    """
    connection = connections.select(connection)
    name = connection
    report = checks.run(
        lambda require: connections.load(require=require)[name].settings,
        scopes=scopes or checks.SCOPES,
        connection=connection,
        orders_url=orders_url,
        max_skew=max_skew,
    )
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2))
    else:
        width = max(len(check.name) for check in report.checks)
        for check in report.checks:
            click.echo(f"{_MARKS[check.status]}  {check.name:<{width}}  {check.detail}")
            if check.fix and check.status in ("fail", "warn"):
                click.echo(f"      {'':<{width}}  fix: {check.fix}")
        if report.ok:
            click.echo(f"doctor: connection {connection} is ready", err=True)
        else:
            named = sorted({c.variable for c in report.failed if c.variable})
            blame = f"; look at {', '.join(named)}" if named else ""
            click.echo(f"doctor: {len(report.failed)} needed check(s) failed{blame}", err=True)
    if not report.ok:
        sys.exit(EXIT_FAILED)
