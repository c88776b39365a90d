"""``vtex-synerise sync``: launch and follow historical syncs.

Exit codes (``etl.cli.errors``): 0 the command did what was asked (with ``--wait``: the run
ended ``done``); 1 the run ended ``failed`` or ``cancelled``; 2 bad usage or configuration;
3 no free slot with ``--no-queue``; 4 no such run; 5 Redis or PostgreSQL unreachable (``sync
start`` then records no run); 130 Ctrl-C while following a run (the run goes on in the
background).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from datetime import datetime
from typing import IO, Any

import click

from etl.cli.errors import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_NO_SLOT,
    EXIT_NOT_FOUND,
    EXIT_UNAVAILABLE,
    explain,
)
from etl.errors import ConfigError, FatalError, NetworkError, RetriableError
from etl.state.runs import RUN_STATUSES, Run, RunNotFoundError
from etl.sync import runs
from etl.sync.realtime import DELIVERY_FAILED
from etl.sync.report import progress_line, summary
from etl.sync.streams import EMAIL_KEY
from etl.sync.windows import Window, parse_time
from schemas.reasons import RejectReason, WarningCode

__all__ = ["sync"]

END_STATES = ("done", "failed", "cancelled")
REASONS = (*(str(reason) for reason in RejectReason), DELIVERY_FAILED)
"""Every reason code a reject can carry (``sync rejects --reason``)."""
WARNINGS = tuple(str(code) for code in WarningCode)
"""Every field warning code (``sync rejects --warnings --reason``)."""
CODES = (*REASONS, *WARNINGS)


def _engine(connection: str | None):
    from etl.cli.runtime import engine

    return engine(connection)


def _engine_of(run_id: int):
    from etl.cli.runtime import engine_of_run

    return engine_of_run(run_id)


CONNECTION = click.option(
    "--connection",
    default=None,
    metavar="NAME",
    help="The connection (ETL_CONNECTIONS table) to act on; optional when there is only one.",
)


def _store():
    from etl.cli.runtime import store

    return store()


class _When(click.ParamType):
    """A date (``2026-01-31``) or ISO 8601 date-time; UTC unless it says otherwise."""

    name = "DATE"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None):
        if isinstance(value, datetime):
            return value
        try:
            return parse_time(str(value))
        except ValueError:
            self.fail(f"{value!r} is not a date (YYYY-MM-DD) or ISO 8601 date-time", param, ctx)


WHEN = _When()


class _Code(click.Choice):
    """A code from a fixed list, upper case (``invalid_email`` is taken as ``INVALID_EMAIL``)."""

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None):
        return super().convert(value.upper() if isinstance(value, str) else value, param, ctx)


@click.group()
def sync() -> None:
    """Historical syncs: start, follow, cancel, resume, inspect rejects, replay."""


_RANGE_OPTIONS = [
    click.option("--from", "date_from", type=WHEN, help="Start of the range (inclusive), UTC."),
    click.option("--to", "date_to", type=WHEN, help="End of the range (exclusive), UTC."),
]

_IDS_HELP = "Sync only these ids (comma-separated), instead of a date range."
_IDS_FILE = click.option(
    "--ids-file",
    type=click.File("r", encoding="utf-8"),
    help="Sync only the ids in this file, one per line ('-': standard input).",
)

_RUN_OPTIONS = [
    click.option(
        "--dry-run",
        is_flag=True,
        help="Map, validate and diff; send nothing; report what would happen.",
    ),
    click.option(
        "--full", is_flag=True, help="Ignore the entity ledger and resend unchanged records."
    ),
    click.option("--wait", is_flag=True, help="Follow with a progress bar until the run ends."),
    click.option("--json", "as_json", is_flag=True, help="Print the run as JSON."),
    CONNECTION,
    click.option(
        "--no-queue",
        is_flag=True,
        help="Refuse (exit 3) instead of queueing when two syncs of the connection are active.",
    ),
]


def _start_options(*selection: Any) -> Any:
    """The options of ``sync start customers|orders``: the range, or ``selection`` and
    ``--ids-file`` (the records to sync instead), then how to run."""

    def decorate(func):  # noqa: ANN001
        for option in reversed([*_RANGE_OPTIONS, *selection, _IDS_FILE, *_RUN_OPTIONS]):
            func = option(func)
        return func

    return decorate


def _run_options(func):  # noqa: ANN001
    for option in reversed(_RUN_OPTIONS):
        func = option(func)
    return func


@sync.group()
def start() -> None:
    """Start a sync: customers or orders over a date range (--from/--to) or only the records
    named (--ids, --ids-file; customers also --emails: a `selection` run), or the whole product
    catalog."""


@start.command("customers")
@click.option(
    "--by",
    type=click.Choice(["created", "updated"]),
    default="created",
    show_default=True,
    help="Window on the CL document's createdIn or updatedIn.",
)
@_start_options(
    click.option("--ids", help=f"{_IDS_HELP} A CL document id or a VTEX userId each."),
    click.option("--emails", help="Sync only the customers with these e-mails (comma-separated)."),
)
def start_customers(by: str, ids: str | None, emails: str | None, **options: Any) -> None:
    """Sync Master Data CL customers into Synerise profiles."""
    keys = _ids(ids, options.pop("ids_file"))
    addresses = _split(emails, "--emails")
    for address in addresses:
        local, at, domain = address.rpartition("@")
        if not (local and at and domain):
            raise click.BadParameter(f"{address!r} is not an e-mail address", param_hint="--emails")
    keys += [EMAIL_KEY + address for address in addresses]
    _start(f"customers_{by}", keys, **options)


@start.command("orders")
@_start_options(click.option("--ids", help=f"{_IDS_HELP} OMS order ids (e.g. 1234567890123-01)."))
def start_orders(ids: str | None, **options: Any) -> None:
    """Sync OMS orders into Synerise transactions."""
    _start("orders", _ids(ids, options.pop("ids_file")), **options)


@start.command("products")
@click.option("--ids", help="Sync only these SKU ids (comma-separated), not the whole catalog.")
@_IDS_FILE
@_run_options
def start_products(
    ids: str | None,
    ids_file: IO[str] | None,
    dry_run: bool,
    full: bool,
    wait: bool,
    as_json: bool,
    no_queue: bool,
    connection: str | None,
) -> None:
    """Sync the VTEX catalog, every SKU, into a Synerise catalog (SYNERISE_CATALOG_NAME).

    No date range: every run reads the whole catalog and sends what changed since the last one;
    an inactive SKU or product, or one gone from VTEX, is sent with deleted = 1. With --ids or
    --ids-file only those SKUs are read (a `selection` run): one gone from VTEX that the
    catalog never had is rejected NOT_FOUND, and nothing else is deleted.
    """
    from etl.sync.products import start_products as start_run

    keys = tuple(_ids(ids, ids_file))

    def begin() -> Run:
        try:
            return start_run(
                _engine(connection), dry_run=dry_run, full_resync=full,
                queue_if_busy=not no_queue, keys=keys,
            )  # fmt: skip
        except (FatalError, RetriableError) as error:
            if isinstance(error, ConfigError):
                raise
            click.echo(f"error: the Synerise catalog could not be prepared: {error}", err=True)
            sys.exit(EXIT_FAILED)

    _launch(begin, wait, as_json)


def _ids(ids: str | None, ids_file: IO[str] | None) -> list[str]:
    """The ids of ``--ids`` then of ``--ids-file`` (blank lines skipped)."""
    found = _split(ids, "--ids")
    if ids_file is not None:
        found += [line.strip() for line in ids_file if line.strip()]
        if not found:
            raise click.BadParameter("the file holds no id", param_hint="--ids-file")
    return found


def _split(value: str | None, option: str) -> list[str]:
    if value is None:
        return []
    items = [item.strip() for item in value.split(",") if item.strip()]
    if not items:
        raise click.BadParameter("expected one or more comma-separated values", param_hint=option)
    return items


def _start(
    scope: str,
    keys: list[str],
    date_from: datetime | None,
    date_to: datetime | None,
    dry_run: bool,
    full: bool,
    wait: bool,
    as_json: bool,
    no_queue: bool,
    connection: str | None,
) -> None:
    window = None
    if keys:
        if date_from or date_to:
            raise click.UsageError("give either --from/--to or the records to sync, not both")
    elif date_from is None or date_to is None:
        raise click.UsageError("give a date range (--from and --to) or the records to sync")
    elif date_to <= date_from:
        raise click.BadParameter("--to must be after --from", param_hint="--to")
    else:
        window = Window(date_from, date_to)
        warning = runs.horizon_warning(scope, window)
        if warning:
            click.echo(f"warning: {warning}", err=True)
    request = runs.StartRequest(
        scope,
        window,
        dry_run=dry_run,
        full_resync=full,
        queue_if_busy=not no_queue,
        keys=tuple(keys),
    )
    _launch(lambda: runs.start(_engine(connection), request), wait, as_json)


def _launch(begin: Callable[[], Run], wait: bool, as_json: bool) -> None:
    """Start a run (``begin``), say so, and follow it with ``--wait``."""
    try:
        run = begin()
    except runs.NoFreeSlotError as error:
        click.echo(f"error: {error}; try again later or drop --no-queue", err=True)
        sys.exit(EXIT_NO_SLOT)
    except NetworkError as error:
        message, code = explain(error) or (f"error: {error}", EXIT_UNAVAILABLE)
        click.echo(f"{message}; no run was recorded: start it again once it is back", err=True)
        sys.exit(code)
    if not as_json:
        note = (
            " (queued: two syncs of the connection are active; it starts when a slot frees)"
            if run.status == "queued"
            else ""
        )
        click.echo(f"run {run.id} {run.status}{note}", err=wait)
    if wait:
        run = _follow(run.id, quiet=as_json)
    _finish(run, as_json)


def _finish(run: Run, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(summary(run), indent=2))
    if run.status in ("failed", "cancelled"):
        if not as_json:
            click.echo(f"run {run.id} {run.status}: {run.error or ''}".rstrip(": "), err=True)
        sys.exit(EXIT_FAILED)


def _follow(run_id: int, *, quiet: bool = False, interval: float = 0.5) -> Run:
    """Poll the run until it ends; Ctrl-C stops following, never the run (exit 130)."""
    try:
        return _poll(run_id, quiet=quiet, interval=interval)
    except KeyboardInterrupt:
        click.echo(
            f"\nstopped following; run {run_id} goes on in the background "
            f"(follow it: vtex-synerise sync status {run_id} --follow; "
            f"stop it: vtex-synerise sync cancel {run_id})",
            err=True,
        )
        sys.exit(EXIT_INTERRUPTED)


def _poll(run_id: int, *, quiet: bool, interval: float) -> Run:
    """Poll the run until it ends, drawing a progress bar over planned records."""
    store = _store()
    run = store.runs.get(run_id)
    if quiet:
        while run.status not in END_STATES:
            time.sleep(interval)
            run = store.runs.get(run_id)
        return run
    with click.progressbar(
        length=max(run.records_total, 1),
        label=f"run {run_id}",
        file=sys.stderr,
        show_pos=True,
        item_show_func=lambda r: r,
    ) as bar:
        shown = 0
        while True:
            run = store.runs.get(run_id)
            bar.length = max(run.records_total, 1)
            bar.update(max(run.read_count - shown, 0), progress_line(run).split(" | ")[1])
            shown = max(shown, run.read_count)
            if run.status in END_STATES:
                break
            time.sleep(interval)
    click.echo(progress_line(run), err=True)
    return run


def _load(run_id: int) -> Run:
    try:
        return _store().runs.get(run_id)
    except RunNotFoundError:
        click.echo(f"error: no run {run_id}", err=True)
        sys.exit(EXIT_NOT_FOUND)


@sync.command("list")
@click.option("--limit", default=20, show_default=True, help="How many runs, newest first.")
@click.option("--status", "status_filter", type=click.Choice(RUN_STATUSES), default=None,
              help="Only runs in this status.")
@click.option(
    "--connection", default=None, metavar="NAME", help="Only this connection's runs."
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines.")
def list_runs(limit: int, status_filter: str | None, connection: str | None, as_json: bool) -> None:
    """List recent runs (of every connection unless --connection names one)."""
    store = _store()
    if connection is not None:
        store = _engine(connection).store
    names = store.connections.names()
    for run in store.runs.find(
        limit=limit, status=status_filter, every_connection=connection is None
    ):
        if as_json:
            click.echo(json.dumps({**summary(run), "connection": names.get(run.connection_id)}))
        else:
            window = f"{run.window_from:%Y-%m-%d}..{run.window_to:%Y-%m-%d}"
            if run.kind == "selection":
                window = f"{run.records_total} selected".ljust(len(window))
            flags = " dry-run" if run.dry_run else ""
            owner = f" {names.get(run.connection_id, '?'):<12}" if len(names) > 1 else ""
            click.echo(
                f"{run.id:>6}{owner}  {run.kind:<11} {run.scope:<18} {window}{flags}  "
                + progress_line(run).split(" ", 2)[2]
            )


@sync.command("status")
@click.argument("run_id", type=int)
@click.option("--follow", is_flag=True, help="Keep following until the run ends.")
@click.option("--json", "as_json", is_flag=True, help="Print the run as JSON.")
def status(run_id: int, follow: bool, as_json: bool) -> None:
    """Show a run's progress: done / total, rate, ETA and counts."""
    run = _load(run_id)
    if follow and run.status not in END_STATES:
        run = _follow(run_id, quiet=as_json)
    if as_json:
        click.echo(json.dumps(summary(run), indent=2))
    else:
        click.echo(progress_line(run))
        if run.error:
            click.echo(f"  note: {run.error}")


