"""Run lifecycle: start, queue for a slot, produce, finish, cancel, resume, replay, maintain.

At most ``SYNC_MAX_ACTIVE_RUNS`` (two) runs are active, enforced by ``etl.lease.SlotLease``: a
Redis lease per run, token ``run:{id}``, that expires unless renewed. Each worker process's
heartbeat (``etl.sync.heartbeat``) renews the leases of the runs it works on, and each worker's
maintenance loop renews the leases of running runs while their tasks wait in the queue. When no
worker is left, nobody renews, and the slot frees itself after the TTL. A task whose run lost
its lease raises ``SlotLostError``: it writes nothing more, puts its chunk back, and the run is
``paused`` until a slot frees.

Work has leases of its own: a chunk task claims its chunk, and a producer its run's planning,
for ``SYNC_CLAIM_TTL`` seconds that the heartbeat extends. When a holder dies, freezes or is cut
off, its claims expire and ``maintain`` (every worker's upkeep, and beat) hands the work to
another worker, once, while the run goes on.

A run that cannot get a slot stays ``queued``; whoever frees a slot (the finishing chunk,
``cancel``, or the maintenance loop) starts the oldest queued or paused run. Nothing blocks a
worker while it waits.

Status flow::

    queued ──> running ──> done
       │          │  └───> failed ──(resume)──> queued
       │          └──> paused ──(slot frees)──> running
       └──────────────> cancelled  (from queued, running or paused)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from etl.errors import (
    BudgetExhaustedError,
    ClaimLostError,
    FatalError,
    NetworkError,
    PausedError,
    RetriableError,
    RunStoppedError,
    SlotLostError,
)
from etl.state.chunks import ChunkNotFoundError, ChunkOutcome, ClaimedChunk, LedgerMovedError
from etl.state.runs import PlanningMovedError, Run, RunNotRunningError
from etl.sync.engine import Engine, run_token
from etl.sync.pipeline import map_diff_send
from etl.sync.producer import PlanningSliceEnded, plan_chunks
from etl.sync.streams import Stream
from etl.sync.windows import Window

__all__ = [
    "RETRY_WITHIN",
    "NoFreeSlotError",
    "RunStoppedError",
    "activate_waiting",
    "cancel",
    "health",
    "maintain",
    "replay",
    "resume",
    "run_chunk",
    "run_producer",
    "start",
    "start_incremental",
]

log = logging.getLogger(__name__)

TWO_YEARS = timedelta(days=730)
"""VTEX OMS only serves orders from the last two years."""

MOVED_ROUNDS = 3
"""Times a chunk sends again the records a realtime update changed meanwhile before it gives
up for now (retried later, like a retriable failure)."""

RETRY_WITHIN = 60.0
"""The longest wait before a chunk or producer task that hit a retriable error runs again
(``workers.tasks.sync`` caps its backoff at it). Until then its message sits in a worker, so
upkeep does not count it as lost."""

TASK_RECORDS = 1000
"""Records whose chunks share one task message when the listing carries the records (Master
Data search): such a chunk is quick, CPU-bound work, and Celery's own cost per task (about
2 ms of CPU) is paid once for them. Chunks that read every record from VTEX (orders) go one per
task, so the workers share a rate-bound run evenly."""

PLANNING_SLICE = 300.0
"""Seconds one producer task plans before it hands over to a fresh one (well under the task
soft time limit, ``celeryconfig.task_soft_time_limit``)."""


class NoFreeSlotError(PausedError):
    """Both slots are taken and the caller asked not to queue (``--no-queue``)."""


@dataclass(frozen=True)
class StartRequest:
    """What ``sync start`` asks for: the records of a date range (``window``), or with
    ``keys`` the named records only (a ``selection`` run, planned whole at once)."""

    scope: str
    window: Window | None = None
    dry_run: bool = False
    full_resync: bool = False
    kind: str = "backfill"
    queue_if_busy: bool = True
    keys: tuple[str, ...] = ()
    """Record keys (``OrdersStream``/``CustomersStream`` ``fetch`` says which forms)."""


token = run_token
"""The lease token of a run: any process working on the run may renew it."""


def start(engine: Engine, request: StartRequest) -> Run:
    """Record a run and start it if a slot is free; otherwise queue it (or refuse).

    Nothing is left behind unless the run could take or queue its slot: Redis (the lease) is
    asked before anything is written, and a run that cannot send its first task (the broker is
    unreachable) is removed again before the error (``NetworkError``) propagates.
    """
    engine.lease.free_slots()  # Redis unreachable: NetworkError, nothing recorded
    run_id = _record(engine, request)
    # Oldest first: a run that has been waiting gets a free slot before this new one.
    try:
        activate_waiting(engine)
    except Exception:
        engine.lease.release(token(run_id))
        engine.store.runs.discard(run_id)
        raise
    run = engine.store.runs.get(run_id)
    if run.status == "queued" and not request.queue_if_busy:
        if engine.store.runs.transition(
            run_id, "cancelled", ("queued",), error="refused: no free slot (--no-queue)"
        ):
            raise NoFreeSlotError(
                f"run {run_id} refused: {engine.lease.limit} syncs are already active"
            )
        run = engine.store.runs.get(run_id)  # a slot freed meanwhile and the run took it
    return run


def _record(engine: Engine, request: StartRequest) -> int:
    """Write the run a request asks for; its id."""
    if request.keys:
        return engine.store.replays.create_selection(
            request.scope,
            list(dict.fromkeys(request.keys)),  # each record once, in the order given
            engine.chunk_size(request.scope),
            engine.settings.snapshot(),
            dry_run=request.dry_run,
            full_resync=request.full_resync,
        )
    if request.window is None:
        raise ValueError("a run needs a window or keys")
    return engine.store.runs.create(
        kind=request.kind,
        scope=request.scope,
        window_from=request.window.start,
        window_to=request.window.end,
        dry_run=request.dry_run,
        full_resync=request.full_resync,
        config=engine.settings.snapshot(),
    )


def horizon_warning(scope: str, window: Window, now: datetime | None = None) -> str | None:
    """Warn when an orders range reaches past what VTEX OMS keeps."""
    now = now or datetime.now(UTC)
    if scope == "orders" and window.start < now - TWO_YEARS:
        return (
            "VTEX OMS only serves orders from the last two years; "
            f"orders before {(now - TWO_YEARS).date()} need a VTEX support request"
        )
    return None


def run_producer(
    engine: Engine,
    run_id: int,
    *,
    final_attempt: bool = True,
    planning_slice: float = PLANNING_SLICE,
) -> None:
    """Body of the ``etl.produce`` task.

    The producer first claims the run's planning (one producer at a time; a duplicate message
    finds the claim live and returns). A retriable error propagates so the task retries it; on
    the final attempt (or a fatal error) the run fails with the reason, and ``resume`` continues
    planning where it stopped. After ``planning_slice`` seconds the producer enqueues its
    continuation and returns. The claim is let go before any continuation or retry is sent.
    """
    heartbeat = engine.heartbeat
    holder = heartbeat.token
    run = engine.store.runs.claim_planning(run_id, holder, engine.settings.sync_claim_ttl)
    if run is None:  # not running, planned already, planned by a live producer, or unknown
        return
    ttl = engine.settings.sync_claim_ttl

    def let_go(next_producer_within: float | None = None) -> None:
        heartbeat.drop_planning(run_id)
        engine.store.runs.release_planning(run_id, holder, next_producer_within)

    stream, chunk_size = engine.stream(run.scope), engine.chunk_size(run.scope)
    per_task = max(1, TASK_RECORDS // chunk_size) if stream.carries_payload else 1
    try:
        heartbeat.hold_planning(run_id)  # may renew the run's lease: Redis may be away
        final = plan_chunks(
            run_id,
            engine.store,
            stream,
            chunk_size,
            lambda chunk_ids: engine.enqueue_chunks(chunk_ids, run.kind, per_task=per_task),
            lambda: heartbeat.check(run_id, planning=True),
            deadline=time.monotonic() + planning_slice,
            holder=holder,
            listed=engine.listed,
        )
    except PlanningSliceEnded:
        let_go(next_producer_within=ttl)
        engine.enqueue_producer(run_id)  # continues from the cursor
        return
    except (ClaimLostError, PlanningMovedError) as moved:
        heartbeat.drop_planning(run_id)  # the planning is another producer's now
        log.info("produce: %s; this producer stops", moved)
        return
    except (SlotLostError, RunStoppedError) as signal:
        let_go()
        _on_paused(engine, run_id, signal)
        return
    except (RetriableError, BudgetExhaustedError) as error:
        let_go(next_producer_within=RETRY_WITHIN + ttl if not final_attempt else None)
        if not final_attempt:
            raise
        fail_run(engine, run_id, f"planning stopped: {error}; run `sync resume {run_id}`")
        return
    except FatalError as error:
        let_go()
        fail_run(engine, run_id, f"planning failed: {error}")
        return
    except Exception as error:  # a bug or an outage: fail loudly, never stall silently
        let_go()
        fail_run(
            engine,
            run_id,
            f"planning failed: {type(error).__name__}: {error}; run `sync resume {run_id}`",
        )
        raise
    heartbeat.drop_planning(run_id)  # planning is done: marking it done dropped the claim
    if final:
        _on_finished(engine, run_id)


def run_chunk(engine: Engine, chunk_id: int, *, final_attempt: bool = True) -> str:
    """One chunk of an ``etl.process_chunk`` task; returns what happened (for logs and tests).

    The chunk's path: claim it for this worker process (``Chunks.claim``: one transaction that
    also reads its run's settings and the ledger hashes of its records), take the documents its
    listing returned out of Redis (``etl.state.listed``; past ``SYNC_REDIS_LISTED_RECORDS`` its
    row carries them), fetch what they lack from VTEX (``Stream.fetch``), map, diff against
    those hashes and send to Synerise (``pipeline.map_diff_send``), then record the outcome in
    one transaction (``Chunks.complete``, which writes only for this claim and only while the
    run is running; a record a realtime update recorded meanwhile is first sent again as it is
    now: ``_complete``).
    Between steps the task checks what its process's heartbeat knows (run running, slot held,
    claim still ours), which costs no round trip.

    A retriable error puts the chunk back and propagates so the task retries it with backoff;
    on the final attempt the chunk is marked ``failed`` (``resume`` retries it). A fatal error
    (credentials, permissions) fails the whole run: every other chunk would fail the same way.
    """
    heartbeat = engine.heartbeat
    try:
        chunk = engine.store.chunks.claim(
            chunk_id,
            heartbeat.token,
            engine.settings.sync_claim_ttl,
            ledger_stream=lambda scope: engine.stream(scope).ledger,
        )
    except ChunkNotFoundError:
        log.warning("chunk %s does not exist (a message from another database?)", chunk_id)
        return "missing"
    if chunk is None:
        return "skipped"
    try:
        return _process(engine, chunk, final_attempt)
    finally:
        heartbeat.drop_chunk(chunk.id)


def _process(engine: Engine, chunk: ClaimedChunk, final_attempt: bool) -> str:
    """The claimed chunk's path (``run_chunk``) and what each failure means for it."""
    run_id = chunk.run_id

    def alive() -> None:
        engine.heartbeat.check(run_id, chunk.id)

    try:
        engine.heartbeat.hold_chunk(chunk.id, run_id)
        alive()
        stream = engine.stream(chunk.run_scope)
        stored = chunk.payload
        if stored is None and stream.carries_payload:  # in Redis, unless it is gone
            stored = engine.listed.take(chunk.id, chunk.keys, stream.key_of)
        fetched = stream.fetch(chunk.keys, stored)
        read: dict[str, str] = {}  # the ledger hashes the diff went by

        def known(name: str, keys: Sequence[str]) -> Mapping[str, str]:
            hashes = _known_hashes(engine, chunk, stream.ledger, name, keys)
            if name == stream.ledger:
                read.update(hashes)
            return hashes

        outcome = map_diff_send(
            fetched,
            stream,
            engine.synerise,
            known,
            full_resync=chunk.full_resync or _sends_all(chunk),
            dry_run=chunk.dry_run,
            check_alive=alive,
        )
        alive()
        final = _complete(engine, chunk, stream, outcome, read, alive)
    except ClaimLostError as lost:  # another worker has it now: write nothing
        log.warning("%s; this attempt stops", lost)
        return "superseded"
    except (SlotLostError, RunStoppedError, RunNotRunningError) as signal:
        engine.store.chunks.release(chunk)
        _on_paused(engine, run_id, signal)
        return "paused"
    except (RetriableError, BudgetExhaustedError) as error:
        # A long-blocked rate budget is waited out like a 429: the chunk goes back and the
        # task retries later instead of holding a worker.
        if not final_attempt:
            engine.store.chunks.release(chunk, due_in=RETRY_WITHIN)
            raise
        _fail_chunk(engine, chunk, str(error))
        return "failed"
    except FatalError as error:
        _fail_chunk(engine, chunk, str(error))
        fail_run(engine, run_id, str(error))
        return "failed"
    except Exception as error:  # a bug or an outage: the chunk fails (resume retries it)
        _fail_chunk(engine, chunk, f"{type(error).__name__}: {error}")
        raise
    if final:
        _on_finished(engine, run_id)
    return "done"


