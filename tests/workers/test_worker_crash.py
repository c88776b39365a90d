"""A real prefork worker killed with SIGKILL mid-run, a new worker, ``sync resume``: nothing lost,
nothing twice."""

from __future__ import annotations

import json
import os
import signal

import pytest

from etl.sync import runs
from etl.sync.engine import Engine
from tests.helpers.sync import (
    WHOLE_RANGE,
    assert_profiles_arrived,
    expected,
    listing,
    order_truth,
    run_cli,
    set_faults,
    stats,
    wait_for_run,
    wait_until,
)


@pytest.mark.sandbox(customers=150, orders=240)
@pytest.mark.sync_env(SYNC_LEASE_TTL="5", SYNC_CHUNK_SIZE="10", SYNC_FETCH_CONCURRENCY="2")
def test_sigkill_mid_run_then_resume_loses_nothing_and_duplicates_nothing(
    sandbox, engine: Engine, celery_app, sync_env, spawn_worker, tmp_path
):
    # Slow enough that the kill lands mid-run: every Synerise batch takes 250 ms.
    set_faults(sandbox, {"route": "synerise.*_batch", "latency_ms": 250})
    started = [
        runs.start(engine, runs.StartRequest(scope, WHOLE_RANGE))
        for scope in ("orders", "customers_created")
    ]
    first = spawn_worker("first")

    def progressed() -> bool:
        return sum(engine.store.runs.get(run.id).chunks_done for run in started) >= 4

    wait_until(progressed, 90, what=f"chunks done by the first worker (log: {tmp_path})")
    # Hold every Synerise batch from now on, so a chunk claimed now is still in flight when the
    # worker dies: the kill waits for that observable condition, not for a guess of time.
    set_faults(sandbox, {"route": "synerise.*_batch", "latency_ms": 20_000})

    def claimed() -> list[int]:
        return [i for run in started for i in engine.store.chunks.ids(run.id, ("running",))]

    in_flight = wait_until(claimed, 60, what="a chunk claimed and in flight")
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(timeout=30)

    killed = [engine.store.runs.get(run.id) for run in started]
    assert any(run.status == "running" for run in killed), "both runs ended before the kill"
    assert set(in_flight) <= set(claimed()), "a chunk in flight was recorded after the kill"
    set_faults(sandbox, {"route": "synerise.*_batch", "latency_ms": 0})

    spawn_worker("second")
    for run in killed:
        result = run_cli(sync_env, "sync", "resume", str(run.id), "--json")
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["status"] in ("running", "queued", run.status)
    ended = [wait_for_run(engine.store, run.id, timeout=120) for run in started]
    assert [run.status for run in ended] == ["done", "done"]

    truth = expected(sandbox)
    orders, customers = ended
    # Counted once: only the attempt that completes a chunk writes its outcome.
    assert (orders.read_count, orders.sent_count, orders.rejected_count) == (
        truth["orders"]["total"],
        truth["orders"]["sent"],
        truth["orders"]["rejected"],
    )
    assert (customers.read_count, customers.sent_count) == (
        truth["customers"]["total"],
        truth["customers"]["sent"],
    )
    # Nothing lost, nothing duplicated in Synerise.
    synerise = stats(sandbox)
    assert synerise["duplicate_transactions"] == 0
    arrived = sorted(txn["orderId"] for txn in listing(sandbox, "transactions"))
    assert arrived == sorted(key for key, reason in order_truth(sandbox).items() if reason is None)
    assert_profiles_arrived(sandbox)
    assert engine.lease.holders() == []
