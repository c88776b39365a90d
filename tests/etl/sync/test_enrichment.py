"""Enrichment end to end: sandbox over HTTP, a real Celery worker, Redis and PostgreSQL.

An enricher from an installed package (an entry point) adds fields that arrive in Synerise; a
hook that raises rejects only its record (``ENRICHMENT_ERROR``), a veto only its own
(``VETOED``); the attribute rules shape what leaves.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from schemas.mapping import MappingConfig, profile_from_customer
from tests.helpers import enrichers
from tests.helpers.sync import RANGE_ARGS, customer_truth, invoke, json_lines, listing, order_truth


@pytest.fixture
def example_package(monkeypatch: pytest.MonkeyPatch) -> None:
    """The example enricher distribution installed (on ``sys.path``) before the engine loads."""
    monkeypatch.syspath_prepend(str(enrichers.EXAMPLE_PACKAGE))


@pytest.fixture
def marks() -> Iterator[dict[str, str]]:
    enrichers.MARKED.clear()
    yield enrichers.MARKED
    enrichers.MARKED.clear()


def start(scope: str, *args: str) -> dict:
    return json.loads(invoke("sync", "start", scope, *args, "--wait", "--json").stdout)


def rejects(run_id: int) -> dict[str, tuple[str, str]]:
    found = json_lines(invoke("sync", "rejects", str(run_id), "--json").stdout)
    return {r["key"]: (r["reason"], r["message"]) for r in found}


def test_an_installed_enricher_adds_fields_that_arrive_in_synerise(
    example_package, sandbox, engine, worker
):
    assert [e.name for e in engine.mapping.enrichment.enrichers] == ["loyalty"]
    customers = start("customers", *RANGE_ARGS)
    assert customers["status"] == "done" and customers["counts"]["sent"] > 0
    data = sandbox.dataset
    by_custom_id = {}
    for i in range(data.customer_count):
        doc = data.customer(i)
        if customer_truth(sandbox)[doc["id"]][0] is None:
            by_custom_id[profile_from_customer(doc, MappingConfig())["customId"]] = doc
    profiles = listing(sandbox, "profiles")
    assert profiles
    for profile in profiles:
        doc = by_custom_id[profile["customId"]]
        tier = "vip" if doc.get("isNewsletterOptIn") is True else "standard"
        assert profile["attributes"]["loyaltyTier"] == tier

    valid = [key for key, reason in order_truth(sandbox).items() if reason is None][:5]
    orders = start("orders", "--ids", ",".join(valid))
    assert orders["counts"]["sent"] == 5
    quantities = {
        data.order(i)["orderId"]: sum(item["quantity"] for item in data.order(i)["items"])
        for i in range(data.order_count)
    }
    for transaction in listing(sandbox, "transactions"):
        assert transaction["metadata"]["itemCount"] == quantities[transaction["orderId"]]


@pytest.mark.sync_env(
    ENRICHERS="tests.helpers.enrichers:marked",
    ATTRIBUTES_EXCLUDE="utmSource,utmMedium",
    ATTRIBUTES_RENAME="orderGroup:vtexOrderGroup",
)
def test_a_raising_hook_rejects_only_its_record_and_a_veto_only_its_own(
    sandbox, engine, worker, marks
):
    valid = [key for key, reason in order_truth(sandbox).items() if reason is None][:6]
    marks[valid[0]] = "raise"
    marks[valid[1]] = "veto"

    run = start("orders", "--ids", ",".join(valid))
    assert run["status"] == "done"
    assert run["counts"]["sent"] == 4 and run["counts"]["failed"] == 0
    found = rejects(run["id"])
    assert set(found) == {valid[0], valid[1]}
    reason, message = found[valid[0]]
    assert reason == "ENRICHMENT_ERROR" and "RuntimeError: the hook has a bug" in message
    assert "tests.helpers.enrichers:marked" in message
    assert found[valid[1]] == (
        "VETOED", "tests.helpers.enrichers:marked: test accounts stay out of Synerise"
    )
    transactions = {t["orderId"]: t for t in listing(sandbox, "transactions")}
    assert set(transactions) == set(valid[2:])
    for transaction in transactions.values():
        metadata = transaction["metadata"]
        assert metadata["marked"] is False
        assert not {"utmSource", "utmMedium", "orderGroup"} & set(metadata)
        assert metadata["vtexOrderGroup"] and metadata["status"]

    # The hook fixed: a replay sends the record the bug rejected; the veto stands.
    marks.clear()
    marks[valid[1]] = "veto"
    replay = json.loads(invoke("sync", "replay", str(run["id"]), "--wait", "--json").stdout)
    assert replay["counts"]["sent"] == 1 and replay["counts"]["rejected"] == 1
    assert valid[0] in {t["orderId"] for t in listing(sandbox, "transactions")}


@pytest.mark.sync_env(ENRICHERS="no_such_module:enrich")
def test_an_enricher_that_cannot_be_loaded_is_one_line_naming_the_setting(sync_env):
    result = invoke("sync", "start", "orders", "--ids", "A", expect=2)
    assert result.stderr.startswith("error: ENRICHERS: expected")
    assert "no_such_module" in result.stderr and "Traceback" not in result.stderr
