"""The engine's pieces, cheaply: windows, window planning, the producer's cursor, chunk outcomes
written once, the finaliser, resume's counters and slot activation races.

Real PostgreSQL and Redis; VTEX is a fake stream (no HTTP), Celery a recording ``enqueue``.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from etl.config import Settings
from etl.state.chunks import ChunkOutcome
from etl.state.runs import PlanningMovedError
from etl.state.store import StateStore
from etl.sync import runs
from etl.sync.engine import Engine
from etl.sync.producer import plan_chunks, plan_windows
from etl.sync.streams import Fetched, Stream
from etl.sync.windows import Window
from etl.synerise.client import BatchResult, SyneriseClient

T0 = datetime(2026, 1, 1, tzinfo=UTC)
DAY = timedelta(days=1)


# -- windows ---------------------------------------------------------------------------------------


def test_halves_meet_at_a_millisecond_and_cover_the_window():
    window = Window(T0, T0 + timedelta(seconds=3, microseconds=3))
    first, second = window.halves()
    assert first.start == window.start and second.end == window.end
    assert first.end == second.start
    assert first.end.microsecond % 1000 == 0
    assert window.start < first.end < window.end


def test_last_instant_is_one_millisecond_before_the_end():
    window = Window(T0, T0 + DAY)
    assert window.last_instant == T0 + DAY - timedelta(milliseconds=1)
    assert str(window) == "[2026-01-01T00:00:00.000Z, 2026-01-02T00:00:00.000Z)"


def test_a_second_is_not_split_further():
    assert not Window(T0, T0 + timedelta(seconds=1)).splittable
    assert Window(T0, T0 + timedelta(seconds=1, milliseconds=1)).splittable


# -- a stream over a list of timestamps ------------------------------------------------------------


class FakeStream(Stream):
    """Records at given instants; keys are their positions; the listing is sorted by time."""

    scope = "orders"
    ledger = "transactions"

    def __init__(self, instants: Sequence[datetime], cap: int, page_size: int = 7):
        self.instants = sorted(instants)
        self.window_cap = cap  # type: ignore[misc]
        self.page_size = page_size  # type: ignore[misc]
        self.counted: list[Window] = []

    def _span(self, window: Window) -> range:
        lo = bisect.bisect_left(self.instants, window.start)
        hi = bisect.bisect_left(self.instants, window.end)
        return range(lo, hi)

    def count(self, window: Window) -> int:
        self.counted.append(window)
        return len(self._span(window))

    def list_pages(self, window: Window, total: int) -> Iterator[list[dict[str, Any]]]:
        span = list(self._span(window))[: max(total, 0)]
        for first in range(0, len(span), self.page_size):
            yield [{"id": f"r{i:05d}"} for i in span[first : first + self.page_size]]

    def key_of(self, listed: dict[str, Any]) -> str:
        return str(listed["id"])

    def fetch(self, keys: Sequence[str], stored: Sequence[dict[str, Any]] | None) -> list[Fetched]:
        raise NotImplementedError

    def to_payload(self, fetched: Fetched, warnings: Any = None) -> dict[str, Any]:
        raise NotImplementedError

    def send(self, synerise: SyneriseClient, payloads: Sequence[dict[str, Any]]) -> BatchResult:
        raise NotImplementedError


def spread(n: int, span: timedelta = 10 * DAY, start: datetime = T0) -> list[datetime]:
    return [start + span * i / n for i in range(n)]


def test_plan_windows_splits_until_each_window_fits_and_keeps_time_order():
    stream = FakeStream(spread(100), cap=12)
    planned = list(plan_windows(stream, Window(T0, T0 + 10 * DAY)))
    assert all(total <= 12 for _, total in planned)
    assert sum(total for _, total in planned) == 100
    assert planned[0][0].start == T0 and planned[-1][0].end == T0 + 10 * DAY
    for (a, _), (b, _) in itertools.pairwise(planned):
        assert a.end == b.start  # contiguous, in time order, no overlap


def test_plan_windows_keeps_a_dense_second_whole():
    dense = [T0 + timedelta(milliseconds=i) for i in range(30)]
    stream = FakeStream(dense, cap=10)
    planned = list(plan_windows(stream, Window(T0, T0 + DAY)))
    assert sum(total for _, total in planned) == 30
    assert any(total > 10 and not window.splittable for window, total in planned)


def test_plan_windows_after_skips_planned_windows_without_counting_them():
    stream = FakeStream(spread(100), cap=12)
    whole = Window(T0, T0 + 10 * DAY)
    planned = list(plan_windows(stream, whole))
    middle = planned[len(planned) // 2][0].start
    stream.counted.clear()
    resumed = list(plan_windows(stream, whole, after=middle))
    assert resumed == [p for p in planned if p[0].end > middle]
    assert all(window.end > middle for window in stream.counted)


# -- the producer against the real store -----------------------------------------------------------


@pytest.fixture
def state(database_url) -> Iterator[StateStore]:
    store = StateStore(database_url)
    yield store
    store.close()


def running_run(store: StateStore, start: datetime = T0, end: datetime = T0 + 10 * DAY) -> int:
    run_id = store.runs.create("backfill", "orders", start, end)
    assert store.runs.transition(run_id, "running", ("queued",))
    return run_id


def planned_keys(store: StateStore, run_id: int) -> list[str]:
    keys: list[str] = []
    for chunk_id in store.chunks.ids(run_id, ("pending", "running", "done", "failed")):
        keys += store.chunks.get(chunk_id).keys
    return keys


class Crash(Exception):
    pass


def test_plan_chunks_plans_every_record_once_in_chunks(state):
    run_id = running_run(state)
    enqueued: list[int] = []
    stream = FakeStream(spread(100), cap=12)
    final = plan_chunks(run_id, state, stream, 9, enqueued.append, lambda: None)
    assert final is None  # chunks are pending: planning alone does not end the run
    run = state.runs.get(run_id)
    assert run.planning_done and run.records_total == 100
    assert sorted(planned_keys(state, run_id)) == [f"r{i:05d}" for i in range(100)]
    assert sorted(enqueued) == state.chunks.ids(run_id, ("pending",))


def test_a_range_without_records_ends_when_planned(state):
    run_id = running_run(state)
    final = plan_chunks(run_id, state, FakeStream([], cap=12), 9, lambda _: None, lambda: None)
    assert final == "done"
    assert state.runs.get(run_id).chunks_total == 0


@pytest.mark.parametrize("dies_at", [2, 5, 10, 19, 20])
def test_a_producer_that_died_continues_after_its_last_chunk(state, dies_at):
    """Also where a re-split from the cursor would cut the range elsewhere (10, 19, 20 with
    these numbers): the resumed producer splits the run's whole range again."""
    run_id = running_run(state)
    stream = FakeStream(spread(100), cap=12)
    writes = {"n": 0}

    def dies() -> None:
        writes["n"] += 1
        if writes["n"] == dies_at:
            raise Crash

    with pytest.raises(Crash):
        plan_chunks(run_id, state, stream, 5, lambda _: None, dies)
    before = planned_keys(state, run_id)
    assert 0 < len(before) < 100
    plan_chunks(run_id, state, stream, 5, lambda _: None, lambda: None)
    keys = planned_keys(state, run_id)
    assert sorted(keys) == [f"r{i:05d}" for i in range(100)]  # each exactly once
    assert state.runs.get(run_id).records_total == 100


