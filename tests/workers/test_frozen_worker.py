"""Work frees fast: a worker frozen (SIGSTOP, a stand-in for a partition) while it holds a chunk,
and a producer killed mid-planning, lose their work to a healthy worker within the claim TTL, not
the 300 s stale timeout; the frozen worker's late answer writes nothing."""

from __future__ import annotations

import os
import signal

import psutil
import pytest

from etl.state.store import StateStore
from etl.sync import runs
from etl.sync.engine import Engine
from etl.sync.queues import TASK_PRODUCE
from tests.helpers.sync import (
    WHOLE_RANGE,
    assert_profiles_arrived,
    expected,
    set_faults,
    wait_for_run,
    wait_until,
)

CLAIMS = {"SYNC_CLAIM_TTL": "2", "SYNC_LEASE_TTL": "5", "SYNC_STALE_AFTER": "300"}


def group_pids(leader: int) -> set[int]:
    """A worker's process and its pool children."""
    return {leader, *(child.pid for child in psutil.Process(leader).children(recursive=True))}


def chunks_held_by(store: StateStore, run_id: int, pids: set[int]) -> list[int]:
    """Running chunks of the run whose claim names one of these processes (``host:pid:random``)."""
    held = []
    for chunk_id in store.chunks.ids(run_id, ("running",)):
        holder = store.chunks.get(chunk_id).claimed_by or "::"
        if int(holder.split(":")[1]) in pids:
            held.append(chunk_id)
    return held


def freeze_while_holding(store: StateStore, run_id: int, leader: int, logs: object) -> int:
    """SIGSTOP the worker group while it holds a chunk; the chunk's id.

    Checked again once frozen (a frozen worker cannot change its claims): if the chunk was
    finished between the look and the signal, the worker is woken and the next one is taken.
    """
    for _ in range(10):
        held = wait_until(
            lambda: chunks_held_by(store, run_id, group_pids(leader)),
            90,
            what=f"a chunk claimed by the worker to freeze (logs: {logs})",
        )
        os.killpg(leader, signal.SIGSTOP)
        if held[0] in chunks_held_by(store, run_id, group_pids(leader)):
            return held[0]
        os.killpg(leader, signal.SIGCONT)
    pytest.fail("the worker never held a chunk long enough to be frozen with it")


def outcome_rows(store: StateStore, run_id: int) -> tuple:
    """Everything a chunk outcome writes, to compare before and after a late answer."""
    run = store.runs.get(run_id)
    with store.db.transaction() as cur:
        cur.execute("SELECT count(*) AS n, max(synced_at) AS at FROM entity_ledger")
        ledger = tuple(cur.fetchone().values())
        cur.execute("SELECT count(*) AS n, sum(attempts) AS a FROM rejected_record")
        rejects = tuple(cur.fetchone().values())
        cur.execute("SELECT id, status, attempts FROM sync_chunk ORDER BY id")
        chunks = [tuple(row.values()) for row in cur.fetchall()]
    counts = (run.read_count, run.sent_count, run.rejected_count, run.chunks_done, run.status)
    return counts, ledger, rejects, chunks


@pytest.mark.sandbox(customers=120, orders=0)
@pytest.mark.sync_env(SYNC_CHUNK_SIZE="10", **CLAIMS)
def test_a_frozen_workers_chunk_finishes_elsewhere_and_its_late_answer_writes_nothing(
    sandbox, engine: Engine, celery_app, sync_env, sync_redis, spawn_worker, tmp_path
):
    set_faults(sandbox, {"route": "synerise.*_batch", "latency_ms": 1500})  # chunks take a while
    # Two pool processes each: the frozen worker keeps a fetch pending in Redis, which takes
    # the next message sent (its own chunk's, re-sent), so that loss must be recovered too.
    frozen = spawn_worker("frozen", concurrency=2)
    spawn_worker("healthy", concurrency=2)
    run = runs.start(engine, runs.StartRequest("customers_created", WHOLE_RANGE))

    chunk_id = freeze_while_holding(engine.store, run.id, frozen.pid, tmp_path)
    try:
        # Its claim expires (2 s) and the healthy worker's upkeep hands the chunk on: within a
        # minute, far below the 300 s stale timeout, while the healthy worker keeps the run alive.
        wait_until(
            lambda: engine.store.chunks.get(chunk_id).status == "done",
            60,
            what=f"the frozen worker's chunk {chunk_id} done elsewhere",
        )
        ended = wait_for_run(engine.store, run.id, timeout=120)
        assert ended.status == "done"
        assert engine.store.chunks.get(chunk_id).attempts >= 2
        before = outcome_rows(engine.store, run.id)
    finally:
        os.killpg(frozen.pid, signal.SIGCONT)

    # The frozen worker wakes up, gets Synerise's late answer and acknowledges its message.
    wait_until(lambda: sync_redis.hlen("unacked") == 0, 60, what="the woken worker's ack")
    assert outcome_rows(engine.store, run.id) == before, "the late answer wrote something"
    truth = expected(sandbox)["customers"]
    assert (ended.read_count, ended.sent_count, ended.rejected_count) == (
        truth["total"],
        truth["sent"],
        truth["rejected"],
    )
    assert before[1][0] == truth["sent"], "a ledger row per record sent, once"
    assert_profiles_arrived(sandbox)


