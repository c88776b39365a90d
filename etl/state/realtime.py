"""Realtime bookkeeping in PostgreSQL: the daily ``realtime`` runs and two ledger writes they need.

Webhook work has no chunks, so its outcomes are recorded against one run of kind ``realtime``
per scope and UTC day (``window_from`` = the day's midnight, ``window_to`` = the next one). Such a
run is born ``done`` with ``planning_done``: the run scheduler (``etl.sync.runs``) leases and
starts ``queued``/``paused`` runs and renews ``running`` ones, and a realtime run must never take
one of the two sync slots. Its counters keep growing through the day; ``sync list``, ``sync
status``, ``sync rejects`` and ``sync replay`` work on it as on any run.

Kept apart from ``StateStore`` (which the chunk engine owns) but in the same transactions style;
everything here is safe to call from many processes at once.
"""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from psycopg2.extras import Json

from etl.state.store import SCOPES, StateStore

__all__ = ["RealtimeRuns"]


class RealtimeRuns:
    """The ``realtime`` run of each scope and day, plus counter and ledger writes outside chunks.

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
        """The id of today's (UTC) realtime run of ``scope``, created on first use.

        An advisory lock per (scope, day) makes concurrent first uses agree on one run.
        """
        if scope not in SCOPES:
            raise ValueError(f"scope must be one of {', '.join(SCOPES)}; got {scope!r}")
        day = (now or datetime.now(UTC)).astimezone(UTC).date()
        with self._lock:
            cached = self._ids.get((scope, day))
        if cached is not None:
            return cached
        start = datetime.combine(day, time.min, tzinfo=UTC)
        with self.store.db.transaction() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"realtime:{scope}:{day}",))
            cur.execute(
                """SELECT id FROM sync_run WHERE kind = 'realtime' AND scope = %s
                   AND window_from = %s ORDER BY id LIMIT 1""",
                (scope, start),
            )
            row = cur.fetchone()
            if row is None:
                cur.execute(
                    """INSERT INTO sync_run (kind, scope, window_from, window_to, status,
                                             planning_done, started_at, config)
                       VALUES ('realtime', %s, %s, %s, 'done', true, now(), %s) RETURNING id""",
                    (scope, start, start + timedelta(days=1), Json(self.config)),
                )
                row = cur.fetchone()
            run_id = int(row["id"])
        with self._lock:
            self._ids[(scope, day)] = run_id
        return run_id

    def count(self, run_id: int, *, read: int = 0, sent: int = 0, skipped: int = 0) -> None:
        """Add to a run's counters for work that wrote no ledger row (deletes, consent writes)."""
        with self.store.db.transaction() as cur:
            cur.execute(
                """UPDATE sync_run SET read_count = read_count + %s, sent_count = sent_count + %s,
                          skipped_count = skipped_count + %s
                   WHERE id = %s""",
                (read, sent, skipped, run_id),
            )

    def swap_ledger_hash(
        self, stream: str, key: str, expected: str | None, digest: str, run_id: int
    ) -> bool:
        """Set a ledger hash only if the current one is ``expected`` (``None``: no row yet).

        Compare-and-set, so a concurrent sync that recorded a newer payload is never overwritten.
        Returns True when the hash was written.
        """
        with self.store.db.transaction() as cur:
            if expected is None:
                cur.execute(
                    """INSERT INTO entity_ledger (stream, record_key, content_hash, run_id)
                       VALUES (%s, %s, %s, %s) ON CONFLICT (stream, record_key) DO NOTHING""",
                    (stream, key, digest, run_id),
                )
            else:
                cur.execute(
                    """UPDATE entity_ledger SET content_hash = %s, synced_at = now(), run_id = %s
                       WHERE stream = %s AND record_key = %s AND content_hash = %s""",
                    (digest, run_id, stream, key, expected),
                )
            return bool(cur.rowcount == 1)
