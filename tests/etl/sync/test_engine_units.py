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
from etl.errors import ClaimLostError, NetworkError, RunStoppedError
from etl.state.chunks import ChunkOutcome
from etl.state.runs import PlanningMovedError, RunNotRunningError
from etl.state.store import StateStore
from etl.sync import producer, runs
from etl.sync.engine import Engine
from etl.sync.producer import plan_chunks, plan_windows
from etl.sync.queues import TASK_PROCESS_CHUNK
from etl.sync.streams import Fetched, Stream
from etl.sync.windows import Window
from etl.synerise.client import BatchResult, SyneriseClient

HOLDER = "host:1:test"
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
    final = plan_chunks(run_id, state, stream, 9, enqueued.extend, lambda: None)
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


@pytest.mark.parametrize(
    ("batch", "dies_at"), [(5, 2), (5, 5), (5, 10), (5, 19), (5, 20), (1000, 2), (1000, 7)]
)
def test_a_producer_that_died_continues_after_its_last_chunk(state, monkeypatch, batch, dies_at):
    """Also where a re-split from the cursor would cut the range elsewhere (10, 19, 20 with
    these numbers, a write per chunk): the resumed producer splits the run's whole range again.
    With batches, a crash between two batches loses nothing either."""
    monkeypatch.setattr(producer, "PLAN_BATCH_RECORDS", batch)
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
    state.chunks.append(run_id, [(["x"], None)], (T0, 1))  # another producer got there first
    with pytest.raises(PlanningMovedError):
        state.chunks.append(run_id, [(["y"], None)], (T0, 1), expected=(None, 0))
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


def expire_claims(store: StateStore, chunk_ids: Sequence[int] = (), run_id: int | None = None):
    """As if the holders' heartbeats stopped: their claims run out."""
    with store.db.transaction() as cur:
        cur.execute(
            "UPDATE sync_chunk SET claim_expires_at = now() - interval '1 second' "
            "WHERE id = ANY(%s)",
            (list(chunk_ids),),
        )
        cur.execute(
            "UPDATE sync_run SET planning_claim_expires_at = now() - interval '1 second' "
            "WHERE id = %s",
            (run_id,),
        )


def test_an_expired_claim_is_handed_on_once_and_its_late_holder_writes_nothing(state):
    run_id, [chunk_id] = planned_run(state, [["a", "b", "c"]])
    first = state.chunks.claim(chunk_id, "frozen")
    assert first is not None and first.attempts == 1 and first.claimed_by == "frozen"
    assert state.chunks.recover_expired() == [], "a live claim stays with its holder"
    expire_claims(state, [chunk_id])  # its worker froze: no heartbeat
    assert state.chunks.recover_expired() == [(chunk_id, "backfill")]
    assert state.chunks.recover_expired() == [], "handed on once"
    second = state.chunks.claim(chunk_id, "healthy")
    assert second is not None and second.attempts == 2
    # The frozen worker wakes up: its heartbeat finds the claim gone, its writes do nothing.
    assert state.claims.extend("frozen", [chunk_id], [], [run_id], 15).chunks == frozenset()
    assert state.chunks.complete(first, outcome(["a", "b"], ["c"])) is None
    assert state.chunks.fail(first, "late failure") is None
    state.chunks.release(first)
    assert state.chunks.get(chunk_id).claimed_by == "healthy"
    assert state.chunks.complete(second, outcome(["a", "b"], ["c"])) == "done"
    assert state.chunks.complete(second, outcome(["a", "b"], ["c"])) is None
    run = state.runs.get(run_id)
    assert (run.read_count, run.sent_count, run.rejected_count) == (3, 2, 1)
    assert run.chunks_done == 1 and run.status == "done"
    assert [r.attempts for r in state.rejects.find(run_id)] == [1]
    assert state.ledger.hashes("profiles", ["a", "b"]) == {"a": "hash-a", "b": "hash-b"}