def test_a_second_producer_behind_the_cursor_writes_nothing(state):
    run_id = running_run(state)
    stream = FakeStream(spread(40), cap=100)
    state.chunks.append(run_id, ["x"], None, (T0, 1))  # another producer got there first
    with pytest.raises(PlanningMovedError):
        state.chunks.append(run_id, ["y"], None, (T0, 1), expected=(None, 0))
    with pytest.raises(PlanningMovedError):
        state.runs.mark_planning_done(run_id, expected=(None, 0))
    assert planned_keys(state, run_id) == ["x"]
    assert not state.runs.get(run_id).planning_done
    # The producer that is where the cursor says goes on.
    plan_chunks(run_id, state, stream, 10, lambda _: None, lambda: None)
    assert len(planned_keys(state, run_id)) == 40  # "x" stood for record 1 of the window


# -- chunk outcomes, the finaliser, resume's counters ----------------------------------------------


def outcome(keys: Sequence[str], rejected: Sequence[str] = ()) -> ChunkOutcome:
    result = ChunkOutcome(stream="profiles", read=len(keys) + len(rejected))
    for key in keys:
        result.accept(key, f"hash-{key}")
    for key in rejected:
        result.reject(key, "INVALID_EMAIL", "bad e-mail")
    return result


def planned_run(store: StateStore, chunks: Sequence[Sequence[str]]) -> tuple[int, list[int]]:
    run_id = running_run(store)
    ids = store.chunks.add(run_id, chunks)
    store.runs.mark_planning_done(run_id)
    return run_id, ids


