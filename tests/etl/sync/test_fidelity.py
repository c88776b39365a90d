"""Issue 11 end to end (sandbox over HTTP, a real worker, Redis, PostgreSQL): field warnings are
stored per record and shown by ``sync rejects --warnings``; guest buyers get a profile before
their transaction; and everything the syncs send passes the strict Synerise emulator.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest
import requests

from etl.errors import SkippableRecordError
from etl.retry import RetryPolicy
from etl.sync import runs
from schemas.mapping import MappingConfig, profile_from_customer
from tests.helpers.sync import (
    RANGE_ARGS,
    WHOLE_RANGE,
    assert_profiles_arrived,
    expected,
    guest_profiles,
    invoke,
    json_lines,
    listing,
    set_faults,
    stats,
    wait_for_run,
)


def sync(scope: str, *flags: str) -> dict[str, Any]:
    result = invoke("sync", "start", scope, *RANGE_ARGS, "--wait", "--json", *flags)
    return dict(json.loads(result.stdout))


def rejects(run_id: int, *flags: str) -> list[dict[str, Any]]:
    return json_lines(invoke("sync", "rejects", str(run_id), "--json", *flags).stdout)


def warnings_of(run_id: int, *flags: str) -> list[dict[str, Any]]:
    return json_lines(invoke("sync", "rejects", str(run_id), "--warnings", "--json", *flags).stdout)


def customer_warnings(sandbox, changes: dict[str, dict[str, Any]]) -> dict[str, set[str]]:
    """CL document id -> the warning codes the mapping gives its profile (sent ones only), the
    generated documents with ``changes`` (id -> fields) applied."""
    data, found = sandbox.dataset, {}
    for i in range(data.customer_count):
        doc, warnings = data.customer(i), []
        doc.update(changes.get(doc["id"], {}))
        try:
            profile_from_customer(doc, MappingConfig(), warnings=warnings)
        except SkippableRecordError:
            continue
        if warnings:
            found[doc["id"]] = {str(w.code) for w in warnings}
    return found


def assert_strict_sandbox_refused_nothing(sandbox) -> None:
    synerise = stats(sandbox)
    assert synerise["strict"] is True
    assert synerise["refused"] == {}, synerise["refused"]
    assert synerise["violations"] == {"schema": 0, "rule": 0, "prose": 0}


def test_a_profile_sent_without_a_field_is_sent_with_a_warning(sandbox, engine, worker):
    # One more kind of warning than the generated data has: an unmapped gender.
    data = sandbox.dataset
    renamed = next(data.customer(i)["id"] for i in range(data.customer_count)
                   if data.expected_reason("customer", i) is None)  # fmt: skip
    requests.patch(
        f"{sandbox.vtex_url}/__sandbox__/customers/{renamed}", json={"gender": "x"}, timeout=10
    ).raise_for_status()
    truth = customer_warnings(sandbox, {renamed: {"gender": "x"}})
    assert any("BIRTHDATE_DROPPED" in codes for codes in truth.values())
    assert "SEX_UNMAPPED" in truth[renamed]

    run = sync("customers")
    counts = run["counts"]
    assert counts["warned"] == len(truth)
    assert counts["sent"] == expected(sandbox)["customers"]["sent"]  # warned records are sent
    listed = warnings_of(run["id"])
    assert {w["key"] for w in listed} == set(truth)
    assert Counter(w["code"] for w in listed) == Counter(c for cs in truth.values() for c in cs)
    for warning in listed:
        assert warning["stream"] == "profiles" and warning["description"]
        assert warning["field"] in ("birthDate", "sex")
    birth = warnings_of(run["id"], "--reason", "BIRTHDATE_DROPPED")
    assert birth and {w["code"] for w in birth} == {"BIRTHDATE_DROPPED"}

    text = invoke("sync", "rejects", str(run["id"]), "--warnings").stdout
    assert "SEX_UNMAPPED: 1 record(s) sent without a field: gender is not one of" in text
    assert f"  profiles      {renamed}" in text
    assert f"warned {len(truth)}" in invoke("sync", "status", str(run["id"])).stdout
    invoke("sync", "rejects", str(run["id"]), "--warnings", "--unresolved", expect=2)
    assert_strict_sandbox_refused_nothing(sandbox)

    # A second run sends nothing, so it warns about nothing.
    again = sync("customers")
    assert again["counts"]["sent"] == 0 and again["counts"]["warned"] == 0
    assert warnings_of(again["id"]) == []


def test_warnings_never_hold_personal_data(sandbox, engine, worker):
    run = sync("customers")
    data = sandbox.dataset
    for warning in warnings_of(run["id"]):
        index = next(i for i in range(data.customer_count)
                     if data.customer(i)["id"] == warning["key"])  # fmt: skip
        doc = data.customer(index)
        values = [v for k, v in doc.items() if k != "id" and isinstance(v, str) and len(v) > 3]
        assert not any(value in warning["message"] for value in values)


def guest_orders(sandbox) -> dict[str, str]:
    """orderId -> the guest profile's customId, for the orders with a guest buyer."""
    return {order: guest["customId"] for order, guest in guest_profiles(sandbox).items()}


