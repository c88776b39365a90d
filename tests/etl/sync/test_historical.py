"""Historical sync end to end: sandbox over HTTP, a real Celery worker, Redis and PostgreSQL.

Every valid record arrives exactly once, every invalid one is rejected with the reason the
sandbox's ground truth names; a second run sends nothing; ``--full`` overwrites and never
duplicates; ``--dry-run``, ``cancel``, ``replay``, ``status`` and ``list`` do what they say.
"""

from __future__ import annotations

import json
from collections import Counter

import pytest
import requests

from etl.sync import runs
from etl.sync.engine import Engine
from tests.helpers.sync import (
    RANGE_ARGS,
    WHOLE_RANGE,
    assert_profiles_arrived,
    customer_truth,
    expected,
    expected_profiles,
    guest_profiles,
    invoke,
    json_lines,
    listing,
    order_truth,
    set_faults,
    stats,
    wait_for_run,
    wait_until,
)

BATCH_ROUTES = ("synerise.clients_batch", "synerise.transactions_batch")


def sync(scope: str, *flags: str) -> dict:
    """``sync start SCOPE --from --to --wait --json FLAGS`` (in process); the run's summary."""
    command = ["customers"] if scope == "customers" else ["orders"]
    result = invoke("sync", "start", *command, *RANGE_ARGS, "--wait", "--json", *flags)
    return json.loads(result.stdout)


def rejects(run_id: int, *flags: str) -> list[dict]:
    return json_lines(invoke("sync", "rejects", str(run_id), "--json", *flags).stdout)


def batch_calls(sandbox) -> int:
    requests_by_route = stats(sandbox)["requests"]
    return sum(requests_by_route.get(route, 0) for route in BATCH_ROUTES)


def test_every_record_arrives_once_and_every_reject_has_its_reason(sandbox, engine, worker):
    truth = expected(sandbox)
    orders_truth, customers_truth = order_truth(sandbox), customer_truth(sandbox)

    orders = sync("orders")
    customers = sync("customers")

    # Counts: what the ground truth says, nothing failed.
    for run, kind in ((orders, "orders"), (customers, "customers")):
        assert run["status"] == "done"
        counts = run["counts"]
        assert counts["read"] == truth[kind]["total"]
        assert counts["sent"] == truth[kind]["sent"]
        assert counts["rejected"] == truth[kind]["rejected"]
        assert counts["failed"] == counts["skipped"] == 0
        assert run["chunks"]["done"] == run["chunks"]["total"] > 1

    # Synerise holds every valid record exactly once.
    transactions = listing(sandbox, "transactions")
    arrived = Counter(txn["orderId"] for txn in transactions)
    assert set(arrived) == {key for key, reason in orders_truth.items() if reason is None}
    assert set(arrived.values()) == {1}
    assert_profiles_arrived(sandbox)
    assert stats(sandbox)["duplicate_transactions"] == 0

    # Every reject carries the reason the ground truth names, record by record.
    order_rejects = {r["key"]: r["reason"] for r in rejects(orders["id"])}
    assert order_rejects == {k: r for k, r in orders_truth.items() if r is not None}
    customer_rejects = {r["key"]: r["reason"] for r in rejects(customers["id"])}
    assert customer_rejects == {k: r for k, (r, _) in customers_truth.items() if r is not None}
    assert Counter(customer_rejects.values()) == truth["customers"]["by_reason"]
    assert Counter(order_rejects.values()) == truth["orders"]["by_reason"]
    # Filtering by reason works, and stored payloads are redacted.
    reason = next(iter(truth["customers"]["by_reason"]))
    assert {r["reason"] for r in rejects(customers["id"], "--reason", reason)} == {reason}


