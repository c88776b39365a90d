"""Historical syncs through faults: 429 and 5xx storms, partial 207s, token expiry, the OMS
30-page limit, the Master Data 10,000-document cap, and masked e-mails.

Each test ends with the same check: every record the ground truth says must arrive is in
Synerise exactly once, and nothing else was rejected.
"""

from __future__ import annotations

from collections import Counter

import pytest

from etl.sandbox import Sandbox
from etl.sync import runs
from etl.sync.engine import Engine
from schemas.rules import is_masked_vtex_email, is_valid_email
from tests.helpers.sync import (
    WHOLE_RANGE,
    assert_profiles_arrived,
    expected,
    listing,
    order_truth,
    set_faults,
    stats,
    wait_for_run,
)


def sync_both(engine: Engine, timeout: float = 150) -> tuple:
    """Run orders and customers at once (two slots) and wait for both."""
    started = [
        runs.start(engine, runs.StartRequest(scope, WHOLE_RANGE))
        for scope in ("orders", "customers_created")
    ]
    return tuple(wait_for_run(engine.store, run.id, timeout) for run in started)


def assert_all_arrived(sandbox: Sandbox, engine: Engine, orders, customers) -> None:
    truth = expected(sandbox)
    for run, kind in ((orders, "orders"), (customers, "customers")):
        assert run.status == "done", run.error
        assert run.failed_count == 0
        assert run.sent_count == truth[kind]["sent"]
        assert run.rejected_count == truth[kind]["rejected"]
        reasons = Counter(r.reason for r in engine.store.rejects.find(run.id))
        assert reasons == truth[kind]["by_reason"]  # no SYNERISE_REJECTED, no NOT_FOUND
    arrived = Counter(txn["orderId"] for txn in listing(sandbox, "transactions"))
    assert set(arrived) == {k for k, reason in order_truth(sandbox).items() if reason is None}
    assert set(arrived.values()) == {1}
    assert_profiles_arrived(sandbox)
    assert stats(sandbox)["duplicate_transactions"] == 0


SMALL = [pytest.mark.sandbox(customers=100, orders=150), pytest.mark.sync_env(SYNC_CHUNK_SIZE="25")]

STORMS = [
    pytest.param(
        # The budgets are above what the services take: 429s come in waves, and every process
        # must wait out each Retry-After together.
        [
            {"route": "oms.*", "rate_limit": 30, "burst": 5},
            {"route": "md.*", "rate_limit": 10, "burst": 2},
            {"route": "synerise.*_batch", "rate_limit": 4, "burst": 1},
        ],
        {"vtex": "rate_limited", "synerise": "rate_limited"},
        marks=[
            pytest.mark.sandbox(customers=60, orders=90),
            pytest.mark.sync_env(
                SYNC_CHUNK_SIZE="15", VTEX_RATE_LIMIT="60", SYNERISE_RATE_LIMIT="8"
            ),
        ],
        id="429-storm",
    ),
    pytest.param(
        [
            {"route": "oms.*", "error_rate": 0.3},
            {"route": "md.*", "error_rate": 0.3},
            {"route": "synerise.*", "error_rate": 0.3},
        ],
        {"vtex": "errors_injected", "synerise": "errors_injected"},
        marks=SMALL,
        id="5xx-storm",
    ),
    pytest.param(
        # Items a 207 refuses with code 503 ("temporarily") are resent, not rejected.
        [{"route": "synerise.*_batch", "partial_reject_rate": 0.15}],
        {"synerise": "fault_rejected_items"},
        marks=SMALL,
        id="partial-207s",
    ),
]


@pytest.mark.parametrize(("rules", "evidence"), STORMS)
def test_every_record_arrives_through_a_storm(sandbox, engine, worker, rules, evidence):
    set_faults(sandbox, *rules)
    orders, customers = sync_both(engine)
    vtex = stats(sandbox, "vtex")["faults"]
    synerise = stats(sandbox)
    for side, counter in evidence.items():
        assert (vtex if side == "vtex" else synerise)[counter] > 0, f"no {counter} on {side}"
    assert_all_arrived(sandbox, engine, orders, customers)