def test_guest_buyers_get_a_profile_their_transaction_lands_on(sandbox, engine, worker):
    guests = guest_orders(sandbox)
    assert guests, "the sandbox data has no guest order"
    run = sync("orders")
    counts = run["counts"]
    assert counts["guest_profiles"] == {"sent": len(guests), "skipped": 0, "rejected": 0}
    truth = expected(sandbox)["orders"]
    assert (counts["sent"], counts["rejected"]) == (truth["sent"], truth["rejected"])
    profiles = {p["customId"]: p for p in listing(sandbox, "profiles")}
    assert set(profiles) == set(guests.values())  # no customers synced: only the guests
    for order_id, custom_id in guests.items():
        [txn] = listing(sandbox, "transactions", orderId=order_id)
        assert txn["client"]["customId"] == custom_id
        assert txn["_sandbox"]["clientId"] == profiles[custom_id]["clientId"]  # it landed
    assert "guest profiles sent" in invoke("sync", "status", str(run["id"])).stdout
    assert_strict_sandbox_refused_nothing(sandbox)

    again = sync("orders")
    assert again["counts"]["guest_profiles"] == {"sent": 0, "skipped": len(guests), "rejected": 0}
    assert stats(sandbox)["profiles"] == len(guests)


def test_a_refused_guest_profile_never_holds_its_transaction_back(sandbox, engine, worker):
    engine.synerise.http.retry = RetryPolicy(max_attempts=2, base=0.01, cap=0.02)
    set_faults(sandbox, {"route": "synerise.clients_batch", "partial_reject_rate": 1.0})
    guests = guest_orders(sandbox)
    run = sync("orders")
    truth = expected(sandbox)["orders"]
    counts = run["counts"]
    assert (counts["sent"], counts["rejected"]) == (truth["sent"], truth["rejected"])
    assert counts["guest_profiles"]["rejected"] == len(guests)
    refused = [r for r in rejects(run["id"]) if r["stream"] == "profiles"]
    assert {r["key"]: r["origin"] for r in refused} == {
        f"guest:{custom_id}": order for order, custom_id in guests.items()
    }
    assert {r["reason"] for r in refused} == {"SYNERISE_REJECTED"}
    assert stats(sandbox)["transactions"] == truth["sent"]

    set_faults(sandbox, {"route": "synerise.clients_batch", "partial_reject_rate": 0.0})
    replay = json.loads(invoke("sync", "replay", str(run["id"]), "--wait", "--json").stdout)
    assert replay["status"] == "done"
    # The replay re-reads the rejected orders and the guests' orders, each once.
    assert replay["counts"]["read"] == truth["rejected"] + len(guests)
    assert replay["counts"]["guest_profiles"]["sent"] == len(guests)
    assert replay["counts"]["sent"] == 0  # the transactions were in Synerise already
    assert {r["key"] for r in rejects(run["id"], "--unresolved")} == {
        r["key"] for r in rejects(run["id"]) if r["stream"] == "transactions"
    }
    assert stats(sandbox)["profiles"] == len(guests)
    assert stats(sandbox)["duplicate_transactions"] == 0


@pytest.mark.sync_env(SYNERISE_GUEST_PROFILES="false")
def test_guest_profiles_can_be_turned_off(sandbox, engine, worker):
    run = sync("orders")
    assert run["counts"]["sent"] == expected(sandbox)["orders"]["sent"]
    assert run["counts"]["guest_profiles"] == {"sent": 0, "skipped": 0, "rejected": 0}
    assert stats(sandbox)["profiles"] == 0


def test_a_dry_run_sends_no_guest_profile(sandbox, engine, worker):
    run = sync("orders", "--dry-run")
    assert run["counts"]["would_create"] == expected(sandbox)["orders"]["sent"]
    assert stats(sandbox)["profiles"] == 0 and stats(sandbox)["transactions"] == 0


def test_the_demos_syncs_break_no_synerise_rule(sandbox, engine, worker):
    """Both historical syncs at once, as ``make demo`` runs them, then again in full: the strict
    emulator refuses nothing, and holds every customer's and guest's profile."""
    started = [runs.start(engine, runs.StartRequest(scope, WHOLE_RANGE))
               for scope in ("customers_created", "orders")]  # fmt: skip
    ended = [wait_for_run(engine.store, run.id) for run in started]
    assert [run.status for run in ended] == ["done", "done"]
    assert sync("orders", "--full")["counts"]["guest_profiles"]["sent"] == len(
        guest_profiles(sandbox)
    )
    assert_strict_sandbox_refused_nothing(sandbox)
    assert_profiles_arrived(sandbox)
    truth = expected(sandbox)
    assert stats(sandbox)["transactions"] == truth["orders"]["sent"]
    assert stats(sandbox)["duplicate_transactions"] == 0
