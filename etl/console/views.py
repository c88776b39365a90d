"""The console's pages and their JSON twins: each view gathers one dict, shown either way.

A view takes the request and the ``Services`` and returns ``(template, data)``; ``etl.console.app``
renders the template for a page and ``data`` as JSON under ``/api/...``. Writes (start, cancel,
resume, replay) go through ``etl.console.actions``.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import redis
from werkzeug.exceptions import BadRequest, NotFound
from werkzeug.wrappers import Request, Response

from etl import connections
from etl.console import actions, reads
from etl.console.present import cursor_view, group_view, run_view, warnings
from etl.state.runs import RUN_STATUSES, SCOPES, Run, RunNotFoundError
from etl.state.store import StateStore
from etl.sync.engine import Engine

__all__ = ["NOTICES", "VIEWS", "Services", "View", "act", "rejects_csv", "rejects_data", "start"]

RUNS_PAGE = 50
MAX_RUNS = 500


@dataclass
class Services:
    """What the console reads and drives, built lazily (credentials are needed only to write).

    Attributes:
        store: the state store.
        engine: the engine of a connection, by name (``None``: the only one; needs its VTEX and
            Synerise settings; may raise ``ConfigError``).
        redis: the broker's Redis.
        engine_of_run: the engine of a run's own connection (default: ``engine(None)``).
    """

    store: Callable[[], StateStore]
    engine: Callable[[str | None], Engine]
    redis: Callable[[], redis.Redis]
    engine_of_run: Callable[[int], Engine] | None = None


View = Callable[[Request, Services, dict[str, Any]], tuple[str, dict[str, Any]]]


def runs_page(request: Request, services: Services, args: dict[str, Any]) -> tuple[str, dict]:
    status = request.args.get("status") or None
    if status is not None and status not in RUN_STATUSES:
        raise BadRequest(f"status must be one of {', '.join(RUN_STATUSES)}")
    try:
        limit = min(max(int(request.args.get("limit", RUNS_PAGE)), 1), MAX_RUNS)
    except ValueError:
        raise BadRequest("limit must be a number") from None
    found = reads.list_runs(services.store(), limit, status)
    return "runs.html", {
        "runs": [run_view(run) for run in found],
        "status": status,
        "statuses": RUN_STATUSES,
        "limit": limit,
    }


def run_page(request: Request, services: Services, args: dict[str, Any]) -> tuple[str, dict]:
    store = services.store()
    run = _run(store, args["run_id"])
    counts = reads.chunk_counts(store, run.id)
    return "run.html", {
        "run": run_view(run),
        "warnings": warnings(run, counts),
        "chunk_counts": counts,
        "chunks": [_jsonable(chunk) for chunk in reads.chunks(store, run.id)],
        "rejects": [group_view(group) for group in reads.reject_groups(store, run.id)],
        "replay_of": run.replay_of,
    }


def new_run_page(request: Request, services: Services, args: dict[str, Any]) -> tuple[str, dict]:
    first, last = reads.default_window()
    return "new_run.html", {
        "scopes": SCOPES,
        "connections": connections.names(),
        "form": {"scope": "customers_created", "from": first.isoformat(),
                 "to": last.isoformat(), "connection": connections.names()[0]},
        "error": None,
    }  # fmt: skip


def cursors_page(request: Request, services: Services, args: dict[str, Any]) -> tuple[str, dict]:
    store = services.store()
    views = []
    found = reads.every_cursor(store)
    for cursor in found:
        last = reads.get_run(store, cursor.last_run_id) if cursor.last_run_id else None
        views.append(cursor_view(cursor, last))
    several = len({cursor.connection for cursor in found}) > 1
    return "cursors.html", {"cursors": views, "several": several}


def realtime_page(request: Request, services: Services, args: dict[str, Any]) -> tuple[str, dict]:
    text = request.args.get("day")
    try:
        day = date.fromisoformat(text) if text else datetime.now(UTC).date()
    except ValueError:
        raise BadRequest("day must be a date (YYYY-MM-DD)") from None
    store = services.store()
    name = request.args.get("connection")
    if name:  # the newest state row of that name (a workspace change makes a new one)
        ids = [cid for cid, each in store.connections.names().items() if each == name]
        if not ids:
            raise BadRequest(f"no connection {name!r} has state here")
        store = store.for_connection(max(ids))
    found = {run.scope: run for run in reads.realtime_runs(store, day)}
    return "realtime.html", {
        "day": day.isoformat(),
        "scopes": [{"scope": scope, "run": run_view(found[scope]) if scope in found else None}
                   for scope in SCOPES],
    }  # fmt: skip


def rejects_data(request: Request, services: Services, args: dict[str, Any]) -> Iterator[dict]:
    """Every reject of a run as JSON-ready dicts (the payloads were redacted when stored)."""
    store = services.store()
    run = _run(store, args["run_id"])
    reason = request.args.get("reason") or None
    unresolved = request.args.get("unresolved", "").lower() in ("1", "true", "yes", "on")
    for rejection in reads.iter_rejects(store, run.id, reason, unresolved):
        yield rejection.as_dict()


def rejects_csv(request: Request, services: Services, args: dict[str, Any]) -> Response:
    """A run's rejects as a CSV download, streamed a page at a time."""
    rows = rejects_data(request, services, args)
    columns = ("stream", "key", "reason", "message", "attempts", "resolved_at", "payload")

    def lines() -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(columns)
        for row in rows:
            row["payload"] = json.dumps(row["payload"], default=str)
            writer.writerow([row[column] for column in columns])
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
        yield buffer.getvalue()

    response = Response(lines(), mimetype="text/csv")
    response.headers["Content-Disposition"] = (
        f'attachment; filename="run-{args["run_id"]}-rejects.csv"'
    )
    return response


def start(request: Request, services: Services, fields: dict[str, str]) -> tuple[Run, str]:
    """Start a run from form or JSON fields; the run and what to tell the user."""
    form = actions.StartForm.parse(fields)
    run, _ = actions.start(services.engine(form.connection), form)
    return run, "queued" if run.status == "queued" else "started"


def act(services: Services, run_id: int, action: str) -> tuple[Run, str]:
    """Cancel, resume or replay a run; the run to show next and what to tell the user."""
    _run(services.store(), run_id)
    engine = services.engine_of_run(run_id) if services.engine_of_run else services.engine(None)
    if action == "cancel":
        actions.cancel(engine, run_id)
        return engine.store.runs.get(run_id), "cancelled"
    if action == "resume":
        return actions.resume(engine, run_id), "resumed"
    return actions.replay(engine, run_id), "replay"


NOTICES = {
    "started": "Sync started.",
    "queued": "Sync queued: it starts when one of the two slots frees.",
    "cancelled": "Run cancelled.",
    "resumed": "Run resumed: unfinished and failed chunks are enqueued again.",
    "replay": "Replay started: the rejected records are read from VTEX and sent again.",
}
"""What a redirect's ``?notice=`` may say (fixed texts: nothing from the URL is shown)."""

VIEWS: dict[str, View] = {
    "runs": runs_page,
    "run": run_page,
    "new_run": new_run_page,
    "cursors": cursors_page,
    "realtime": realtime_page,
}


def _run(store: StateStore, run_id: int) -> Run:
    try:
        return reads.get_run(store, run_id)
    except RunNotFoundError:
        raise NotFound(f"no run {run_id}") from None


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v.astimezone(UTC).isoformat() if isinstance(v, datetime) else v
            for k, v in row.items()}  # fmt: skip