@pytest.mark.sandbox(customers=100, orders=150, synerise_options={"token_expiry_interval": 0.3})
@pytest.mark.sync_env(SYNC_CHUNK_SIZE="10")
def test_synerise_tokens_expiring_mid_run(sandbox, engine, worker):
    set_faults(sandbox, {"route": "synerise.*_batch", "latency_ms": 60})  # span many expiries
    orders, customers = sync_both(engine)
    synerise = stats(sandbox)
    assert synerise["token_expired_401"] > 0
    assert synerise["tokens_issued"] > 1
    assert_all_arrived(sandbox, engine, orders, customers)


@pytest.mark.sandbox(customers=60, orders=3_150)
@pytest.mark.sync_env(SYNC_CHUNK_SIZE="150", SYNERISE_BATCH_SIZE="150")
def test_more_than_30_pages_of_orders_split_the_window(sandbox, engine, worker):
    assert expected(sandbox)["orders"]["total"] > 30 * 100
    run = runs.start(engine, runs.StartRequest("orders", WHOLE_RANGE))
    run = wait_for_run(engine.store, run.id, timeout=180)
    truth = expected(sandbox)
    assert run.status == "done"
    assert (run.read_count, run.sent_count) == (truth["orders"]["total"], truth["orders"]["sent"])
    vtex = stats(sandbox, "vtex")
    assert "400" not in vtex["responses"], "a listing asked for a page past 30"
    assert stats(sandbox)["transactions"] == truth["orders"]["sent"]
    assert stats(sandbox)["duplicate_transactions"] == 0


@pytest.mark.sandbox(customers=12_000, orders=0, dirty_share=0.01)
@pytest.mark.sync_env(SYNC_CHUNK_SIZE="1000", SYNERISE_BATCH_SIZE="1000")
def test_more_than_10000_customers_split_the_window(sandbox, engine, worker):
    run = runs.start(engine, runs.StartRequest("customers_created", WHOLE_RANGE))
    run = wait_for_run(engine.store, run.id, timeout=240)
    truth = expected(sandbox)["customers"]
    assert run.status == "done"
    assert (run.read_count, run.sent_count, run.rejected_count) == (
        truth["total"],
        truth["sent"],
        truth["rejected"],
    )
    vtex = stats(sandbox, "vtex")
    assert "400" not in vtex["responses"], "a listing reached past Master Data's caps"
    windows = vtex["requests"]["md.search"] - 1  # a count for the whole range, then its halves
    assert windows >= 2, "the range was not split"
    assert vtex["requests"]["md.scroll"] <= 12 + 2 * windows  # pages of 1,000 and an empty end
    assert_profiles_arrived(sandbox)


def test_masked_order_emails_are_resolved_from_the_buyers_cl_record(sandbox, engine, worker):
    run = runs.start(engine, runs.StartRequest("orders", WHOLE_RANGE))
    assert wait_for_run(engine.store, run.id).status == "done"
    data = sandbox.dataset
    cl_email: dict[str, str] = {}  # orderId -> the buyer's usable CL e-mail
    for i in range(data.order_count):
        order = data.order(i)
        assert is_masked_vtex_email(order["clientProfileData"]["email"])  # the premise
        user_id = order["clientProfileData"].get("userProfileId")
        found = data.find_customers("userId", user_id) if user_id else []
        if found:
            email = data.customer(found[0]).get("email") or ""
            if is_valid_email(email) and not is_masked_vtex_email(email):
                cl_email[order["orderId"]] = email
    transactions = listing(sandbox, "transactions")
    assert transactions
    for txn in transactions:
        email = txn["client"].get("email") or ""
        assert not email.lower().endswith("ct.vtex.com.br"), txn["orderId"]
    with_cl = [txn for txn in transactions if txn["orderId"] in cl_email]
    assert len(with_cl) > len(transactions) // 2
    for txn in with_cl:
        assert txn["client"]["email"].lower() == cl_email[txn["orderId"]].lower(), txn["orderId"]
