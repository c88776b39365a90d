"""Chunks (``sync_chunk``): slices of a run's record keys, each processed by one task, and the
one transaction that records a chunk's outcome.

A chunk is claimed (``pending``/``failed`` -> ``running``, one attempt more) before it is worked
on, in one transaction that also reads what the chunk needs of its run and the ledger hashes of
its records. The claim names its holder (a worker process's token) and expires at
``claim_expires_at`` (PostgreSQL time) unless the holder's heartbeat extends it
(``etl.state.claims``); upkeep puts a chunk whose claim expired back (``recover_expired``, a
compare-and-set, so it is re-enqueued once). Only the attempt and holder of the claim may
complete the chunk: ``complete`` writes the ledger hashes, the rejects, the run's counters, the
chunk's status and, when it was the last one, the run's end in **one** transaction, and only
while the run is running, so a duplicate delivery or a late answer from a replaced holder never
counts a record twice.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
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
    "ClaimedChunk",
    "LedgerMovedError",
    "PlannedChunk",
    "insert_chunks",
    "outcome_counts",
    "write_outcome",
    "write_records",
]

CHUNK_STATUSES = ("pending", "running", "done", "failed")

DEFAULT_CLAIM_TTL = 15.0
"""Seconds a claim lasts unless extended (``SYNC_CLAIM_TTL``)."""

PlannedChunk = tuple[Sequence[str], Sequence[dict[str, Any]] | None]
"""A chunk the producer planned: its record keys, and the listed records when the listing
carries them (Master Data search), so the chunk task needs no second read."""


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
    claimed_by: str | None = None
    """The worker process holding the claim while ``running``."""
    claim_expires_at: datetime | None = None


class LedgerMovedError(RuntimeError):
    """Another writer recorded some of an outcome's records after its diff read their ledger
    hashes (a realtime update under a chunk, or a chunk under a realtime batch): what was sent
    may be older than what Synerise had. Nothing was written; ``moved`` is each such record's
    ledger hash now."""

    def __init__(self, moved: dict[str, str | None]) -> None:
        super().__init__(f"{len(moved)} records of the chunk changed in the ledger meanwhile")
        self.moved = moved


@dataclass(frozen=True, kw_only=True)
class ClaimedChunk(Chunk):
    """A chunk this attempt holds, with what its task needs of its run and of the ledger."""

    run_kind: str
    run_scope: str
    full_resync: bool
    dry_run: bool
    known: dict[str, str]
    """Ledger hashes of the chunk's records (key -> content hash of the last accepted payload)."""


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
        self._ledgers: dict[str, str] = {}
        """The ledger stream of each run scope met so far (``claim``'s ``ledger_stream``), so
        that a claim reads its records' hashes in the same statement. Replaced, never changed
        in place: threads share it."""
        self._ledgers_json = "{}"

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
        chunks: Sequence[PlannedChunk],
        cursor: PlanningCursor,
        expected: PlanningCursor | None = None,
        holder: str | None = None,
    ) -> list[int]:
        """Add planned chunks and move the planning cursor past them, in one transaction; their
        ids in order.

        The listed records (``PlannedChunk``'s second item) are cleared once a chunk is done.

        ``expected`` is where the caller last saw the cursor: the chunks are only added while
        the cursor is still there, so two producers of one run (a redelivered task next to a
        re-enqueued one) can never plan the same records twice; the late one gets
        ``PlanningMovedError`` and nothing is written. With ``holder``, also only while that
        producer holds the run's planning claim (a replaced producer writes nothing).

        Raises:
            RunNotFoundError: no such run.
            PlanningMovedError: the cursor is not at ``expected``, or ``holder`` lost the claim.
        """
        with self.db.transaction() as cur:
            runs.move_planning_cursor(cur, run_id, cursor, expected, holder)  # locks the run
            payloads = [payload for _, payload in chunks]
            return insert_chunks(
                cur, run_id, [keys for keys, _ in chunks], payloads if any(payloads) else None
            )

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

    def claim(
        self,
        chunk_id: int,
        holder: str,
        ttl: float = DEFAULT_CLAIM_TTL,
        ledger_stream: Callable[[str], str] | None = None,
    ) -> ClaimedChunk | None:
        """Take a ``pending`` or ``failed`` chunk of a ``running`` run for ``holder`` for ``ttl``
        seconds: it becomes ``running``; one statement (a transaction by itself: one round
        trip).

        Returns ``None`` when there is nothing to do: the chunk is done, already running
        elsewhere (a duplicate delivery), or its run is not running (paused, cancelled...).
        Each claim counts an attempt. ``ledger_stream`` maps the run's scope to its ledger
        stream; the ledger hashes of the chunk's records are then read in the same statement
        (in a second one the first time a scope is met: the mapping is learnt then).

        Raises:
            ChunkNotFoundError: no such chunk.
        """
        rows = self.db.statement(
            """WITH claimed AS (
                   UPDATE sync_chunk c SET status = 'running', attempts = c.attempts + 1,
                          claimed_by = %(holder)s,
                          claim_expires_at = now() + make_interval(secs => %(ttl)s)
                   FROM sync_chunk old, sync_run r
                   WHERE c.id = %(id)s AND old.id = c.id AND r.id = c.run_id
                     AND c.status IN ('pending', 'failed') AND r.status = 'running'
                   RETURNING c.*, old.status AS was, r.kind AS run_kind,
                             r.scope AS run_scope, r.full_resync, r.dry_run, r.connection_id),
               refunded AS (  -- a failed chunk's records leave the failed count
                   UPDATE sync_run r SET chunks_failed = r.chunks_failed - 1,
                          failed_count = r.failed_count - jsonb_array_length(claimed.keys)
                   FROM claimed WHERE r.id = claimed.run_id AND claimed.was = 'failed')
               SELECT claimed.*, %(ledgers)s::jsonb ->> run_scope AS ledger,
                      (SELECT json_object_agg(k.key, h.content_hash)
                       FROM jsonb_array_elements_text(claimed.keys) AS k(key)
                       CROSS JOIN LATERAL (
                           SELECT l.content_hash FROM entity_ledger l
                           WHERE l.connection_id = claimed.connection_id
                             AND l.stream = %(ledgers)s::jsonb ->> run_scope
                             AND l.record_key = k.key
                           LIMIT 1) h) AS known
               FROM claimed""",
            {"id": chunk_id, "holder": holder, "ttl": ttl, "ledgers": self._ledgers_json},
        )
        if not rows:
            if self.db.fetch_one("SELECT 1 FROM sync_chunk WHERE id = %s", (chunk_id,)) is None:
                raise ChunkNotFoundError(chunk_id)
            return None
        row = rows[0]
        known = row["known"] or {}
        if ledger_stream is not None and row["ledger"] is None:  # a scope new here
            stream = ledger_stream(row["run_scope"])
            self._learn_ledger(row["run_scope"], stream)
            with self.db.transaction() as cur:  # a later read: complete() checks for moves
                known = ledger.hashes_of_chunk(cur, stream, chunk_id)
        fields = {name: row[name] for name in _CHUNK_FIELDS}
        return ClaimedChunk(
            **fields,
            run_kind=row["run_kind"],
            run_scope=row["run_scope"],
            full_resync=row["full_resync"],
            dry_run=row["dry_run"],
            known=known if ledger_stream is not None else {},
        )

    def _learn_ledger(self, scope: str, stream: str) -> None:
        ledgers = {**self._ledgers, scope: stream}
        self._ledgers, self._ledgers_json = ledgers, json.dumps(ledgers)

    def release(self, chunk: Chunk, due_in: float = 0.0) -> None:
        """Put back a chunk this attempt claimed but must not finish now (its run lost the slot,
        or its task retries later); ``due_in``: seconds until its retry message may run, so
        upkeep does not take that message for lost before then."""
        with self.db.transaction() as cur:
            cur.execute(
                f"""UPDATE sync_chunk SET status = 'pending', {_UNCLAIMED},
                           enqueued_at = now() + make_interval(secs => %(due)s)
                    WHERE {_HELD_BY_ATTEMPT}""",
                {**_attempt(chunk), "due": due_in},
            )

    def complete(
        self, chunk: Chunk, outcome: ChunkOutcome, expected: Mapping[str, str] | None = None
    ) -> str | None:
        """Record a chunk's outcome in one transaction; the run's end status if it ended it.

        Only the attempt that holds the claim can complete the chunk: a duplicate delivery, or
        a holder whose claim expired and was handed on, finds it no longer ``running`` with its
        attempt number and holder and writes nothing (``None``), so counts and rejects are never
        recorded twice.

        With ``expected`` (the ledger hashes the chunk's claim read), an accepted record whose
        ledger row another writer changed since then makes it write nothing
        (``LedgerMovedError``): the caller sends that record again as it is now.

        Raises:
            RunNotRunningError: the run is no longer running (paused, cancelled, failed):
                nothing is written; the caller puts the chunk back.
            LedgerMovedError: see ``expected``.
        """
        deltas = {**outcome_counts(outcome), "chunks_done": 1}
        with self.db.transaction() as cur:
            # The chunk's release, the run's counters and (its last chunk) the run's end: one
            # statement; the run is counted only if the chunk was still this attempt's.
            cur.execute(
                f"""WITH chunk AS (
                       UPDATE sync_chunk SET status = 'done', error = NULL, payload = NULL,
                              {_UNCLAIMED}
                       WHERE {_HELD_BY_ATTEMPT} RETURNING id),
                   run AS ({runs.finish_chunk_sql(deltas, "EXISTS (SELECT 1 FROM chunk)")})
                   SELECT EXISTS (SELECT 1 FROM chunk) AS held, (SELECT status FROM run)""",
                {**_attempt(chunk), **deltas, "run_id": chunk.run_id},
            )
            row = cur.fetchone()
            if not row["held"]:
                return None
            if row["status"] is None:
                raise runs.RunNotRunningError(chunk.run_id)  # rolls the chunk's update back
            write_records(cur, chunk.run_id, outcome, expected)  # LedgerMovedError: rolls back
            return None if row["status"] == "running" else str(row["status"])

    def fail(self, chunk: Chunk, error: str) -> str | None:
        """This attempt gave up on its chunk (retries exhausted): mark it ``failed`` for a later
        resume.

        Only the attempt holding the claim can: a late failure of a replaced holder, or of a
        duplicate delivery, cannot undo another attempt's work. Returns the run's end status
        when this was its last unfinished chunk.
        """
        with self.db.transaction() as cur:
            cur.execute(
                f"""UPDATE sync_chunk SET status = 'failed', error = %(error)s, {_UNCLAIMED}
                    WHERE {_HELD_BY_ATTEMPT}
                    RETURNING run_id, jsonb_array_length(keys) AS size""",
                {**_attempt(chunk), "error": error},
            )
            row = cur.fetchone()
            if row is None:
                return None
            runs.add_counts(cur, row["run_id"], chunks_failed=1, failed_count=row["size"])
            return runs.settle(cur, row["run_id"])

    def reset_unfinished(self, run_id: int) -> int:
        """For ``resume``: failed chunks, and running ones whose claim expired (their holder is
        gone), go back to ``pending``, and their failures leave the counts; how many were reset.

        A chunk a live worker holds is left alone: resetting it would have that worker's
        outcome thrown away and the chunk sent again.
        """
        with self.db.transaction() as cur:
            cur.execute(
                f"""WITH reset AS (
                       UPDATE sync_chunk c SET status = 'pending', {_UNCLAIMED}
                       FROM sync_chunk old
                       WHERE c.id = old.id AND c.run_id = %s
                             AND (c.status = 'failed'
                                  OR (c.status = 'running' AND {_CLAIM_EXPIRED}))
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

    def recover_expired(self) -> list[tuple[int, str]]:
        """Running chunks of running runs whose claim expired (their holder died, froze or was
        cut off): back to ``pending``, marked enqueued now; ``(chunk id, run kind)`` for the
        caller to enqueue.

        A compare-and-set: of two sweepers, only one gets each chunk, so it is enqueued once.
        """
        with self.db.transaction() as cur:
            cur.execute(
                f"""UPDATE sync_chunk c SET status = 'pending', enqueued_at = now(), {_UNCLAIMED}
                    FROM sync_run r
                    WHERE r.id = c.run_id AND r.status = 'running' AND c.status = 'running'
                      AND c.claim_expires_at < now()
                    RETURNING c.id, r.kind""",
            )
            return [(row["id"], row["kind"]) for row in cur.fetchall()]

    def recover_undelivered(self, kinds: Sequence[str], after: float) -> list[tuple[int, str]]:
        """Pending chunks of running runs of ``kinds`` (whose queue is empty) enqueued more than
        ``after`` seconds ago: nobody took their message, so it was lost (a frozen or cut-off
        worker's pending fetch took it); marked enqueued now, ``(chunk id, run kind)`` for the
        caller to enqueue again. A compare-and-set on ``enqueued_at``, like ``recover_expired``.
        """
        with self.db.transaction() as cur:
            cur.execute(
                """UPDATE sync_chunk c SET enqueued_at = now()
                   FROM sync_run r
                   WHERE r.id = c.run_id AND r.status = 'running' AND r.kind = ANY(%(kinds)s)
                     AND c.status = 'pending'
                     AND c.enqueued_at < now() - make_interval(secs => %(after)s)
                   RETURNING c.id, r.kind""",
                {"kinds": list(kinds), "after": after},
            )
            return [(row["id"], row["kind"]) for row in cur.fetchall()]

    def recover_stale(self, run_id: int, stale_after: timedelta) -> list[int]:
        """Pending chunks of a run whose task message must have been lost: the run as a whole
        stood still for ``stale_after`` (a long queue is not mistaken for a loss); also running
        chunks claimed without an expiry (by a version before claims) that long ago.

        Returned chunks are ``pending`` and marked enqueued now (the caller enqueues them).
        """
        with self.db.transaction() as cur:
            cur.execute(
                f"""UPDATE sync_chunk c SET status = 'pending', enqueued_at = now(), {_UNCLAIMED}
                    FROM sync_run r
                    WHERE r.id = c.run_id AND c.run_id = %(run)s AND r.status = 'running'
                      AND r.updated_at < now() - %(stale)s
                      AND ((c.status = 'running' AND c.claim_expires_at IS NULL
                            AND c.updated_at < now() - %(stale)s)
                           OR (c.status = 'pending'
                               AND coalesce(c.enqueued_at, c.updated_at) < now() - %(stale)s))
                    RETURNING c.id""",
                {"run": run_id, "stale": stale_after},
            )
            return [row["id"] for row in cur.fetchall()]


_CHUNK_FIELDS = tuple(f.name for f in fields(Chunk))

_UNCLAIMED = "claimed_by = NULL, claim_expires_at = NULL"

_HELD_BY_ATTEMPT = """id = %(id)s AND status = 'running' AND attempts = %(attempts)s
    AND claimed_by IS NOT DISTINCT FROM %(holder)s"""
"""The chunk is still held by this attempt: running, same attempt number, same holder."""

_CLAIM_EXPIRED = "(c.claim_expires_at IS NULL OR c.claim_expires_at < now())"


def _attempt(chunk: Chunk) -> dict[str, Any]:
    return {"id": chunk.id, "attempts": chunk.attempts, "holder": chunk.claimed_by}


# -- inside the caller's transaction -----------------------------------------------------------


def insert_chunks(
    cur: Any,
    run_id: int,
    key_lists: Sequence[Sequence[str]],
    payloads: Sequence[Sequence[dict[str, Any]] | None] | None,
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
                json.dumps(list(payload)) if (payload := payloads and payloads[i]) else None,
            )
            for i, keys in enumerate(key_lists)
        ],
        template="(%s, %s, %s::jsonb, %s::json, now())",
        fetch=True,
    )
    return [row["id"] for row in sorted(rows, key=lambda r: r["seq"])]


def write_outcome(
    cur: Any,
    run_id: int,
    outcome: ChunkOutcome,
    *,
    while_running: bool = False,
    expected: Mapping[str, str] | None = None,
    **counts: int,
) -> bool:
    """Record an outcome against a run: the run's counters (plus ``counts``, e.g.
    ``chunks_done=1``), then ``write_records``. With ``while_running``, only if the run is
    running (False, and nothing written, otherwise).

    Raises:
        LedgerMovedError: see ``write_records``; the caller's transaction must roll back.
    """
    added = runs.add_counts(
        cur,
        run_id,
        while_status="running" if while_running else None,
        **outcome_counts(outcome),
        **counts,
    )
    if not added:
        return False
    write_records(cur, run_id, outcome, expected)
    return True


def outcome_counts(outcome: ChunkOutcome) -> dict[str, int]:
    """What an outcome adds to its run's counters (``runs.COUNTERS``)."""
    guests = outcome.guests or ChunkOutcome("profiles")
    return {
        "read_count": outcome.read,
        "sent_count": len(outcome.accepted),
        "skipped_count": outcome.skipped,
        "rejected_count": len({r.record_key for r in outcome.rejections}),
        "would_create": outcome.would_create,
        "would_update": outcome.would_update,
        "guest_sent_count": len(guests.accepted),
        "guest_skipped_count": guests.skipped,
        "guest_rejected_count": len({r.record_key for r in guests.rejections}),
    }


def write_records(
    cur: Any, run_id: int, outcome: ChunkOutcome, expected: Mapping[str, str] | None = None
) -> None:
    """Write an outcome's ledger hashes, rejects and warnings (and those of the guest profiles
    sent with it) against a run, counting newly warned records.

    ``expected`` (the ledger hashes the outcome's diff read for its own stream): an accepted
    record whose ledger row another writer changed since then raises ``LedgerMovedError``; the
    caller's transaction must roll back (what was written is then undone).
    """
    guests = outcome.guests or ChunkOutcome("profiles")
    ledger.record_accepted(cur, guests.stream, guests.accepted, run_id)
    moved = ledger.record_accepted(cur, outcome.stream, outcome.accepted, run_id, expected)
    if moved:
        raise LedgerMovedError(moved)
    rejects.record(cur, run_id, [*guests.rejections, *outcome.rejections])
    warned = warnings.record(cur, run_id, [*guests.warnings, *outcome.warnings])
    if warned:  # known only once written: a record warned before is not counted again
        runs.add_counts(cur, run_id, warned_count=warned)
