"""The state store: sync runs and their chunks in PostgreSQL (schema: ``migrations/``).

Run state lives here, not in the broker, so a lost task message or a dead worker loses nothing:
every status change is a conditional ``UPDATE`` (compare-and-set), safe to repeat, and tasks
carry ids only. Counters on ``sync_run`` follow the chunk rows in the same transaction:
``chunks_total`` counts the run's chunks, ``chunks_failed`` the ones *currently* ``failed``
(a failed chunk claimed again leaves it), ``chunks_done`` the ones completed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from typing import Any

from psycopg2.extras import Json, execute_values

from etl.state.db import Connections

__all__ = [
    "CHUNK_STATUSES",
    "END_STATUSES",
    "KINDS",
    "RUN_STATUSES",
    "SCOPES",
    "Chunk",
    "ChunkNotFoundError",
    "ChunkOutcome",
    "Cursor",
    "PlanningMovedError",
    "Rejection",
    "Run",
    "RunNotFoundError",
    "StateStore",
]

KINDS = ("backfill", "incremental", "replay", "realtime")
SCOPES = ("customers_created", "customers_updated", "orders")
RUN_STATUSES = ("queued", "planning", "running", "paused", "done", "failed", "cancelled")
END_STATUSES = ("done", "failed", "cancelled")
CHUNK_STATUSES = ("pending", "running", "done", "failed")


class RunNotFoundError(LookupError):
    """No run has this id."""


class ChunkNotFoundError(LookupError):
    """No chunk has this id."""


class PlanningMovedError(RuntimeError):
    """The planning cursor is not where this producer left it: another producer of the same run
    (a redelivered or re-enqueued task) is ahead, so this one must stop writing."""


Cursor = tuple[datetime | None, int]
"""A planning position: ``(start of the window being chunked, records of it chunked)``."""


@dataclass(frozen=True)
class Run:
    """A ``sync_run`` row: what was asked, where it is, and its counts."""

    id: int
    kind: str
    scope: str
    window_from: datetime
    window_to: datetime
    status: str
    dry_run: bool
    full_resync: bool
    read_count: int
    sent_count: int
    skipped_count: int
    rejected_count: int
    failed_count: int
    would_create: int
    would_update: int
    chunks_total: int
    chunks_done: int
    chunks_failed: int
    planning_done: bool
    config: dict[str, Any]
    error: str | None
    slot_token: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime
    records_total: int
    planning_cursor: datetime | None
    planning_offset: int
    replay_of: int | None


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

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready view (the payload is already redacted)."""
        return {
            "stream": self.stream,
            "key": self.record_key,
            "reason": self.reason,
            "message": self.message,
            "attempts": self.attempts,
            "resolved_at": self.resolved_at.isoformat() if self.resolved_at else None,
            "payload": self.payload,
        }


@dataclass
class ChunkOutcome:
    """What became of a chunk's records; written in one transaction by ``complete_chunk``."""

    stream: str
    read: int = 0
    skipped: int = 0
    would_create: int = 0
    would_update: int = 0
    accepted: dict[str, str] = field(default_factory=dict)
    """record key -> content hash of the payload Synerise accepted"""
    rejections: list[Rejection] = field(default_factory=list)

    def accept(self, key: str, digest: str) -> None:
        """Synerise accepted the record's payload with this hash."""
        self.accepted[key] = digest

    def reject(self, key: str, reason: str, message: str, payload: Any = None) -> None:
        """The record is rejected with a reason code; its payload must be redacted already."""
        self.rejections.append(Rejection(self.stream, key, str(reason), message, payload))


def _from_row(cls: type[Any], row: dict[str, Any]) -> Any:
    """Build ``cls`` from the row's columns it declares (later migrations may add columns)."""
    return cls(**{field.name: row[field.name] for field in fields(cls)})


