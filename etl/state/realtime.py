"""Realtime bookkeeping in PostgreSQL: the daily ``realtime`` runs that hold webhook outcomes.

Webhook work has no chunks, so its outcomes are recorded against one run of kind ``realtime``
per connection, scope and UTC day (``window_from`` = the day's midnight, ``window_to`` = the
next one). Such a run is born ``done`` with ``planning_done``: the run scheduler
(``etl.sync.runs``) leases and starts ``queued``/``paused`` runs and renews ``running`` ones, and
a realtime run must never take one of the two sync slots. Its counters keep growing through the
day; ``sync list``, ``sync status``, ``sync rejects`` and ``sync replay`` work on it as on any
run.

Work taken from the realtime inbox (``etl.sync.inbox``) also records the ids of its entries
(``realtime_delivery``) in the same transaction as its outcome, so an entry delivered again
after a crash is known to be done (``recorded``) and is never counted twice.

Everything here is safe to call from many processes at once.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from psycopg2.extras import Json, execute_values

from etl.state import runs
from etl.state.chunks import ChunkOutcome, write_outcome
from etl.state.store import StateStore

__all__ = ["AlreadyRecorded", "RealtimeRuns"]

DELIVERY_RETENTION = timedelta(days=1)
"""How long a ``realtime_delivery`` row left behind by a crash is kept (an acknowledged entry's
row is deleted at once)."""


class AlreadyRecorded(Exception):
    """Some inbox entries of a batch were recorded by another drain; nothing was written."""

    def __init__(self, entries: set[str]) -> None:
        super().__init__(f"{len(entries)} inbox entries were already recorded")
        self.entries = entries


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

    def record_batch(
        self,
        outcomes: Mapping[str, ChunkOutcome],
        inbox: str | None = None,
        entries: Sequence[str] = (),
        expected: Mapping[str, Mapping[str, str]] | None = None,
    ) -> None:
        """Record a batch's outcomes (one per scope, in today's runs) and the inbox entries they
        account for, in one transaction.

        ``expected`` (per scope: the ledger hashes the batch's diff read) makes an accepted
        record whose ledger row another writer changed since then write nothing.

        Raises:
            AlreadyRecorded: another drain recorded some of ``entries`` (it took them over while
                this one was stalled); nothing is written, so nothing counts twice.
            LedgerMovedError: see ``expected``.
        """
        run_ids = {scope: self.run_id(scope) for scope in outcomes}
        with self.store.db.transaction() as cur:
            if inbox is not None and entries:
                new = execute_values(
                    cur,
                    """INSERT INTO realtime_delivery (inbox, entry_id) VALUES %s
                       ON CONFLICT DO NOTHING RETURNING entry_id""",
                    [(inbox, entry) for entry in dict.fromkeys(entries)],
                    fetch=True,
                )
                done = set(entries) - {row["entry_id"] for row in new}
                if done:
                    raise AlreadyRecorded(done)  # rolls the transaction back
            for scope, outcome in outcomes.items():
                read = None if expected is None else expected.get(scope)
                write_outcome(cur, run_ids[scope], outcome, expected=read)  # LedgerMovedError

    def recorded(self, inbox: str, entries: Sequence[str]) -> set[str]:
        """Which of these inbox entries have their outcome recorded already."""
        if not entries:
            return set()
        with self.store.db.transaction() as cur:
            cur.execute(
                "SELECT entry_id FROM realtime_delivery WHERE inbox = %s AND entry_id = ANY(%s)",
                (inbox, list(entries)),
            )
            return {row["entry_id"] for row in cur.fetchall()}

    def forget(self, inbox: str, entries: Sequence[str]) -> None:
        """Drop the rows of acknowledged entries (they cannot come back), and any row older
        than ``DELIVERY_RETENTION``."""
        with self.store.db.transaction() as cur:
            cur.execute(
                """DELETE FROM realtime_delivery WHERE (inbox = %s AND entry_id = ANY(%s))
                   OR done_at < now() - %s""",
                (inbox, list(entries), DELIVERY_RETENTION),
            )

    def count(self, run_id: int, *, read: int = 0, sent: int = 0, skipped: int = 0) -> None:
        """Add to a run's counters for work that wrote no ledger row (deletes, consent writes)."""
        with self.store.db.transaction() as cur:
            runs.add_counts(cur, run_id, read_count=read, sent_count=sent, skipped_count=skipped)
