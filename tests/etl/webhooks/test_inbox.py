"""The realtime inbox and its drains, called directly (no Celery): the sandbox, Redis and
PostgreSQL are real. A drain's crash is staged where it matters (entries taken and never
recorded; recorded and never acknowledged) and the next drain must lose and redo nothing.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any

import pytest

from etl.sandbox import Sandbox
from etl.state.store import StateStore
from etl.sync.changes import CustomerChange, OrderNotice
from etl.sync.drain import drain
from etl.sync.inbox import Inbox
from etl.sync.queues import REALTIME, TASK_CUSTOMER, TASK_DRAIN, TASK_ORDER
from etl.sync.realtime import Realtime
from tests.etl.webhooks.harness import Recorder, processed, realtime_runs, synerise_writes

pytestmark = pytest.mark.rt_settings(REALTIME_REDELIVER_AFTER="1")

UPDATED = "customers_updated"


@pytest.fixture
def sent() -> Recorder:
    return Recorder()


def drains(sent: Recorder) -> list[list[Any]]:
    """The drain tasks sent, by their arguments."""
    return [args for task, args, _ in sent.sent if task == TASK_DRAIN]


@pytest.fixture
def inbox(rt: Realtime, sent: Recorder) -> Inbox:
    """The realtime inbox of ``rt``, with Celery's enqueue recorded instead of sent."""
    rt.inbox.send = sent
    return rt.inbox


def customer_ids(sandbox: Sandbox, count: int) -> list[str]:
    return [str(sandbox.dataset.customer(i)["id"]) for i in range(count)]


def add_changes(inbox: Inbox, ids: list[str]) -> list[str]:
    return [inbox.enqueue(TASK_CUSTOMER, [asdict(CustomerChange(key, "updated"))], REALTIME)
            for key in ids]  # fmt: skip


def deliveries(store: StateStore) -> int:
    with store.db.transaction() as cur:
        cur.execute("SELECT count(*) AS n FROM realtime_delivery")
        return int(cur.fetchone()["n"])


def test_a_burst_waits_in_the_inbox_behind_one_drain_task(inbox: Inbox, sent: Recorder):
    add_changes(inbox, ["a", "b", "c"])
    inbox.enqueue(TASK_ORDER, [asdict(OrderNotice("o-1", "invoiced", "2026-01-01T00:00:00Z"))],
                  REALTIME)  # fmt: skip
    assert drains(sent) == [[UPDATED], ["orders"]]
    assert inbox.waiting(UPDATED) == 3 and inbox.waiting("orders") == 1
    inbox.opened(UPDATED, "a-drain")  # a drain started: the next arrival needs a drain of its own
    add_changes(inbox, ["d"])
    assert drains(sent) == [[UPDATED], ["orders"], [UPDATED]]
    # Upkeep sees drains scheduled for both and sends none; with the marks gone it sends both.
    assert inbox.sweep() == []
    inbox.opened(UPDATED, "a-drain")
    inbox.opened("orders", "a-drain")
    assert sorted(inbox.sweep()) == ["customers_updated", "orders"]


def test_each_connection_has_its_own_streams_and_drains(inbox: Inbox, sent: Recorder):
    """``default`` keeps the keys and drain arguments it had; another connection's notification
    waits in its own stream, behind a drain task that names it."""
    notice = OrderNotice("o-1", "invoiced", "2026-01-01T00:00:00Z", connection="storeb")
    inbox.enqueue(TASK_ORDER, [asdict(notice)], REALTIME)
    add_changes(inbox, ["a"])
    storeb = inbox.of("storeb")
    assert (inbox.key("orders"), storeb.key("orders")) == \
        ("etl:inbox:orders", "etl:inbox:storeb:orders")  # fmt: skip
    assert inbox.waiting("orders") == 0 and storeb.waiting("orders") == 1
    assert storeb.waiting(UPDATED) == 0 and inbox.waiting(UPDATED) == 1
    assert drains(sent) == [["orders", "storeb"], [UPDATED]]
    storeb.opened("orders", "a-drain")
    inbox.opened(UPDATED, "a-drain")
    assert inbox.sweep() == [UPDATED] and storeb.sweep() == ["orders"]
    assert drains(sent)[-2:] == [[UPDATED], ["orders", "storeb"]]


def test_a_failing_entry_is_delivered_again_within_a_minute(broker):
    inbox = Inbox(broker, Recorder(), redeliver_after=20)
    assert [inbox.delay_ms(n) for n in range(1, 6)] == [20_000, 40_000, 60_000, 60_000, 60_000]
    slow = Inbox(broker, Recorder(), redeliver_after=90)  # a longer setting wins over the cap
    assert [slow.delay_ms(n) for n in (1, 4)] == [90_000, 90_000]


def test_work_that_is_not_a_customer_change_or_an_order_notice_stays_a_task(
    inbox: Inbox, sent: Recorder
):
    task_id = inbox.enqueue("etl.realtime.customer_deleted", [{"user_id": "u"}], REALTIME)
    assert task_id == "task-1"
    assert sent.sent == [("etl.realtime.customer_deleted", [{"user_id": "u"}], REALTIME)]


