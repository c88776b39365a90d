"""The producer: plan a run's windows, list VTEX, write chunk rows, then enqueue them.

Windows are split in half until each one lists under the stream's cap (30 pages of 100 orders;
10,000 Master Data documents). Windows come out in time order, so the planning cursor
``(window start, records already chunked in it)`` only moves forward; a producer that dies is
simply run again: it splits the run's range the same way, skips the windows before the cursor
and continues after the last committed chunk.

Chunks are written in batches: the chunks of about ``PLAN_BATCH_RECORDS`` records (and a
window's end) in one transaction together with the cursor, then their tasks in one publish.
Chunk rows are committed before their tasks are enqueued, so a task never points at a row that
does not exist, and a crash between the two leaves rows that ``resume`` (or the maintenance
sweep) enqueues. The first chunk of each producer task goes out alone, so workers start at once.

A stream that lists its source whole (the catalog) then plans the records it sent before that
the listing lacked (``Stream.vanished``: found in SQL against this run's chunks, so a producer
that resumes there plans only what is left).

The documents a listing returns (Master Data search) go to Redis (``etl.state.listed``) while
the run has at most ``ListedRecords.limit`` records planned and not yet read; past that, the
chunk rows carry them. Either way the rows are committed first and the tasks enqueued last.

Memory stays flat: at most one page and one batch of records are held at a time.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from etl.state.chunks import PlannedChunk
from etl.state.listed import ListedRecords
from etl.state.runs import PlanningCursor
from etl.state.store import StateStore
from etl.sync.streams import Stream
from etl.sync.windows import Window

__all__ = ["PLAN_BATCH_RECORDS", "PlanningSliceEnded", "plan_chunks", "plan_windows"]

log = logging.getLogger(__name__)

PLAN_BATCH_RECORDS = 1000
"""Records whose chunks are written in one transaction and enqueued in one publish (a chunk
larger than this goes alone)."""


class PlanningSliceEnded(Exception):
    """The producer used up its time slice after a commit; run it again to continue."""


def plan_windows(
    stream: Stream, window: Window, after: datetime | None = None
) -> Iterator[tuple[Window, int]]:
    """Yield ``(window, total)`` in time order, each window under the stream's cap if possible.

    The split depends only on the counts, so planning the same range again gives the same
    windows. ``after`` skips, without counting them, the windows that end at or before it
    (planned already): a producer that resumes re-counts only the path down to where it was.
    """
    if after is not None and window.end <= after:
        return
    total = stream.count(window)
    if total > stream.window_cap and window.splittable:
        for half in window.halves():
            yield from plan_windows(stream, half, after)
    else:
        if total > stream.window_cap:
            log.warning("window %s lists %d records in under a second", window, total)
        yield window, total


def plan_chunks(
    run_id: int,
    store: StateStore,
    stream: Stream,
    chunk_size: int,
    enqueue_chunks: Callable[[list[int]], None],
    check_alive: Callable[[], None],
    deadline: float | None = None,
    holder: str | None = None,
    listed: ListedRecords | None = None,
) -> str | None:
    """Plan every remaining window of a run; return the run's final status if planning ended it.

    A run ends here only when every chunk was already done (or there were none).

    ``check_alive`` raises (``SlotLostError``, ``RunStoppedError`` when the run was cancelled,
    ``ClaimLostError`` when the planning was handed to another producer) before each write, so a
    producer that lost its lease writes nothing more. Every write also checks that the planning
    cursor is where this producer left it and, with ``holder``, that this producer still holds
    the run's planning claim, so a second producer of the same run (a redelivered task next to a
    re-enqueued one, or a frozen one that wakes up) stops with ``PlanningMovedError`` instead of
    planning records twice.

    ``deadline`` (``time.monotonic()``) bounds one call: planning a large range takes longer
    than a task may run, so past it, right after a commit, ``PlanningSliceEnded`` is raised and
    the caller runs the producer again to go on from the cursor.

    ``listed`` keeps listed documents in Redis while at most its ``limit`` records of the run
    wait for their chunks (module docstring).
    """
    run = store.runs.get(run_id)
    if run.planning_done:
        return None
    resume_at, resume_offset = run.planning_cursor, run.planning_offset
    batch = _Batch(
        store, run_id, holder, enqueue_chunks, check_alive, (resume_at, resume_offset), listed
    )
    for window, total in plan_windows(stream, Window(run.window_from, run.window_to), resume_at):
        # Only the window the cursor points into was partly chunked; a window that starts
        # earlier (the counts changed since) is planned whole: records twice, never lost.
        skip = resume_offset if window.start == resume_at else 0
        keys: list[str] = []
        docs: list[dict[str, Any]] = []
        offset = 0
        for page in stream.list_pages(window, total):
            for record in page:
                offset += 1
                if offset <= skip:
                    continue  # chunked before the producer stopped: the cursor says so
                keys.append(stream.key_of(record))
                if stream.carries_payload:
                    docs.append(record)
                if len(keys) == chunk_size:
                    batch.add(keys, docs, (window.start, offset))
                    keys, docs = [], []
                    if batch.full():
                        batch.flush()
                        if not stream.slices_end_at_windows:
                            _check_deadline(deadline)
        if keys:
            batch.add(keys, docs, (window.start, offset))
        batch.flush((window.end, 0))  # the window's last chunks and its end: one transaction
        _check_deadline(deadline)
    # Records sent before that the whole listing lacked (streams that list their source whole):
    # found in SQL against this run's chunks, so a resumed producer plans only what is left.
    offset = batch.position[1]
    for keys in stream.vanished(run_id, store, chunk_size):
        offset += len(keys)
        batch.add(keys, [], (run.window_to, offset))
        if batch.full():
            batch.flush()
            _check_deadline(deadline)
    batch.flush()
    check_alive()
    return store.runs.mark_planning_done(run_id, expected=batch.position, holder=holder)


def _check_deadline(deadline: float | None) -> None:
    if deadline is not None and time.monotonic() >= deadline:
        raise PlanningSliceEnded


class _Batch:
    """Planned chunks waiting to be written together, then enqueued together."""

    def __init__(
        self,
        store: StateStore,
        run_id: int,
        holder: str | None,
        enqueue_chunks: Callable[[list[int]], None],
        check_alive: Callable[[], None],
        position: PlanningCursor,
        listed: ListedRecords | None = None,
    ) -> None:
        self.store = store
        self.run_id = run_id
        self.holder = holder
        self.enqueue_chunks = enqueue_chunks
        self.check_alive = check_alive
        self.position = position
        """Where the cursor is in the database."""
        self.chunks: list[PlannedChunk] = []
        self.records = 0
        self.cursor: PlanningCursor | None = None
        self.written = 0
        self.listed = listed

    def add(self, keys: list[str], docs: list[dict[str, Any]], cursor: PlanningCursor) -> None:
        self.chunks.append((keys, docs or None))
        self.records += len(keys)
        self.cursor = cursor

    def full(self) -> bool:
        return self.records >= PLAN_BATCH_RECORDS or self.written == 0

    def flush(self, cursor: PlanningCursor | None = None) -> None:
        """Commit the chunk rows and move the cursor (to ``cursor``, else past the last chunk),
        then enqueue their tasks."""
        target = cursor or self.cursor
        if target is None or target == self.position:
            return
        self.check_alive()
        chunks, to_redis = self.chunks, self._room_in_redis()
        ids = self.store.chunks.append(
            self.run_id,
            [(keys, None) for keys, _ in chunks] if to_redis else chunks,
            target,
            expected=self.position,
            holder=self.holder,
        )
        self.position, self.cursor = target, None
        self.chunks, self.records = [], 0
        self.written += len(ids)
        if to_redis is not None:
            to_redis.put((i, docs) for i, (_, docs) in zip(ids, chunks, strict=True) if docs)
        self.enqueue_chunks(ids)

    def _room_in_redis(self) -> ListedRecords | None:
        """Where this batch's listed documents go instead of its rows, if Redis has room."""
        listed = self.listed
        if listed is None or not listed.limit or not any(docs for _, docs in self.chunks):
            return None
        waiting = self.store.runs.records_waiting(self.run_id)
        return listed if waiting + self.records <= listed.limit else None
