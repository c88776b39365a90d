"""Sync runs (``sync_run``): what was asked, where it is, and its counts.

Run state lives in PostgreSQL, not in the broker, so a lost task message or a dead worker loses
nothing: every status change is a conditional ``UPDATE`` (compare-and-set), safe to repeat, and
tasks carry ids only. The counters follow the chunk rows in the same transaction (the functions
taking a cursor run inside the caller's): ``chunks_total`` counts the run's chunks,
``chunks_failed`` the ones *currently* ``failed`` (a failed chunk claimed again leaves it),
``chunks_done`` the ones completed.

A run's planning is claimed like a chunk (``claim_planning``): one producer at a time holds it,
its worker's heartbeat extends it, and upkeep hands an expired claim on (``recover_planning``).
Planning writes check both the planning cursor and the claim's holder.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from psycopg2.extras import Json

from etl.state.db import Connections, check_choice, from_row

__all__ = [
    "COUNTERS",
    "END_STATUSES",
    "KINDS",
    "RUN_STATUSES",
    "SCOPES",
    "PlanningCursor",
    "PlanningMovedError",
    "Run",
    "RunHealth",
    "RunNotFoundError",
    "RunNotRunningError",
    "Runs",
    "add_counts",
    "add_planned",
    "finish_chunk_sql",
    "move_planning_cursor",
    "settle",
]

KINDS = ("backfill", "incremental", "replay", "realtime", "selection")
SCOPES = ("customers_created", "customers_updated", "orders", "products")
RUN_STATUSES = ("queued", "planning", "running", "paused", "done", "failed", "cancelled")
END_STATUSES = ("done", "failed", "cancelled")
COUNTERS = (
    "read_count",
    "sent_count",
    "skipped_count",
    "rejected_count",
    "failed_count",
    "would_create",
    "would_update",
    "chunks_done",
    "chunks_failed",
    "warned_count",
    "guest_sent_count",
    "guest_skipped_count",
    "guest_rejected_count",
)
"""The ``sync_run`` columns ``add_counts`` may change."""


class RunNotFoundError(LookupError):
    """No run has this id."""


class RunNotRunningError(RuntimeError):
    """The run left ``running`` (paused, cancelled, ended) before a write that needs it running;
    nothing was written."""


class PlanningMovedError(RuntimeError):
    """The planning cursor is not where this producer left it: another producer of the same run
    (a redelivered or re-enqueued task) is ahead, so this one must stop writing."""


PlanningCursor = tuple[datetime | None, int]
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
    warned_count: int
    guest_sent_count: int
    guest_skipped_count: int
    guest_rejected_count: int
    planning_claimed_by: str | None
    """The producer (worker process token) planning the run now, until its claim expires."""
    planning_claim_expires_at: datetime | None
    connection_id: int
    """The ``etl_connection`` row (VTEX account and Synerise workspace) the run belongs to."""


@dataclass(frozen=True)
class RunHealth:
    """What ``etl.sync.runs.health`` needs to know about a run, read at one instant."""

    status: str
    chunks_failed: int
    expired_claims: int
    """Running chunks whose claim expired (or that carry none)."""
    planning_done: bool
    producer_alive: bool
    """A producer holds a live planning claim."""


class Runs:
    """Run rows: create, read, move between statuses, plan, settle. Shared between threads.

    New runs belong to ``connection_id``, and so do the runs ``find`` and ``waiting`` list (the
    slots are per connection); a run read or moved by id may be any connection's.
    """

    def __init__(self, db: Connections, connection_id: int) -> None:
        self.db = db
        self.connection_id = connection_id

    def create(
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
        check_choice(kind, KINDS, "kind")
        check_choice(scope, SCOPES, "scope")
        if window_to < window_from:
            raise ValueError("window_to is before window_from")
        with self.db.transaction() as cur:
            cur.execute(
                """INSERT INTO sync_run (kind, scope, window_from, window_to, dry_run,
                                         full_resync, config, connection_id)
                   VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING id""",
                (
                    kind,
                    scope,
                    window_from,
                    window_to,
                    dry_run,
                    full_resync,
                    Json(config or {}),
                    self.connection_id,
                ),
            )
            return int(cur.fetchone()["id"])

    def discard(self, run_id: int) -> bool:
        """Delete a run that never started working (no chunk planned, or for a selection,
        planned at creation, none claimed): ``sync start`` could not send its first task. True
        if it was deleted."""
        with self.db.transaction() as cur:
            cur.execute(
                """DELETE FROM sync_run r WHERE id = %s AND status IN ('queued', 'running')
                   AND (chunks_total = 0 OR (kind = 'selection' AND NOT EXISTS (
                       SELECT 1 FROM sync_chunk c WHERE c.run_id = r.id AND c.attempts > 0)))""",
                (run_id,),
            )
            return bool(cur.rowcount == 1)

    def health(self, run_id: int) -> RunHealth:
        """The run's status, failed chunks, expired chunk claims and producer, at one instant.

        Raises:
            RunNotFoundError: no such run.
        """
        row = self.db.fetch_one(
            """SELECT r.status, r.chunks_failed, r.planning_done,
                      coalesce(r.planning_claim_expires_at > now(), false) AS producer_alive,
                      (SELECT count(*) FROM sync_chunk c
                       WHERE c.run_id = r.id AND c.status = 'running'
                         AND (c.claim_expires_at IS NULL OR c.claim_expires_at < now())
                      ) AS expired_claims
               FROM sync_run r WHERE r.id = %s""",
            (run_id,),
        )
        if row is None:
            raise RunNotFoundError(run_id)
        return from_row(RunHealth, row)

    def get(self, run_id: int) -> Run:
        """The run with its counts.

        Raises:
            RunNotFoundError: no such run.
        """
        row = self.db.fetch_one("SELECT * FROM sync_run WHERE id = %s", (run_id,))
        if row is None:
            raise RunNotFoundError(run_id)
        return from_row(Run, row)

    def status(self, run_id: int) -> str:
        """Just the status: checked before every write, so kept cheap.

        Raises:
            RunNotFoundError: no such run.
        """
        row = self.db.fetch_one("SELECT status FROM sync_run WHERE id = %s", (run_id,))
        if row is None:
            raise RunNotFoundError(run_id)
        return str(row["status"])

    def records_waiting(self, run_id: int) -> int:
        """Records planned and not yet read or failed: how far planning is ahead of the chunks.

        Raises:
            RunNotFoundError: no such run.
        """
        row = self.db.fetch_one(
            "SELECT records_total - read_count - failed_count AS n FROM sync_run WHERE id = %s",
            (run_id,),
        )
        if row is None:
            raise RunNotFoundError(run_id)
        return int(row["n"])

    def find(
        self, limit: int | None = None, status: str | None = None, every_connection: bool = False
    ) -> list[Run]:
        """The connection's runs (with ``every_connection``, every connection's) newest first,
        optionally only those in ``status``; all of them without a limit."""
        if status is not None:
            check_choice(status, RUN_STATUSES, "status")
        with self.db.transaction() as cur:
            cur.execute(
                """SELECT * FROM sync_run
                   WHERE (%(status)s::text IS NULL OR status = %(status)s)
                     AND (%(every)s OR connection_id = %(connection)s)
                   ORDER BY id DESC LIMIT %(limit)s""",
                {
                    "status": status,
                    "limit": limit,
                    "every": every_connection,
                    "connection": self.connection_id,
                },
            )
            return [from_row(Run, row) for row in cur.fetchall()]

    def waiting(self) -> list[Run]:
        """The connection's queued and paused runs, oldest first: who gets its next free slot."""
        with self.db.transaction() as cur:
            cur.execute(
                """SELECT * FROM sync_run
                   WHERE connection_id = %s AND status IN ('queued', 'paused')
                   ORDER BY created_at, id""",
                (self.connection_id,),
            )
            return [from_row(Run, row) for row in cur.fetchall()]

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
        check_choice(to_status, RUN_STATUSES, "status")
        sources = list(from_statuses)
        for status in sources:
            check_choice(status, RUN_STATUSES, "status")
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

    def advance_planning(
        self,
        run_id: int,
        cursor: PlanningCursor,
        expected: PlanningCursor | None = None,
        holder: str | None = None,
    ) -> None:
        """Move the planning cursor: records before it are chunked already.

        Raises:
            RunNotFoundError: no such run.
            PlanningMovedError: ``expected`` was given and the cursor is elsewhere, or
                ``holder`` was given and does not hold the planning claim.
        """
        with self.db.transaction() as cur:
            move_planning_cursor(cur, run_id, cursor, expected, holder)

    def mark_planning_done(
        self, run_id: int, expected: PlanningCursor | None = None, holder: str | None = None
    ) -> str | None:
        """Record that every chunk of the run exists (and drop the planning claim); return the
        end status if that ended the run.

        With ``expected`` (and ``holder``), only while the cursor is still there (and the claim
        is ``holder``'s), see ``Chunks.append``.

        Raises:
            RunNotFoundError: no such run.
            PlanningMovedError: the cursor moved or the claim changed hands.
        """
        with self.db.transaction() as cur:
            cur.execute(
                f"""UPDATE sync_run SET planning_done = true, {_UNCLAIMED}
                    WHERE {_CURSOR_IS}""",
                _cursor_args(run_id, expected, holder),
            )
            if cur.rowcount == 0:
                _explain_stale_cursor(cur, run_id)
            return settle(cur, run_id)

    def claim_planning(self, run_id: int, holder: str, ttl: float) -> Run | None:
        """Take the planning of a running run for ``holder`` for ``ttl`` seconds; the run, or
        ``None`` when there is nothing to plan or another producer's claim is live."""
        row = self.db.fetch_one(
            """UPDATE sync_run SET planning_claimed_by = %(holder)s,
                      planning_claim_expires_at = now() + make_interval(secs => %(ttl)s)
               WHERE id = %(id)s AND status = 'running' AND NOT planning_done
                 AND (planning_claimed_by IS NULL OR planning_claimed_by = %(holder)s
                      OR planning_claim_expires_at < now())
               RETURNING *""",
            {"id": run_id, "holder": holder, "ttl": ttl},
        )
        return from_row(Run, row) if row is not None else None

    def release_planning(
        self, run_id: int, holder: str, expect_within: float | None = None
    ) -> None:
        """Drop ``holder``'s planning claim (its producer stopped or handed over); with
        ``expect_within``, a producer message was (or is about to be) sent and should claim the
        planning within that many seconds (see ``expect_producer``)."""
        with self.db.transaction() as cur:
            cur.execute(
                """UPDATE sync_run SET planning_claimed_by = NULL,
                          planning_claim_expires_at =
                              now() + make_interval(secs => %(within)s::float8)
                   WHERE id = %(id)s AND planning_claimed_by = %(holder)s""",
                {"id": run_id, "holder": holder, "within": expect_within},
            )

    def expect_producer(self, run_id: int, within: float) -> None:
        """A producer message is about to be sent: it should claim the planning within
        ``within`` seconds; after that, and with its queue empty, upkeep takes it for lost."""
        with self.db.transaction() as cur:
            cur.execute(
                """UPDATE sync_run
                   SET planning_claim_expires_at = now() + make_interval(secs => %s)
                   WHERE id = %s AND planning_claimed_by IS NULL AND NOT planning_done""",
                (within, run_id),
            )

    def recover_planning(self, idle_kinds: Sequence[str], within: float) -> list[tuple[int, str]]:
        """Running runs whose producer's claim expired (it died, froze or was cut off), or whose
        expected producer never came while its queue is empty (runs of ``idle_kinds``: the
        message was lost): a new producer is expected ``within`` seconds; ``(run id, kind)`` for
        the caller to enqueue it.

        A compare-and-set: of two sweepers, only one gets each run.
        """
        with self.db.transaction() as cur:
            cur.execute(
                """UPDATE sync_run SET planning_claimed_by = NULL,
                          planning_claim_expires_at = now() + make_interval(secs => %(within)s)
                   WHERE status = 'running' AND NOT planning_done
                     AND planning_claim_expires_at < now()
                     AND (planning_claimed_by IS NOT NULL OR kind = ANY(%(idle)s))
                   RETURNING id, kind""",
                {"within": within, "idle": list(idle_kinds)},
            )
            return [(row["id"], row["kind"]) for row in cur.fetchall()]

    def settle(self, run_id: int) -> str | None:
        """End a running run whose planning is done and every chunk finished; the end status."""
        with self.db.transaction() as cur:
            return settle(cur, run_id)

    def planning_stalled(self, run_id: int, stale_after: timedelta) -> bool:
        """True when a run still planning has not moved for ``stale_after`` (producer lost)."""
        stalled = self.db.fetch_one(
            """SELECT 1 FROM sync_run WHERE id = %s AND NOT planning_done
               AND updated_at < now() - %s""",
            (run_id, stale_after),
        )
        return stalled is not None