def _sends_all(chunk: ClaimedChunk) -> bool:
    """Whether this attempt sends every record of its chunk whatever the ledger says: an
    earlier attempt may have sent some and died (SIGKILL, lost claim, retriable failure)
    before it recorded anything, and such a send can land after a realtime update that was
    recorded meanwhile, leaving Synerise older than the ledger says. Sending them again as they
    are now puts Synerise back in step (transactions keep their ``eventSalt``: no duplicate)."""
    return chunk.attempts > 1 and not chunk.dry_run


def _complete(
    engine: Engine,
    chunk: ClaimedChunk,
    stream: Stream,
    outcome: ChunkOutcome,
    read: dict[str, str],
    alive: Callable[[], None],
) -> str | None:
    """``Chunks.complete``, unless a realtime update recorded some of the chunk's records
    after the diff read their hashes: the chunk's send (read before that update, sent after
    it) may have put an older state in Synerise. Those records are read again and sent as they
    are now, then the chunk completes (``MOVED_ROUNDS`` tries; then it is retried later)."""
    for _ in range(MOVED_ROUNDS):
        try:
            return engine.store.chunks.complete(chunk, outcome, expected=read)
        except LedgerMovedError as moved:
            log.info("chunk %s: %s; sending them again as they are now", chunk.id, moved)
            fresh = map_diff_send(
                stream.fetch(sorted(moved.moved), None),
                stream,
                engine.synerise,
                lambda name, keys: {},
                full_resync=True,
                check_alive=alive,
            )
            for key in moved.moved:
                outcome.accepted.pop(key, None)
            outcome.accepted.update(fresh.accepted)
            outcome.rejections.extend(fresh.rejections)
            read.update({key: value for key, value in moved.moved.items() if value is not None})
            alive()
    raise RetriableError(f"chunk {chunk.id}: its records keep changing while it completes")