@sync.command("cancel")
@click.argument("run_id", type=int)
def cancel(run_id: int) -> None:
    """Cancel a queued, running or paused run."""
    run = _load(run_id)
    if not runs.cancel(_engine_of(run.id), run.id):
        click.echo(f"error: run {run_id} is {run.status}; nothing to cancel", err=True)
        sys.exit(EXIT_FAILED)
    click.echo(f"run {run_id} cancelled")


@sync.command("resume")
@click.argument("run_id", type=int)
@click.option("--wait", is_flag=True, help="Follow until the run ends.")
@click.option("--json", "as_json", is_flag=True, help="Print the run as JSON.")
def resume(run_id: int, wait: bool, as_json: bool) -> None:
    """Finish a run that failed, paused or lost its worker: nothing lost, nothing twice.

    A healthy running run (slot held, no failed chunk, every claimed chunk's worker answering,
    planning done or under way) is left alone."""
    _load(run_id)
    engine = _engine_of(run_id)
    healthy = not runs.health(engine, run_id)
    run = runs.resume(engine, run_id)
    if not as_json:
        note = " (healthy: nothing to resume)" if healthy else ""
        click.echo(f"run {run.id} {run.status}{note}", err=wait)
    if wait:
        run = _follow(run.id, quiet=as_json)
    _finish(run, as_json)