def test_a_second_run_sends_nothing_and_full_overwrites_without_duplicates(
    sandbox, engine, worker
):
    truth = expected(sandbox)
    first_orders, first_customers = sync("orders"), sync("customers")
    assert first_orders["counts"]["sent"] == truth["orders"]["sent"]
    assert first_customers["counts"]["sent"] == truth["customers"]["sent"]
    calls = batch_calls(sandbox)

    again_orders, again_customers = sync("orders"), sync("customers")
    for run, kind in ((again_orders, "orders"), (again_customers, "customers")):
        assert run["status"] == "done"
        assert run["counts"]["sent"] == 0
        assert run["counts"]["skipped"] == truth[kind]["sent"]
        assert run["counts"]["rejected"] == truth[kind]["rejected"]
    assert batch_calls(sandbox) == calls  # the ledger kept every unchanged record home

    full_orders, full_customers = sync("orders", "--full"), sync("customers", "--full")
    assert full_orders["full"] and full_orders["counts"]["sent"] == truth["orders"]["sent"]
    assert full_customers["counts"]["sent"] == truth["customers"]["sent"]
    after = stats(sandbox)
    assert after["duplicate_transactions"] == 0
    assert after["transactions_overwritten"] == truth["orders"]["sent"]
    assert after["transactions"] == truth["orders"]["sent"]
    assert after["profiles"] == len(expected_profiles(sandbox)) + len(guest_profiles(sandbox))


def test_dry_run_reports_creates_and_updates_and_sends_nothing(sandbox, engine, worker):
    truth = expected(sandbox)
    dry = sync("customers", "--dry-run")
    assert dry["status"] == "done" and dry["dry_run"]
    counts = dry["counts"]
    assert counts["would_create"] == truth["customers"]["sent"]
    assert counts["would_update"] == counts["sent"] == 0
    assert counts["rejected"] == truth["customers"]["rejected"]
    synerise = stats(sandbox)
    assert synerise["profiles"] == 0 and batch_calls(sandbox) == 0

    sync("customers")
    customers = customer_truth(sandbox)
    changed = next(key for key, (reason, _) in customers.items() if reason is None)
    response = requests.patch(
        f"{sandbox.vtex_url}/__sandbox__/customers/{changed}",
        json={"firstName": "Renamed"},
        timeout=10,
    )
    response.raise_for_status()
    calls = batch_calls(sandbox)
    dry = sync("customers", "--dry-run")
    assert dry["counts"]["would_update"] == 1
    assert dry["counts"]["would_create"] == 0
    assert dry["counts"]["skipped"] == truth["customers"]["sent"] - 1
    assert batch_calls(sandbox) == calls
    profile = listing(sandbox, "profiles", customId=customers[changed][1])
    assert profile and profile[0].get("firstName") != "Renamed"


@pytest.mark.sync_env(SYNC_CHUNK_SIZE="10", SYNC_FETCH_CONCURRENCY="2")
def test_cancel_stops_a_run_and_frees_its_slot(sandbox, engine: Engine, worker, sync_redis):
    set_faults(sandbox, {"route": "synerise.clients_batch", "latency_ms": 500})
    run = runs.start(engine, runs.StartRequest("customers_created", WHOLE_RANGE))
    wait_until(lambda: engine.store.runs.get(run.id).chunks_done >= 1, 60, what="a chunk done")

    result = invoke("sync", "cancel", str(run.id))
    assert f"run {run.id} cancelled" in result.stdout

    def settled() -> bool:  # every queued task consumed, no chunk in flight
        assert engine.queue_sizes is not None
        idle = engine.queue_sizes(["backfill"]) == {"backfill": 0}  # every priority's list
        return idle and not engine.store.chunks.ids(run.id, ("running",))

    wait_until(settled, 60, what="the cancelled run's tasks to drain")
    cancelled = engine.store.runs.get(run.id)
    assert cancelled.status == "cancelled" and cancelled.error == "cancelled by user"
    pending = engine.store.chunks.ids(run.id, ("pending",))
    assert pending, "every chunk ran: the cancel stopped nothing"
    assert cancelled.chunks_done + len(pending) == cancelled.chunks_total
    assert engine.lease.holders() == []
    invoke("sync", "cancel", str(run.id), expect=1)  # nothing left to cancel


