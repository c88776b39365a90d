"""The state store against a real PostgreSQL: runs, conditional transitions, chunks, claims and
the one-transaction chunk outcome."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TypeVar

import psycopg2
import pytest

from etl.state.chunks import ChunkNotFoundError, ChunkOutcome, LedgerMovedError
from etl.state.realtime import RealtimeRuns
from etl.state.rejects import Rejection
from etl.state.runs import RunNotFoundError, add_counts
from etl.state.store import StateStore
from schemas.reasons import FieldWarning, WarningCode

HOLDER = "host:1:test"
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
    return store.runs.create(**{**args, **overrides})


def running_run(store: StateStore) -> int:
    run_id = new_run(store)
    assert store.runs.transition(run_id, "running", ("queued",))
    return run_id


def test_create_and_get_run(store):
    run_id = new_run(store, dry_run=True, config={"sync_chunk_size": 100, "vtex_app_token": "***"})
    run = store.runs.get(run_id)
    assert (run.id, run.kind, run.scope, run.status) == (run_id, "backfill", "orders", "queued")
    assert (run.window_from, run.window_to) == (JAN, FEB)
    assert run.dry_run and not run.full_resync and not run.planning_done
    assert run.config == {"sync_chunk_size": 100, "vtex_app_token": "***"}
    assert (run.read_count, run.sent_count, run.chunks_total, run.chunks_failed) == (0, 0, 0, 0)
    assert run.started_at is None and run.finished_at is None and run.error is None


@pytest.mark.parametrize(
    "bad",
    [{"kind": "sideways"}, {"scope": "catalog"}, {"window_from": FEB, "window_to": JAN}],
)
def test_create_run_rejects_bad_input(store, bad):
    with pytest.raises(ValueError):
        new_run(store, **bad)


def test_get_run_unknown(store):
    with pytest.raises(RunNotFoundError):
        store.runs.get(424242)


def test_list_runs_newest_first_and_by_status(store):
    first, second, third = new_run(store), new_run(store), new_run(store)
    store.runs.transition(second, "running", ("queued",))
    assert [r.id for r in store.runs.find()] == [third, second, first]
    assert [r.id for r in store.runs.find(limit=2)] == [third, second]
    assert [r.id for r in store.runs.find(status="running")] == [second]
    assert [r.id for r in store.runs.waiting()] == [first, third]  # oldest first
    with pytest.raises(ValueError):
        store.runs.find(status="sleeping")


def test_transition_is_conditional_and_stamps_times(store):
    run_id = new_run(store)
    assert not store.runs.transition(run_id, "done", ("running",))
    assert store.runs.get(run_id).status == "queued"

    assert store.runs.transition(run_id, "running", ("queued", "paused"))
    started = store.runs.get(run_id).started_at
    assert started is not None

    assert store.runs.transition(run_id, "paused", ("running",), error="lease lost")
    assert store.runs.get(run_id).error == "lease lost"
    assert store.runs.transition(run_id, "running", ("paused",))
    run = store.runs.get(run_id)
    assert run.started_at == started, "started_at records the first start only"
    assert run.error is None, "the error is replaced (cleared) by each transition"

    assert store.runs.transition(run_id, "failed", ("running",), error="boom")
    failed = store.runs.get(run_id)
    assert failed.finished_at is not None and failed.error == "boom"
    assert store.runs.transition(run_id, "queued", ("failed",))
    assert store.runs.get(run_id).finished_at is None, "a resumed run is not finished"

    assert not store.runs.transition(424242, "running", ("queued",))
    with pytest.raises(ValueError):
        store.runs.transition(run_id, "exploded", ("queued",))
    with pytest.raises(ValueError):
        store.runs.transition(run_id, "running", "queued")  # a string is not a set of statuses


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
    wins = race(database_url, lambda store: store.runs.transition(run_id, "running", ("queued",)))
    assert sorted(wins) == [False] * 7 + [True]


def test_add_chunks_numbers_them_and_bumps_the_total(store):
    run_id = new_run(store)
    first = store.chunks.add(run_id, [["o-1", "o-2"], ["o-3"]])
    second = store.chunks.add(run_id, [["o-4"]])
    assert store.chunks.add(run_id, []) == []
    assert store.runs.get(run_id).chunks_total == 3
    chunks = [store.chunks.get(chunk_id) for chunk_id in first + second]
    assert [c.seq for c in chunks] == [1, 2, 3]
    assert [c.keys for c in chunks] == [["o-1", "o-2"], ["o-3"], ["o-4"]]
    assert {c.status for c in chunks} == {"pending"}
    assert {c.attempts for c in chunks} == {0}


def test_add_chunks_rejects_bad_input_atomically(store):
    run_id = new_run(store)
    with pytest.raises(ValueError):
        store.chunks.add(run_id, [["o-1"], []])
    with pytest.raises(ValueError):
        store.chunks.add(run_id, [["o-1", 2]])
    with pytest.raises(RunNotFoundError):
        store.chunks.add(424242, [["o-1"]])
    assert store.runs.get(run_id).chunks_total == 0
    assert store.chunks.ids(run_id, ["pending"]) == []


def test_concurrent_add_chunks_get_distinct_sequence_numbers(database_url):
    run_id = new_run(StateStore(database_url))
    barrier = threading.Barrier(4)

    def add(worker: int) -> None:
        store = StateStore(database_url)
        barrier.wait()
        for i in range(5):
            store.chunks.add(run_id, [[f"{worker}-{i}-a"], [f"{worker}-{i}-b"]])
        store.close()

    threads = [threading.Thread(target=add, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    store = StateStore(database_url)
    ids = store.chunks.ids(run_id, ["pending"])
    assert [store.chunks.get(i).seq for i in ids] == list(range(1, 41))
    assert store.runs.get(run_id).chunks_total == 40


def test_claim_needs_a_running_run(store):
    run_id = new_run(store)
    [chunk_id] = store.chunks.add(run_id, [["o-1"]])
    assert store.chunks.claim(chunk_id, HOLDER) is None, "queued run: nothing may run yet"
    store.runs.transition(run_id, "running", ("queued",))
    claimed = store.chunks.claim(chunk_id, HOLDER)
    assert claimed is not None
    assert (claimed.id, claimed.status, claimed.attempts, claimed.keys) == (
        chunk_id, "running", 1, ["o-1"])
    duplicate = store.chunks.claim(chunk_id, HOLDER)
    assert duplicate is None, "a duplicate delivery must not run it twice"
    with pytest.raises(ChunkNotFoundError):
        store.chunks.claim(424242, HOLDER)


def test_claim_skips_done_chunks_and_cancelled_runs(store, database_url):
    run_id = running_run(store)
    done_id, other_id = store.chunks.add(run_id, [["o-1"], ["o-2"]])
    with psycopg2.connect(database_url) as conn, conn.cursor() as cur:
        cur.execute("UPDATE sync_chunk SET status = 'done' WHERE id = %s", (done_id,))
    assert store.chunks.claim(done_id, HOLDER) is None
    store.runs.transition(run_id, "cancelled", ("running",))
    assert store.chunks.claim(other_id, HOLDER) is None
    assert store.chunks.get(other_id).status == "pending"


def test_a_claim_reads_the_ledger_hashes_of_its_chunks_records(store):
    """Of the run's connection and the scope's ledger stream; the mapping of scopes to streams
    is asked once per scope, later claims read the hashes in their one statement."""
    run_id = running_run(store)
    other = StateStore(store.dsn, store.connections.resolve("other", "acct", "workspace"))
    assert other.ledger.swap_hash("transactions", "o-1", None, "other-connection", run_id)
    for key, digest in (("o-1", "h1"), ("o-3", "h3")):
        assert store.ledger.swap_hash("transactions", key, None, digest, run_id)
    assert store.ledger.swap_hash("profiles", "o-2", None, "another-stream", run_id)
    first, second = store.chunks.add(run_id, [["o-1", "o-2"], ["o-3", "o-4"]])
    asked: list[str] = []

    def ledger_stream(scope: str) -> str:
        asked.append(scope)
        return {"orders": "transactions"}[scope]

    claimed = [store.chunks.claim(i, HOLDER, ledger_stream=ledger_stream) for i in (first, second)]
    assert [chunk.known for chunk in claimed if chunk] == [{"o-1": "h1"}, {"o-3": "h3"}]
    assert asked == ["orders"]
    other.close()


def test_fail_then_reclaim_keeps_the_failed_counter_current(store):
    run_id = running_run(store)
    [chunk_id] = store.chunks.add(run_id, [["o-1"]])
    store.chunks.fail(store.chunks.get(chunk_id), "not claimed yet: ignored")
    assert store.chunks.get(chunk_id).status == "pending"

    claimed = store.chunks.claim(chunk_id, HOLDER)
    store.chunks.fail(claimed, "Synerise 503 after 5 tries")
    store.chunks.fail(claimed, "a late duplicate")
    failed = store.chunks.get(chunk_id)
    assert (failed.status, failed.error) == ("failed", "Synerise 503 after 5 tries")
    assert store.runs.get(run_id).chunks_failed == 1
    assert store.chunks.ids(run_id, ["failed"]) == [chunk_id]

    again = store.chunks.claim(chunk_id, HOLDER)
    assert again is not None and again.attempts == 2
    assert store.runs.get(run_id).chunks_failed == 0


def test_only_one_of_racing_claims_wins(database_url):
    store = StateStore(database_url)
    run_id = running_run(store)
    [chunk_id] = store.chunks.add(run_id, [["o-1"]])
    results = race(database_url, lambda mine: mine.chunks.claim(chunk_id, HOLDER))
    assert sum(result is not None for result in results) == 1
    assert store.chunks.get(chunk_id).attempts == 1


def test_a_chunk_outcome_is_one_transaction(store):
    """Ledger, rejects, counters, chunk status and the run's end commit together or not at all."""
    run_id = running_run(store)
    [chunk_id] = store.chunks.add(run_id, [["a", "b"]])
    store.runs.mark_planning_done(run_id)
    chunk = store.chunks.claim(chunk_id, HOLDER)
    assert chunk is not None

    broken = ChunkOutcome(stream="profiles", read=2)
    broken.accept("a", "hash-a")  # written first ...
    broken.warn("a", [FieldWarning("birthDate", WarningCode.BIRTHDATE_DROPPED, "CL birthDate")])
    broken.rejections.append(Rejection("no-such-stream", "b", "INVALID_EMAIL", "x"))  # ... fails
    with pytest.raises(psycopg2.IntegrityError):
        store.chunks.complete(chunk, broken)
    assert store.ledger.hashes("profiles", ["a"]) == {}
    assert store.rejects.find(run_id) == []
    assert store.warnings.find(run_id) == []
    run = store.runs.get(run_id)
    assert (run.read_count, run.sent_count, run.chunks_done, run.status) == (0, 0, 0, "running")
    assert store.chunks.get(chunk_id).status == "running"  # still claimed: the retry may finish it

    outcome = ChunkOutcome(stream="profiles", read=2)
    outcome.accept("a", "hash-a")
    outcome.reject("b", "INVALID_EMAIL", "not an e-mail")
    assert store.chunks.complete(chunk, outcome) == "done"
    assert store.ledger.hashes("profiles", ["a", "b"]) == {"a": "hash-a"}
    assert [r.record_key for r in store.rejects.find(run_id)] == ["b"]
    run = store.runs.get(run_id)
    assert (run.read_count, run.sent_count, run.rejected_count, run.chunks_done) == (2, 1, 1, 1)
    assert run.status == "done"


