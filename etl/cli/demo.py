"""``vtex-synerise demo``: the main job end to end on embedded defaults (see ``etl.demo``)."""

from __future__ import annotations

import sys

import click

from etl.cli.errors import EXIT_INTERRUPTED
from etl.config import Settings

__all__ = ["demo"]


@click.command()
@click.option("--customers", type=click.IntRange(1, 1_000_000), default=3000, show_default=True,
              help="Customers the sandbox generates.")
@click.option("--orders", type=click.IntRange(1, 1_000_000), default=3000, show_default=True,
              help="Orders the sandbox generates.")
@click.option("--products", type=click.IntRange(1, 100_000), default=200, show_default=True,
              help="Catalog products the sandbox generates (1-3 SKUs each).")
@click.option("--seed", type=int, default=42, show_default=True, help="Sandbox data seed.")
@click.option("--timeout", type=click.FloatRange(min=1), default=300.0, show_default=True,
              help="Seconds each waiting step may take.")
@click.option("--hold", is_flag=True, help="Keep Flower open until Ctrl-C, then shut down.")
def demo(
    customers: int, orders: int, products: int, seed: int, timeout: float, hold: bool
) -> None:
    """Sandbox VTEX -> Celery workers -> sandbox Synerise: customers, orders and the catalog.

    It runs servers of its own in $ETL_STATE_DIR/demo (default .state/demo), wiped at each
    start so every demo begins from a clean state; REDIS_URL and DATABASE_URL are left alone.
    """
    from etl.demo import DemoError, run  # local: keeps `--help` light

    settings = Settings.from_env(require=())
    try:
        report = run(settings, customers=customers, orders=orders, seed=seed, timeout=timeout,
                     hold=hold, say=click.echo, products=products)
    except DemoError as error:
        raise click.ClickException(str(error)) from None
    except KeyboardInterrupt:
        click.echo("interrupted; everything was shut down", err=True)
        sys.exit(EXIT_INTERRUPTED)
    sent = sum(c["sent"] for c in report.runs.values())
    rejected = sum(c["rejected"] for c in report.runs.values())
    click.echo(
        f"demo ok in {report.seconds:.0f} s: {sent} records sent to Synerise, {rejected} "
        f"rejected with a reason code, counts agree with the sandbox; a second run sent "
        f"{report.resync_sent} and skipped {report.resync_skipped}; Flower "
        f"({report.flower_url}) refused anonymous requests: "
        f"{'yes' if report.flower_rejects_anonymous else 'NO'}"
    )
