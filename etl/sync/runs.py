"""Run lifecycle: start, queue for a slot, produce, finish, cancel, resume, replay, maintain.

At most ``SYNC_MAX_ACTIVE_RUNS`` (two) runs are active, enforced by ``etl.lease.SlotLease``: a
Redis lease per run, token ``run:{id}``, that expires unless renewed. Every task working on a
run renews it before it writes, and each worker's maintenance loop renews the leases of running
runs while their tasks wait in the queue. When no worker is left, nobody renews, and the slot
frees itself after the TTL. A task whose renewal fails raises ``SlotLostError``: it writes
nothing more, puts its chunk back, and the run is ``paused`` until a slot frees.

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
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from etl.errors import (
    BudgetExhaustedError,
    FatalError,
    PausedError,
    RetriableError,
    SlotLostError,
)
from etl.state.chunks import ChunkNotFoundError
from etl.state.runs import PlanningMovedError, Run, RunNotFoundError
from etl.sync.engine import Engine
from etl.sync.pipeline import map_diff_send
from etl.sync.producer import PlanningSliceEnded, plan_chunks
from etl.sync.windows import Window

__all__ = [
    "NoFreeSlotError",
    "RunStoppedError",
    "activate_waiting",
    "cancel",
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

PLANNING_SLICE = 300.0
"""Seconds one producer task plans before it hands over to a fresh one (well under the task
soft time limit, ``celeryconfig.task_soft_time_limit``)."""


class NoFreeSlotError(PausedError):
    """Both slots are taken and the caller asked not to queue (``--no-queue``)."""


class RunStoppedError(PausedError):
    """The run was cancelled or finished while a task of it was working: stop quietly."""


@dataclass(frozen=True)
class StartRequest:
    """What ``sync start`` asks for."""

    scope: str
    window: Window
    dry_run: bool = False
    full_resync: bool = False
    kind: str = "backfill"
    queue_if_busy: bool = True


def token(run_id: int) -> str:
    """The lease token of a run: any process working on the run may renew it."""
    return f"run:{run_id}"


def start(engine: Engine, request: StartRequest) -> Run:
    """Record a run and start it if a slot is free; otherwise queue it (or refuse)."""
    run_id = engine.store.runs.create(
        kind=request.kind,
        scope=request.scope,
        window_from=request.window.start,
        window_to=request.window.end,
        dry_run=request.dry_run,
        full_resync=request.full_resync,
        config=engine.settings.snapshot(),
    )
    # Oldest first: a run that has been waiting gets a free slot before this new one.
    activate_waiting(engine)
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

    A retriable error propagates so the task retries it; on the final attempt (or a fatal
    error) the run fails with the reason, and ``resume`` continues planning where it stopped.
    After ``planning_slice`` seconds the producer enqueues its continuation and returns.
    """
    try:
        run = engine.store.runs.get(run_id)
    except RunNotFoundError:
        log.warning("produce: run %s does not exist (a message from another database?)", run_id)
        return
    if run.status != "running":
        return
    try:
        final = plan_chunks(
            run_id,
            engine.store,
            engine.stream(run.scope),
            engine.settings.sync_chunk_size,
            lambda chunk_id: engine.enqueue_chunk(chunk_id, run.kind),
            lambda: _check_alive(engine, run_id),
            deadline=time.monotonic() + planning_slice,
        )
    except (SlotLostError, RunStoppedError) as signal:
        _on_paused(engine, run_id, signal)
        return
    except PlanningSliceEnded:
        engine.enqueue_producer(run_id)  # continues from the cursor
        return
    except PlanningMovedError as moved:
        log.info("produce: %s; this producer stops", moved)
        return
    except (RetriableError, BudgetExhaustedError) as error:
        if not final_attempt:
            raise
        fail_run(engine, run_id, f"planning stopped: {error}; run `sync resume {run_id}`")
        return
    except FatalError as error:
        fail_run(engine, run_id, f"planning failed: {error}")
        return
    except Exception as error:  # a bug or an outage: fail loudly, never stall silently
        fail_run(
            engine,
            run_id,
            f"planning failed: {type(error).__name__}: {error}; run `sync resume {run_id}`",
        )
        raise
    if final:
        _on_finished(engine, run_id)