def _known_hashes(
    engine: Engine, chunk: ClaimedChunk, ledger: str, name: str, keys: Sequence[str]
) -> Mapping[str, str]:
    """Ledger hashes for ``map_diff_send``: the claim read those of the chunk's own keys; a
    record whose key the fetch resolved (a selected e-mail or user id to its ``CL`` id), or
    another stream's (guest profiles), is read from the ledger."""
    if name != ledger:
        return engine.store.ledger.hashes(name, keys)
    planned = set(chunk.keys)
    others = [key for key in keys if key not in planned]
    return {**chunk.known, **engine.store.ledger.hashes(name, others)} if others else chunk.known


def _fail_chunk(engine: Engine, chunk: ClaimedChunk, error: str) -> None:
    if engine.store.chunks.fail(chunk, error):
        _on_finished(engine, chunk.run_id)


def fail_run(engine: Engine, run_id: int, error: str) -> None:
    """A fatal error (bad credentials, missing permission): fail the run and free its slot."""
    if engine.store.runs.transition(run_id, "failed", ("queued", "running", "paused"), error=error):
        _on_finished(engine, run_id)


def cancel(engine: Engine, run_id: int) -> bool:
    """Cancel a run; its queued tasks become no-ops when they see the status."""
    changed = engine.store.runs.transition(
        run_id, "cancelled", ("queued", "running", "paused"), error="cancelled by user"
    )
    if changed:
        _on_finished(engine, run_id)
    return changed


