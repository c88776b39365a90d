"""The producer: plan a run's windows, list VTEX, write chunk rows, then enqueue them.

Windows are split in half until each one lists under the stream's cap (30 pages of 100 orders;
10,000 Master Data documents). Windows come out in time order, so the planning cursor
``(window start, records already chunked in it)`` only moves forward; a producer that dies is
simply run again and continues after the last committed chunk. Chunk rows are committed before
their tasks are enqueued, so a task never points at a row that does not exist, and a crash
between the two leaves rows that ``resume`` (or the maintenance sweep) enqueues.

Memory stays flat: at most one page and one chunk of records are held at a time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

from etl.state.store import StateStore
from etl.sync.streams import Stream
from etl.sync.windows import Window

__all__ = ["plan_windows", "produce"]

log = logging.getLogger(__name__)


def plan_windows(stream: Stream, window: Window) -> Iterator[tuple[Window, int]]:
    """Yield ``(window, total)`` in time order, each window under the stream's cap if possible."""
    total = stream.count(window)
    if total > stream.window_cap and window.splittable:
        for half in window.halves():
            yield from plan_windows(stream, half)
    else:
        if total > stream.window_cap:
            log.warning("window %s lists %d records in under a second", window, total)
        yield window, total


def produce(
    run_id: int,
    store: StateStore,
    stream: Stream,
    chunk_size: int,
    enqueue_chunk: Callable[[int], None],
    check_alive: Callable[[], None],
) -> str | None:
    """Plan every remaining window of a run; return the run's final status if planning ended it.

    A run ends here only when every chunk was already done (or there were none).

    ``check_alive`` raises (``SlotLostError``, or ``RunStoppedError`` when the run was cancelled)
    before each write, so a producer that lost its lease writes nothing more.
    """
    run = store.get_run(run_id)
    if run.planning_done:
        return None
    start = run.planning_cursor or run.window_from
    skip = run.planning_offset if run.planning_cursor else 0
    for window, total in plan_windows(stream, Window(start, run.window_to)):
        keys: list[str] = []
        docs: list[dict[str, Any]] = []
        offset = 0
        for page in stream.list_pages(window, total):
            for listed in page:
                offset += 1
                if offset <= skip:
                    continue  # chunked before a crash: the cursor says so
                keys.append(stream.key_of(listed))
                if stream.carries_payload:
                    docs.append(listed)
                if len(keys) == chunk_size:
                    _flush(
                        store,
                        run_id,
                        keys,
                        docs,
                        (window.start, offset),
                        enqueue_chunk,
                        check_alive,
                    )
                    keys, docs = [], []
        if keys:
            _flush(store, run_id, keys, docs, (window.start, offset), enqueue_chunk, check_alive)
        check_alive()
        store.advance_planning(run_id, (window.end, 0))
        skip = 0
    check_alive()
    return store.mark_planning_done(run_id)


def _flush(
    store: StateStore,
    run_id: int,
    keys: list[str],
    docs: list[dict[str, Any]],
    cursor: tuple[Any, int],
    enqueue_chunk: Callable[[int], None],
    check_alive: Callable[[], None],
) -> None:
    check_alive()
    enqueue_chunk(store.append_chunk(run_id, keys, docs or None, cursor))
