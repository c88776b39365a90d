"""The producer: plan a run's windows, list VTEX, write chunk rows, then enqueue them.

Windows are split in half until each one lists under the stream's cap (30 pages of 100 orders;
10,000 Master Data documents). Windows come out in time order, so the planning cursor
``(window start, records already chunked in it)`` only moves forward; a producer that dies is
simply run again: it splits the run's range the same way, skips the windows before the cursor
and continues after the last committed chunk. Chunk rows are committed before
their tasks are enqueued, so a task never points at a row that does not exist, and a crash
between the two leaves rows that ``resume`` (or the maintenance sweep) enqueues.

A stream that lists its source whole (the catalog) then plans the records it sent before that
the listing lacked (``Stream.vanished``: found in SQL against this run's chunks, so a producer
that resumes there plans only what is left).

Memory stays flat: at most one page and one chunk of records are held at a time.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from etl.state.runs import PlanningCursor
from etl.state.store import StateStore
from etl.sync.streams import Stream
from etl.sync.windows import Window

__all__ = ["PlanningSliceEnded", "plan_chunks", "plan_windows"]

log = logging.getLogger(__name__)


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
    enqueue_chunk: Callable[[int], None],
    check_alive: Callable[[], None],
    deadline: float | None = None,
) -> str | None:
    """Plan every remaining window of a run; return the run's final status if planning ended it.

    A run ends here only when every chunk was already done (or there were none).

    ``check_alive`` raises (``SlotLostError``, or ``RunStoppedError`` when the run was cancelled)
    before each write, so a producer that lost its lease writes nothing more. Every write also
    checks that the planning cursor is where this producer left it, so a second producer of the
    same run (a redelivered task next to a re-enqueued one) stops with ``PlanningMovedError``
    instead of planning records twice.

    ``deadline`` (``time.monotonic()``) bounds one call: planning a large range takes longer
    than a task may run, so past it, right after a commit, ``PlanningSliceEnded`` is raised and
    the caller runs the producer again to go on from the cursor.
    """
    run = store.runs.get(run_id)
    if run.planning_done:
        return None
    resume_at, resume_offset = run.planning_cursor, run.planning_offset
    position: PlanningCursor = (resume_at, resume_offset)  # where the cursor is in the database
    for window, total in plan_windows(stream, Window(run.window_from, run.window_to), resume_at):
        # Only the window the cursor points into was partly chunked; a window that starts
        # earlier (the counts changed since) is planned whole: records twice, never lost.
        skip = resume_offset if window.start == resume_at else 0
        keys: list[str] = []
        docs: list[dict[str, Any]] = []
        offset = 0
        for page in stream.list_pages(window, total):
            for listed in page:
                offset += 1
                if offset <= skip:
                    continue  # chunked before the producer stopped: the cursor says so
                keys.append(stream.key_of(listed))
                if stream.carries_payload:
                    docs.append(listed)
                if len(keys) == chunk_size:
                    position = _flush(
                        store, run_id, keys, docs, (window.start, offset), position,
                        enqueue_chunk, check_alive,
                    )  # fmt: skip
                    keys, docs = [], []
                    _check_deadline(deadline)
        if keys:
            position = _flush(
                store, run_id, keys, docs, (window.start, offset), position,
                enqueue_chunk, check_alive,
            )  # fmt: skip
        check_alive()
        store.runs.advance_planning(run_id, (window.end, 0), expected=position)
        position = (window.end, 0)
        _check_deadline(deadline)
    # Records sent before that the whole listing lacked (streams that list their source whole):
    # found in SQL against this run's chunks, so a resumed producer plans only what is left.
    for keys in stream.vanished(run_id, store, chunk_size):
        cursor = (run.window_to, position[1] + len(keys))
        position = _flush(store, run_id, keys, [], cursor, position, enqueue_chunk, check_alive)
        _check_deadline(deadline)
    check_alive()
    return store.runs.mark_planning_done(run_id, expected=position)


def _check_deadline(deadline: float | None) -> None:
    if deadline is not None and time.monotonic() >= deadline:
        raise PlanningSliceEnded


def _flush(
    store: StateStore,
    run_id: int,
    keys: list[str],
    docs: list[dict[str, Any]],
    cursor: PlanningCursor,
    expected: PlanningCursor,
    enqueue_chunk: Callable[[int], None],
    check_alive: Callable[[], None],
) -> PlanningCursor:
    """Commit one chunk row (moving the cursor past it), then enqueue its task."""
    check_alive()
    enqueue_chunk(store.chunks.append(run_id, keys, docs or None, cursor, expected=expected))
    return cursor
