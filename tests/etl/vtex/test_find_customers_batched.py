"""``VtexClient.find_customers_by_user_ids`` and ``find_customers_by_ids``: one search per batch,
the same answers as one call per id."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import pytest
import responses

from etl.sandbox import start_sandbox
from etl.vtex.client import VtexClient

BASE = "https://acme.vtexcommercestable.com.br"
SEARCH = f"{BASE}/api/dataentities/CL/search"


def _query(call) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(call.request.url).query).items()}


@pytest.fixture(scope="module")
def sandbox():
    with start_sandbox(customers=600, orders=400, seed=11) as running:
        yield running


@pytest.fixture
def client(sandbox):
    env = sandbox.env()
    return VtexClient(env["VTEX_BASE_URL"], env["VTEX_APP_KEY"], env["VTEX_APP_TOKEN"])


def _buyers(client: VtexClient, count: int) -> list[str]:
    pages = client.iter_orders(datetime(2025, 6, 1, tzinfo=UTC), datetime(2026, 6, 1, tzinfo=UTC))
    order_ids = [order["orderId"] for page in pages for order in page][:count]
    buyers = []
    for order_id in order_ids:
        order = client.get_order(order_id) or {}
        user_id = (order.get("clientProfileData") or {}).get("userProfileId")
        if user_id:
            buyers.append(user_id)
    return buyers


def test_batched_lookup_finds_what_single_lookups_find(client, sandbox):
    buyers = [*_buyers(client, 150), "no-such-user"]
    fields = ["id", "userId", "email"]
    single = {
        user_id: document
        for user_id in buyers
        if (document := client.find_customer_by_user_id(user_id, fields)) is not None
    }
    before = sandbox.vtex.stats()["requests"].get("md.search", 0)
    batched = client.find_customers_by_user_ids(buyers, fields, batch_size=50)
    searches = sandbox.vtex.stats()["requests"]["md.search"] - before
    assert batched == single
    assert searches == -(-len(set(buyers)) // 50)


def test_batched_lookup_by_id_finds_what_single_reads_find(client, sandbox):
    ids = [doc["id"] for doc in _customers(client, 100) + _customers(client, 20, 100)]
    ids.append("no-such-document")
    fields = ["email", "firstName"]
    single = {key: doc for key in ids if (doc := client.get_customer(key, fields)) is not None}
    before = sandbox.vtex.stats()["requests"].get("md.search", 0)
    batched = client.find_customers_by_ids(ids, fields, batch_size=50)
    searches = sandbox.vtex.stats()["requests"]["md.search"] - before
    assert len(batched) == len(ids) - 1
    assert batched == single, "the fields asked for, and not the id the search needed"
    assert searches == -(-len(ids) // 50)


def _customers(client: VtexClient, count: int, start: int = 0) -> list[dict]:
    where = "createdIn between 2000-01-01T00:00:00Z AND 2100-01-01T00:00:00Z"
    docs, _ = client.search_customers(where, ["id"], "createdIn ASC", start, start + count)
    return docs


def test_fields_without_user_id_come_back_without_it(client):
    buyers = _buyers(client, 20)
    found = client.find_customers_by_user_ids(buyers, ["id", "email"])
    assert found
    assert all(set(document) == {"id", "email"} for document in found.values())


@responses.activate
def test_pages_past_100_documents_and_keeps_the_newest_per_user():
    client = VtexClient(BASE, "vtexappkey-acme-ABC", "token")
    first = [{"id": f"cl-{i}", "userId": "u-1" if i < 99 else "u-2"} for i in range(100)]
    responses.get(SEARCH, json=first, headers={"REST-Content-Range": "resources 0-100/101"})
    responses.get(
        SEARCH,
        json=[{"id": "old-u-2", "userId": "u-2"}],
        headers={"REST-Content-Range": "resources 100-101/101"},
    )
    found = client.find_customers_by_user_ids(["u-1", "u-2"], ["id", "userId"])
    assert found == {
        "u-1": {"id": "cl-0", "userId": "u-1"},
        "u-2": {"id": "cl-99", "userId": "u-2"},
    }
    assert _query(responses.calls[0])["_where"] == "userId=u-1 OR userId=u-2"
    assert _query(responses.calls[0])["_sort"] == "updatedIn DESC"
    assert responses.calls[1].request.headers["REST-Range"] == "resources=100-200"


@responses.activate
def test_an_id_the_where_grammar_cannot_carry_is_looked_up_alone():
    client = VtexClient(BASE, "vtexappkey-acme-ABC", "token")
    responses.get(
        SEARCH,
        json=[{"id": "cl-x", "userId": "odd id"}],
        headers={"REST-Content-Range": "resources 0-1/1"},
    )
    assert client.find_customers_by_user_ids(["odd id"], ["id", "userId"]) == {
        "odd id": {"id": "cl-x", "userId": "odd id"}
    }
    assert _query(responses.calls[0]) == {
        "userId": "odd id", "_sort": "updatedIn DESC", "_fields": "id,userId"
    }