def test_the_heartbeat_extends_only_its_own_live_claims(state):
    run_id, [mine, theirs, done] = planned_run(state, [["a"], ["b"], ["c"]])
    for chunk_id in (mine, done):
        state.chunks.claim(chunk_id, "me", ttl=1)
    state.chunks.claim(theirs, "them", ttl=1)
    state.chunks.complete(state.chunks.get(done), outcome(["c"]))
    before = state.chunks.get(mine).claim_expires_at
    found = state.claims.extend("me", [mine, theirs, done], [], [run_id], 60)
    assert found.chunks == {mine} and found.run_status == {run_id: "running"}
    assert state.chunks.get(mine).claim_expires_at > before
    assert state.chunks.get(theirs).claimed_by == "them"


def test_an_outcome_needs_its_run_running(state):
    run_id, [chunk_id, _] = planned_run(state, [["a"], ["b"]])
    chunk = state.chunks.claim(chunk_id, HOLDER)
    assert state.runs.transition(run_id, "paused", ("running",))
    with pytest.raises(RunNotRunningError):
        state.chunks.complete(chunk, outcome(["a"]))
    assert state.chunks.get(chunk_id).status == "running"  # rolled back: the caller releases it
    assert state.ledger.hashes("profiles", ["a"]) == {}
    assert state.runs.get(run_id).read_count == 0


def test_only_one_producer_plans_a_run_and_an_expired_one_is_replaced_once(state):
    run_id = running_run(state)
    assert state.runs.claim_planning(run_id, "first", 15) is not None
    assert state.runs.claim_planning(run_id, "second", 15) is None, "a live claim is exclusive"
    assert state.runs.recover_planning([], 15) == []
    expire_claims(state, run_id=run_id)
    assert state.runs.recover_planning([], 15) == [(run_id, "backfill")]
    assert state.runs.recover_planning([], 15) == [], "handed on once"
    assert state.runs.claim_planning(run_id, "second", 15) is not None
    # The first producer wakes up: whatever it writes is refused.
    with pytest.raises(PlanningMovedError):
        state.chunks.append(run_id, [(["x"], None)], (T0, 1), expected=(None, 0), holder="first")
    with pytest.raises(PlanningMovedError):
        state.runs.mark_planning_done(run_id, expected=(None, 0), holder="first")
    state.chunks.append(run_id, [(["x"], None)], (T0, 1), expected=(None, 0), holder="second")
    assert planned_keys(state, run_id) == ["x"]
    assert state.runs.mark_planning_done(run_id, expected=(T0, 1), holder="second") is None
    assert state.runs.get(run_id).planning_claimed_by is None


def test_a_message_nobody_took_while_its_queue_is_empty_is_sent_again_once(state):
    """A frozen worker's pending fetch takes the message meant for its successor: upkeep sees
    the chunk still pending, its queue empty, and sends it again."""
    _, [lost, retrying, queued] = planned_run(state, [["a"], ["b"], ["c"]])
    state.chunks.release(state.chunks.claim(retrying, HOLDER), due_in=60)  # a retry on its way
    with state.db.transaction() as cur:
        cur.execute(
            "UPDATE sync_chunk SET enqueued_at = now() - interval '30 seconds' WHERE id = ANY(%s)",
            ([lost, queued],),
        )
    assert state.chunks.recover_undelivered([], 15) == [], "the queue holds messages: they wait"
    assert sorted(state.chunks.recover_undelivered(["backfill"], 15)) == [
        (lost, "backfill"),
        (queued, "backfill"),
    ]
    assert state.chunks.recover_undelivered(["backfill"], 15) == [], "sent again once"


def test_a_producer_that_never_came_is_sent_again_once_its_queue_is_empty(state):
    run_id = running_run(state)
    state.runs.expect_producer(run_id, 15)
    assert state.runs.recover_planning(["backfill"], 15) == [], "it may still come"
    expire_claims(state, run_id=run_id)
    assert state.runs.recover_planning([], 15) == [], "its queue holds messages: it waits"
    assert state.runs.recover_planning(["backfill"], 15) == [(run_id, "backfill")]
    assert state.runs.recover_planning(["backfill"], 15) == [], "sent again once"
    assert state.runs.claim_planning(run_id, "the new producer", 15) is not None