# -- inside the caller's transaction -----------------------------------------------------------


def add_counts(cur: Any, run_id: int, while_status: str | None = None, **deltas: int) -> bool:
    """Add to a run's ``COUNTERS`` (a negative delta takes away), e.g. ``read_count=3``; with
    ``while_status``, only if the run is in that status. True if the run was updated."""
    deltas = _deltas(deltas)
    if not deltas and while_status is None:
        return True
    cur.execute(
        f"""UPDATE sync_run SET {_assignments(deltas) or "status = status"}
            WHERE id = %(run_id)s AND (%(status)s::text IS NULL OR status = %(status)s)""",
        {**deltas, "run_id": run_id, "status": while_status},
    )
    return bool(cur.rowcount == 1)


def finish_chunk_sql(deltas: dict[str, int], only_if: str) -> str:
    """An ``UPDATE sync_run`` (parameters: ``run_id`` and the ``deltas``) that adds a finished
    chunk's ``deltas`` (its ``chunks_done`` or ``chunks_failed`` among them) to a running run
    and, when that was its last unfinished chunk of a planned run, ends it as ``settle`` does,
    in the same statement; it returns the run's status (``running`` unless it ended).
    ``only_if`` is a further SQL condition (the chunk was still held)."""
    done = f"chunks_done + {deltas.get('chunks_done', 0):d}"
    failed = f"chunks_failed + {deltas.get('chunks_failed', 0):d}"
    return f"""UPDATE sync_run SET {_assignments(deltas)},
                   {_ending(f"planning_done AND {done} + {failed} = chunks_total", failed)}
               WHERE id = %(run_id)s AND status = 'running' AND {only_if}
               RETURNING status"""