def test_an_outcome_whose_ledger_rows_moved_since_its_claim_writes_nothing(store):
    """``complete(expected=...)``: an accepted record whose ledger row another writer changed
    since the diff read it makes the whole outcome write nothing; a row that already holds what
    the outcome accepted, or a new record nobody wrote meanwhile, has not moved."""
    run_id = running_run(store)
    for key, digest in (("a", "old-a"), ("b", "old-b"), ("c", "new-c")):
        assert store.ledger.swap_hash("transactions", key, None, digest, run_id)
    [chunk_id] = store.chunks.add(run_id, [["a", "b", "c", "d"]])
    chunk = store.chunks.claim(chunk_id, HOLDER)
    assert chunk is not None
    read = {"a": "old-a", "b": "old-b", "c": "old-c"}  # "d": no row when the diff read
    assert store.ledger.swap_hash("transactions", "b", "old-b", "realtime-b", run_id)
    outcome = ChunkOutcome(stream="transactions", read=4)
    for key in "abcd":
        outcome.accept(key, f"new-{key}")
    with pytest.raises(LedgerMovedError) as moved:
        store.chunks.complete(chunk, outcome, expected=read)
    assert moved.value.moved == {"b": "realtime-b"}
    assert store.ledger.hashes("transactions", list("abcd")) == {
        "a": "old-a", "b": "realtime-b", "c": "new-c"}  # fmt: skip
    assert store.chunks.get(chunk_id).status == "running"
    assert store.runs.get(run_id).sent_count == 0

    assert store.chunks.complete(chunk, outcome, expected={**read, "b": "realtime-b"}) is None
    assert store.ledger.hashes("transactions", list("abcd")) == {k: f"new-{k}" for k in "abcd"}
    assert store.runs.get(run_id).sent_count == 4