def test_replay_sends_fixed_records_and_resolves_their_rejects(sandbox, engine, worker):
    first = sync("customers")
    rejected = rejects(first["id"])
    fixable = [r for r in rejected if r["reason"] == "INVALID_PHONE"]
    assert fixable, "the sandbox data has no INVALID_PHONE customer to fix"
    for reject in fixable:
        requests.patch(
            f"{sandbox.vtex_url}/__sandbox__/customers/{reject['key']}",
            json={"phone": "+48 500 100 200"},
            timeout=10,
        ).raise_for_status()

    result = invoke("sync", "replay", str(first["id"]), "--wait", "--json")
    replay = json.loads(result.stdout)
    assert replay["kind"] == "replay" and replay["status"] == "done"
    assert replay["counts"]["read"] == len(rejected)
    assert replay["counts"]["sent"] == len(fixable)
    assert replay["counts"]["rejected"] == len(rejected) - len(fixable)

    truth = customer_truth(sandbox)
    for reject in fixable:
        user_id = truth[reject["key"]][1]
        assert listing(sandbox, "profiles", customId=user_id), "the fixed record did not arrive"
    after = {r["key"]: r for r in rejects(first["id"])}
    assert {k for k, r in after.items() if r["resolved_at"]} == {r["key"] for r in fixable}
    unresolved = rejects(first["id"], "--unresolved")
    assert {r["key"] for r in unresolved} == {r["key"] for r in rejected} - set(
        r["key"] for r in fixable
    )


def test_status_and_list(sandbox, engine, worker):
    run = sync("orders")
    status = json.loads(invoke("sync", "status", str(run["id"]), "--json").stdout)
    assert status["id"] == run["id"] and status["status"] == "done"
    assert status["scope"] == "orders" and status["kind"] == "backfill"
    assert status["counts"] == run["counts"]
    assert status["chunks"]["done"] == status["chunks"]["total"]
    assert status["window"] == {
        "from": "2025-06-01T00:00:00+00:00",
        "to": "2026-06-01T00:00:00+00:00",
    }
    text = invoke("sync", "status", str(run["id"])).stdout
    assert text.startswith(f"run {run['id']} done {run['counts']['read']}/")

    other = sync("customers", "--dry-run")
    listed = invoke("sync", "list").stdout.splitlines()
    assert [line.split()[0] for line in listed] == [str(other["id"]), str(run["id"])]
    assert "dry-run" in listed[0] and "orders" in listed[1]
    as_json = json_lines(invoke("sync", "list", "--json", "--status", "done").stdout)
    assert [r["id"] for r in as_json] == [other["id"], run["id"]]
    assert json_lines(invoke("sync", "list", "--json", "--limit", "1").stdout)[0]["id"] == (
        other["id"]
    )
    invoke("sync", "status", "424242", expect=4)


@pytest.mark.sandbox(customers=60, orders=90)
@pytest.mark.sync_env(SYNC_CHUNK_SIZE="20")
def test_a_run_whose_chunks_fail_after_retries_fails_and_resume_finishes_it(
    sandbox, engine: Engine, worker, monkeypatch
):
    from etl.retry import RetryPolicy
    from workers.tasks import sync as tasks

    monkeypatch.setattr(tasks, "MAX_RETRIES", 0)  # no task retries: fail at once
    engine.synerise.http.retry = RetryPolicy(max_attempts=2, base=0.01, cap=0.02)
    set_faults(sandbox, {"route": "synerise.transactions_batch", "error_rate": 1.0})
    run = runs.start(engine, runs.StartRequest("orders", WHOLE_RANGE))
    failed = wait_for_run(engine.store, run.id)
    assert failed.status == "failed"
    assert failed.chunks_failed == failed.chunks_total and failed.sent_count == 0
    assert failed.failed_count == expected(sandbox)["orders"]["total"]
    assert f"sync resume {run.id}" in (failed.error or "")
    assert engine.lease.holders() == []  # a failed run frees its slot

    set_faults(sandbox, {"route": "synerise.transactions_batch", "error_rate": 0.0})
    resumed = json.loads(invoke("sync", "resume", str(run.id), "--wait", "--json").stdout)
    assert resumed["status"] == "done" and resumed["error"] is None
    truth = expected(sandbox)["orders"]
    assert resumed["counts"]["failed"] == 0
    assert resumed["counts"]["sent"] == truth["sent"]
    assert resumed["counts"]["rejected"] == truth["rejected"]
    assert resumed["chunks"]["failed"] == 0
    assert stats(sandbox)["transactions"] == truth["sent"]