def _deltas(deltas: dict[str, int]) -> dict[str, int]:
    unknown = sorted(set(deltas) - set(COUNTERS))
    if unknown:
        raise ValueError(f"not a run counter: {', '.join(unknown)}")
    return {name: int(value) for name, value in deltas.items() if value}


def _assignments(deltas: dict[str, int]) -> str:
    return ", ".join(f"{name} = {name} + %({name})s" for name in _deltas(deltas))


def _ending(finished: str, failed: str) -> str:
    """``SET`` clauses that end the run when ``finished`` (SQL) holds: ``failed`` if ``failed``
    (its failed chunks, SQL) is above 0, ``done`` otherwise."""
    return f"""status = CASE WHEN NOT ({finished}) THEN status
                             WHEN {failed} > 0 THEN 'failed' ELSE 'done' END,
               error = CASE WHEN ({finished}) AND {failed} > 0
                            THEN ({failed}) || ' chunk(s) failed after retries; run '
                                 || '`vtex-synerise sync resume ' || id || '`'
                            ELSE error END,
               finished_at = CASE WHEN ({finished}) THEN now() ELSE finished_at END"""


def add_planned(cur: Any, run_id: int, chunks: int, records: int) -> int:
    """Count newly planned chunks and records; return the run's new ``chunks_total``.

    The run row stays locked until the caller commits, so concurrent planners get distinct,
    gap-free chunk sequence numbers (``chunks_total - chunks + 1`` onwards).

    Raises:
        RunNotFoundError: no such run.
    """
    cur.execute(
        """UPDATE sync_run SET chunks_total = chunks_total + %s,
                  records_total = records_total + %s
           WHERE id = %s RETURNING chunks_total""",
        (chunks, records, run_id),
    )
    row = cur.fetchone()
    if row is None:
        raise RunNotFoundError(run_id)
    return int(row["chunks_total"])