def test_a_stale_attempt_completes_nothing(state):
    run_id, [chunk_id] = planned_run(state, [["a", "b", "c"]])
    first = state.chunks.claim(chunk_id)
    assert first is not None and first.attempts == 1
    state.chunks.reset_unfinished(run_id)  # resume: its worker looked dead
    second = state.chunks.claim(chunk_id)
    assert second is not None and second.attempts == 2
    assert state.chunks.complete(second, outcome(["a", "b"], ["c"])) == "done"
    # The first attempt was alive after all and finishes late: nothing is written twice.
    assert state.chunks.complete(first, outcome(["a", "b"], ["c"])) is None
    assert state.chunks.complete(second, outcome(["a", "b"], ["c"])) is None
    run = state.runs.get(run_id)
    assert (run.read_count, run.sent_count, run.rejected_count) == (3, 2, 1)
    assert run.chunks_done == 1 and run.status == "done"
    assert [r.attempts for r in state.rejects.find(run_id)] == [1]
    assert state.ledger.hashes("profiles", ["a", "b"]) == {"a": "hash-a", "b": "hash-b"}


def test_the_last_chunk_ends_the_run_and_a_failed_one_fails_it(state):
    run_id, [one, two] = planned_run(state, [["a"], ["b"]])
    assert state.chunks.complete(state.chunks.claim(one), outcome(["a"])) is None
    assert state.runs.get(run_id).status == "running"
    assert state.chunks.claim(two) is not None
    assert state.chunks.fail(two, "Synerise answered 503") == "failed"
    run = state.runs.get(run_id)
    assert run.status == "failed" and run.finished_at is not None
    assert f"sync resume {run_id}" in (run.error or "")
    assert (run.chunks_done, run.chunks_failed, run.failed_count) == (1, 1, 1)


def test_planning_done_after_the_last_chunk_ends_the_run(state):
    run_id = running_run(state)
    [chunk_id] = state.chunks.add(run_id, [["a"]])
    assert state.chunks.complete(state.chunks.claim(chunk_id), outcome(["a"])) is None
    assert state.runs.get(run_id).status == "running"  # more chunks may still come
    assert state.runs.mark_planning_done(run_id) == "done"
    assert state.runs.settle(run_id) is None  # ended once


def test_reset_unfinished_chunks_puts_back_failed_and_running_ones(state):
    run_id, [done, failed, running, pending] = planned_run(
        state, [["a"], ["b", "c"], ["d"], ["e"]]
    )
    state.chunks.complete(state.chunks.claim(done), outcome(["a"]))
    state.chunks.claim(failed)
    state.chunks.fail(failed, "boom")
    state.chunks.claim(running)
    run = state.runs.get(run_id)
    assert (run.chunks_failed, run.failed_count) == (1, 2)
    assert state.chunks.reset_unfinished(run_id) == 2
    run = state.runs.get(run_id)
    assert (run.chunks_done, run.chunks_failed, run.failed_count) == (1, 0, 0)
    assert state.chunks.ids(run_id, ("pending",)) == [failed, running, pending]
    assert state.chunks.ids(run_id, ("done",)) == [done]


def test_claiming_a_failed_chunk_takes_its_records_out_of_the_failed_count(state):
    run_id, [chunk_id, _] = planned_run(state, [["a", "b"], ["c"]])
    state.chunks.claim(chunk_id)
    state.chunks.fail(chunk_id, "boom")
    assert state.chunks.claim(chunk_id) is not None  # a late delivery retries it
    run = state.runs.get(run_id)
    assert (run.chunks_failed, run.failed_count) == (0, 0)


# -- slot activation -------------------------------------------------------------------------------


@pytest.fixture
def quiet_engine(database_url, redis_url, sync_redis) -> Iterator[tuple[Engine, list]]:
    """An engine whose ``enqueue`` only records (no Celery, no HTTP made)."""
    sent: list = []
    env = {  # secrets register with the log redaction for the session: keep them distinctive
        "VTEX_ACCOUNT": "sandbox",
        "VTEX_APP_KEY": "vtexappkey-unit-test",
        "VTEX_APP_TOKEN": "unit-test-vtex-app-token-9f3c",
        "VTEX_BASE_URL": "http://127.0.0.1:9",
        "SYNERISE_API_KEY": "unit-test-synerise-api-key-9f3c",
        "SYNERISE_API_HOST": "http://127.0.0.1:9",
        "REDIS_URL": redis_url,
        "DATABASE_URL": database_url,
        "SYNC_LEASE_TTL": "30",
    }
    engine = Engine.from_settings(
        Settings.from_env(env), enqueue=lambda name, args, queue: sent.append((name, args))
    )
    yield engine, sent
    engine.store.close()
    engine.redis.close()


