"""Every webhook path against the strict Synerise emulator (issue 11): a customer created and
changed, consent from Synerise, order notifications (a registered buyer's and a guest's), a
customer deleted. Synerise refuses nothing and nothing breaks its models; a field left out is a
warning in the day's realtime run, and a guest buyer gets a profile before the transaction.
"""

from __future__ import annotations

import pytest

from etl.sandbox import Sandbox
from etl.state.store import StateStore
from etl.sync.engine import Engine
from tests.etl.webhooks.harness import (
    Service,
    profile,
    realtime_runs,
    vtex_admin,
    wait_processed,
)
from tests.etl.webhooks.test_end_to_end import new_customer, opt_in

pytestmark = pytest.mark.usefixtures("worker")


def registered_orders(sandbox: Sandbox, count: int) -> list[tuple[str, str]]:
    """``(orderId, userProfileId)`` of orders whose buyer has a ``CL`` document."""
    found = []
    for index in range(sandbox.dataset.order_count):
        order = sandbox.dataset.order(index)
        user_id = order["clientProfileData"].get("userProfileId")
        if user_id and all(user_id != known for _, known in found):
            found.append((order["orderId"], user_id))
        if len(found) == count:
            return found
    raise AssertionError(f"the sandbox has fewer than {count} orders of registered buyers")


def notice(order_id: str, state: str = "payment-approved") -> dict[str, str]:
    return {"OrderId": order_id, "State": state, "LastState": "order-created",
            "LastChange": "2026-01-01T00:00:00.0000000+00:00"}  # fmt: skip


def run_of(store: StateStore, scope: str):
    [run] = [run for run in realtime_runs(store) if run.scope == scope]
    return run


def test_every_webhook_path_sends_only_what_synerise_accepts(
    sandbox: Sandbox, webhooks: Service, store: StateStore, engine: Engine
):
    # A customer created with an unusable birth date: sent without it, with a warning.
    doc = new_customer(sandbox, birthDate="1850-01-01", gender="x")
    webhooks.trigger("POST", {"id": doc["id"]})
    wait_processed(store, 1)
    synced = profile(sandbox, "user-ana")
    assert synced is not None and "birthDate" not in synced and "sex" not in synced
    created = run_of(store, "customers_created")
    assert (created.sent_count, created.rejected_count, created.warned_count) == (1, 0, 1)
    assert {(w.record_key, w.code) for w in store.warnings.find(created.id)} == {
        (doc["id"], "BIRTHDATE_DROPPED"), (doc["id"], "SEX_UNMAPPED")}  # fmt: skip

    # Consent changed in Synerise, then the CL trigger our own write fires.
    webhooks.consent({"customId": "user-ana", "email": "ana.lima@example.com",
                      "agreements": {"email": False}})  # fmt: skip
    wait_processed(store, 2)
    assert opt_in(engine, doc["id"]) is False
    webhooks.trigger("PATCH", {"id": doc["id"]})
    wait_processed(store, 3)

    # Orders: a registered buyer's, and a guest's (the buyer's CL document is gone).
    (registered, _), (guest_order, guest_id) = registered_orders(sandbox, 2)
    buyer = engine.vtex.find_customer_by_user_id(guest_id, ["id"])
    assert buyer is not None
    vtex_admin(sandbox, "DELETE", f"/customers/{buyer['id']}")
    webhooks.notify(notice(registered))
    webhooks.notify(notice(guest_order))
    wait_processed(store, 5)
    guest = profile(sandbox, guest_id)
    assert guest is not None and set(guest) >= {"customId", "firstName", "clientId"}
    [txn] = [t for t in sandbox.synerise.stored_transactions() if t["orderId"] == guest_order]
    assert txn["_sandbox"]["clientId"] == guest["clientId"]  # it has a profile to land on
    orders = run_of(store, "orders")
    assert (orders.read_count, orders.sent_count, orders.rejected_count) == (2, 2, 0)
    assert (orders.guest_sent_count, orders.guest_rejected_count) == (1, 0)

    # The customer deleted in VTEX: the default behaviour sends a client.deleteAccount event.
    vtex_admin(sandbox, "DELETE", f"/customers/{doc['id']}")
    webhooks.trigger("DELETE", {"id": doc["id"], "email": "ana.lima@example.com",
                                "userId": "user-ana"})  # fmt: skip
    wait_processed(store, 6)
    assert any(e["action"] == "client.deleteAccount" for e in sandbox.synerise.stored_events())

    synerise = sandbox.synerise.stats()
    assert synerise["strict"] is True
    assert synerise["refused"] == {}
    assert synerise["violations"] == {"schema": 0, "rule": 0, "prose": 0}
    assert synerise["requests"].get("synerise.events_custom") == 1
