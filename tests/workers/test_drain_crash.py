"""A real prefork worker killed with SIGKILL while a drain holds a batch of order notifications,
then a new worker: every notification recorded exactly once, every order in Synerise once."""

from __future__ import annotations

import os
import signal
import time
from dataclasses import asdict

import pytest

from etl.sync.changes import OrderNotice
from etl.sync.engine import Engine
from etl.sync.inbox import GROUP, Inbox
from etl.sync.queues import REALTIME, TASK_ORDER
from tests.etl.webhooks.harness import processed
from tests.helpers.sync import listing, order_truth, set_faults, stats, wait_until


@pytest.mark.sandbox(customers=40, orders=120)
@pytest.mark.sync_env(REALTIME_REDELIVER_AFTER="2", REALTIME_BATCH_SIZE="10", SYNC_LEASE_TTL="3")
def test_sigkill_mid_drain_loses_and_duplicates_no_notification(
    sandbox, engine: Engine, celery_app, sync_env, spawn_worker, tmp_path
):
    from workers.dispatch import enqueue

    inbox = Inbox(engine.redis, enqueue)
    truth = order_truth(sandbox)
    set_faults(sandbox, {"route": "synerise.transactions_batch", "latency_ms": 200})
    for order_id in truth:
        notice = OrderNotice(order_id, "invoiced", "2026-01-01T00:00:00Z")
        inbox.enqueue(TASK_ORDER, [asdict(notice)], REALTIME)
    first = spawn_worker("first")
    wait_until(lambda: processed(engine.store) >= 20, 90,
               what=f"notifications processed by the first worker (log: {tmp_path})")  # fmt: skip
    # Hold every Synerise batch from now on: the kill lands while a drain holds entries.
    set_faults(sandbox, {"route": "synerise.transactions_batch", "latency_ms": 20_000})

    def held() -> int:
        return int(engine.redis.xpending("etl:inbox:orders", GROUP)["pending"])

    wait_until(held, 60, what="a batch taken and in flight")
    at_kill = processed(engine.store)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(timeout=30)
    assert held() > 0 and processed(engine.store) == at_kill < len(truth)
    set_faults(sandbox, {"route": "synerise.transactions_batch", "latency_ms": 0})

    spawn_worker("second")
    wait_until(lambda: processed(engine.store) >= len(truth), 120,
               what=f"every notification processed (log: {tmp_path})")  # fmt: skip
    time.sleep(1)  # a drain that would (wrongly) record more has time to
    assert processed(engine.store) == len(truth)  # each notification recorded once
    assert inbox.waiting("orders") == 0
    assert stats(sandbox)["duplicate_transactions"] == 0
    arrived = sorted(txn["orderId"] for txn in listing(sandbox, "transactions"))
    assert arrived == sorted(key for key, reason in truth.items() if reason is None)
