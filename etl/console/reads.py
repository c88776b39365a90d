"""What the console and ``/metrics`` read from PostgreSQL: runs, chunks, rejects, cursors, totals.

Read-only. Runs come through the state store (``store.runs.get`` / ``store.runs.find``); the
aggregates the store has no method for are plain ``SELECT``s here, on the store's connections,
so the console never writes a row except through the engine's own functions
(``etl.console.actions``). Every query is bounded (a page, a ``LIMIT``, or an aggregate), so a
run with a million rejects costs the console no more memory than one with ten.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from etl.state.rejects import Rejection
from etl.state.runs import SCOPES, Run
from etl.state.store import StateStore

__all__ = [
    "CursorState",
    "RejectGroup",
    "Totals",
    "chunk_counts",
    "chunks",
    "cursors",
    "default_window",
    "every_cursor",
    "get_run",
    "iter_rejects",
    "list_runs",
    "realtime_runs",
    "reject_groups",
    "totals",
]

CHUNK_PAGE = 200
"""Chunks shown per run page (failed ones first)."""
_REJECT_PAGE = 1000


def get_run(store: StateStore, run_id: int) -> Run:
    """The run (``RunNotFoundError`` when there is none)."""
    return store.runs.get(run_id)


def list_runs(store: StateStore, limit: int, status: str | None = None) -> list[Run]:
    """Newest runs first, optionally in one status."""
    return store.runs.find(limit=limit, status=status)


def chunks(store: StateStore, run_id: int, limit: int = CHUNK_PAGE) -> list[dict[str, Any]]:
    """A run's chunks without their keys or payloads: unfinished and failed ones first."""
    with store.db.transaction() as cur:
        cur.execute(
            """SELECT id, seq, status, attempts, error, jsonb_array_length(keys) AS records,
                      updated_at
               FROM sync_chunk WHERE run_id = %s
               ORDER BY CASE status WHEN 'failed' THEN 0 WHEN 'running' THEN 1
                                    WHEN 'pending' THEN 2 ELSE 3 END, seq
               LIMIT %s""",
            (run_id, limit),
        )
        return [dict(row) for row in cur.fetchall()]


def chunk_counts(store: StateStore, run_id: int) -> dict[str, int]:
    """How many of a run's chunks are in each status."""
    with store.db.transaction() as cur:
        cur.execute(
            "SELECT status, count(*) AS n FROM sync_chunk WHERE run_id = %s GROUP BY status",
            (run_id,),
        )
        found = {row["status"]: int(row["n"]) for row in cur.fetchall()}
    return {status: found.get(status, 0) for status in ("pending", "running", "done", "failed")}


@dataclass(frozen=True)
class RejectGroup:
    """A run's rejects of one reason: how many, how many still unresolved, and one sample."""

    reason: str
    stream: str
    records: int
    unresolved: int
    sample_key: str
    sample_message: str | None
    sample_payload: Any
    """Redacted when it was stored (``etl.redaction``), like every reject payload."""


def reject_groups(store: StateStore, run_id: int) -> list[RejectGroup]:
    """A run's rejects grouped by reason, largest group first, each with its oldest sample."""
    with store.db.transaction() as cur:
        cur.execute(
            """SELECT g.reason, g.stream, g.records, g.unresolved, s.record_key, s.message,
                      s.payload
               FROM (SELECT reason, stream, count(*) AS records,
                            count(*) FILTER (WHERE resolved_at IS NULL) AS unresolved,
                            min(id) AS first_id
                     FROM rejected_record WHERE run_id = %s GROUP BY reason, stream) g
               JOIN rejected_record s ON s.id = g.first_id
               ORDER BY g.records DESC, g.reason""",
            (run_id,),
        )
        rows = cur.fetchall()
    return [
        RejectGroup(
            row["reason"], row["stream"], int(row["records"]), int(row["unresolved"]),
            row["record_key"], row["message"], row["payload"],
        )
        for row in rows
    ]


def iter_rejects(
    store: StateStore, run_id: int, reason: str | None = None, unresolved: bool = False
) -> Iterator[Rejection]:
    """Every reject of a run, oldest first, read a page at a time (for downloads)."""
    after = 0
    while True:
        with store.db.transaction() as cur:
            cur.execute(
                """SELECT id, stream, record_key, reason, message, payload, attempts, resolved_at
                   FROM rejected_record
                   WHERE run_id = %(run)s AND id > %(after)s
                     AND (%(reason)s::text IS NULL OR reason = %(reason)s)
                     AND (NOT %(unresolved)s OR resolved_at IS NULL)
                   ORDER BY id LIMIT %(page)s""",
                {"run": run_id, "after": after, "reason": reason, "unresolved": unresolved,
                 "page": _REJECT_PAGE},
            )  # fmt: skip
            rows = cur.fetchall()
        for row in rows:
            after = row.pop("id")
            yield Rejection(**row)
        if len(rows) < _REJECT_PAGE:
            return


@dataclass(frozen=True)
class CursorState:
    """Where a scope's incremental sync stands."""

    scope: str
    cursor: datetime | None
    lag_seconds: float | None
    last_run_id: int | None
    connection: str = "default"
    """The connection whose cursor it is."""