def test_the_last_chunk_ends_the_run_and_a_failed_one_fails_it(state):
    run_id, [one, two] = planned_run(state, [["a"], ["b"]])
    assert state.chunks.complete(state.chunks.claim(one, HOLDER), outcome(["a"])) is None
    assert state.runs.get(run_id).status == "running"
    claimed = state.chunks.claim(two, HOLDER)
    assert claimed is not None
    assert state.chunks.fail(claimed, "Synerise answered 503") == "failed"
    run = state.runs.get(run_id)
    assert run.status == "failed" and run.finished_at is not None
    assert f"sync resume {run_id}" in (run.error or "")
    assert (run.chunks_done, run.chunks_failed, run.failed_count) == (1, 1, 1)


def test_planning_done_after_the_last_chunk_ends_the_run(state):
    run_id = running_run(state)
    [chunk_id] = state.chunks.add(run_id, [["a"]])
    assert state.chunks.complete(state.chunks.claim(chunk_id, HOLDER), outcome(["a"])) is None
    assert state.runs.get(run_id).status == "running"  # more chunks may still come
    assert state.runs.mark_planning_done(run_id) == "done"
    assert state.runs.settle(run_id) is None  # ended once


def test_resume_puts_back_failed_chunks_and_those_of_dead_holders_only(state):
    run_id, [done, failed, dead, live, pending] = planned_run(
        state, [["a"], ["b", "c"], ["d"], ["e"], ["f"]]
    )
    state.chunks.complete(state.chunks.claim(done, HOLDER), outcome(["a"]))
    state.chunks.fail(state.chunks.claim(failed, HOLDER), "boom")
    state.chunks.claim(dead, "dead")
    state.chunks.claim(live, "alive")
    expire_claims(state, [dead])
    run = state.runs.get(run_id)
    assert (run.chunks_failed, run.failed_count) == (1, 2)
    assert state.chunks.reset_unfinished(run_id) == 2
    run = state.runs.get(run_id)
    assert (run.chunks_done, run.chunks_failed, run.failed_count) == (1, 0, 0)
    assert state.chunks.ids(run_id, ("pending",)) == [failed, dead, pending]
    assert state.chunks.ids(run_id, ("running",)) == [live]  # its worker is alive: left to it
    assert state.chunks.ids(run_id, ("done",)) == [done]


def test_claiming_a_failed_chunk_takes_its_records_out_of_the_failed_count(state):
    run_id, [chunk_id, _] = planned_run(state, [["a", "b"], ["c"]])
    state.chunks.fail(state.chunks.claim(chunk_id, HOLDER), "boom")
    assert state.chunks.claim(chunk_id, HOLDER) is not None  # a late delivery retries it
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
    engine.close()


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
    state.chunks.complete(state.chunks.claim(chunk, HOLDER), outcome(["stale"]))  # ledger first
    source, [chunk] = planned_run(state, [["fixed", "stale", "still-bad"]])
    rejected = outcome([], ["fixed", "stale", "still-bad"])
    state.chunks.complete(state.chunks.claim(chunk, HOLDER), rejected)
    _, [chunk] = planned_run(state, [["fixed"]])  # e.g. an incremental sync after the fix
    state.chunks.complete(state.chunks.claim(chunk, HOLDER), outcome(["fixed"]))
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


def test_a_producer_whose_listing_holds_a_scroll_ends_its_slices_at_window_ends(state):
    from etl.sync.producer import PlanningSliceEnded

    run_id = running_run(state)
    stream = FakeStream(spread(100), cap=12)
    stream.slices_end_at_windows = True  # as a Master Data scroll: never left open mid-window
    offsets = []
    while True:
        try:
            plan_chunks(run_id, state, stream, 5, lambda _: None, lambda: None, deadline=0.0)
            break
        except PlanningSliceEnded:
            offsets.append(state.runs.get(run_id).planning_offset)
            assert len(offsets) < 100
    assert len(offsets) > 5 and set(offsets) == {0}  # every slice stopped at a window's end
    assert sorted(planned_keys(state, run_id)) == [f"r{i:05d}" for i in range(100)]


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


# -- claims, health, the cost of a chunk -----------------------------------------------------------


class SendingStream(FakeStream):
    """A FakeStream whose records map to themselves and which Synerise accepts, without HTTP."""

    def fetch(self, keys: Sequence[str], stored: Sequence[dict[str, Any]] | None) -> list[Fetched]:
        return [Fetched(key, {"id": key}) for key in keys]

    def to_payload(self, fetched: Fetched, warnings: Any = None) -> dict[str, Any]:
        assert fetched.record is not None
        return {"customId": fetched.record["id"]}

    def send(self, synerise: SyneriseClient, payloads: Sequence[dict[str, Any]]) -> BatchResult:
        return BatchResult(accepted=list(range(len(payloads))))