def move_planning_cursor(
    cur: Any,
    run_id: int,
    cursor: PlanningCursor,
    expected: PlanningCursor | None,
    holder: str | None = None,
) -> None:
    """Move the planning cursor (locking the run row), only from ``expected`` if given, and
    only while ``holder`` holds the planning claim if given.

    Raises:
        RunNotFoundError: no such run.
        PlanningMovedError: the cursor is not at ``expected``, or the claim is not ``holder``'s.
    """
    cur.execute(
        f"""UPDATE sync_run SET planning_cursor = %(new_at)s, planning_offset = %(new_offset)s
            WHERE {_CURSOR_IS}""",
        {**_cursor_args(run_id, expected, holder), "new_at": cursor[0], "new_offset": cursor[1]},
    )
    if cur.rowcount == 0:
        _explain_stale_cursor(cur, run_id)


def settle(cur: Any, run_id: int) -> str | None:
    """End the run if planning is done and no chunk is unfinished; the end status or None.

    Runs in the caller's transaction, after its counter updates, so exactly one transaction
    (the one that finishes the last chunk) sees the run complete.
    """
    cur.execute(
        f"""UPDATE sync_run SET {_ending("true", "chunks_failed")}
            WHERE id = %s AND status = 'running' AND planning_done
              AND chunks_done + chunks_failed = chunks_total
            RETURNING status""",
        (run_id,),
    )
    row = cur.fetchone()
    return str(row["status"]) if row else None


