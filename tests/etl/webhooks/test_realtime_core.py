"""The realtime core called directly (no Celery, no HTTP): the sandbox, Redis and PostgreSQL are
real. Covers the cases the end-to-end tests cannot stage deterministically: races around our
own consent write, failures and their replay, claims, and the daily runs.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from etl.errors import RetriableError
from etl.retry import RetryPolicy
from etl.sandbox import Sandbox
from etl.state.realtime import RealtimeRuns
from etl.state.store import StateStore
from etl.sync import runs
from etl.sync.changes import ConsentChange, CustomerChange, CustomerDeletion, OrderNotice
from etl.sync.consent import apply_consent
from etl.sync.engine import Engine
from etl.sync.realtime import (
    DELIVERY_FAILED,
    Realtime,
    delete_customer,
    reported_status,
    sync_customer,
    sync_order,
)
from etl.synerise.client import SyneriseClient
from tests.etl.webhooks.harness import profile, realtime_runs, synerise_writes, vtex_admin
from tests.helpers.sync import WHOLE_RANGE

PROFILE_WRITES = "synerise.clients_batch"


def customer(sandbox: Sandbox, **fields: object) -> str:
    body = {"email": "rui.costa@example.com", "userId": "user-rui", "firstName": "Rui",
            "isNewsletterOptIn": True, **fields}  # fmt: skip
    return str(vtex_admin(sandbox, "POST", "/customers", body)["id"])


def consent(value: bool, custom_id: str | None = "user-rui",
            email: str | None = "rui.costa@example.com") -> ConsentChange:  # fmt: skip
    return ConsentChange(custom_id, email, value)


def changed(doc_id: str) -> CustomerChange:
    return CustomerChange(doc_id, "updated")


def rejects(store: StateStore) -> dict[str, tuple[str, str]]:
    return {r.record_key: (r.reason, r.message)
            for run in realtime_runs(store) for r in store.rejects.find(run.id)}  # fmt: skip


# -- consent edge cases ----------------------------------------------------------------------


def test_a_profile_synerise_never_got_from_us_is_sent_once_after_a_consent_write(
    sandbox: Sandbox, rt: Realtime
):
    doc_id = customer(sandbox)
    assert apply_consent(rt, consent(False)) == "written"
    # The ledger knew nothing, so it could not vouch for the rest of the profile: the trigger
    # of our write sends it, once, with the consent Synerise asked for.
    assert sync_customer(rt, changed(doc_id)) == "sent"
    assert profile(sandbox, "user-rui")["agreements"] == {"email": False}
    assert sync_customer(rt, changed(doc_id)) == "skipped"
    assert synerise_writes(sandbox) == {PROFILE_WRITES: 1}


def test_an_upsert_racing_with_our_consent_write_carries_the_synerise_value(
    sandbox: Sandbox, rt: Realtime
):
    doc_id = customer(sandbox)
    assert sync_customer(rt, changed(doc_id)) == "sent"
    rt.echo.remember(doc_id, False)  # the consent task is between its guard and its PATCH
    vtex_admin(sandbox, "PATCH", f"/customers/{doc_id}", {"firstName": "Rúben"})  # real change
    assert sync_customer(rt, changed(doc_id)) == "sent"
    synced = profile(sandbox, "user-rui")
    assert synced["firstName"] == "Rúben" and synced["agreements"] == {"email": False}


def test_a_vtex_change_newer_than_our_write_wins(sandbox: Sandbox, rt: Realtime):
    doc_id = customer(sandbox)
    assert sync_customer(rt, changed(doc_id)) == "sent"
    assert apply_consent(rt, consent(False)) == "written"
    assert sync_customer(rt, changed(doc_id)) == "skipped"  # the echo of our write
    time.sleep(0.01)  # updatedIn has millisecond precision
    vtex_admin(sandbox, "PATCH", f"/customers/{doc_id}", {"isNewsletterOptIn": True})
    assert sync_customer(rt, changed(doc_id)) == "sent"
    assert profile(sandbox, "user-rui")["agreements"] == {"email": True}


def test_consent_finds_the_customer_by_email_when_no_custom_id_is_given(
    sandbox: Sandbox, rt: Realtime, engine: Engine
):
    doc_id = customer(sandbox)
    assert apply_consent(rt, consent(False, custom_id=None)) == "written"
    assert engine.vtex.get_customer(doc_id, ["isNewsletterOptIn"])["isNewsletterOptIn"] is False
    assert apply_consent(rt, consent(False, custom_id=None)) == "unchanged"


def test_consent_for_an_unknown_customer_is_a_reject_without_personal_data(
    sandbox: Sandbox, rt: Realtime, store: StateStore
):
    assert apply_consent(rt, consent(True, custom_id=None, email="nobody@example.com")) == (
        "rejected")  # fmt: skip
    [(key, (reason, message))] = rejects(store).items()
    assert reason == "NOT_FOUND" and "CONSENT_CREATE_MISSING_CL" in message
    assert key.startswith("email:") and "nobody" not in key
    assert sandbox.vtex.stats()["changes"]["created"] == 0


@pytest.mark.rt_settings(CONSENT_CREATE_MISSING_CL="true")
def test_a_missing_customer_is_created_when_asked_and_its_trigger_sends_nothing(
    sandbox: Sandbox, rt: Realtime, engine: Engine
):
    change = consent(True, custom_id="user-new", email="new.one@example.com")
    assert apply_consent(rt, change) == "created"
    [doc] = [d for d in sandbox.vtex.store.overlay_customers().values()
             if d.get("userId") == "user-new"]  # fmt: skip
    assert (doc["email"], doc["isNewsletterOptIn"]) == ("new.one@example.com", True)
    assert sync_customer(rt, CustomerChange(doc["id"], "created")) == "skipped"
    assert synerise_writes(sandbox) == {}
    assert apply_consent(rt, change) == "unchanged"


# -- failures, replay, claims ---------------------------------------------------------------


@pytest.fixture
def fragile(engine: Engine) -> Engine:
    """The engine with a Synerise client that does not retry (the task does)."""
    engine.synerise = SyneriseClient.from_settings(engine.settings,
                                                   retry=RetryPolicy(max_attempts=1))
    return engine


def test_a_failure_is_retried_then_kept_as_a_reject_that_sync_replay_fixes(
    sandbox: Sandbox, rt: Realtime, fragile: Engine, store: StateStore
):
    doc_id = customer(sandbox)
    sandbox.synerise.faults.set("synerise.clients_batch", error_rate=1.0)
    with pytest.raises(RetriableError):
        sync_customer(rt, changed(doc_id), final_attempt=False)
    assert rejects(store) == {}
    assert sync_customer(rt, changed(doc_id), final_attempt=True) == "failed"
    [(key, (reason, message))] = rejects(store).items()
    assert (key, reason) == (doc_id, DELIVERY_FAILED) and "ServerError" in message

    sandbox.synerise.faults.clear()
    [run] = realtime_runs(store)
    replay = runs.replay(fragile, run.id)
    for chunk_id in store.chunks.ids(replay.id, ["pending"]):
        assert runs.run_chunk(fragile, chunk_id) == "done"
    assert profile(sandbox, "user-rui") is not None
    assert store.runs.get(replay.id).status == "done"
    assert store.rejects.find(run.id, unresolved=True) == []


def test_a_notification_takes_effect_once_and_a_failed_attempt_gives_its_claim_back(
    sandbox: Sandbox, rt: Realtime, fragile: Engine
):
    order_id = sandbox.dataset.order(3)["orderId"]
    notice = OrderNotice(order_id, "payment-approved", "2026-01-01T00:00:00Z")
    sandbox.synerise.faults.set("synerise.transactions_batch", error_rate=1.0)
    with pytest.raises(RetriableError):
        sync_order(rt, notice, "task-1", final_attempt=False)
    sandbox.synerise.faults.clear()
    assert sync_order(rt, notice, "task-2") == "sent"  # the failed attempt let go
    assert sync_order(rt, notice, "task-3") == "duplicate"
    assert sync_order(rt, notice, "task-2") == "skipped"  # a redelivery of task-2: the ledger
    assert sandbox.synerise.stats()["transactions"] == 1


def test_a_deletion_without_a_usable_identity_is_a_reject(
    sandbox: Sandbox, rt: Realtime, store: StateStore
):
    hard_alias = "0a1b2c3d4e5f@ct.vtex.com.br"
    assert delete_customer(rt, CustomerDeletion(hard_alias, None, "cl-9"), "2026-01-01T00:00:00Z",
                           "task-1") == "rejected"  # fmt: skip
    assert rejects(store)["cl-9"][0] == "MISSING_IDENTIFIER"
    assert sandbox.synerise.stats()["events"] == 0


@pytest.mark.rt_settings(DELETE_BEHAVIOUR="remove")
def test_remove_needs_the_user_id(sandbox: Sandbox, rt: Realtime, store: StateStore):
    deletion = CustomerDeletion("rui.costa@example.com", None, "cl-9")
    assert delete_customer(rt, deletion, "2026-01-01T00:00:00Z", "t") == "rejected"
    assert "customId" in rejects(store)["cl-9"][1]


# -- the order status reported --------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "current_change", "expected"),
    [
        ({"status": "invoiced"}, "2026-01-01T00:00:00Z", None),  # the body says it already
        ({"status": "handling", "lastChange": "2026-01-01T00:00:00Z"}, "2026-01-01T00:00:01Z",
         "invoiced"),  # the body lags: the notification is newer
        ({"status": "canceled", "lastChange": "2026-01-01T00:00:02Z"}, "2026-01-01T00:00:01Z",
         None),  # the order moved on since: a late notification
        ({"status": "handling", "lastChange": "2026-01-01T00:00:00Z"}, None, None),  # cannot tell
        ({"status": "handling", "lastChange": "garbage"}, "2026-01-01T00:00:01Z", None),
    ],
)  # fmt: skip
def test_reported_status(body, current_change, expected):
    notice = OrderNotice("o-1", "invoiced", "2025-12-31T00:00:00Z", current_change=current_change)
    assert reported_status(body, notice) == expected


# -- the daily runs ---------------------------------------------------------------------------


def test_one_realtime_run_per_scope_and_day_even_under_concurrent_first_use(
    store: StateStore, engine: Engine
):
    found: list[int] = []

    def first_use() -> None:
        found.append(RealtimeRuns(store).run_id("orders"))  # each with its own cache

    threads = [threading.Thread(target=first_use) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(found)) == 1
    tomorrow = datetime.now(UTC) + timedelta(days=1)
    assert RealtimeRuns(store).run_id("orders", tomorrow) not in found
    assert RealtimeRuns(store).run_id("customers_updated") not in found

    runs.maintain(engine, timedelta(seconds=300))  # the scheduler leaves them alone
    assert {run.status for run in realtime_runs(store)} == {"done"}
    assert engine.lease.free_slots() == engine.lease.limit
    run = store.runs.get(found[0])
    assert (run.kind, run.window_to - run.window_from, run.planning_done) == (
        "realtime", timedelta(days=1), True)  # fmt: skip


def test_the_ledger_swap_is_a_compare_and_set(store: StateStore):
    run_id = RealtimeRuns(store).run_id("customers_updated")
    assert store.ledger.swap_hash("profiles", "cl-1", None, "h1", run_id)
    assert not store.ledger.swap_hash("profiles", "cl-1", None, "h2", run_id)
    assert not store.ledger.swap_hash("profiles", "cl-1", "h0", "h2", run_id)
    assert store.ledger.swap_hash("profiles", "cl-1", "h1", "h2", run_id)
    assert store.ledger.hashes("profiles", ["cl-1"]) == {"cl-1": "h2"}


# -- a historical chunk against a realtime update --------------------------------------------


def planned_orders_chunk(sandbox: Sandbox, engine: Engine) -> tuple[int, list[str], str]:
    """An orders run planned, not run: its first chunk, that chunk's keys, and a clean order
    of it."""
    run = runs.start(engine, runs.StartRequest("orders", WHOLE_RANGE))
    runs.run_producer(engine, run.id)
    chunk_id = engine.store.chunks.ids(run.id, ["pending"])[0]
    data = sandbox.dataset
    valid = {data.order(i)["orderId"] for i in range(data.order_count)
             if data.expected_reason("order", i) is None}  # fmt: skip
    keys = engine.store.chunks.get(chunk_id).keys
    return chunk_id, keys, next(key for key in keys if key in valid)


def test_a_chunk_that_read_an_order_before_a_realtime_update_sends_it_again_as_it_is_now(
    sandbox: Sandbox, rt: Realtime, engine: Engine, monkeypatch: pytest.MonkeyPatch
):
    """The chunk reads the order, the order is canceled and the hook sends that first; the
    chunk's send (the old status, same eventSalt) lands after it. Completing, the chunk sees the
    ledger row moved since its diff read it, reads the order again and sends it as it is now."""
    chunk_id, _, order_id = planned_orders_chunk(sandbox, engine)
    stream_class = type(engine.stream("orders"))
    read = stream_class.fetch
    reads: list[list[str]] = []

    def fetch(self: Any, keys: Any, stored: Any) -> Any:
        fetched = read(self, keys, stored)
        if not reads:  # the chunk has read the order: now it changes, and the hook is first
            changed = sandbox.vtex.set_order_status(order_id, "canceled")
            assert changed is not None and changed["status"] == "canceled"
            notice = OrderNotice(order_id, "canceled", changed["lastChange"],
                                 current_change=changed["lastChange"])  # fmt: skip
            assert sync_order(rt, notice, "hook-1") == "sent"
        reads.append(list(keys))
        return fetched

    monkeypatch.setattr(stream_class, "fetch", fetch)
    assert runs.run_chunk(engine, chunk_id) == "done"
    assert reads[1:] == [[order_id]], "the moved order is read again, nothing else"
    [sent] = [t for t in sandbox.synerise.stored_transactions() if t["orderId"] == order_id]
    assert sent["metadata"]["status"] == "canceled"


def test_a_realtime_update_recorded_after_a_stale_chunk_is_delivered_again_and_sent_as_it_is_now(
    sandbox: Sandbox, rt: Realtime, engine: Engine, monkeypatch: pytest.MonkeyPatch
):
    """The other order of the same race: the chunk read the order before it was canceled, the
    hook sends the cancel, then the chunk sends its stale read and records it before the hook's
    outcome is recorded. Recording, the hook sees the ledger row moved since its diff read it:
    nothing is recorded and the notification is delivered again, read again and sent again."""
    chunk_id, keys, order_id = planned_orders_chunk(sandbox, engine)
    stream = engine.stream("orders")
    read = type(stream).fetch
    stale = read(stream, keys, None)  # the chunk's read, before the cancel

    def fetch(self: Any, keys: Any, stored: Any) -> Any:
        return stale if not chunk_ran else read(self, keys, stored)

    chunk_ran: list[str | None] = []
    record = RealtimeRuns.record_batch

    def record_batch(self: RealtimeRuns, *args: Any, **kwargs: Any) -> None:
        if not chunk_ran:  # the hook has sent; the stale chunk sends and records first
            chunk_ran.append(runs.run_chunk(engine, chunk_id))
        record(self, *args, **kwargs)

    monkeypatch.setattr(type(stream), "fetch", fetch)
    monkeypatch.setattr(RealtimeRuns, "record_batch", record_batch)
    changed = sandbox.vtex.set_order_status(order_id, "canceled")
    assert changed is not None
    notice = OrderNotice(order_id, "canceled", changed["lastChange"],
                         current_change=changed["lastChange"])  # fmt: skip
    with pytest.raises(RetriableError, match="read again"):
        sync_order(rt, notice, "hook-1")
    assert chunk_ran == ["done"]
    assert sync_order(rt, notice, "hook-1") == "sent"
    [sent] = [t for t in sandbox.synerise.stored_transactions() if t["orderId"] == order_id]
    assert sent["metadata"]["status"] == "canceled"


def test_a_chunk_whose_earlier_attempt_died_after_a_stale_send_sends_everything_as_it_is_now(
    sandbox: Sandbox, rt: Realtime, engine: Engine, monkeypatch: pytest.MonkeyPatch
):
    """An attempt reads the order, the hook sends and records the cancel, then the attempt's
    stale send lands after it and the attempt dies before recording anything (a SIGKILL, a
    lost claim). The ledger now says Synerise has the cancel; Synerise has the old status. The
    chunk's next attempt sends every record as it is now, whatever the ledger says."""
    from etl.errors import NetworkError
    from etl.state.chunks import Chunks

    chunk_id, _, order_id = planned_orders_chunk(sandbox, engine)
    stream_class = type(engine.stream("orders"))
    read = stream_class.fetch
    first_attempt: list[bool] = []

    def fetch(self: Any, keys: Any, stored: Any) -> Any:
        fetched = read(self, keys, stored)
        if not first_attempt:  # read; now the order is canceled and the hook records that
            first_attempt.append(True)
            changed = sandbox.vtex.set_order_status(order_id, "canceled")
            assert changed is not None
            notice = OrderNotice(order_id, "canceled", changed["lastChange"],
                                 current_change=changed["lastChange"])  # fmt: skip
            assert sync_order(rt, notice, "hook-1") == "sent"
        return fetched

    complete = Chunks.complete
    died: list[int] = []

    def dies_before_recording(self: Chunks, chunk: Any, *args: Any, **kwargs: Any) -> Any:
        if not died:
            died.append(chunk.id)
            raise NetworkError("PostgreSQL went away")  # the attempt's send already landed
        return complete(self, chunk, *args, **kwargs)

    monkeypatch.setattr(stream_class, "fetch", fetch)
    monkeypatch.setattr(Chunks, "complete", dies_before_recording)
    with pytest.raises(RetriableError):
        runs.run_chunk(engine, chunk_id, final_attempt=False)
    [stale] = [t for t in sandbox.synerise.stored_transactions() if t["orderId"] == order_id]
    assert stale["metadata"]["status"] != "canceled", "the stale send landed last"
    assert runs.run_chunk(engine, chunk_id) == "done"  # the next attempt
    [sent] = [t for t in sandbox.synerise.stored_transactions() if t["orderId"] == order_id]
    assert sent["metadata"]["status"] == "canceled"
