"""``vtex-synerise demo``: the foundation demo (see ``etl.demo``)."""

from __future__ import annotations

import click

from etl.config import Settings

__all__ = ["demo"]


@click.command()
@click.option("--tasks", type=click.IntRange(1, 10_000), default=20, show_default=True,
              help="How many selftest tasks to send.")
@click.option("--timeout", type=click.FloatRange(min=1), default=60.0, show_default=True,
              help="Seconds each waiting step may take.")
@click.option("--hold", is_flag=True, help="Keep Flower open until Ctrl-C, then shut down.")
def demo(tasks: int, timeout: float, hold: bool) -> None:
    """Bring everything up, push tasks through Redis to PostgreSQL, show Flower, shut down."""
    from etl.demo import DemoError, run  # local: keeps `--help` light

    settings = Settings.from_env(require=())
    try:
        report = run(settings, tasks=tasks, timeout=timeout, hold=hold, say=click.echo)
    except DemoError as error:
        raise click.ClickException(str(error)) from None
    except KeyboardInterrupt:
        raise click.ClickException("interrupted; everything was shut down") from None
    click.echo(
        f"demo ok: {report.rows_written}/{report.tasks_sent} tasks went Redis -> worker -> "
        f"PostgreSQL in {report.seconds:.1f} s; Flower ({report.flower_url}) saw "
        f"{report.flower_tasks_seen} and refused anonymous requests: "
        f"{'yes' if report.flower_rejects_anonymous else 'NO'}"
    )
