"""What the console's forms and JSON API do to runs: the engine's own functions, nothing else.

Every change goes through ``etl.sync.runs`` exactly as ``vtex-synerise sync`` does, so a run
started from the console takes a slot, queues, resumes and replays the same way; this module
only turns form fields into those calls.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from etl import connections
from etl.state.runs import SCOPES, Run
from etl.sync import products, runs
from etl.sync.engine import Engine
from etl.sync.streams import EMAIL_KEY
from etl.sync.windows import Window, parse_time

__all__ = ["ActionError", "StartForm", "cancel", "replay", "resume", "start"]

SELECTABLE = ("orders", "customers_created", "customers_updated")
"""The scopes a run of named records (``records``) can take; products read the whole catalog."""


class ActionError(ValueError):
    """The request cannot be carried out; the message says why, for the user."""


@dataclass(frozen=True)
class StartForm:
    """The start form's fields, checked."""

    scope: str
    date_from: datetime | None
    date_to: datetime | None
    dry_run: bool = False
    full: bool = False
    connection: str | None = None
    """The connection to start it on (``None``: the only one)."""
    keys: tuple[str, ...] = ()
    """The records to sync instead of a date range (a ``selection`` run), as ``sync start
    orders|customers --ids/--emails`` takes them."""

    @classmethod
    def parse(cls, fields: dict[str, str]) -> StartForm:
        """Check form (or JSON) fields: ``scope``, ``from``, ``to``, ``dry_run``, ``full``,
        ``connection``, ``records`` (ids, and for customers e-mails too, separated by commas,
        spaces or lines: given, the dates are not needed).

        Raises:
            ActionError: a missing or invalid field, named.
        """
        scope = fields.get("scope", "")
        if scope not in SCOPES:
            raise ActionError(f"scope must be one of {', '.join(SCOPES)}")
        connection = fields.get("connection") or None
        known = connections.names()
        if connection is not None and connection not in known:
            raise ActionError(f"connection must be one of {', '.join(known)}")
        if connection is None and len(known) > 1:
            raise ActionError(f"connection must be one of {', '.join(known)}")
        keys = _records(scope, str(fields.get("records") or ""))
        flags = _flag(fields.get("dry_run")), _flag(fields.get("full"))
        if keys:
            return cls(scope, None, None, *flags, connection, keys)
        bounds = []
        for name in ("from", "to"):
            try:
                bounds.append(parse_time(str(fields.get(name) or "")))
            except ValueError:
                raise ActionError(f"{name} must be a date (YYYY-MM-DD) or ISO date-time") from None
        if bounds[1] <= bounds[0]:
            raise ActionError("to must be after from")
        return cls(scope, bounds[0], bounds[1], *flags, connection)


def start(engine: Engine, form: StartForm) -> tuple[Run, str | None]:
    """Start (or queue) a run; also return the horizon warning for old order ranges.

    A products run lists the whole catalog (its dates are not used) and first finds or creates
    the Synerise catalog, as ``sync start products`` does.
    """
    if form.scope == products.SCOPE:
        run = products.start_products(engine, dry_run=form.dry_run, full_resync=form.full)
        return run, None
    if form.keys:
        selection = runs.StartRequest(
            form.scope, dry_run=form.dry_run, full_resync=form.full, keys=form.keys
        )
        return runs.start(engine, selection), None
    assert form.date_from is not None and form.date_to is not None  # parse checked them
    window = Window(form.date_from, form.date_to)
    request = runs.StartRequest(form.scope, window, dry_run=form.dry_run, full_resync=form.full)
    return runs.start(engine, request), runs.horizon_warning(form.scope, window)


def cancel(engine: Engine, run_id: int) -> None:
    """Cancel a queued, running or paused run.

    Raises:
        ActionError: the run has already ended.
    """
    if not runs.cancel(engine, run_id):
        raise ActionError(f"run {run_id} has already ended; nothing to cancel")


def resume(engine: Engine, run_id: int) -> Run:
    """Finish a failed, paused or stalled run (a done or cancelled one is left as it is)."""
    return runs.resume(engine, run_id)


def replay(engine: Engine, run_id: int) -> Run:
    """Start a run that retries the run's unresolved rejects."""
    return runs.replay(engine, run_id)


def _records(scope: str, text: str) -> tuple[str, ...]:
    """The record keys of the ``records`` field: order ids; for customers, CL ids or userIds,
    and e-mails (``EMAIL_KEY``), each once, in the order given."""
    items = [item for item in text.replace(",", " ").split() if item]
    if not items:
        return ()
    if scope not in SELECTABLE:
        raise ActionError(f"records can only be named for {', '.join(SELECTABLE)}")
    keys = []
    for item in items:
        if "@" in item:
            local, _, domain = item.rpartition("@")
            if scope == "orders" or not (local and domain):
                raise ActionError(f"records: {item!r} is not an order id" if scope == "orders"
                                  else f"records: {item!r} is not an e-mail address")  # fmt: skip
            item = EMAIL_KEY + item
        keys.append(item)
    return tuple(dict.fromkeys(keys))


def _flag(value: object) -> bool:
    return str(value).lower() in ("1", "true", "on", "yes")
