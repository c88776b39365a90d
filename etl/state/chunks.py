"""Chunks (``sync_chunk``): slices of a run's record keys, each processed by one task, and the
one transaction that records a chunk's outcome.

A chunk is claimed (``pending``/``failed`` -> ``running``, one attempt more) before it is worked
on, and only the attempt holding the claim may complete it: ``complete`` writes the ledger
hashes, the rejects, the run's counters, the chunk's status and, when it was the last one, the
run's end in **one** transaction, so a duplicate delivery never counts a record twice.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from psycopg2.extras import execute_values

from etl.state import ledger, rejects, runs, warnings
from etl.state.db import Connections, check_choice, from_row
from etl.state.rejects import Rejection
from etl.state.runs import PlanningCursor
from etl.state.warnings import RecordWarning

__all__ = [
    "CHUNK_STATUSES",
    "Chunk",
    "ChunkNotFoundError",
    "ChunkOutcome",
    "Chunks",
    "insert_chunks",
    "write_outcome",
]

CHUNK_STATUSES = ("pending", "running", "done", "failed")


class ChunkNotFoundError(LookupError):
    """No chunk has this id."""


@dataclass(frozen=True)
class Chunk:
    """A ``sync_chunk`` row: a slice of a run's record keys, processed by one task."""

    id: int
    run_id: int
    seq: int
    keys: list[str]
    status: str
    attempts: int
    error: str | None
    updated_at: datetime
    payload: list[dict[str, Any]] | None


@dataclass
class ChunkOutcome:
    """What became of a chunk's records (or of a webhook's record); ``write_outcome`` keeps it.

    ``guests`` is the outcome of the guest profiles an orders chunk upserts before its
    transactions (stream ``profiles``): recorded with the chunk, counted apart from its orders.
    """

    stream: str
    read: int = 0
    skipped: int = 0
    would_create: int = 0
    would_update: int = 0
    accepted: dict[str, str] = field(default_factory=dict)
    """record key -> content hash of the payload Synerise accepted"""
    rejections: list[Rejection] = field(default_factory=list)
    warnings: list[RecordWarning] = field(default_factory=list)
    guests: ChunkOutcome | None = None

    def accept(self, key: str, digest: str) -> None:
        """Synerise accepted the record's payload with this hash."""
        self.accepted[key] = digest

    def reject(
        self, key: str, reason: str, message: str, payload: Any = None, origin: str | None = None
    ) -> None:
        """The record is rejected with a reason code; its payload must be redacted already.
        ``origin`` is the record whose sync produced this one (a guest profile's order)."""
        self.rejections.append(
            Rejection(self.stream, key, str(reason), message, payload, origin_key=origin)
        )

    def warn(self, key: str, found: Iterable[Any]) -> None:
        """The record was sent without some fields: ``schemas.reasons.FieldWarning``s."""
        self.warnings.extend(
            RecordWarning(self.stream, key, w.field, str(w.code), w.message) for w in found
        )