def test_the_last_chunk_ends_its_run_failed_when_another_chunk_failed(store):
    run_id = running_run(store)
    first, second = store.chunks.add(run_id, [["a"], ["b"]])
    store.runs.mark_planning_done(run_id)
    failing = store.chunks.claim(first, HOLDER)
    assert failing is not None and store.chunks.fail(failing, "503") is None
    last = store.chunks.claim(second, HOLDER)
    assert last is not None
    assert store.chunks.complete(last, ChunkOutcome(stream="profiles", read=1)) == "failed"
    run = store.runs.get(run_id)
    assert (run.status, run.chunks_done, run.chunks_failed) == ("failed", 1, 1)
    assert run.error is not None and f"sync resume {run_id}" in run.error
    assert run.finished_at is not None


def test_warnings_and_guest_profiles_are_recorded_with_the_chunk(store):
    """A record sent without a field is sent, with its warning; guest profiles have their own
    ledger entries, rejects and counters, and leave the orders' counts alone."""
    run_id = running_run(store)
    [chunk_id] = store.chunks.add(run_id, [["o-1", "o-2"]])
    chunk = store.chunks.claim(chunk_id, "a-worker")
    assert chunk is not None
    unknown = FieldWarning("paymentInfo.method", WarningCode.PAYMENT_METHOD_UNKNOWN, "no payment")
    phone = FieldWarning("phone", WarningCode.PHONE_DROPPED, "clientProfileData.phone")
    outcome = ChunkOutcome(stream="transactions", read=2)
    outcome.accept("o-1", "hash-o1")
    outcome.warn("o-1", [unknown])
    outcome.reject("o-2", "MISSING_IDENTIFIER", "no e-mail, no user id")
    outcome.guests = ChunkOutcome(stream="profiles", skipped=1)
    outcome.guests.accept("guest:u1", "hash-g1")
    outcome.guests.warn("guest:u1", [phone])
    outcome.guests.reject("guest:u3", "SYNERISE_REJECTED", "phone: invalid", origin="o-1")
    store.chunks.complete(chunk, outcome)

    assert store.ledger.hashes("transactions", ["o-1"]) == {"o-1": "hash-o1"}
    assert store.ledger.hashes("profiles", ["guest:u1"]) == {"guest:u1": "hash-g1"}
    run = store.runs.get(run_id)
    assert (run.read_count, run.sent_count, run.rejected_count, run.warned_count) == (2, 1, 1, 2)
    assert (run.guest_sent_count, run.guest_skipped_count, run.guest_rejected_count) == (1, 1, 1)
    warnings = {(w.stream, w.record_key, w.code) for w in store.warnings.find(run_id)}
    assert warnings == {("transactions", "o-1", "PAYMENT_METHOD_UNKNOWN"),
                        ("profiles", "guest:u1", "PHONE_DROPPED")}  # fmt: skip
    assert [w.record_key for w in store.warnings.find(run_id, code="PHONE_DROPPED")] == [
        "guest:u1"
    ]
    rejected = {r.record_key: r.origin_key for r in store.rejects.find(run_id)}
    assert rejected == {"o-2": None, "guest:u3": "o-1"}
    # A replay re-reads the orders: the guest profile's too, each once.
    assert sorted(store.rejects.unresolved_keys(run_id)) == ["o-1", "o-2"]

    # The same warning recorded again (a webhook record warned twice a day) counts once.
    again = ChunkOutcome(stream="transactions", read=1)
    again.accept("o-1", "hash-o1")
    again.warn("o-1", [unknown])
    RealtimeRuns(store).record(run_id, again)
    assert store.runs.get(run_id).warned_count == 2
    assert len(store.warnings.find(run_id)) == 2