@sync.command("rejects")
@click.argument("run_id", type=int)
@click.option("--reason", type=_Code(CODES), default=None,
              help="Only this reason code, or with --warnings this warning code.")
@click.option("--unresolved", is_flag=True, help="Only records no replay has fixed yet.")
@click.option(
    "--warnings", "show_warnings", is_flag=True,
    help="List the fields sent records went without (field warnings), grouped by code.",
)  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines with redacted payloads.")
def rejects(
    run_id: int, reason: str | None, unresolved: bool, show_warnings: bool, as_json: bool
) -> None:
    """List the records a run rejected: key, reason code, message (and whether a replay fixed
    it); with --warnings, the records it sent without some fields."""
    if reason is not None and (reason in WARNINGS) != show_warnings:
        wrong = (
            "a reject reason, and --warnings lists warnings" if show_warnings
            else "a warning code: add --warnings"
        )  # fmt: skip
        raise click.BadParameter(f"{reason} is {wrong}", param_hint="--reason")
    _load(run_id)
    if show_warnings:
        if unresolved:
            raise click.UsageError("--unresolved applies to rejects; drop it with --warnings")
        _warnings(run_id, reason, as_json)
        return
    for rejected in _store().rejects.find(run_id, reason=reason, unresolved=unresolved):
        if as_json:
            click.echo(json.dumps(rejected.as_dict(), default=str))
        else:
            fixed = "  (resolved by a replay)" if rejected.resolved_at else ""
            click.echo(
                f"{rejected.stream:<13} {rejected.record_key:<40} {rejected.reason:<18} "
                f"{rejected.message}{fixed}"
            )


