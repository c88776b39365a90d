"""Selection runs end to end (``sync start orders --ids``, ``sync start customers --ids
--emails``): sandbox over HTTP, a real Celery worker, Redis and PostgreSQL.

Exactly the named records are sent; an unknown one is a ``NOT_FOUND`` reject, never an error; a
second selection sends nothing (the ledger), ``--full`` sends again without duplicates.
"""

from __future__ import annotations

import json
from collections import Counter

from tests.helpers.sync import customer_truth, invoke, json_lines, listing, order_truth, stats

UNKNOWN_ORDER = "0000000000000-01"


def start(scope: str, *flags: str, stdin: str | None = None) -> dict:
    result = invoke("sync", "start", scope, *flags, "--wait", "--json", stdin=stdin)
    return json.loads(result.stdout)


def rejects(run_id: int) -> dict[str, str]:
    found = json_lines(invoke("sync", "rejects", str(run_id), "--json").stdout)
    return {r["key"]: r["reason"] for r in found}


def test_orders_by_id_sends_exactly_those_and_a_second_run_sends_nothing(
    sandbox, engine, worker
):
    valid = [key for key, reason in order_truth(sandbox).items() if reason is None]
    chosen = valid[:3]

    first = start("orders", "--ids", ",".join([*chosen, UNKNOWN_ORDER]))
    assert first["kind"] == "selection" and first["status"] == "done"
    assert first["records_planned"] == 4
    assert first["counts"]["read"] == 4
    assert first["counts"]["sent"] == 3 and first["counts"]["failed"] == 0
    assert rejects(first["id"]) == {UNKNOWN_ORDER: "NOT_FOUND"}
    arrived = Counter(txn["orderId"] for txn in listing(sandbox, "transactions"))
    assert arrived == Counter(chosen)

    again = start("orders", "--ids-file", "-", stdin="\n".join(chosen) + "\n\n")
    assert again["status"] == "done" and again["kind"] == "selection"
    assert again["counts"]["sent"] == 0 and again["counts"]["skipped"] == 3

    full = start("orders", "--ids", ",".join(chosen), "--full")
    assert full["full"] and full["counts"]["sent"] == 3
    after = stats(sandbox)
    assert after["transactions"] == 3 and after["duplicate_transactions"] == 0
    assert after["transactions_overwritten"] == 3

    listed = invoke("sync", "list").stdout
    assert f"{first['id']:>6}  selection" in listed and "4 selected" in listed


def test_customers_by_document_id_user_id_and_email(sandbox, engine, worker):
    from schemas.mapping import MappingConfig, profile_from_customer

    data, truth = sandbox.dataset, customer_truth(sandbox)
    emails = Counter(
        str(data.customer(i).get("email", "")).lower() for i in range(data.customer_count)
    )
    usable = [
        data.customer(i)
        for i in range(data.customer_count)
        if truth[data.customer(i)["id"]][0] is None
        and data.customer(i).get("userId")
        and emails[str(data.customer(i).get("email", "")).lower()] == 1
    ]
    by_id, by_user, by_email = usable[:3]

    reads = stats(sandbox, "vtex")["requests"].get("md.document", 0)
    first = start(
        "customers",
        "--ids", f"{by_id['id']},{by_user['userId']},no-such-document",
        "--emails", f"{by_email['email']},nobody@example.invalid",
    )  # fmt: skip
    assert first["kind"] == "selection" and first["status"] == "done"
    assert first["counts"]["sent"] == 3
    # Ids and user ids are searched for together; only the id no search found is read alone.
    assert stats(sandbox, "vtex")["requests"].get("md.document", 0) - reads == 1
    assert rejects(first["id"]) == {
        "no-such-document": "NOT_FOUND",
        "email:nobody@example.invalid": "NOT_FOUND",
    }
    wanted = {
        profile_from_customer(doc, MappingConfig())["customId"]
        for doc in (by_id, by_user, by_email)
    }
    assert {p.get("customId") for p in listing(sandbox, "profiles")} == wanted

    # Resolved keys (a userId, an e-mail) meet the ledger under their CL document id.
    again = start("customers", "--ids", f"{by_user['userId']},{by_id['id']}",
                  "--emails", by_email["email"])  # fmt: skip
    assert again["counts"]["sent"] == 0 and again["counts"]["skipped"] == 3


def test_usage_errors(sandbox, engine):
    both = invoke("sync", "start", "orders", "--ids", "A", "--from", "2025-06-01", expect=2)
    assert "not both" in both.stderr
    neither = invoke("sync", "start", "orders", expect=2)
    assert "--from" in neither.stderr
    empty = invoke("sync", "start", "orders", "--ids-file", "-", stdin="\n \n", expect=2)
    assert "no id" in empty.stderr
    not_email = invoke("sync", "start", "customers", "--emails", "ana.example.com", expect=2)
    assert "'ana.example.com' is not an e-mail address" in not_email.stderr
    assert engine.store.runs.find() == []


def test_a_selection_takes_a_slot_like_any_run(sandbox, engine):
    """No worker: two date-range runs hold both slots; a selection queues (or is refused with
    ``--no-queue``) and starts when a slot frees."""
    from etl.sync import runs
    from tests.helpers.sync import WHOLE_RANGE

    held = [runs.start(engine, runs.StartRequest("orders", WHOLE_RANGE)) for _ in range(2)]
    assert [run.status for run in held] == ["running", "running"]

    refused = invoke("sync", "start", "orders", "--ids", "A,B", "--no-queue", expect=3)
    assert "no free slot" in refused.stderr or "already active" in refused.stderr
    queued = json.loads(invoke("sync", "start", "orders", "--ids", "A,B", "--json").stdout)
    assert queued["status"] == "queued" and queued["kind"] == "selection"

    runs.cancel(engine, held[0].id)
    selection = engine.store.runs.get(queued["id"])
    assert selection.status == "running" and selection.records_total == 2
