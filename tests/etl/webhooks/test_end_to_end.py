"""Realtime end to end: sandbox VTEX and Synerise, the webhook app on a real port, a real Celery
worker. Each change made on one side arrives on the other side once, and nothing bounces.
"""

from __future__ import annotations

import pytest

from etl.sandbox import Sandbox
from etl.state.store import StateStore
from etl.sync.engine import Engine
from tests.etl.webhooks.harness import (
    Service,
    processed,
    profile,
    realtime_runs,
    synerise_user_changes_consent,
    synerise_writes,
    vtex_admin,
    vtex_writes,
    wait_processed,
)

pytestmark = pytest.mark.usefixtures("worker")

PROFILE_WRITES = "synerise.clients_batch"
TRANSACTION_WRITES = "synerise.transactions_batch"


def order_with_lines(sandbox: Sandbox, lines: int) -> tuple[str, list[str]]:
    for index in range(sandbox.dataset.order_count):
        order = sandbox.dataset.order(index)
        if len(order["items"]) >= lines and order["clientProfileData"].get("userProfileId"):
            return order["orderId"], [item["id"] for item in order["items"]]
    raise AssertionError(f"no sandbox order has {lines} lines")


def opt_in(engine: Engine, document_id: str) -> object:
    return (engine.vtex.get_customer(document_id, ["isNewsletterOptIn"]) or {}).get(
        "isNewsletterOptIn"
    )


def new_customer(sandbox: Sandbox, **fields: object) -> dict:
    body = {"email": "ana.lima@example.com", "userId": "user-ana", "firstName": "Ana",
            "lastName": "Lima", "isNewsletterOptIn": True, **fields}  # fmt: skip
    return vtex_admin(sandbox, "POST", "/customers", body)


# -- customers ------------------------------------------------------------------------------


def test_a_customer_created_then_updated_in_vtex_reaches_synerise_once_per_change(
    sandbox: Sandbox, webhooks: Service, store: StateStore
):
    doc = new_customer(sandbox)
    webhooks.trigger("POST", {"id": doc["id"]})
    wait_processed(store, 1)
    synced = profile(sandbox, "user-ana")
    assert synced is not None
    assert (synced["email"], synced["firstName"], synced["agreements"]) == (
        "ana.lima@example.com", "Ana", {"email": True})  # fmt: skip
    assert synerise_writes(sandbox) == {PROFILE_WRITES: 1}

    webhooks.trigger("PATCH", {"id": doc["id"]})  # a change to a field we do not map
    wait_processed(store, 2)
    assert synerise_writes(sandbox) == {PROFILE_WRITES: 1}  # the ledger: nothing new to send

    vtex_admin(sandbox, "PATCH", f"/customers/{doc['id']}", {"firstName": "Anna"})
    webhooks.trigger("PATCH", {"id": doc["id"]})
    wait_processed(store, 3)
    assert profile(sandbox, "user-ana")["firstName"] == "Anna"
    assert synerise_writes(sandbox) == {PROFILE_WRITES: 2}

    runs = {run.scope: run for run in realtime_runs(store)}
    assert set(runs) == {"customers_created", "customers_updated"}
    created, updated = runs["customers_created"], runs["customers_updated"]
    assert (created.read_count, created.sent_count) == (1, 1)
    assert (updated.read_count, updated.sent_count, updated.skipped_count) == (2, 1, 1)
    assert {run.status for run in runs.values()} == {"done"}  # never takes a sync slot


def test_a_customer_sync_reject_is_listed_by_sync_rejects(
    sandbox: Sandbox, webhooks: Service, store: StateStore
):
    doc = new_customer(sandbox, phone="call me maybe")
    webhooks.trigger("POST", {"id": doc["id"]})
    webhooks.trigger("PATCH", {"id": "no-such-document"})
    wait_processed(store, 2)
    assert synerise_writes(sandbox) == {}
    rejects = {
        r.record_key: r.reason for run in realtime_runs(store) for r in store.rejects.find(run.id)
    }
    assert rejects == {doc["id"]: "INVALID_PHONE", "no-such-document": "NOT_FOUND"}


