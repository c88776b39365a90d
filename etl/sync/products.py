"""Products runs: the whole VTEX catalog into a Synerise catalog, from the CLI or from beat.

A products run always lists the whole catalog (VTEX has no "changed since" listing for it), so
it has no date range: its window is the instant it started. The ledger keeps it a delta, and
the SKUs a run no longer finds are sent once as deleted (`etl.sync.streams.ProductsStream`).
Runs are ``backfill`` runs on the backfill queue, whoever starts them: a nightly pass over a
large catalog must not hold up the short incremental syncs.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from etl.state.runs import Run
from etl.sync import runs
from etl.sync.engine import Engine
from etl.sync.streams import ProductsStream
from etl.sync.windows import Window

__all__ = ["SCOPE", "start_products", "start_scheduled_products"]

SCOPE = ProductsStream.scope

_INSTANT = timedelta(milliseconds=1)


def start_products(
    engine: Engine,
    *,
    dry_run: bool = False,
    full_resync: bool = False,
    queue_if_busy: bool = True,
    keys: tuple[str, ...] = (),
) -> Run:
    """Record a products run and start it if a slot is free (`etl.sync.runs.start`).

    A real run first finds or creates the Synerise catalog, so every chunk hashes its items for
    the catalog they go to; a dry run creates nothing and compares with the catalog it knows.
    With ``keys`` (SKU ids) it is a ``selection`` run of those SKUs only: nothing it does not
    name is planned as gone.

    Raises:
        FatalError: credentials, or a catalog permission the Synerise key lacks.
        RetriableError: Synerise did not answer.
        NoFreeSlotError: both slots are taken and ``queue_if_busy`` is false.
    """
    stream = engine.stream(SCOPE)
    assert isinstance(stream, ProductsStream)
    if not dry_run:
        stream.catalog.ensure()
    now = datetime.now(UTC)
    request = runs.StartRequest(
        SCOPE,
        None if keys else Window(now, now + _INSTANT),
        dry_run=dry_run,
        full_resync=full_resync,
        queue_if_busy=queue_if_busy,
        keys=keys,
    )
    return runs.start(engine, request)


def start_scheduled_products(engine: Engine) -> Run | None:
    """Beat's products run (``SYNC_PRODUCTS_CRON``), unless one is already queued, running or
    paused (a slow pass is never doubled)."""
    if any(
        run.scope == SCOPE
        for status in ("queued", "running", "paused")
        for run in engine.store.runs.find(status=status)
    ):
        return None
    return start_products(engine)