class StateStore:
    """Run and chunk operations; one instance per process, safe to share between threads."""

    def __init__(self, dsn: str) -> None:
        self.db = Connections(dsn)

    def close(self) -> None:
        """Close the calling thread's connection."""
        self.db.close()

    # -- runs ------------------------------------------------------------------------------

    def create_run(
        self,
        kind: str,
        scope: str,
        window_from: datetime,
        window_to: datetime,
        dry_run: bool = False,
        full_resync: bool = False,
        config: dict[str, Any] | None = None,
    ) -> int:
        """Record a new run in status ``queued``; return its id."""
        _check(kind, KINDS, "kind")
        _check(scope, SCOPES, "scope")
        if window_to < window_from:
            raise ValueError("window_to is before window_from")
        with self.db.transaction() as cur:
            cur.execute(
                """INSERT INTO sync_run
                       (kind, scope, window_from, window_to, dry_run, full_resync, config)
                   VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id""",
                (kind, scope, window_from, window_to, dry_run, full_resync, Json(config or {})),
            )
            return int(cur.fetchone()["id"])

    def get_run(self, run_id: int) -> Run:
        """The run with its counts.

        Raises:
            RunNotFoundError: no such run.
        """
        with self.db.transaction() as cur:
            cur.execute("SELECT * FROM sync_run WHERE id = %s", (run_id,))
            row = cur.fetchone()
        if row is None:
            raise RunNotFoundError(run_id)
        return _from_row(Run, row)

    def list_runs(self, limit: int | None = None, status: str | None = None) -> list[Run]:
        """Runs newest first, optionally only those in ``status``; all of them without a limit."""
        if status is not None:
            _check(status, RUN_STATUSES, "status")
        with self.db.transaction() as cur:
            cur.execute(
                """SELECT * FROM sync_run WHERE %(status)s::text IS NULL OR status = %(status)s
                   ORDER BY id DESC LIMIT %(limit)s""",
                {"status": status, "limit": limit},
            )
            return [_from_row(Run, row) for row in cur.fetchall()]

    def oldest_queued_runs(self, limit: int | None = None) -> list[Run]:
        """Queued runs in the order they were asked for (first come, first served)."""
        with self.db.transaction() as cur:
            cur.execute(
                """SELECT * FROM sync_run WHERE status = 'queued'
                   ORDER BY created_at, id LIMIT %s""",
                (limit,),
            )
            return [_from_row(Run, row) for row in cur.fetchall()]

    def transition(
        self,
        run_id: int,
        to_status: str,
        from_statuses: Iterable[str],
        error: str | None = None,
    ) -> bool:
        """Move a run to ``to_status`` if it is in one of ``from_statuses``; True if it moved.

        Atomic compare-and-set, so two workers racing to start, finish or cancel the same run
        cannot both win. ``error`` replaces the stored error (``None`` clears it). Entering
        ``running`` sets ``started_at`` once; entering an end status sets ``finished_at`` and
        leaving one clears it (a failed run resumed).
        """
        _check(to_status, RUN_STATUSES, "status")
        sources = list(from_statuses)
        for status in sources:
            _check(status, RUN_STATUSES, "status")
        with self.db.transaction() as cur:
            cur.execute(
                """UPDATE sync_run SET
                       status = %(to)s,
                       error = %(error)s,
                       started_at = CASE WHEN %(to)s = 'running'
                                         THEN coalesce(started_at, now()) ELSE started_at END,
                       finished_at = CASE WHEN %(to)s = ANY(%(end)s) THEN now() END
                   WHERE id = %(id)s AND status = ANY(%(from)s)""",
                {
                    "to": to_status,
                    "error": error,
                    "end": list(END_STATUSES),
                    "id": run_id,
                    "from": sources,
                },
            )
            return bool(cur.rowcount == 1)

    def mark_planning_done(self, run_id: int, expected: Cursor | None = None) -> str | None:
        """Record that every chunk of the run exists; return the end status if that ended it.

        With ``expected``, only while the cursor is still there (see ``append_chunk``).

        Raises:
            RunNotFoundError: no such run.
            PlanningMovedError: the cursor moved (another producer is ahead).
        """
        with self.db.transaction() as cur:
            cur.execute(
                f"UPDATE sync_run SET planning_done = true WHERE {_CURSOR_IS}",
                _cursor_args(run_id, expected),
            )
            if cur.rowcount == 0:
                _explain_stale_cursor(cur, run_id)
            return _settle(cur, run_id)

    def advance_planning(
        self, run_id: int, cursor: Cursor, expected: Cursor | None = None
    ) -> None:
        """Move the planning cursor: records before it are chunked already.

        Raises:
            RunNotFoundError: no such run.
            PlanningMovedError: ``expected`` was given and the cursor is elsewhere.
        """
        with self.db.transaction() as cur:
            _move_cursor(cur, run_id, cursor, expected)

    def settle(self, run_id: int) -> str | None:
        """End a running run whose planning is done and every chunk finished; the end status."""
        with self.db.transaction() as cur:
            return _settle(cur, run_id)

    def get_run_status(self, run_id: int) -> str:
        """Just the status: checked before every write, so kept cheap."""
        with self.db.transaction() as cur:
            cur.execute("SELECT status FROM sync_run WHERE id = %s", (run_id,))
            row = cur.fetchone()
        if row is None:
            raise RunNotFoundError(run_id)
        return str(row["status"])

    def waiting_runs(self) -> list[Run]:
        """Queued and paused runs, oldest first: who gets the next free slot."""
        with self.db.transaction() as cur:
            cur.execute(
                """SELECT * FROM sync_run WHERE status IN ('queued', 'paused')
                   ORDER BY created_at, id"""
            )
            return [_from_row(Run, row) for row in cur.fetchall()]

    def planning_stalled(self, run_id: int, stale_after: timedelta) -> bool:
        """True when a run still planning has not moved for ``stale_after`` (producer lost)."""
        with self.db.transaction() as cur:
            cur.execute(
                """SELECT 1 FROM sync_run WHERE id = %s AND NOT planning_done
                   AND updated_at < now() - %s""",
                (run_id, stale_after),
            )
            return cur.fetchone() is not None

    # -- chunks ----------------------------------------------------------------------------

    def add_chunks(self, run_id: int, key_lists: Sequence[Sequence[str]]) -> list[int]:
        """Create the run's next chunks (status ``pending``) in one transaction; return their ids.

        ``seq`` continues from ``chunks_total``; the run row is locked while it is bumped, so
        concurrent callers get distinct, gap-free sequence numbers.

        Raises:
            ValueError: a key list is empty or holds something other than strings.
            RunNotFoundError: no such run.
        """
        with self.db.transaction() as cur:
            return _insert_chunks(cur, run_id, key_lists, None)

    def append_chunk(
        self,
        run_id: int,
        keys: Sequence[str],
        payload: Sequence[dict[str, Any]] | None,
        cursor: Cursor,
        expected: Cursor | None = None,
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
            _move_cursor(cur, run_id, cursor, expected)  # first: it locks the run row
            [chunk_id] = _insert_chunks(cur, run_id, [keys], [payload] if payload else None)
            return chunk_id

    def get_chunk(self, chunk_id: int) -> Chunk:
        """The chunk.

        Raises:
            ChunkNotFoundError: no such chunk.
        """
        with self.db.transaction() as cur:
            cur.execute("SELECT * FROM sync_chunk WHERE id = %s", (chunk_id,))
            row = cur.fetchone()
        if row is None:
            raise ChunkNotFoundError(chunk_id)
        return _from_row(Chunk, row)

    def claim_chunk(self, chunk_id: int) -> Chunk | None:
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
            claimed = _from_row(Chunk, cur.fetchone())
            if found["chunk_status"] == "failed":  # its records leave the failed count too
                cur.execute(
                    """UPDATE sync_run SET chunks_failed = chunks_failed - 1,
                              failed_count = failed_count - %s
                       WHERE id = %s""",
                    (len(claimed.keys), found["run_id"]),
                )
            return claimed

    def fail_chunk(self, chunk_id: int, error: str) -> str | None:
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
            cur.execute(
                """UPDATE sync_run SET chunks_failed = chunks_failed + 1,
                          failed_count = failed_count + %s
                   WHERE id = %s""",
                (row["size"], row["run_id"]),
            )
            return _settle(cur, row["run_id"])

    def release_chunk(self, chunk: Chunk) -> None:
        """Put back a chunk this attempt claimed but must not finish (its run lost the slot)."""
        with self.db.transaction() as cur:
            cur.execute(
                """UPDATE sync_chunk SET status = 'pending'
                   WHERE id = %s AND status = 'running' AND attempts = %s""",
                (chunk.id, chunk.attempts),
            )

    def complete_chunk(self, chunk: Chunk, outcome: ChunkOutcome) -> str | None:
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
            self._write_outcome(cur, chunk.run_id, outcome)
            cur.execute(
                "UPDATE sync_run SET chunks_done = chunks_done + 1 WHERE id = %s",
                (chunk.run_id,),
            )
            return _settle(cur, chunk.run_id)

    def record_outcome(self, run_id: int, outcome: ChunkOutcome) -> None:
        """Record records processed outside a chunk (webhooks) against their run."""
        with self.db.transaction() as cur:
            self._write_outcome(cur, run_id, outcome)

    @staticmethod
    def _write_outcome(cur: Any, run_id: int, outcome: ChunkOutcome) -> None:
        if outcome.accepted:
            execute_values(
                cur,
                """INSERT INTO entity_ledger (stream, record_key, content_hash, run_id)
                   VALUES %s ON CONFLICT (stream, record_key) DO UPDATE SET
                       content_hash = EXCLUDED.content_hash, synced_at = now(),
                       run_id = EXCLUDED.run_id""",
                [(outcome.stream, key, digest, run_id) for key, digest in outcome.accepted.items()],
            )
        if outcome.rejections:
            execute_values(
                cur,
                """INSERT INTO rejected_record
                       (run_id, stream, record_key, reason, message, payload)
                   VALUES %s ON CONFLICT (run_id, stream, record_key) DO UPDATE SET
                       reason = EXCLUDED.reason, message = EXCLUDED.message,
                       payload = EXCLUDED.payload, attempts = rejected_record.attempts + 1,
                       resolved_at = NULL""",
                [
                    (run_id, r.stream, r.record_key, r.reason, r.message, Json(r.payload))
                    for r in outcome.rejections
                ],
            )
        cur.execute(
            """UPDATE sync_run SET read_count = read_count + %s, sent_count = sent_count + %s,
                      skipped_count = skipped_count + %s,
                      rejected_count = rejected_count + %s,
                      would_create = would_create + %s, would_update = would_update + %s
               WHERE id = %s""",
            (
                outcome.read,
                len(outcome.accepted),
                outcome.skipped,
                len({r.record_key for r in outcome.rejections}),
                outcome.would_create,
                outcome.would_update,
                run_id,
            ),
        )

    def reset_unfinished_chunks(self, run_id: int) -> int:
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
            cur.execute(
                """UPDATE sync_run SET chunks_failed = chunks_failed - %s,
                          failed_count = failed_count - %s
                   WHERE id = %s""",
                (row["failed"], row["failed_records"], run_id),
            )
            return int(row["n"])

    def unfinished_chunks(self, run_id: int) -> list[int]:
        """Pending chunks of a run, marked as enqueued now (the caller enqueues them)."""
        with self.db.transaction() as cur:
            cur.execute(
                """UPDATE sync_chunk SET enqueued_at = now()
                   WHERE run_id = %s AND status = 'pending' RETURNING id, seq""",
                (run_id,),
            )
            return [row["id"] for row in sorted(cur.fetchall(), key=lambda r: r["seq"])]

    def stale_chunks(self, run_id: int, stale_after: timedelta) -> list[int]:
        """Chunks of a run with no progress for ``stale_after`` whose task must have been lost.

        ``running`` ones (their worker died) return to ``pending``; ``pending`` ones count only
        when the whole run stood still that long, so a long queue is not mistaken for a loss.
        Returned chunks are marked enqueued now.
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

    def chunk_ids(self, run_id: int, statuses: Iterable[str]) -> list[int]:
        """Ids of the run's chunks in any of ``statuses``, in ``seq`` order."""
        wanted = list(statuses)
        for status in wanted:
            _check(status, CHUNK_STATUSES, "chunk status")
        with self.db.transaction() as cur:
            cur.execute(
                """SELECT id FROM sync_chunk WHERE run_id = %s AND status = ANY(%s)
                   ORDER BY seq""",
                (run_id, wanted),
            )
            return [row["id"] for row in cur.fetchall()]

    # -- ledger, rejects, cursors -------------------------------------------------------------

    def ledger_hashes(self, stream: str, keys: Sequence[str]) -> dict[str, str]:
        """Content hashes of the payloads Synerise last accepted for these keys."""
        with self.db.transaction() as cur:
            cur.execute(
                """SELECT record_key, content_hash FROM entity_ledger
                   WHERE stream = %s AND record_key = ANY(%s)""",
                (stream, list(keys)),
            )
            return {row["record_key"]: row["content_hash"] for row in cur.fetchall()}

    def rejects(
        self, run_id: int, reason: str | None = None, unresolved: bool = False
    ) -> list[Rejection]:
        """The records a run rejected (optionally one reason code, or only those no replay
        fixed yet), oldest first."""
        with self.db.transaction() as cur:
            cur.execute(
                """SELECT stream, record_key, reason, message, payload, attempts, resolved_at
                   FROM rejected_record
                   WHERE run_id = %(run)s AND (%(reason)s::text IS NULL OR reason = %(reason)s)
                     AND (NOT %(unresolved)s OR resolved_at IS NULL)
                   ORDER BY id""",
                {"run": run_id, "reason": reason, "unresolved": unresolved},
            )
            return [Rejection(**row) for row in cur.fetchall()]

    def create_replay_run(
        self, source: Run, keys: Sequence[str], chunk_size: int, config: dict[str, Any]
    ) -> int:
        """A ``replay`` run over ``keys`` (a run's unresolved rejects), fully planned."""
        with self.db.transaction() as cur:
            cur.execute(
                """INSERT INTO sync_run (kind, scope, window_from, window_to, config, replay_of,
                                         planning_done)
                   VALUES ('replay', %s, %s, %s, %s, %s, true) RETURNING id""",
                (source.scope, source.window_from, source.window_to, Json(config), source.id),
            )
            run_id = int(cur.fetchone()["id"])
            batches = [keys[i : i + chunk_size] for i in range(0, len(keys), chunk_size)]
            _insert_chunks(cur, run_id, batches, None)
            return run_id

    def unresolved_reject_keys(self, run_id: int) -> list[str]:
        """Keys of a run's rejected records that no replay has fixed yet."""
        with self.db.transaction() as cur:
            cur.execute(
                """SELECT record_key FROM rejected_record
                   WHERE run_id = %s AND resolved_at IS NULL ORDER BY id""",
                (run_id,),
            )
            return [row["record_key"] for row in cur.fetchall()]

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

    def get_cursor(self, stream: str) -> datetime | None:
        """Where the last successful incremental sync of a stream ended."""
        with self.db.transaction() as cur:
            cur.execute("SELECT cursor_value FROM sync_cursor WHERE stream = %s", (stream,))
            row = cur.fetchone()
            return row["cursor_value"] if row else None

    def set_cursor(self, stream: str, value: datetime) -> None:
        """Advance a stream's cursor (never backwards)."""
        with self.db.transaction() as cur:
            cur.execute(
                """INSERT INTO sync_cursor (stream, cursor_value) VALUES (%s, %s)
                   ON CONFLICT (stream) DO UPDATE SET
                       cursor_value = greatest(sync_cursor.cursor_value, EXCLUDED.cursor_value)""",
                (stream, value),
            )

    # -- selftest --------------------------------------------------------------------------

    def record_selftest(self, token: str, worker: str) -> None:
        """Write the row that proves a task went broker -> worker -> PostgreSQL (idempotent)."""
        with self.db.transaction() as cur:
            cur.execute(
                """INSERT INTO selftest (token, worker) VALUES (%s, %s)
                   ON CONFLICT (token) DO UPDATE SET worker = EXCLUDED.worker, at = now()""",
                (token, worker),
            )

    def selftest_tokens(self, tokens: Iterable[str]) -> dict[str, str]:
        """Which of ``tokens`` have a selftest row, mapped to the worker that wrote it."""
        with self.db.transaction() as cur:
            cur.execute("SELECT token, worker FROM selftest WHERE token = ANY(%s)", (list(tokens),))
            return {row["token"]: row["worker"] for row in cur.fetchall()}


def _insert_chunks(
    cur: Any,
    run_id: int,
    key_lists: Sequence[Sequence[str]],
    payloads: Sequence[Sequence[dict[str, Any]]] | None,
) -> list[int]:
    if not key_lists:
        return []
    for keys in key_lists:
        if not keys or not all(isinstance(key, str) for key in keys):
            raise ValueError("each chunk needs a non-empty list of string keys")
    cur.execute(
        """UPDATE sync_run SET chunks_total = chunks_total + %s,
                  records_total = records_total + %s
           WHERE id = %s RETURNING chunks_total""",
        (len(key_lists), sum(len(keys) for keys in key_lists), run_id),
    )
    row = cur.fetchone()
    if row is None:
        raise RunNotFoundError(run_id)
    first = row["chunks_total"] - len(key_lists) + 1
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


_CURSOR_IS = """id = %(id)s AND (NOT %(check)s OR (NOT planning_done
    AND planning_cursor IS NOT DISTINCT FROM %(at)s AND planning_offset = %(offset)s))"""
"""Selects the run, and with ``check`` only while its planning cursor is at ``at``/``offset``."""


def _cursor_args(run_id: int, expected: Cursor | None) -> dict[str, Any]:
    at, offset = expected if expected is not None else (None, 0)
    return {"id": run_id, "check": expected is not None, "at": at, "offset": offset}


def _move_cursor(cur: Any, run_id: int, cursor: Cursor, expected: Cursor | None) -> None:
    cur.execute(
        f"""UPDATE sync_run SET planning_cursor = %(new_at)s, planning_offset = %(new_offset)s
            WHERE {_CURSOR_IS}""",
        {**_cursor_args(run_id, expected), "new_at": cursor[0], "new_offset": cursor[1]},
    )
    if cur.rowcount == 0:
        _explain_stale_cursor(cur, run_id)


def _explain_stale_cursor(cur: Any, run_id: int) -> None:
    """Raise why a cursor update matched no row: no such run, or the cursor moved."""
    cur.execute("SELECT 1 FROM sync_run WHERE id = %s", (run_id,))
    if cur.fetchone() is None:
        raise RunNotFoundError(run_id)
    raise PlanningMovedError(f"run {run_id}: the planning cursor moved; another producer is ahead")


def _settle(cur: Any, run_id: int) -> str | None:
    """End the run if planning is done and no chunk is unfinished; the end status or None.

    Runs in the caller's transaction, after its counter updates, so exactly one transaction
    (the one that finishes the last chunk) sees the run complete.
    """
    cur.execute(
        """UPDATE sync_run SET
               status = CASE WHEN chunks_failed > 0 THEN 'failed' ELSE 'done' END,
               error = CASE WHEN chunks_failed > 0
                            THEN chunks_failed || ' chunk(s) failed after retries; run '
                                 || '`vtex-synerise sync resume ' || id || '`'
                            ELSE error END,
               finished_at = now()
           WHERE id = %s AND status = 'running' AND planning_done
             AND chunks_done + chunks_failed = chunks_total
           RETURNING status""",
        (run_id,),
    )
    row = cur.fetchone()
    return str(row["status"]) if row else None


def _check(value: str, allowed: Sequence[str], what: str) -> None:
    if value not in allowed:
        raise ValueError(f"{what} must be one of {', '.join(allowed)}; got {value!r}")