@pytest.mark.sandbox(customers=400, orders=0)
@pytest.mark.sync_env(SYNC_CHUNK_SIZE="10", **CLAIMS)
def test_a_producer_killed_mid_planning_is_taken_over_within_the_claim_ttl(
    sandbox, engine: Engine, celery_app, sync_env, spawn_worker, tmp_path
):
    set_faults(sandbox, {"route": "md.*", "latency_ms": 1000})  # a listing call a second
    producer = spawn_worker("producer")
    run = runs.start(engine, runs.StartRequest("customers_created", WHOLE_RANGE))

    def planning_under_way() -> bool:
        now = engine.store.runs.get(run.id)
        return bool(now.planning_claimed_by) and now.chunks_total > 0 and not now.planning_done

    wait_until(planning_under_way, 90, what=f"planning under way (logs: {tmp_path})")
    os.killpg(producer.pid, signal.SIGKILL)
    producer.wait(timeout=30)
    assert not engine.store.runs.get(run.id).planning_done

    spawn_worker("successor")
    wait_until(
        lambda: engine.store.runs.get(run.id).planning_done,
        60,
        what="planning finished by a new producer (the stale timeout is 300 s)",
    )
    ended = wait_for_run(engine.store, run.id, timeout=120)
    assert ended.status == "done"
    keys = []
    for chunk_id in engine.store.chunks.ids(run.id, ("done",)):
        keys += engine.store.chunks.get(chunk_id).keys
    truth = expected(sandbox)["customers"]
    assert len(keys) == len(set(keys)) == truth["total"], "every record planned exactly once"
    assert (ended.read_count, ended.sent_count) == (truth["total"], truth["sent"])
    assert_profiles_arrived(sandbox)


@pytest.mark.sandbox(customers=60, orders=0)
@pytest.mark.sync_env(SYNC_CHUNK_SIZE="10", **CLAIMS)
def test_messages_a_frozen_worker_took_are_sent_again(sandbox, engine: Engine, worker, monkeypatch):
    """Redis hands a new message to the longest-waiting fetch: a frozen or cut-off worker's. Such
    messages are lost to the others; here the first producer message and the first chunks'
    messages are dropped, and upkeep must send them again once their queue is empty."""
    lost: list[str] = []
    send_one, send_many = engine.enqueue, engine.enqueue_many
    assert send_many is not None

    def lose_the_first_producer(name: str, args: list, queue: str) -> object:
        if name == TASK_PRODUCE and not lost:
            lost.append(name)
            return "taken by a frozen worker"
        return send_one(name, args, queue)

    def lose_the_first_chunks(name: str, args_list: list, queue: str) -> object:
        if "chunks" not in lost:
            lost.append("chunks")
            return []
        return send_many(name, args_list, queue)

    monkeypatch.setattr(engine, "enqueue", lose_the_first_producer)
    monkeypatch.setattr(engine, "enqueue_many", lose_the_first_chunks)
    run = runs.start(engine, runs.StartRequest("customers_created", WHOLE_RANGE))
    ended = wait_for_run(engine.store, run.id, timeout=60)  # the stale timeout is 300 s
    assert lost == [TASK_PRODUCE, "chunks"]
    truth = expected(sandbox)["customers"]
    assert (ended.status, ended.read_count, ended.sent_count) == (
        "done",
        truth["total"],
        truth["sent"],
    )
