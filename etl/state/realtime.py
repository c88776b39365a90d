"""Realtime bookkeeping in PostgreSQL: the daily ``realtime`` runs that hold webhook outcomes.

Webhook work has no chunks, so its outcomes are recorded against one run of kind ``realtime``
per connection, scope and UTC day (``window_from`` = the day's midnight, ``window_to`` = the
next one). Such a run is born ``done`` with ``planning_done``: the run scheduler
(``etl.sync.runs``) leases and starts ``queued``/``paused`` runs and renews ``running`` ones, and
a realtime run must never take one of the two sync slots. Its counters keep growing through the
day; ``sync list``, ``sync status``, ``sync rejects`` and ``sync replay`` work on it as on any
run.

Everything here is safe to call from many processes at once.
"""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from psycopg2.extras import Json

from etl.state import runs
from etl.state.chunks import ChunkOutcome, write_outcome
from etl.state.store import StateStore

__all__ = ["RealtimeRuns"]


class RealtimeRuns:
    """The ``realtime`` run of each scope and day, and the writes of work done outside chunks.

    Args:
        store: the state store (its per-thread connections are reused).
        config: the settings snapshot stored with each new run (secrets already masked).
    """

    def __init__(self, store: StateStore, config: dict[str, Any] | None = None) -> None:
        self.store = store
        self.config = config or {}
        self._ids: dict[tuple[str, date], int] = {}
        self._lock = threading.Lock()

    def run_id(self, scope: str, now: datetime | None = None) -> int:
        """The id of today's (UTC) realtime run of ``scope`` for the store's connection, created
        on first use.

        An advisory lock per (connection, scope, day) makes concurrent first uses agree on one
        run.
        """
        if scope not in runs.SCOPES:
            raise ValueError(f"scope must be one of {', '.join(runs.SCOPES)}; got {scope!r}")
        day = (now or datetime.now(UTC)).astimezone(UTC).date()
        with self._lock:
            cached = self._ids.get((scope, day))
        if cached is not None:
            return cached
        start = datetime.combine(day, time.min, tzinfo=UTC)
        with self.store.db.transaction() as cur:
            connection = self.store.connection_id
            lock = f"realtime:{connection}:{scope}:{day}"
            cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (lock,))
            cur.execute(
                """SELECT id FROM sync_run WHERE kind = 'realtime' AND scope = %s
                   AND window_from = %s AND connection_id = %s ORDER BY id LIMIT 1""",
                (scope, start, connection),
            )
            row = cur.fetchone()
            if row is None:
                cur.execute(
                    """INSERT INTO sync_run (kind, scope, window_from, window_to, status,
                                             planning_done, started_at, config, connection_id)
                       VALUES ('realtime', %s, %s, %s, 'done', true, now(), %s, %s)
                       RETURNING id""",
                    (scope, start, start + timedelta(days=1), Json(self.config), connection),
                )
                row = cur.fetchone()
            run_id = int(row["id"])
        with self._lock:
            self._ids[(scope, day)] = run_id
        return run_id

    def record(self, run_id: int, outcome: ChunkOutcome) -> None:
        """Record records processed outside a chunk (ledger, rejects, counters) in one
        transaction."""
        with self.store.db.transaction() as cur:
            write_outcome(cur, run_id, outcome)

    def count(self, run_id: int, *, read: int = 0, sent: int = 0, skipped: int = 0) -> None:
        """Add to a run's counters for work that wrote no ledger row (deletes, consent writes)."""
        with self.store.db.transaction() as cur:
            runs.add_counts(cur, run_id, read_count=read, sent_count=sent, skipped_count=skipped)