@pytest.mark.parametrize(
    "behaviour",
    [pytest.param(name, marks=pytest.mark.rt_settings(DELETE_BEHAVIOUR=name))
     for name in ("event", "remove", "ignore")],
)  # fmt: skip
def test_a_customer_deleted_in_vtex_follows_delete_behaviour(
    sandbox: Sandbox, webhooks: Service, store: StateStore, behaviour: str
):
    doc = new_customer(sandbox)
    webhooks.trigger("POST", {"id": doc["id"]})
    wait_processed(store, 1)
    vtex_admin(sandbox, "DELETE", f"/customers/{doc['id']}")
    deletion = {"id": doc["id"], "email": "ana.lima@example.com", "userId": "user-ana"}
    webhooks.trigger("DELETE", deletion)
    webhooks.trigger("DELETE", deletion)  # delivered twice: one effect
    wait_processed(store, 3)

    events = [e for e in sandbox.synerise.stored_events() if e["action"] == "client.deleteAccount"]
    if behaviour == "event":
        [event] = events
        assert event["label"] == "clientDeleteAccount"
        assert event["client"] == {"customId": "user-ana", "email": "ana.lima@example.com"}
        assert event["eventSalt"].startswith("vtex:client.deleteAccount:")
        assert profile(sandbox, "user-ana") is not None  # the profile stays, flagged by the event
        assert synerise_writes(sandbox) == {PROFILE_WRITES: 1, "synerise.events_custom": 1}
    elif behaviour == "remove":
        assert events == [] and profile(sandbox, "user-ana") is None
        assert synerise_writes(sandbox) == {PROFILE_WRITES: 1, "synerise.client_delete": 1}
    else:
        assert events == [] and profile(sandbox, "user-ana") is not None
        assert synerise_writes(sandbox) == {PROFILE_WRITES: 1}
    [updated] = [run for run in realtime_runs(store) if run.scope == "customers_updated"]
    assert updated.read_count == 2 and updated.skipped_count == (2 if behaviour == "ignore" else 1)


# -- orders ---------------------------------------------------------------------------------


def test_an_order_created_then_canceled_through_the_hook_is_one_transaction_overwritten(
    sandbox: Sandbox, webhooks: Service, store: StateStore
):
    from click.testing import CliRunner

    from etl.cli import main

    result = CliRunner().invoke(main, ["vtex", "hook", "register", "--url", webhooks.url,
                                       "--statuses", "payment-approved,invoiced,canceled"])
    assert result.exit_code == 0, result.output
    assert sandbox.vtex.stats()["hook"]["pings"] == 1

    order_id, skus = order_with_lines(sandbox, 2)

    sandbox.vtex.set_order_status(order_id, "payment-approved")  # fires the hook
    wait_processed(store, 1)
    [created] = sandbox.synerise.stored_transactions()
    assert created["orderId"] == order_id and created["metadata"]["status"] == "payment-approved"
    assert not any("canceled" in p for p in created["products"])  # only removed lines carry it

    sandbox.vtex.set_order_status(order_id, "invoiced", remove_items=[skus[0]])
    wait_processed(store, 2)
    [invoiced] = sandbox.synerise.stored_transactions()
    order_now = sandbox.vtex.store.order(order_id)
    assert invoiced["metadata"]["status"] == "invoiced"
    assert invoiced["products"][0]["quantity"] == 0 and invoiced["products"][0]["canceled"]
    assert "canceled" not in invoiced["products"][1]
    lines = sum(item["sellingPrice"] * item["quantity"] for item in order_now["items"])
    assert invoiced["revenue"]["amount"] == lines / 100 < created["revenue"]["amount"]

    sandbox.vtex.set_order_status(order_id, "canceled")
    wait_processed(store, 3)
    [canceled] = sandbox.synerise.stored_transactions()
    assert canceled["metadata"]["status"] == "canceled"
    # A canceled order keeps its lines; only the removed one is flagged.
    assert [p.get("canceled") for p in canceled["products"]] == [True] + [None] * (len(skus) - 1)
    assert canceled["revenue"] == invoiced["revenue"]
    assert [p["sku"] for p in canceled["products"]] == skus  # positions kept: events overwrite
    assert (canceled["eventSalt"], canceled["recordedAt"]) == (
        created["eventSalt"], created["recordedAt"])  # fmt: skip

    stats = sandbox.synerise.stats()
    assert stats["transactions"] == 1 and stats["duplicate_transactions"] == 0
    assert stats["transactions_overwritten"] == 2
    assert sandbox.vtex.stats()["hook"]["delivered"] == 3

    # VTEX redelivers a notification: one effect. An untracked status of a known order: none.
    notice = {"OrderId": order_id, "State": "canceled", "LastState": "invoiced",
              "LastChange": "2026-01-01T00:00:00.0000000+00:00"}  # fmt: skip
    webhooks.notify(notice)
    webhooks.notify(notice)
    webhooks.notify({**notice, "State": "handling", "LastChange": "2026-01-02T00:00:00Z"})
    wait_processed(store, 6)
    assert synerise_writes(sandbox)[TRANSACTION_WRITES] == 3
    [orders] = realtime_runs(store)
    assert (orders.read_count, orders.sent_count, orders.skipped_count) == (6, 3, 3)