def cursors(store: StateStore, now: datetime | None = None) -> list[CursorState]:
    """Each scope's cursor, how far it is behind now, and its latest incremental run (of the
    store's connection)."""
    now = now or datetime.now(UTC)
    with store.db.transaction() as cur:
        cur.execute(
            "SELECT stream, cursor_value FROM sync_cursor WHERE connection_id = %s",
            (store.connection_id,),
        )
        values = {row["stream"]: row["cursor_value"] for row in cur.fetchall()}
        cur.execute(
            """SELECT DISTINCT ON (scope) scope, id FROM sync_run
               WHERE kind = 'incremental' AND connection_id = %s
               ORDER BY scope, id DESC""",
            (store.connection_id,),
        )
        latest = {row["scope"]: int(row["id"]) for row in cur.fetchall()}
    name = store.connections.names().get(store.connection_id, "default")
    return [
        CursorState(
            scope,
            values.get(scope),
            (now - values[scope]).total_seconds() if scope in values else None,
            latest.get(scope),
            name,
        )
        for scope in SCOPES
    ]


def realtime_runs(store: StateStore, day: date) -> list[Run]:
    """The ``realtime`` runs (one per scope) of a UTC day, of the store's connection."""
    start = datetime.combine(day, time.min, tzinfo=UTC)
    with store.db.transaction() as cur:
        cur.execute(
            """SELECT id FROM sync_run WHERE kind = 'realtime' AND window_from = %s
               AND connection_id = %s ORDER BY scope, id""",
            (start, store.connection_id),
        )
        ids = [int(row["id"]) for row in cur.fetchall()]
    return [store.runs.get(run_id) for run_id in ids]


@dataclass(frozen=True)
class Totals:
    """Everything ``/metrics`` reports from PostgreSQL, in one read."""

    records: list[dict[str, Any]]
    """``connection, scope, kind, read, sent, skipped, rejected, failed`` summed over non-dry
    runs"""
    rejects: list[dict[str, Any]]
    """``connection, scope, reason, records``"""
    runs: list[dict[str, Any]]
    """``connection, scope, status, runs`` (realtime runs left out: they are bookkeeping, born
    done)"""
    last_success: list[dict[str, Any]]
    """``connection, scope, kind, finished_at`` of the latest ``done`` run per scope and kind"""
    idle: list[dict[str, Any]]
    """``connection, scope, seconds`` since the least recently progressing running run wrote
    anything"""
    cursors: list[CursorState]
    """Every connection's (that has runs or cursors)"""
    connections: list[str]
    """The names of the connections the state knows"""


def totals(store: StateStore) -> Totals:
    """The aggregates behind the business metrics (a few grouped scans of small tables), per
    connection (by name)."""
    named = "sync_run r JOIN etl_connection n ON n.id = r.connection_id"
    with store.db.transaction() as cur:
        cur.execute(
            f"""SELECT n.name AS connection, scope, kind, sum(read_count) AS read,
                       sum(sent_count) AS sent, sum(skipped_count) AS skipped,
                       sum(rejected_count) AS rejected, sum(failed_count) AS failed
                FROM {named} WHERE NOT dry_run GROUP BY n.name, scope, kind"""
        )
        records = [dict(row) for row in cur.fetchall()]
        cur.execute(
            f"""SELECT n.name AS connection, r.scope, x.reason, count(*) AS records
                FROM rejected_record x JOIN {named} ON r.id = x.run_id
                WHERE NOT r.dry_run GROUP BY n.name, r.scope, x.reason"""
        )
        rejects = [dict(row) for row in cur.fetchall()]
        cur.execute(
            f"""SELECT n.name AS connection, scope, status, count(*) AS runs FROM {named}
                WHERE kind <> 'realtime' GROUP BY n.name, scope, status"""
        )
        runs = [dict(row) for row in cur.fetchall()]
        cur.execute(
            f"""SELECT n.name AS connection, scope, kind, max(finished_at) AS finished_at
                FROM {named} WHERE status = 'done' AND kind <> 'realtime' AND NOT dry_run
                GROUP BY n.name, scope, kind"""
        )
        last_success = [dict(row) for row in cur.fetchall()]
        cur.execute(
            f"""SELECT n.name AS connection, scope,
                       extract(epoch FROM now() - min(r.updated_at)) AS seconds
                FROM {named} WHERE status = 'running' GROUP BY n.name, scope"""
        )
        idle = [dict(row) for row in cur.fetchall()]
    states = every_cursor(store)
    names = list(dict.fromkeys(state.connection for state in states))
    return Totals(records, rejects, runs, last_success, idle, states, names)


def every_cursor(store: StateStore) -> list[CursorState]:
    """``cursors`` of every connection that has runs or cursors (and of the store's own)."""
    with store.db.transaction() as cur:
        cur.execute(
            """SELECT id FROM etl_connection n WHERE id = %s
                  OR EXISTS (SELECT 1 FROM sync_run r WHERE r.connection_id = n.id)
                  OR EXISTS (SELECT 1 FROM sync_cursor c WHERE c.connection_id = n.id)
               ORDER BY id""",
            (store.connection_id,),
        )
        known = [int(row["id"]) for row in cur.fetchall()]
    return [state for cid in known for state in cursors(store.for_connection(cid))]


def default_window(today: date | None = None) -> tuple[date, date]:
    """The start form's default range: the last 30 days up to tomorrow (UTC)."""
    today = today or datetime.now(UTC).date()
    return today - timedelta(days=30), today + timedelta(days=1)
