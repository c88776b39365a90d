"""The Orders Feed consumer against the sandbox's feed, with real Redis and PostgreSQL: what the
hook missed arrives once, what the hook sent is not sent again, failures stay in the feed."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from etl.lease import SlotLease
from etl.retry import RetryPolicy
from etl.sandbox import Sandbox, start_sandbox
from etl.sync.changes import OrderNotice
from etl.sync.feed import FEED_MAX_ATTEMPTS, consume_orders_feed
from etl.sync.realtime import DELIVERY_FAILED, Realtime, sync_order
from tests.etl.webhooks.harness import realtime_runs, synerise_writes, vtex_admin, wait_until

TRANSACTIONS = "synerise.transactions_batch"


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    """The VTEX hook loses every delivery: only the feed knows about the changes."""
    with start_sandbox(customers=40, orders=60, seed=11, dirty_share=0.0,
                       vtex_options={"hook_miss_rate": 1.0}) as started:  # fmt: skip
        yield started


def change(sandbox: Sandbox, index: int, status: str) -> dict[str, Any]:
    order_id = sandbox.dataset.order(index)["orderId"]
    answer: dict[str, Any] = vtex_admin(sandbox, "POST", f"/orders/{order_id}/status",
                                        {"status": status})  # fmt: skip
    return answer


def stored_status(sandbox: Sandbox, order_id: str) -> list[str]:
    return [t["metadata"]["status"] for t in sandbox.synerise.stored_transactions()
            if t["orderId"] == order_id]  # fmt: skip


def feed_stats(sandbox: Sandbox) -> dict[str, Any]:
    stats: dict[str, Any] = sandbox.vtex.stats()["feed"]
    return stats


def test_changes_the_hook_missed_arrive_once_through_the_feed(sandbox: Sandbox, rt: Realtime):
    rt.engine.vtex.set_feed_config(["invoiced", "canceled"])
    changed = [change(sandbox, index, "invoiced") for index in range(12)]
    report = consume_orders_feed(rt)
    assert report.read == 12 and report.committed == 12 and report.left == 0
    assert report.outcomes == {"sent": 12}
    for answer in changed:
        assert stored_status(sandbox, answer["orderId"]) == ["invoiced"]
    assert feed_stats(sandbox)["queued"] == 0
    assert sandbox.synerise.stats()["duplicate_transactions"] == 0
    # a later cancel of one of them overwrites its transaction, still once
    change(sandbox, 3, "canceled")
    assert consume_orders_feed(rt).outcomes == {"sent": 1}
    assert stored_status(sandbox, changed[3]["orderId"]) == ["canceled"]
    assert consume_orders_feed(rt).read == 0


def test_what_the_hook_already_sent_is_not_sent_again(sandbox: Sandbox, rt: Realtime):
    rt.engine.vtex.set_feed_config(["invoiced"])
    answer = change(sandbox, 5, "invoiced")
    # the hook's notification of the same change: the previous and the new change times
    notice = OrderNotice(answer["orderId"], "invoiced", sandbox.dataset.order(5)["lastChange"],
                         answer["lastState"], answer["lastChange"])  # fmt: skip
    assert sync_order(rt, notice, "hook-task-1") == "sent"  # the hook was faster
    writes = synerise_writes(sandbox)
    report = consume_orders_feed(rt)
    assert report.outcomes == {"duplicate": 1} and report.committed == 1
    assert synerise_writes(sandbox) == writes


def test_duplicated_feed_events_have_one_effect(sandbox: Sandbox, rt: Realtime):
    sandbox.vtex.feed.duplicate_rate = 1.0
    rt.engine.vtex.set_feed_config(["invoiced"])
    for index in range(4):
        change(sandbox, index, "invoiced")
    report = consume_orders_feed(rt)
    assert report.read == 8 and report.committed == 8
    assert report.outcomes == {"sent": 4, "duplicate": 4}
    assert synerise_writes(sandbox)[TRANSACTIONS] == 4


@pytest.fixture
def fails_fast(rt: Realtime) -> Realtime:
    """Synerise calls are not retried inside the client: a failure reaches the consumer now."""
    rt.engine.synerise.http.retry = RetryPolicy(max_attempts=1)
    return rt


def test_a_failed_event_stays_in_the_feed_and_is_sent_when_synerise_is_back(
    sandbox: Sandbox, fails_fast: Realtime
):
    rt = fails_fast
    rt.engine.vtex.set_feed_config(["invoiced"], visibility_timeout=1)
    answer = change(sandbox, 7, "invoiced")
    sandbox.synerise.faults.set("synerise.transactions_batch", error_rate=1.0)
    report = consume_orders_feed(rt, seconds=5)
    assert report.left >= 1 and report.committed == 0
    assert feed_stats(sandbox)["queued"] == 1
    sandbox.synerise.faults.clear()
    time.sleep(1.1)  # the visibility timeout
    report = consume_orders_feed(rt)
    assert report.outcomes == {"sent": 1} and report.committed == 1
    assert stored_status(sandbox, answer["orderId"]) == ["invoiced"]


def test_an_event_that_keeps_failing_becomes_a_replayable_reject(
    sandbox: Sandbox, fails_fast: Realtime
):
    rt = fails_fast
    rt.engine.vtex.set_feed_config(["invoiced"], visibility_timeout=1)
    answer = change(sandbox, 9, "invoiced")
    sandbox.synerise.faults.set("synerise.transactions_batch", error_rate=1.0)
    for _ in range(FEED_MAX_ATTEMPTS - 1):
        assert consume_orders_feed(rt, seconds=5).committed == 0
        time.sleep(1.05)
    report = consume_orders_feed(rt, seconds=5)
    assert report.outcomes == {"failed": 1} and report.committed == 1
    store = rt.engine.store
    rejects = [r for run in realtime_runs(store) for r in store.rejects.find(run.id)]
    assert [(r.record_key, r.reason) for r in rejects] == [(answer["orderId"], DELIVERY_FAILED)]
    assert feed_stats(sandbox)["queued"] == 0


def test_no_feed_and_a_busy_consumer_read_nothing(sandbox: Sandbox, rt: Realtime):
    report = consume_orders_feed(rt)
    assert not report.configured and report.read == 0
    rt.engine.vtex.set_feed_config(["invoiced"])
    change(sandbox, 1, "invoiced")
    held = SlotLease(rt.engine.redis, limit=1, ttl=30, key="etl:lease:orders-feed")
    assert held.try_acquire("another-consumer")
    try:
        assert consume_orders_feed(rt).busy
        assert feed_stats(sandbox)["queued"] == 1
    finally:
        held.release("another-consumer")
    assert consume_orders_feed(rt).committed == 1


def test_beat_task_runs_the_consumer_on_a_real_worker(
    sandbox: Sandbox, rt: Realtime, worker: Any
):
    from workers.tasks.realtime import orders_feed

    rt.engine.vtex.set_feed_config(["invoiced"])
    answer = change(sandbox, 2, "invoiced")
    orders_feed.delay()  # results are not stored (celeryconfig): watch the effects instead
    wait_until(lambda: stored_status(sandbox, answer["orderId"]) == ["invoiced"])
    wait_until(lambda: feed_stats(sandbox).get("committed") == 1)
    assert feed_stats(sandbox)["queued"] == 0