def committed_transactions(engine: Engine, reader: StateStore) -> int:
    """The database's committed transactions, the engine's and the reader's counts flushed
    (PostgreSQL publishes a backend's counts when it goes idle after
    ``pg_stat_force_next_flush``)."""
    with engine.store.db.transaction() as cur:
        cur.execute("SELECT pg_stat_force_next_flush()")
    with reader.db.transaction() as cur:
        cur.execute("SELECT pg_stat_force_next_flush()")
    with reader.db.transaction() as cur:
        cur.execute("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")
        return int(cur.fetchone()["xact_commit"])


def test_a_chunk_costs_two_postgresql_transactions(quiet_engine, database_url, monkeypatch):
    """One to claim it (with its run's settings and its ledger hashes), one for its outcome.

    Counted over twenty chunks, less what reading the counter costs; the slack of two covers a
    transaction of another backend landing in the window (an autovacuum visit, a heartbeat).
    """
    engine, _ = quiet_engine
    monkeypatch.setattr(engine, "stream", lambda scope: SendingStream([], cap=10))
    run_id = start(engine)
    keys = [[f"k{i}-{j}" for j in range(50)] for i in range(22)]
    chunk_ids = engine.store.chunks.add(run_id, keys)
    engine.store.runs.mark_planning_done(run_id)
    reader = StateStore(database_url)
    assert runs.run_chunk(engine, chunk_ids[0]) == "done"  # warm: the heartbeat thread starts
    first = committed_transactions(engine, reader)
    reading = committed_transactions(engine, reader) - first
    for chunk_id in chunk_ids[1:21]:
        assert runs.run_chunk(engine, chunk_id) == "done"
    spent = committed_transactions(engine, reader) - first - 2 * reading
    reader.close()
    assert spent <= 2 * 20 + 2, f"{spent} transactions for 20 chunks"
    assert runs.run_chunk(engine, chunk_ids[21]) == "done"
    run = engine.store.runs.get(run_id)
    assert (run.status, run.sent_count) == ("done", 22 * 50)


def test_resume_leaves_a_healthy_run_alone(quiet_engine):
    engine, sent = quiet_engine
    run_id = start(engine)
    working, waiting = engine.store.chunks.add(run_id, [["a"], ["b"]])
    engine.store.runs.mark_planning_done(run_id)
    claimed = engine.store.chunks.claim(working, "a-live-worker", 60)
    sent.clear()
    assert runs.health(engine, run_id) == []
    assert runs.resume(engine, run_id).status == "running"
    assert sent == [], "a healthy run's work is not sent again"
    assert engine.store.chunks.get(working) == claimed or (
        engine.store.chunks.get(working).claimed_by == "a-live-worker"
    )
    # Its worker stops answering: the run is not healthy any more, and resume hands it on.
    expire_claims(engine.store, [working])
    assert runs.health(engine, run_id) == ["1 chunk(s) held by a worker that stopped answering"]
    runs.resume(engine, run_id)
    resent = [chunk for name, args in sent if name == "etl.process_chunk" for chunk in args[0]]
    assert sorted(resent) == sorted([working, waiting])
    assert engine.store.chunks.get(working).status == "pending"


def test_health_names_what_is_wrong(quiet_engine):
    engine, _ = quiet_engine
    run_id = start(engine)
    assert runs.health(engine, run_id) == [], "its producer is on its way"
    expire_claims(engine.store, run_id=run_id)
    assert runs.health(engine, run_id) == ["no live producer is planning it"]
    assert engine.store.runs.claim_planning(run_id, "producer", 60) is not None
    assert runs.health(engine, run_id) == []
    [chunk_id] = engine.store.chunks.add(run_id, [["a"]])
    engine.store.chunks.fail(engine.store.chunks.claim(chunk_id, HOLDER), "boom")
    engine.lease.release(runs.token(run_id))
    assert runs.health(engine, run_id) == ["it holds no slot lease", "1 chunk(s) failed"]
    runs.cancel(engine, run_id)
    assert runs.health(engine, run_id) == ["it is cancelled"]