def test_a_late_notification_never_undoes_a_newer_status(
    sandbox: Sandbox, webhooks: Service, store: StateStore
):
    order_id, _ = order_with_lines(sandbox, 1)
    sandbox.vtex.set_order_status(order_id, "payment-approved")
    first = sandbox.vtex.set_order_status(order_id, "invoiced")
    last = sandbox.vtex.set_order_status(order_id, "canceled")
    canceled = {"OrderId": order_id, "State": "canceled", "LastState": "invoiced",
                "LastChange": first["lastChange"], "CurrentChange": last["lastChange"]}
    webhooks.notify(canceled)
    wait_processed(store, 1)
    # VTEX's retry of the earlier "invoiced" notification arrives last.
    webhooks.notify({"OrderId": order_id, "State": "invoiced", "LastState": "payment-approved",
                     "LastChange": "2026-01-01T00:00:00Z", "CurrentChange": first["lastChange"]})
    wait_processed(store, 2)
    [txn] = sandbox.synerise.stored_transactions()
    assert txn["metadata"]["status"] == "canceled"
    assert not any("canceled" in p for p in txn["products"])  # no line was removed
    assert synerise_writes(sandbox)[TRANSACTION_WRITES] == 1


# -- consent: both sides wired to each other ------------------------------------------------


def test_consent_flipped_on_each_side_arrives_once_and_never_echoes(
    sandbox: Sandbox, webhooks: Service, store: StateStore, engine: Engine
):
    """VTEX -> us -> Synerise and Synerise -> us -> VTEX, with each system's reaction to our
    write emulated as it would happen (VTEX's CL trigger, Synerise's consent automation)."""
    doc = new_customer(sandbox)
    webhooks.trigger("POST", {"id": doc["id"]})  # the profile exists, consent true
    wait_processed(store, 1)
    assert profile(sandbox, "user-ana")["agreements"] == {"email": True}

    # 1. Synerise side: the customer unsubscribes in Synerise; its automation calls us.
    synerise_user_changes_consent(sandbox, "user-ana", False)
    syn, vtex = synerise_writes(sandbox)[PROFILE_WRITES], vtex_writes(sandbox)
    consent_off = {"customId": "user-ana", "email": "ana.lima@example.com",
                   "agreements": {"email": False}}  # fmt: skip
    webhooks.consent(consent_off)
    wait_processed(store, 2)
    assert opt_in(engine, doc["id"]) is False
    assert vtex_writes(sandbox) == vtex + 1  # our one write
    vtex += 1
    # VTEX fires the CL "changed" trigger for our own write:
    webhooks.trigger("PATCH", {"id": doc["id"]})
    wait_processed(store, 3)
    assert synerise_writes(sandbox)[PROFILE_WRITES] == syn  # not pushed back
    assert profile(sandbox, "user-ana")["agreements"] == {"email": False}
    # Synerise retries its webhook: nothing more is written anywhere.
    webhooks.consent(consent_off)
    wait_processed(store, 4)
    assert (synerise_writes(sandbox)[PROFILE_WRITES], vtex_writes(sandbox)) == (syn, vtex)

    # 2. VTEX side: the customer subscribes again in the store.
    vtex_admin(sandbox, "PATCH", f"/customers/{doc['id']}", {"isNewsletterOptIn": True})
    vtex += 1
    webhooks.trigger("PATCH", {"id": doc["id"]})
    wait_processed(store, 5)
    assert profile(sandbox, "user-ana")["agreements"] == {"email": True}
    assert synerise_writes(sandbox)[PROFILE_WRITES] == syn + 1
    # Synerise's automation reacts to the agreement our upsert changed:
    webhooks.consent({**consent_off, "agreements": {"email": True}})
    wait_processed(store, 6)
    assert vtex_writes(sandbox) == vtex  # not written back to VTEX
    assert synerise_writes(sandbox)[PROFILE_WRITES] == syn + 1
    assert processed(store) == 6
