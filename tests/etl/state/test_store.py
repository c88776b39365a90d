"""StateStore against a real PostgreSQL: runs, conditional transitions, chunks and claims."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TypeVar

import psycopg2
import pytest

from etl.state.store import ChunkNotFoundError, RunNotFoundError, StateStore

JAN = datetime(2026, 1, 1, tzinfo=UTC)
FEB = datetime(2026, 2, 1, tzinfo=UTC)

T = TypeVar("T")


@pytest.fixture
def store(database_url):
    store = StateStore(database_url)
    yield store
    store.close()


def new_run(store: StateStore, **overrides) -> int:
    args = {"kind": "backfill", "scope": "orders", "window_from": JAN, "window_to": FEB}
    return store.create_run(**{**args, **overrides})


def running_run(store: StateStore) -> int:
    run_id = new_run(store)
    assert store.transition(run_id, "running", ("queued",))
    return run_id


def test_create_and_get_run(store):
    run_id = new_run(store, dry_run=True, config={"sync_chunk_size": 100, "vtex_app_token": "***"})
    run = store.get_run(run_id)
    assert (run.id, run.kind, run.scope, run.status) == (run_id, "backfill", "orders", "queued")
    assert (run.window_from, run.window_to) == (JAN, FEB)
    assert run.dry_run and not run.full_resync and not run.planning_done
    assert run.config == {"sync_chunk_size": 100, "vtex_app_token": "***"}
    assert (run.read_count, run.sent_count, run.chunks_total, run.chunks_failed) == (0, 0, 0, 0)
    assert run.started_at is None and run.finished_at is None and run.error is None


@pytest.mark.parametrize(
    "bad",
    [{"kind": "sideways"}, {"scope": "products"}, {"window_from": FEB, "window_to": JAN}],
)
def test_create_run_rejects_bad_input(store, bad):
    with pytest.raises(ValueError):
        new_run(store, **bad)


def test_get_run_unknown(store):
    with pytest.raises(RunNotFoundError):
        store.get_run(424242)


def test_list_runs_newest_first_and_by_status(store):
    first, second, third = new_run(store), new_run(store), new_run(store)
    store.transition(second, "running", ("queued",))
    assert [r.id for r in store.list_runs()] == [third, second, first]
    assert [r.id for r in store.list_runs(limit=2)] == [third, second]
    assert [r.id for r in store.list_runs(status="running")] == [second]
    assert [r.id for r in store.oldest_queued_runs()] == [first, third]
    assert [r.id for r in store.oldest_queued_runs(limit=1)] == [first]
    with pytest.raises(ValueError):
        store.list_runs(status="sleeping")


def test_transition_is_conditional_and_stamps_times(store):
    run_id = new_run(store)
    assert not store.transition(run_id, "done", ("running",))
    assert store.get_run(run_id).status == "queued"

    assert store.transition(run_id, "running", ("queued", "paused"))
    started = store.get_run(run_id).started_at
    assert started is not None

    assert store.transition(run_id, "paused", ("running",), error="lease lost")
    assert store.get_run(run_id).error == "lease lost"
    assert store.transition(run_id, "running", ("paused",))
    run = store.get_run(run_id)
    assert run.started_at == started, "started_at records the first start only"
    assert run.error is None, "the error is replaced (cleared) by each transition"

    assert store.transition(run_id, "failed", ("running",), error="boom")
    failed = store.get_run(run_id)
    assert failed.finished_at is not None and failed.error == "boom"
    assert store.transition(run_id, "queued", ("failed",))
    assert store.get_run(run_id).finished_at is None, "a resumed run is not finished"

    assert not store.transition(424242, "running", ("queued",))
    with pytest.raises(ValueError):
        store.transition(run_id, "exploded", ("queued",))
    with pytest.raises(ValueError):
        store.transition(run_id, "running", "queued")  # a string is not a set of statuses


def race(database_url: str, action: Callable[[StateStore], T], racers: int = 8) -> list[T]:
    """``action``'s results, run at once in ``racers`` threads, each with its own store."""
    results: list[T] = []
    barrier = threading.Barrier(racers)

    def racer() -> None:
        store = StateStore(database_url)
        barrier.wait()
        results.append(action(store))
        store.close()

    threads = [threading.Thread(target=racer) for _ in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_only_one_of_racing_transitions_wins(database_url):
    run_id = new_run(StateStore(database_url))
    wins = race(database_url, lambda store: store.transition(run_id, "running", ("queued",)))
    assert sorted(wins) == [False] * 7 + [True]


def test_add_chunks_numbers_them_and_bumps_the_total(store):
    run_id = new_run(store)
    first = store.add_chunks(run_id, [["o-1", "o-2"], ["o-3"]])
    second = store.add_chunks(run_id, [["o-4"]])
    assert store.add_chunks(run_id, []) == []
    assert store.get_run(run_id).chunks_total == 3
    chunks = [store.get_chunk(chunk_id) for chunk_id in first + second]
    assert [c.seq for c in chunks] == [1, 2, 3]
    assert [c.keys for c in chunks] == [["o-1", "o-2"], ["o-3"], ["o-4"]]
    assert {c.status for c in chunks} == {"pending"}
    assert {c.attempts for c in chunks} == {0}


def test_add_chunks_rejects_bad_input_atomically(store):
    run_id = new_run(store)
    with pytest.raises(ValueError):
        store.add_chunks(run_id, [["o-1"], []])
    with pytest.raises(ValueError):
        store.add_chunks(run_id, [["o-1", 2]])
    with pytest.raises(RunNotFoundError):
        store.add_chunks(424242, [["o-1"]])
    assert store.get_run(run_id).chunks_total == 0
    assert store.chunk_ids(run_id, ["pending"]) == []


def test_concurrent_add_chunks_get_distinct_sequence_numbers(database_url):
    run_id = new_run(StateStore(database_url))
    barrier = threading.Barrier(4)

    def add(worker: int) -> None:
        store = StateStore(database_url)
        barrier.wait()
        for i in range(5):
            store.add_chunks(run_id, [[f"{worker}-{i}-a"], [f"{worker}-{i}-b"]])
        store.close()

    threads = [threading.Thread(target=add, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    store = StateStore(database_url)
    ids = store.chunk_ids(run_id, ["pending"])
    assert [store.get_chunk(i).seq for i in ids] == list(range(1, 41))
    assert store.get_run(run_id).chunks_total == 40


def test_claim_needs_a_running_run(store):
    run_id = new_run(store)
    [chunk_id] = store.add_chunks(run_id, [["o-1"]])
    assert store.claim_chunk(chunk_id) is None, "queued run: nothing may run yet"
    store.transition(run_id, "running", ("queued",))
    claimed = store.claim_chunk(chunk_id)
    assert claimed is not None
    assert (claimed.id, claimed.status, claimed.attempts, claimed.keys) == (
        chunk_id, "running", 1, ["o-1"])
    assert store.claim_chunk(chunk_id) is None, "a duplicate delivery must not run it twice"
    with pytest.raises(ChunkNotFoundError):
        store.claim_chunk(424242)


def test_claim_skips_done_chunks_and_cancelled_runs(store, database_url):
    run_id = running_run(store)
    done_id, other_id = store.add_chunks(run_id, [["o-1"], ["o-2"]])
    with psycopg2.connect(database_url) as conn, conn.cursor() as cur:
        cur.execute("UPDATE sync_chunk SET status = 'done' WHERE id = %s", (done_id,))
    assert store.claim_chunk(done_id) is None
    store.transition(run_id, "cancelled", ("running",))
    assert store.claim_chunk(other_id) is None
    assert store.get_chunk(other_id).status == "pending"


def test_fail_then_reclaim_keeps_the_failed_counter_current(store):
    run_id = running_run(store)
    [chunk_id] = store.add_chunks(run_id, [["o-1"]])
    store.fail_chunk(chunk_id, "not claimed yet: ignored")
    assert store.get_chunk(chunk_id).status == "pending"

    store.claim_chunk(chunk_id)
    store.fail_chunk(chunk_id, "Synerise 503 after 5 tries")
    store.fail_chunk(chunk_id, "a late duplicate")
    failed = store.get_chunk(chunk_id)
    assert (failed.status, failed.error) == ("failed", "Synerise 503 after 5 tries")
    assert store.get_run(run_id).chunks_failed == 1
    assert store.chunk_ids(run_id, ["failed"]) == [chunk_id]

    again = store.claim_chunk(chunk_id)
    assert again is not None and again.attempts == 2
    assert store.get_run(run_id).chunks_failed == 0


def test_only_one_of_racing_claims_wins(database_url):
    store = StateStore(database_url)
    run_id = running_run(store)
    [chunk_id] = store.add_chunks(run_id, [["o-1"]])
    results = race(database_url, lambda mine: mine.claim_chunk(chunk_id))
    assert sum(result is not None for result in results) == 1
    assert store.get_chunk(chunk_id).attempts == 1


def test_chunk_ids_by_status(store):
    run_id = running_run(store)
    ids = store.add_chunks(run_id, [["a"], ["b"], ["c"]])
    store.claim_chunk(ids[1])
    assert store.chunk_ids(run_id, ["pending"]) == [ids[0], ids[2]]
    assert store.chunk_ids(run_id, ["pending", "running"]) == ids
    with pytest.raises(ValueError):
        store.chunk_ids(run_id, ["lost"])


def test_mark_planning_done(store):
    run_id = new_run(store)
    store.mark_planning_done(run_id)
    assert store.get_run(run_id).planning_done
    with pytest.raises(RunNotFoundError):
        store.mark_planning_done(424242)


def test_a_dead_connection_is_replaced(store, database_url):
    run_id = new_run(store)
    store.db.idle_check_after = 0  # ping before every transaction
    with psycopg2.connect(database_url) as admin, admin.cursor() as cur:
        cur.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = 'vtex-synerise-etl' AND datname = current_database()"
        )
        assert cur.rowcount >= 1
    assert store.get_run(run_id).id == run_id


def test_selftest_rows(store):
    store.record_selftest("t-1", "w1@host")
    store.record_selftest("t-1", "w2@host")  # redelivered: idempotent
    store.record_selftest("t-2", "w1@host")
    assert store.selftest_tokens(["t-1", "t-2", "t-3"]) == {"t-1": "w2@host", "t-2": "w1@host"}