def test_a_drain_sends_a_backlog_in_batches_and_records_each_notification_once(
    sandbox: Sandbox, rt: Realtime, inbox: Inbox, sent: Recorder, store: StateStore
):
    ids = customer_ids(sandbox, 25)
    add_changes(inbox, [*ids, ids[0]])  # the first document notified twice
    report = drain(rt, UPDATED, batch_size=10)
    assert (report.batches, report.taken, report.redone, report.retried) == (3, 26, 0, 0)
    assert processed(store) == 26
    assert report.outcomes["sent"] == 25 and report.outcomes["skipped"] == 1
    assert synerise_writes(sandbox) == {"synerise.clients_batch": 3}
    assert inbox.waiting(UPDATED) == 0 and deliveries(store) == 0
    # The burst's drain, and one helper asked for by the first full batch (the second found
    # it scheduled, not started).
    assert drains(sent) == [[UPDATED], [UPDATED]]


def test_helper_drains_are_asked_for_while_fewer_than_realtime_drains_are_alive(inbox: Inbox):
    for index in range(3):
        inbox.opened(UPDATED, f"drain-{index}")
    assert inbox.help(UPDATED, 4) is True
    assert inbox.help(UPDATED, 4) is False  # one is scheduled and not started yet
    inbox.opened(UPDATED, "drain-3")
    assert inbox.help(UPDATED, 4) is False  # four alive
    inbox.closed(UPDATED, "drain-0")
    assert inbox.help(UPDATED, 4) is True
    inbox.opened(UPDATED, "drain-4")
    time.sleep(1.2)  # nobody renewed: a killed drain stops counting after REALTIME_REDELIVER_AFTER
    assert inbox.help(UPDATED, 1) is True


def test_entries_of_a_drain_that_died_are_taken_over_and_processed_once(
    sandbox: Sandbox, rt: Realtime, inbox: Inbox, store: StateStore
):
    ids = customer_ids(sandbox, 12)
    add_changes(inbox, ids)
    taken = inbox.take(UPDATED, "dead-drain", 5)  # then the drain was killed
    assert len(taken) == 5
    first = drain(rt, UPDATED, consumer="live-drain")
    assert first.taken == 7  # the dead drain's entries are not due yet
    time.sleep(1.2)  # REALTIME_REDELIVER_AFTER
    second = drain(rt, UPDATED, consumer="live-drain")
    assert second.taken == 5 and second.outcomes["sent"] == 5
    assert processed(store) == 12 and inbox.waiting(UPDATED) == 0


def test_a_batch_recorded_but_not_acknowledged_is_acknowledged_when_it_comes_back(
    sandbox: Sandbox,
    rt: Realtime,
    inbox: Inbox,
    store: StateStore,
    monkeypatch: pytest.MonkeyPatch,
):
    ids = customer_ids(sandbox, 6)
    add_changes(inbox, ids)

    def cut_off(scope: str, entry_ids: Any) -> None:
        raise ConnectionError("killed between the commit and XACK")

    with monkeypatch.context() as patched:
        patched.setattr(inbox, "ack", cut_off)
        with pytest.raises(ConnectionError):
            drain(rt, UPDATED)
    assert processed(store) == 6 and deliveries(store) == 6
    time.sleep(1.2)
    report = drain(rt, UPDATED)
    assert (report.taken, report.redone) == (6, 6)
    assert processed(store) == 6  # nothing counted twice
    assert synerise_writes(sandbox) == {"synerise.clients_batch": 1}  # nothing sent twice
    assert inbox.waiting(UPDATED) == 0 and deliveries(store) == 0


def test_order_notices_in_one_batch_each_take_effect_once(
    sandbox: Sandbox, rt: Realtime, inbox: Inbox, store: StateStore
):
    orders = [str(sandbox.dataset.order(i)["orderId"]) for i in range(8)]
    notices = [OrderNotice(order_id, "payment-approved", "2026-01-01T00:00:00Z")
               for order_id in orders]  # fmt: skip
    for notice in [*notices, notices[0]]:  # VTEX delivered the first notice twice
        inbox.enqueue(TASK_ORDER, [asdict(notice)], REALTIME)
    report = drain(rt, "orders")
    assert report.outcomes["duplicate"] == 1
    assert sum(report.outcomes.values()) == 9 and report.retried == 0
    assert processed(store) == 9
    assert synerise_writes(sandbox)["synerise.transactions_batch"] == 1
    [run] = realtime_runs(store)
    assert run.read_count == 9


def test_a_failing_batch_is_delivered_again_and_sent_once_it_recovers(
    sandbox: Sandbox, rt: Realtime, inbox: Inbox, store: StateStore
):
    ids = customer_ids(sandbox, 4)
    add_changes(inbox, ids)
    sandbox.synerise.faults.set("synerise.clients_batch", error_rate=1.0)
    report = drain(rt, UPDATED)
    assert report.retried == 4 and processed(store) == 0
    sandbox.synerise.faults.clear()
    time.sleep(1.2)
    report = drain(rt, UPDATED)
    assert report.outcomes["sent"] == 4 and processed(store) == 4
    assert inbox.waiting(UPDATED) == 0