def broker_down(name: str, args: list, queue: str) -> None:
    raise NetworkError("the broker unreachable: ConnectionError")


def test_a_start_that_cannot_send_its_first_task_records_no_run(quiet_engine, monkeypatch):
    engine, _ = quiet_engine
    monkeypatch.setattr(engine, "enqueue", broker_down)
    with pytest.raises(NetworkError):
        start(engine)
    assert engine.store.runs.find() == []
    assert engine.lease.holders() == []


def test_a_selection_that_cannot_send_its_chunks_records_no_run(quiet_engine, monkeypatch):
    engine, _ = quiet_engine
    monkeypatch.setattr(engine, "enqueue", broker_down)
    monkeypatch.setattr(engine, "enqueue_many", broker_down)
    with pytest.raises(NetworkError):
        runs.start(engine, runs.StartRequest("orders", keys=("A", "B")))
    assert engine.store.runs.find() == []  # its chunks went with it (ON DELETE CASCADE)
    assert engine.lease.holders() == []


def test_a_waiting_run_that_cannot_be_started_keeps_waiting(quiet_engine, monkeypatch):
    engine, _ = quiet_engine
    first, second, third = start(engine), start(engine), start(engine)
    monkeypatch.setattr(engine, "enqueue", broker_down)
    with pytest.raises(NetworkError):
        runs.cancel(engine, first)  # frees a slot: the third run's start fails
    assert engine.store.runs.get(third).status == "queued"
    assert runs.token(third) not in [holder for holder, _ in engine.lease.holders()]
    monkeypatch.undo()
    runs.activate_waiting(engine)
    assert engine.store.runs.get(third).status == "running"
    assert engine.store.runs.get(second).status == "running"


def test_the_heartbeat_keeps_claims_and_tells_a_task_what_changed(quiet_engine):
    engine, _ = quiet_engine
    heartbeat = engine.heartbeat
    run_id = start(engine)
    mine, other = engine.store.chunks.add(run_id, [["a"], ["b"]])
    engine.store.runs.mark_planning_done(run_id)
    claimed = engine.store.chunks.claim(mine, heartbeat.token, ttl=60)
    assert claimed is not None
    heartbeat.hold_chunk(mine, run_id)
    heartbeat.check(run_id, mine)  # nothing wrong
    # Upkeep handed the claim on (as if this process had been frozen past its TTL).
    expire_claims(engine.store, [mine])
    assert engine.store.chunks.recover_expired() == [(mine, "backfill")]
    heartbeat.beat()
    with pytest.raises(ClaimLostError):
        heartbeat.check(run_id, mine)
    heartbeat.drop_chunk(mine)
    # A cancelled run stops its tasks at the next check; so does a lost slot.
    engine.store.chunks.claim(other, heartbeat.token, ttl=60)
    heartbeat.hold_chunk(other, run_id)
    runs.cancel(engine, run_id)
    heartbeat.beat()
    with pytest.raises(RunStoppedError):
        heartbeat.check(run_id, other)
    heartbeat.drop_chunk(other)


def test_upkeep_sends_a_frozen_workers_chunks_ahead_of_the_waiting_batches(quiet_engine):
    """New chunks go out in batches (``enqueue_many``, taken after single sends); chunks handed
    on from a worker that stopped answering go one by one (``enqueue``), so a worker takes them
    next instead of after the rest of the run."""
    engine, sent = quiet_engine
    batches: list = []
    engine.enqueue_many = lambda name, args_list, queue: batches.append((name, args_list))
    run_id = start(engine)
    frozen, waiting = engine.store.chunks.add(run_id, [["a"], ["b"]])
    engine.store.runs.mark_planning_done(run_id)
    engine.enqueue_chunks([frozen, waiting])
    assert batches == [(TASK_PROCESS_CHUNK, [[[frozen]], [[waiting]]])]
    assert engine.store.chunks.claim(frozen, "frozen-worker", ttl=60) is not None
    expire_claims(engine.store, [frozen])
    sent.clear()
    runs.maintain(engine, timedelta(minutes=5))
    assert (TASK_PROCESS_CHUNK, [[frozen]]) in sent
    assert len(batches) == 1, "nothing handed on through the batch path"
