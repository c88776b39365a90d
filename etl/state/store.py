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
from dataclasses import dataclass, fields
from datetime import datetime
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
    "Run",
    "RunNotFoundError",
    "StateStore",
]

KINDS = ("backfill", "incremental", "replay")
SCOPES = ("customers_created", "customers_updated", "orders")
RUN_STATUSES = ("queued", "planning", "running", "paused", "done", "failed", "cancelled")
END_STATUSES = ("done", "failed", "cancelled")
CHUNK_STATUSES = ("pending", "running", "done", "failed")


class RunNotFoundError(LookupError):
    """No run has this id."""


class ChunkNotFoundError(LookupError):
    """No chunk has this id."""


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

    def mark_planning_done(self, run_id: int) -> None:
        """Record that every chunk of the run exists (no more ``add_chunks``)."""
        with self.db.transaction() as cur:
            cur.execute("UPDATE sync_run SET planning_done = true WHERE id = %s", (run_id,))
            if cur.rowcount == 0:
                raise RunNotFoundError(run_id)

    # -- chunks ----------------------------------------------------------------------------

    def add_chunks(self, run_id: int, key_lists: Sequence[Sequence[str]]) -> list[int]:
        """Create the run's next chunks (status ``pending``) in one transaction; return their ids.

        ``seq`` continues from ``chunks_total``; the run row is locked while it is bumped, so
        concurrent callers get distinct, gap-free sequence numbers.

        Raises:
            ValueError: a key list is empty or holds something other than strings.
            RunNotFoundError: no such run.
        """
        if not key_lists:
            return []
        for keys in key_lists:
            if not keys or not all(isinstance(key, str) for key in keys):
                raise ValueError("each chunk needs a non-empty list of string keys")
        with self.db.transaction() as cur:
            cur.execute(
                """UPDATE sync_run SET chunks_total = chunks_total + %s
                   WHERE id = %s RETURNING chunks_total""",
                (len(key_lists), run_id),
            )
            row = cur.fetchone()
            if row is None:
                raise RunNotFoundError(run_id)
            first = row["chunks_total"] - len(key_lists) + 1
            rows = execute_values(
                cur,
                "INSERT INTO sync_chunk (run_id, seq, keys) VALUES %s RETURNING id, seq",
                [(run_id, first + i, json.dumps(list(keys))) for i, keys in enumerate(key_lists)],
                template="(%s, %s, %s::jsonb)",
                fetch=True,
            )
        return [row["id"] for row in sorted(rows, key=lambda r: r["seq"])]

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
            if found["chunk_status"] == "failed":
                cur.execute(
                    "UPDATE sync_run SET chunks_failed = chunks_failed - 1 WHERE id = %s",
                    (found["run_id"],),
                )
            return claimed

    def fail_chunk(self, chunk_id: int, error: str) -> None:
        """A ``running`` chunk gave up (retries exhausted): mark it ``failed`` for a later resume.

        A chunk in any other status is left alone, so a late duplicate cannot undo a success.
        """
        with self.db.transaction() as cur:
            cur.execute(
                """UPDATE sync_chunk SET status = 'failed', error = %s
                   WHERE id = %s AND status = 'running' RETURNING run_id""",
                (error, chunk_id),
            )
            row = cur.fetchone()
            if row is not None:
                cur.execute(
                    "UPDATE sync_run SET chunks_failed = chunks_failed + 1 WHERE id = %s",
                    (row["run_id"],),
                )

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
            cur.execute(
                "SELECT token, worker FROM selftest WHERE token = ANY(%s)", (list(tokens),)
            )
            return {row["token"]: row["worker"] for row in cur.fetchall()}


def _check(value: str, allowed: Sequence[str], what: str) -> None:
    if value not in allowed:
        raise ValueError(f"{what} must be one of {', '.join(allowed)}; got {value!r}")