def health(engine: Engine, run_id: int) -> list[str]:
    """What keeps a run from being healthy; empty when it is.

    A run is healthy when it is ``running``, holds its lease slot, has no ``failed`` chunk, no
    ``running`` chunk whose claim expired (its worker stopped answering), and its planning is
    done or claimed by a live producer. ``resume`` of a healthy run does nothing.

    Raises:
        RunNotFoundError: no such run.
    """
    facts = engine.store.runs.health(run_id)
    if facts.status != "running":
        return [f"it is {facts.status}"]
    problems = []
    if token(run_id) not in {holder for holder, _ in engine.lease.holders()}:
        problems.append("it holds no slot lease")
    if facts.chunks_failed:
        problems.append(f"{facts.chunks_failed} chunk(s) failed")
    if facts.expired_claims:
        problems.append(f"{facts.expired_claims} chunk(s) held by a worker that stopped answering")
    if not facts.planning_done and not facts.producer_alive:
        problems.append("no live producer is planning it")
    return problems


def resume(engine: Engine, run_id: int) -> Run:
    """Finish a run that failed, paused, stalled, or lost its workers; a healthy run (see
    ``health``) is left as it is.

    Failed chunks and chunks whose holder stopped answering go back to ``pending``; the run
    takes a slot again (or queues for one) and every unfinished chunk is enqueued once more.
    A chunk a live worker holds is left to it, and a chunk done in the meantime is skipped
    when claimed, so nothing is processed twice.
    """
    run = engine.store.runs.get(run_id)
    if run.status in ("done", "cancelled"):
        return run
    if run.status == "running" and not health(engine, run_id):
        return run
    engine.store.chunks.reset_unfinished(run_id)
    if run.status == "running":
        if engine.lease.try_acquire(token(run_id)):
            _enqueue_unfinished(engine, run_id)
        else:
            engine.store.runs.transition(run_id, "paused", ("running",), error="waiting for a slot")
        return engine.store.runs.get(run_id)
    if run.status == "failed":
        engine.store.runs.transition(run_id, "queued", ("failed",), error=None)
    _activate(engine, run_id)
    return engine.store.runs.get(run_id)