class Chunks:
    """Chunk rows: plan, claim, complete, fail, recover. Safe to share between threads."""

    def __init__(self, db: Connections) -> None:
        self.db = db

    def add(self, run_id: int, key_lists: Sequence[Sequence[str]]) -> list[int]:
        """Create the run's next chunks (status ``pending``) in one transaction; return their ids.

        ``seq`` continues from ``chunks_total``; the run row is locked while it is bumped, so
        concurrent callers get distinct, gap-free sequence numbers.

        Raises:
            ValueError: a key list is empty or holds something other than strings.
            RunNotFoundError: no such run.
        """
        with self.db.transaction() as cur:
            return insert_chunks(cur, run_id, key_lists, None)

    def append(
        self,
        run_id: int,
        keys: Sequence[str],
        payload: Sequence[dict[str, Any]] | None,
        cursor: PlanningCursor,
        expected: PlanningCursor | None = None,
    ) -> int:
        """Add one planned chunk and move the planning cursor past it, atomically.

        ``payload`` holds the listed records when the listing already carries them (Master
        Data search), so the chunk task needs no second read; it is cleared once done.

        ``expected`` is where the caller last saw the cursor: the chunk is only added while the
        cursor is still there, so two producers of one run (a redelivered task next to a
        re-enqueued one) can never plan the same records twice; the late one gets
        ``PlanningMovedError`` and nothing is written.

        Raises:
            RunNotFoundError: no such run.
            PlanningMovedError: the cursor is not at ``expected``.
        """
        with self.db.transaction() as cur:
            runs.move_planning_cursor(cur, run_id, cursor, expected)  # first: it locks the run
            [chunk_id] = insert_chunks(cur, run_id, [keys], [payload] if payload else None)
            return chunk_id

    def get(self, chunk_id: int) -> Chunk:
        """The chunk.

        Raises:
            ChunkNotFoundError: no such chunk.
        """
        row = self.db.fetch_one("SELECT * FROM sync_chunk WHERE id = %s", (chunk_id,))
        if row is None:
            raise ChunkNotFoundError(chunk_id)
        return from_row(Chunk, row)

    def ids(self, run_id: int, statuses: Iterable[str]) -> list[int]:
        """Ids of the run's chunks in any of ``statuses``, in ``seq`` order."""
        wanted = list(statuses)
        for status in wanted:
            check_choice(status, CHUNK_STATUSES, "chunk status")
        with self.db.transaction() as cur:
            cur.execute(
                """SELECT id FROM sync_chunk WHERE run_id = %s AND status = ANY(%s)
                   ORDER BY seq""",
                (run_id, wanted),
            )
            return [row["id"] for row in cur.fetchall()]

    def claim(self, chunk_id: int) -> Chunk | None:
        """Take a ``pending`` or ``failed`` chunk of a ``running`` run: it becomes ``running``.

        Returns ``None`` when there is nothing to do: the chunk is done, already running
        elsewhere (a duplicate delivery), or its run is not running (paused, cancelled...).
        Each claim counts an attempt.

        Raises:
            ChunkNotFoundError: no such chunk.
        """
        with self.db.transaction() as cur:
            cur.execute(
                """SELECT c.status AS chunk_status, r.status AS run_status, c.run_id
                   FROM sync_chunk c JOIN sync_run r ON r.id = c.run_id
                   WHERE c.id = %s FOR UPDATE OF c""",
                (chunk_id,),
            )
            found = cur.fetchone()
            if found is None:
                raise ChunkNotFoundError(chunk_id)
            if found["chunk_status"] not in ("pending", "failed") or found["run_status"] != (
                "running"
            ):
                return None
            cur.execute(
                """UPDATE sync_chunk SET status = 'running', attempts = attempts + 1
                   WHERE id = %s RETURNING *""",
                (chunk_id,),
            )
            claimed = from_row(Chunk, cur.fetchone())
            if found["chunk_status"] == "failed":  # its records leave the failed count too
                runs.add_counts(
                    cur, found["run_id"], chunks_failed=-1, failed_count=-len(claimed.keys)
                )
            return claimed

    def release(self, chunk: Chunk) -> None:
        """Put back a chunk this attempt claimed but must not finish (its run lost the slot)."""
        with self.db.transaction() as cur:
            cur.execute(
                """UPDATE sync_chunk SET status = 'pending'
                   WHERE id = %s AND status = 'running' AND attempts = %s""",
                (chunk.id, chunk.attempts),
            )

    def complete(self, chunk: Chunk, outcome: ChunkOutcome) -> str | None:
        """Record a chunk's outcome in one transaction; the run's end status if it ended it.

        Only the attempt that holds the claim can complete the chunk: a duplicate delivery
        finds it no longer ``running`` with its attempt number and writes nothing, so counts
        and rejects are never recorded twice.
        """
        with self.db.transaction() as cur:
            cur.execute(
                """UPDATE sync_chunk SET status = 'done', error = NULL, payload = NULL
                   WHERE id = %s AND status = 'running' AND attempts = %s""",
                (chunk.id, chunk.attempts),
            )
            if cur.rowcount == 0:
                return None
            write_outcome(cur, chunk.run_id, outcome)
            runs.add_counts(cur, chunk.run_id, chunks_done=1)
            return runs.settle(cur, chunk.run_id)

    def fail(self, chunk_id: int, error: str) -> str | None:
        """A ``running`` chunk gave up (retries exhausted): mark it ``failed`` for a later resume.

        A chunk in any other status is left alone, so a late duplicate cannot undo a success.
        Returns the run's end status when this was its last unfinished chunk.
        """
        with self.db.transaction() as cur:
            cur.execute(
                """UPDATE sync_chunk SET status = 'failed', error = %s
                   WHERE id = %s AND status = 'running'
                   RETURNING run_id, jsonb_array_length(keys) AS size""",
                (error, chunk_id),
            )
            row = cur.fetchone()
            if row is None:
                return None
            runs.add_counts(cur, row["run_id"], chunks_failed=1, failed_count=row["size"])
            return runs.settle(cur, row["run_id"])

    def reset_unfinished(self, run_id: int) -> int:
        """For ``resume``: failed chunks and chunks a dead worker left ``running`` go back to
        ``pending``, and their failures leave the counts; returns how many were reset."""
        with self.db.transaction() as cur:
            cur.execute(
                """WITH reset AS (
                       UPDATE sync_chunk c SET status = 'pending'
                       FROM sync_chunk old
                       WHERE c.id = old.id AND c.run_id = %s
                             AND c.status IN ('failed', 'running')
                       RETURNING old.status AS was, jsonb_array_length(c.keys) AS size)
                   SELECT count(*) AS n,
                          count(*) FILTER (WHERE was = 'failed') AS failed,
                          coalesce(sum(size) FILTER (WHERE was = 'failed'), 0) AS failed_records
                   FROM reset""",
                (run_id,),
            )
            row = cur.fetchone()
            runs.add_counts(
                cur, run_id, chunks_failed=-row["failed"], failed_count=-row["failed_records"]
            )
            return int(row["n"])

    def mark_enqueued(self, run_id: int) -> list[int]:
        """Mark the run's pending chunks enqueued now; their ids in ``seq`` order (the caller
        enqueues them)."""
        with self.db.transaction() as cur:
            cur.execute(
                """UPDATE sync_chunk SET enqueued_at = now()
                   WHERE run_id = %s AND status = 'pending' RETURNING id, seq""",
                (run_id,),
            )
            return [row["id"] for row in sorted(cur.fetchall(), key=lambda r: r["seq"])]

    def recover_stale(self, run_id: int, stale_after: timedelta) -> list[int]:
        """Chunks of a run with no progress for ``stale_after`` whose task must have been lost.

        ``running`` ones (their worker died) return to ``pending``; ``pending`` ones count only
        when the whole run stood still that long, so a long queue is not mistaken for a loss.
        Returned chunks are marked enqueued now (the caller enqueues them).
        """
        with self.db.transaction() as cur:
            cur.execute(
                """UPDATE sync_chunk c SET status = 'pending', enqueued_at = now()
                   FROM sync_run r
                   WHERE r.id = c.run_id AND c.run_id = %(run)s AND r.status = 'running'
                     AND r.updated_at < now() - %(stale)s
                     AND ((c.status = 'running' AND c.updated_at < now() - %(stale)s)
                          OR (c.status = 'pending'
                              AND coalesce(c.enqueued_at, c.updated_at) < now() - %(stale)s))
                   RETURNING c.id""",
                {"run": run_id, "stale": stale_after},
            )
            return [row["id"] for row in cur.fetchall()]