_CURSOR_IS = """id = %(id)s AND (NOT %(check)s OR (NOT planning_done
    AND planning_cursor IS NOT DISTINCT FROM %(at)s AND planning_offset = %(offset)s))
    AND (%(holder)s::text IS NULL OR planning_claimed_by = %(holder)s)"""
"""Selects the run, and with ``check`` only while its planning cursor is at ``at``/``offset``,
and with ``holder`` only while that producer holds the planning claim."""

_UNCLAIMED = "planning_claimed_by = NULL, planning_claim_expires_at = NULL"


def _cursor_args(
    run_id: int, expected: PlanningCursor | None, holder: str | None = None
) -> dict[str, Any]:
    at, offset = expected if expected is not None else (None, 0)
    return {
        "id": run_id,
        "check": expected is not None,
        "at": at,
        "offset": offset,
        "holder": holder,
    }


def _explain_stale_cursor(cur: Any, run_id: int) -> None:
    """Raise why a cursor update matched no row: no such run, or the cursor moved."""
    cur.execute("SELECT 1 FROM sync_run WHERE id = %s", (run_id,))
    if cur.fetchone() is None:
        raise RunNotFoundError(run_id)
    raise PlanningMovedError(
        f"run {run_id}: the planning cursor moved or its planning claim changed hands; "
        "another producer is ahead"
    )