def start(engine: Engine, **options: Any) -> int:
    request = runs.StartRequest("orders", Window(T0, T0 + DAY), **options)
    return runs.start(engine, request).id


def test_losing_an_activation_race_keeps_the_winners_slot(quiet_engine):
    engine, _ = quiet_engine
    run_id = start(engine)
    assert engine.store.runs.get(run_id).status == "running"
    # A second process tries to start the same run (the sweep and a finishing chunk at once).
    assert not runs._activate(engine, run_id)
    assert [holder for holder, _ in engine.lease.holders()] == [runs.token(run_id)]


def test_a_third_run_queues_and_takes_the_first_free_slot_in_order(quiet_engine):
    engine, sent = quiet_engine
    first, second, third = start(engine), start(engine), start(engine)
    assert [engine.store.runs.get(i).status for i in (first, second, third)] == [
        "running",
        "running",
        "queued",
    ]
    assert ("etl.produce", [third]) not in sent
    with pytest.raises(runs.NoFreeSlotError):
        start(engine, queue_if_busy=False)
    assert runs.cancel(engine, first)
    assert engine.store.runs.get(third).status == "running"  # the oldest waiting run
    assert ("etl.produce", [third]) in sent
    assert sorted(h for h, _ in engine.lease.holders()) == sorted(
        [runs.token(second), runs.token(third)]
    )


def test_a_new_run_does_not_jump_the_queue(quiet_engine):
    engine, _ = quiet_engine
    first, _second, third = start(engine), start(engine), start(engine)
    # A slot frees without anyone starting the waiting run (its owner's process died).
    engine.store.runs.transition(first, "done", ("running",))
    engine.lease.release(runs.token(first))
    fourth = start(engine)
    assert engine.store.runs.get(third).status == "running"
    assert engine.store.runs.get(fourth).status == "queued"


def test_an_empty_replay_ends_at_once(quiet_engine):
    engine, _ = quiet_engine
    source = start(engine)
    replay = runs.replay(engine, source)
    assert replay.status == "done" and replay.kind == "replay" and replay.replay_of == source
    assert runs.token(replay.id) not in [h for h, _ in engine.lease.holders()]


def test_a_replay_resolves_rejects_sent_since_by_any_run(state):
    _, [chunk] = planned_run(state, [["stale"]])
    state.chunks.complete(state.chunks.claim(chunk), outcome(["stale"]))  # in the ledger first
    source, [chunk] = planned_run(state, [["fixed", "stale", "still-bad"]])
    state.chunks.complete(state.chunks.claim(chunk), outcome([], ["fixed", "stale", "still-bad"]))
    _, [chunk] = planned_run(state, [["fixed"]])  # e.g. an incremental sync after the fix
    state.chunks.complete(state.chunks.claim(chunk), outcome(["fixed"]))
    replay = state.replays.create(state.runs.get(source), ["fixed", "stale", "still-bad"], 10, {})
    assert state.rejects.resolve_replayed(replay) == 1
    resolved = {r.record_key for r in state.rejects.find(source) if r.resolved_at}
    assert resolved == {"fixed"}
    unresolved = state.rejects.find(source, unresolved=True)
    assert [r.record_key for r in unresolved] == ["stale", "still-bad"]


def test_a_producer_out_of_time_hands_over_after_a_commit(state):
    from etl.sync.producer import PlanningSliceEnded

    run_id = running_run(state)
    stream = FakeStream(spread(100), cap=12)
    slices = 0
    while True:
        slices += 1
        try:
            plan_chunks(run_id, state, stream, 9, lambda _: None, lambda: None, deadline=0.0)
            break
        except PlanningSliceEnded:
            assert slices < 100
    assert slices > 5  # it really stopped after each commit
    assert sorted(planned_keys(state, run_id)) == [f"r{i:05d}" for i in range(100)]
    assert state.runs.get(run_id).planning_done


def test_the_producer_task_enqueues_its_continuation(quiet_engine, monkeypatch):
    engine, sent = quiet_engine
    run_id = start(engine)
    monkeypatch.setattr(engine, "stream", lambda scope: FakeStream(spread(30, span=DAY), cap=12))
    runs.run_producer(engine, run_id, planning_slice=0.0)
    assert sent.count(("etl.produce", [run_id])) == 2  # the start, and the continuation
    assert not engine.store.runs.get(run_id).planning_done
    while not engine.store.runs.get(run_id).planning_done:
        runs.run_producer(engine, run_id, planning_slice=0.0)
    assert sorted(planned_keys(engine.store, run_id)) == [f"r{i:05d}" for i in range(30)]
