"""Rejected records (``rejected_record``): kept with a reason code for ``sync rejects`` and
``sync replay``, their payloads redacted.

A record rejected again in the same run counts another attempt; a record a later send got
accepted is marked resolved (``resolve_replayed``) and stays listed for the record.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg2.extras import Json, execute_values

from etl.state.db import Connections

__all__ = ["Rejection", "Rejects", "record"]


@dataclass
class Rejection:
    """A record a run could not send, kept for ``sync rejects`` and ``sync replay``."""

    stream: str
    record_key: str
    reason: str
    message: str
    payload: Any = None
    attempts: int = 1
    resolved_at: datetime | None = None
    """When a replay got the record accepted (``None``: still rejected)."""
    origin_key: str | None = None
    """The record whose sync produced this one (a guest profile's order); replays re-read it."""

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready view (the payload is already redacted)."""
        return {
            "stream": self.stream,
            "key": self.record_key,
            "reason": self.reason,
            "message": self.message,
            "attempts": self.attempts,
            "resolved_at": self.resolved_at.isoformat() if self.resolved_at else None,
            "origin": self.origin_key,
            "payload": self.payload,
        }


class Rejects:
    """List a run's rejects and resolve them after a replay. Safe to share between threads."""

    def __init__(self, db: Connections) -> None:
        self.db = db

    def find(
        self, run_id: int, reason: str | None = None, unresolved: bool = False
    ) -> list[Rejection]:
        """The records a run rejected (optionally one reason code, or only those no replay
        fixed yet), oldest first."""
        with self.db.transaction() as cur:
            cur.execute(
                """SELECT stream, record_key, reason, message, payload, attempts, resolved_at,
                          origin_key
                   FROM rejected_record
                   WHERE run_id = %(run)s AND (%(reason)s::text IS NULL OR reason = %(reason)s)
                     AND (NOT %(unresolved)s OR resolved_at IS NULL)
                   ORDER BY id""",
                {"run": run_id, "reason": reason, "unresolved": unresolved},
            )
            return [Rejection(**row) for row in cur.fetchall()]

    def unresolved_keys(self, run_id: int) -> list[str]:
        """Keys of the records to re-read for a run's rejects that no replay has fixed yet: the
        rejected record's own, or the one it came from (a guest profile's order), once each."""
        with self.db.transaction() as cur:
            cur.execute(
                """SELECT coalesce(origin_key, record_key) AS key, min(id) AS first
                   FROM rejected_record WHERE run_id = %s AND resolved_at IS NULL
                   GROUP BY 1 ORDER BY first""",
                (run_id,),
            )
            return [row["key"] for row in cur.fetchall()]

    def resolve_replayed(self, replay_run_id: int) -> int:
        """Mark the source run's rejects that are in Synerise now; how many.

        A record counts as fixed when the ledger shows a send accepted after it was rejected:
        by the replay, or by an earlier run (an incremental sync that picked up the fix), in
        which case the replay found it unchanged and skipped it.
        """
        with self.db.transaction() as cur:
            cur.execute(
                """UPDATE rejected_record rr SET resolved_at = now()
                   FROM sync_run replay, entity_ledger l
                   WHERE replay.id = %s AND rr.run_id = replay.replay_of
                     AND rr.resolved_at IS NULL
                     AND l.stream = rr.stream AND l.record_key = rr.record_key
                     AND (l.run_id = replay.id OR l.synced_at > rr.created_at)""",
                (replay_run_id,),
            )
            return int(cur.rowcount)


def record(cur: Any, run_id: int, rejections: Sequence[Rejection]) -> None:
    """Upsert rejects in the caller's transaction: a record rejected again counts an attempt and
    is unresolved again."""
    if not rejections:
        return
    latest = {(r.stream, r.record_key): r for r in rejections}  # a row is upserted once
    execute_values(
        cur,
        """INSERT INTO rejected_record
               (run_id, stream, record_key, reason, message, payload, origin_key)
           VALUES %s ON CONFLICT (run_id, stream, record_key) DO UPDATE SET
               reason = EXCLUDED.reason, message = EXCLUDED.message,
               payload = EXCLUDED.payload, attempts = rejected_record.attempts + 1,
               resolved_at = NULL, origin_key = EXCLUDED.origin_key""",
        [
            (run_id, r.stream, r.record_key, r.reason, r.message, Json(r.payload), r.origin_key)
            for _, r in sorted(latest.items())
        ],
        page_size=len(latest),  # one statement, rows in key order (no lock-order deadlock)
    )