def replay(engine: Engine, run_id: int) -> Run:
    """Start a run that re-reads the records a run rejected and tries them again."""
    source = engine.store.runs.get(run_id)
    keys = engine.store.rejects.unresolved_keys(run_id)
    replay_id = engine.store.replays.create(
        source, keys, engine.chunk_size(source.scope), config=engine.settings.snapshot()
    )
    _activate(engine, replay_id)
    return engine.store.runs.get(replay_id)


def start_incremental(
    engine: Engine, scope: str, lookback: timedelta, lag: timedelta
) -> Run | None:
    """Start the beat-driven incremental sync of a scope, unless one is already under way.

    The window runs from the stream's cursor minus ``lookback`` (re-read: VTEX indexes lag
    and the ledger drops what did not change) to now minus ``lag`` (the signpost: never claim
    a moment whose records may not be listed yet). Without a cursor it starts ``lookback`` ago;
    run a historical sync first for older data. The cursor moves only when the run is done.
    """
    if any(
        run.kind == "incremental" and run.scope == scope
        for status in ("queued", "running", "paused")
        for run in engine.store.runs.find(status=status)
    ):
        return None
    end = datetime.now(UTC) - lag
    cursor = engine.store.cursors.get(scope)
    begin = (cursor or end) - lookback
    if begin >= end:
        return None
    return start(engine, StartRequest(scope, Window(begin, end), kind="incremental"))