# -- inside the caller's transaction -----------------------------------------------------------


def insert_chunks(
    cur: Any,
    run_id: int,
    key_lists: Sequence[Sequence[str]],
    payloads: Sequence[Sequence[dict[str, Any]]] | None,
) -> list[int]:
    """Insert ``pending`` chunks after the run's last one; their ids in ``seq`` order.

    Raises:
        ValueError: a key list is empty or holds something other than strings.
        RunNotFoundError: no such run.
    """
    if not key_lists:
        return []
    for keys in key_lists:
        if not keys or not all(isinstance(key, str) for key in keys):
            raise ValueError("each chunk needs a non-empty list of string keys")
    total = runs.add_planned(cur, run_id, len(key_lists), sum(len(keys) for keys in key_lists))
    first = total - len(key_lists) + 1
    rows = execute_values(
        cur,
        """INSERT INTO sync_chunk (run_id, seq, keys, payload, enqueued_at)
           VALUES %s RETURNING id, seq""",
        [
            (
                run_id,
                first + i,
                json.dumps(list(keys)),
                json.dumps(list(payloads[i])) if payloads else None,
            )
            for i, keys in enumerate(key_lists)
        ],
        template="(%s, %s, %s::jsonb, %s::jsonb, now())",
        fetch=True,
    )
    return [row["id"] for row in sorted(rows, key=lambda r: r["seq"])]


def write_outcome(cur: Any, run_id: int, outcome: ChunkOutcome) -> None:
    """Record an outcome against a run: ledger hashes, rejects, warnings, the run's counters,
    and the same for the guest profiles sent with it."""
    guests = outcome.guests or ChunkOutcome("profiles")
    for part in (guests, outcome):
        ledger.record_accepted(cur, part.stream, part.accepted, run_id)
    rejects.record(cur, run_id, [*guests.rejections, *outcome.rejections])
    warned = warnings.record(cur, run_id, [*guests.warnings, *outcome.warnings])
    runs.add_counts(
        cur,
        run_id,
        read_count=outcome.read,
        sent_count=len(outcome.accepted),
        skipped_count=outcome.skipped,
        rejected_count=len({r.record_key for r in outcome.rejections}),
        would_create=outcome.would_create,
        would_update=outcome.would_update,
        warned_count=warned,
        guest_sent_count=len(guests.accepted),
        guest_skipped_count=guests.skipped,
        guest_rejected_count=len({r.record_key for r in guests.rejections}),
    )