def test_only_run_counters_can_be_added_to(store):
    run_id = new_run(store)
    with store.db.transaction() as cur, pytest.raises(ValueError, match="not a run counter"):
        add_counts(cur, run_id, status=1)


def test_chunk_ids_by_status(store):
    run_id = running_run(store)
    ids = store.chunks.add(run_id, [["a"], ["b"], ["c"]])
    store.chunks.claim(ids[1], HOLDER)
    assert store.chunks.ids(run_id, ["pending"]) == [ids[0], ids[2]]
    assert store.chunks.ids(run_id, ["pending", "running"]) == ids
    with pytest.raises(ValueError):
        store.chunks.ids(run_id, ["lost"])


def test_mark_planning_done(store):
    run_id = new_run(store)
    store.runs.mark_planning_done(run_id)
    assert store.runs.get(run_id).planning_done
    with pytest.raises(RunNotFoundError):
        store.runs.mark_planning_done(424242)


def test_a_dead_connection_is_replaced(store, database_url):
    run_id = new_run(store)
    store.db.idle_check_after = 0  # ping before every transaction
    with psycopg2.connect(database_url) as admin, admin.cursor() as cur:
        cur.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = 'vtex-synerise-etl' AND datname = current_database()"
        )
        assert cur.rowcount >= 1
    assert store.runs.get(run_id).id == run_id


def test_selftest_rows(store):
    store.selftest.record("t-1", "w1@host")
    store.selftest.record("t-1", "w2@host")  # redelivered: idempotent
    store.selftest.record("t-2", "w1@host")
    assert store.selftest.found(["t-1", "t-2", "t-3"]) == {"t-1": "w2@host", "t-2": "w1@host"}