def _warnings(run_id: int, code: str | None, as_json: bool) -> None:
    """A run's field warnings, grouped by code, each group under what the code means."""
    from schemas.reasons import describe

    found = _store().warnings.find(run_id, code=code)
    if as_json:
        for warning in found:
            click.echo(json.dumps({**warning.as_dict(), "description": describe(warning.code)}))
        return
    groups: dict[str, list[Any]] = {}
    for warning in found:
        groups.setdefault(warning.code, []).append(warning)
    for name, members in groups.items():
        records = len({(w.stream, w.record_key) for w in members})
        click.echo(f"{name}: {records} record(s) sent without a field: {describe(name)}")
        for w in members:
            click.echo(f"  {w.stream:<13} {w.record_key:<40} {w.field:<20} {w.message}")


@sync.command("replay")
@click.argument("run_id", type=int)
@click.option("--wait", is_flag=True, help="Follow until the replay ends.")
@click.option("--json", "as_json", is_flag=True, help="Print the replay run as JSON.")
def replay(run_id: int, wait: bool, as_json: bool) -> None:
    """Re-read a run's rejected records from VTEX and try them again, as a new run."""
    _load(run_id)
    run = runs.replay(_engine_of(run_id), run_id)
    if not as_json:
        click.echo(f"replay run {run.id} {run.status} ({run.records_total} records)", err=wait)
    if wait:
        run = _follow(run.id, quiet=as_json)
    _finish(run, as_json)