def maintain(engine: Engine, stale_after: timedelta) -> None:
    """Periodic upkeep from every worker and from beat: renew leases, hand expired claims to
    other workers, recover lost messages, start waiting runs.

    A message is lost when a frozen or cut-off worker's pending fetch takes it (Redis hands a
    new message to the longest-waiting consumer) or the broker drops it. Upkeep sees it when the
    work's queue is empty yet nobody claimed the work within ``SYNC_CLAIM_TTL``; without a way
    to count the queues, only once the whole run stood still for ``SYNC_STALE_AFTER``.
    """
    ttl = engine.settings.sync_claim_ttl
    running = []
    for run in engine.store.runs.find(status="running"):
        if not engine.lease.renew(token(run.id)):
            if not engine.lease.try_acquire(token(run.id)):
                engine.store.runs.transition(run.id, "paused", ("running",), error="lease lost")
                continue
            if engine.store.runs.status(run.id) != "running":
                engine.lease.release(token(run.id))  # it ended meanwhile: give the slot back
                continue
        running.append(run)
    try:
        idle = engine.idle_kinds()
    except NetworkError as error:  # the broker is away: lost messages wait for the next sweep
        log.warning("upkeep cannot count the queues: %s", error)
        idle = None
    _resend(engine, engine.store.chunks.recover_expired(), "their worker stopped answering")
    if idle is not None:
        lost = engine.store.chunks.recover_undelivered(idle[0], ttl)
        _resend(engine, lost, "nobody took their task (a frozen worker's fetch took it?)")
    for run_id, _ in engine.store.runs.recover_planning(idle[1] if idle else (), ttl):
        log.warning("run %s: its producer stopped answering; a new one is enqueued", run_id)
        engine.enqueue_producer(run_id)
    for run in running:  # messages lost with a broker restart, or before claims existed
        engine.enqueue_chunks(engine.store.chunks.recover_stale(run.id, stale_after), run.kind)
        if not run.planning_done and engine.store.runs.planning_stalled(run.id, stale_after):
            _send_producer(engine, run.id)
    activate_waiting(engine)


def _resend(engine: Engine, chunks: list[tuple[int, str]], why: str) -> None:
    by_kind: dict[str, list[int]] = {}
    for chunk_id, kind in chunks:
        by_kind.setdefault(kind, []).append(chunk_id)
    for kind, chunk_ids in by_kind.items():
        log.warning("chunks %s re-enqueued: %s", chunk_ids, why)
        engine.enqueue_chunks(chunk_ids, kind, ahead=True)


def _send_producer(engine: Engine, run_id: int) -> None:
    """Enqueue a run's producer, expected to claim the planning within the claim TTL."""
    engine.store.runs.expect_producer(run_id, engine.settings.sync_claim_ttl)
    engine.enqueue_producer(run_id)


def activate_waiting(engine: Engine) -> None:
    """Start queued and paused runs, oldest first, while slots are free."""
    for run in engine.store.runs.waiting():
        if engine.lease.free_slots() <= 0:
            break
        _activate(engine, run.id)  # False: another process started it, or took the slot


def _activate(engine: Engine, run_id: int) -> bool:
    """Take a slot for a queued or paused run and set it going; False if no slot is free.

    When its tasks cannot be sent (the broker is unreachable) the run goes back to waiting,
    gives its slot back, and the error propagates.
    """
    if not engine.lease.try_acquire(token(run_id)):
        return False
    if not engine.store.runs.transition(run_id, "running", ("queued", "paused"), error=None):
        # Someone else started (or ended) it first. The token names the run, not this
        # process: when the run is running, the slot is the winner's and must stay taken.
        if engine.store.runs.status(run_id) != "running":
            engine.lease.release(token(run_id))
        return False
    try:
        _enqueue_unfinished(engine, run_id)
    except Exception as error:
        engine.store.runs.transition(
            run_id, "queued", ("running",), error=f"could not be started: {error}"
        )
        engine.lease.release(token(run_id))
        raise
    return True


def _enqueue_unfinished(engine: Engine, run_id: int) -> None:
    run = engine.store.runs.get(run_id)
    if not run.planning_done:
        _send_producer(engine, run_id)
    engine.enqueue_chunks(engine.store.chunks.mark_enqueued(run_id), run.kind)
    # A run with nothing left to do (an empty replay) ends here; settle() checks that in SQL.
    if engine.store.runs.settle(run_id):
        _on_finished(engine, run_id)


def _on_paused(engine: Engine, run_id: int, signal: Exception) -> None:
    if isinstance(signal, SlotLostError):
        log.warning("run %s paused: %s", run_id, signal)
        engine.store.runs.transition(run_id, "paused", ("running",), error=str(signal))
        activate_waiting(engine)


def _on_finished(engine: Engine, run_id: int) -> None:
    """The run reached an end state: free its slot and start whoever waits."""
    engine.lease.release(token(run_id))
    run = engine.store.runs.get(run_id)
    if run.status == "done" and run.kind == "incremental" and not run.dry_run:
        engine.store.cursors.advance(run.scope, run.window_to)
    if run.kind == "replay" and run.status == "done":
        engine.store.rejects.resolve_replayed(run_id)
    activate_waiting(engine)