def run_chunk(engine: Engine, chunk_id: int, *, final_attempt: bool = True) -> str:
    """Body of the ``etl.process_chunk`` task; returns what happened (for logs and tests).

    The chunk's path: claim it (``Chunks.claim``), fetch what the listing lacks from VTEX
    (``Stream.fetch``), map, diff against the ledger and send to Synerise
    (``pipeline.map_diff_send``), then record the outcome in one transaction
    (``Chunks.complete``). The run's lease is checked before each write.

    A retriable error puts the chunk back and propagates so the task retries it with backoff;
    on the final attempt the chunk is marked ``failed`` (``resume`` retries it). A fatal error
    (credentials, permissions) fails the whole run: every other chunk would fail the same way.
    """
    try:
        chunk = engine.store.chunks.claim(chunk_id)
    except ChunkNotFoundError:
        log.warning("chunk %s does not exist (a message from another database?)", chunk_id)
        return "missing"
    if chunk is None:
        return "skipped"
    run = engine.store.runs.get(chunk.run_id)

    def alive() -> None:
        _check_alive(engine, run.id)

    try:
        alive()
        stream = engine.stream(run.scope)
        fetched = stream.fetch(chunk.keys, chunk.payload)
        outcome = map_diff_send(
            fetched,
            stream,
            engine.synerise,
            engine.store.ledger,
            full_resync=run.full_resync,
            dry_run=run.dry_run,
            check_alive=alive,
        )
        alive()
        final = engine.store.chunks.complete(chunk, outcome)
    except (SlotLostError, RunStoppedError) as signal:
        engine.store.chunks.release(chunk)
        _on_paused(engine, run.id, signal)
        return "paused"
    except (RetriableError, BudgetExhaustedError) as error:
        # A long-blocked rate budget is waited out like a 429: the chunk goes back and the
        # task retries later instead of holding a worker.
        if not final_attempt:
            engine.store.chunks.release(chunk)
            raise
        _fail_chunk(engine, chunk.id, run.id, str(error))
        return "failed"
    except FatalError as error:
        _fail_chunk(engine, chunk.id, run.id, str(error))
        fail_run(engine, run.id, str(error))
        return "failed"
    except Exception as error:  # a bug or an outage: the chunk fails (resume retries it)
        _fail_chunk(engine, chunk.id, run.id, f"{type(error).__name__}: {error}")
        raise
    if final:
        _on_finished(engine, run.id)
    return "done"


def _fail_chunk(engine: Engine, chunk_id: int, run_id: int, error: str) -> None:
    if engine.store.chunks.fail(chunk_id, error):
        _on_finished(engine, run_id)


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


def resume(engine: Engine, run_id: int) -> Run:
    """Finish a run that failed, paused, stalled, or lost its workers.

    Failed chunks and chunks left ``running`` by a dead worker go back to ``pending``; the run
    takes a slot again (or queues for one) and every unfinished chunk is enqueued once more.
    A chunk done in the meantime is skipped when claimed, so nothing is processed twice.
    """
    run = engine.store.runs.get(run_id)
    if run.status in ("done", "cancelled"):
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
        source, keys, engine.settings.sync_chunk_size, config=engine.settings.snapshot()
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
    """Periodic upkeep from every worker and from beat: renew, recover, start waiting runs."""
    for run in engine.store.runs.find(status="running"):
        if not engine.lease.renew(token(run.id)):
            if not engine.lease.try_acquire(token(run.id)):
                engine.store.runs.transition(run.id, "paused", ("running",), error="lease lost")
                continue
            if engine.store.runs.status(run.id) != "running":
                engine.lease.release(token(run.id))  # it ended meanwhile: give the slot back
                continue
        for chunk_id in engine.store.chunks.recover_stale(run.id, stale_after):
            engine.enqueue_chunk(chunk_id, run.kind)
        if not run.planning_done and engine.store.runs.planning_stalled(run.id, stale_after):
            engine.enqueue_producer(run.id)
    activate_waiting(engine)


def activate_waiting(engine: Engine) -> None:
    """Start queued and paused runs, oldest first, while slots are free."""
    for run in engine.store.runs.waiting():
        if engine.lease.free_slots() <= 0:
            break
        _activate(engine, run.id)  # False: another process started it, or took the slot


def _activate(engine: Engine, run_id: int) -> bool:
    """Take a slot for a queued or paused run and set it going; False if no slot is free."""
    if not engine.lease.try_acquire(token(run_id)):
        return False
    if not engine.store.runs.transition(run_id, "running", ("queued", "paused"), error=None):
        # Someone else started (or ended) it first. The token names the run, not this
        # process: when the run is running, the slot is the winner's and must stay taken.
        if engine.store.runs.status(run_id) != "running":
            engine.lease.release(token(run_id))
        return False
    _enqueue_unfinished(engine, run_id)
    return True


def _enqueue_unfinished(engine: Engine, run_id: int) -> None:
    run = engine.store.runs.get(run_id)
    if not run.planning_done:
        engine.enqueue_producer(run_id)
    for chunk_id in engine.store.chunks.mark_enqueued(run_id):
        engine.enqueue_chunk(chunk_id, run.kind)
    # A run with nothing left to do (an empty replay) ends here; settle() checks that in SQL.
    if engine.store.runs.settle(run_id):
        _on_finished(engine, run_id)


def _check_alive(engine: Engine, run_id: int) -> None:
    """Raise unless this run may still write: it is running and holds its lease."""
    if engine.store.runs.status(run_id) != "running":
        raise RunStoppedError(f"run {run_id} is no longer running")
    if not engine.lease.renew(token(run_id)):
        raise SlotLostError(f"run {run_id} lost its slot lease")


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
