"""The catalog end to end: 400 sandbox products over HTTP, a real Celery worker, Redis and
PostgreSQL. One Synerise catalog item per VTEX SKU with the right columns; a second run sends
nothing; a changed price, a deactivated SKU and a deleted product are sent, exactly those, once;
a catalog deleted in Synerise is recreated and the run goes on.

The expected columns are computed here from the sandbox's documents (not with ``schemas``), so
the mapping is checked, not repeated.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests

from etl.sandbox import Sandbox
from etl.sandbox.synerise import SANDBOX_API_KEY
from tests.helpers.sync import invoke, json_lines, listing, stats, wait_for_run, wait_until

pytestmark = pytest.mark.sandbox(customers=5, orders=5, products=400, seed=13)

STORE = "https://shop.example"
FIXTURES = Path(__file__).parent / "fixtures" / "catalog"


def sync_products(*flags: str) -> dict[str, Any]:
    """``sync start products --wait --json FLAGS`` (in process); the run's summary."""
    result = invoke("sync", "start", "products", "--wait", "--json", *flags)
    return dict(json.loads(result.stdout))


def items(sandbox: Sandbox) -> dict[str, dict[str, Any]]:
    """The Synerise catalog items by ``itemKey`` (every catalog of the workspace)."""
    found: dict[str, dict[str, Any]] = {}
    for row in listing(sandbox, "catalog-items"):
        assert row["itemKey"] not in found, f"item {row['itemKey']} is in two catalogs"
        found[row["itemKey"]] = row
    return found


def money(value: float | int) -> str:
    return str(Decimal(str(value)).quantize(Decimal("0.01")))


def expected_value(sandbox: Sandbox, sku_id: int) -> dict[str, str | None]:
    """The columns a SKU must arrive with, from the sandbox's own documents."""
    doc, price = sandbox.vtex.catalog.sku(sku_id), sandbox.vtex.catalog.price(sku_id)
    if doc is None:
        return {"itemId": str(sku_id), "deleted": "1"}
    fixed = [f for f in (price or {}).get("fixedPrices", []) if f["tradePolicyId"] == "1"]
    images = doc["Images"]
    return {
        "itemId": str(sku_id),
        "parentId": str(doc["ProductId"]),
        "url": STORE + doc["DetailUrl"],
        "image": images[0]["ImageUrl"] if images else None,
        "price": None
        if price is None
        else money(fixed[0]["value"] if fixed else price["basePrice"]),
        "currency": "BRL",
        "deleted": "0" if doc["IsActive"] and doc["IsProductActive"] else "1",
    }


def all_skus(sandbox: Sandbox) -> list[int]:
    data = sandbox.dataset
    return [sku for product in data.product_ids() for sku in data.product_sku_ids(product)]


def assert_catalog_matches(sandbox: Sandbox, skus: list[int]) -> None:
    stored = items(sandbox)
    assert set(stored) == {str(sku) for sku in skus}
    for sku in skus:
        value = stored[str(sku)]["value"]
        for column, expected in expected_value(sandbox, sku).items():
            assert value.get(column) == expected, (sku, column, value)


def admin(sandbox: Sandbox, method: str, path: str, **kwargs: Any) -> requests.Response:
    response = requests.request(
        method, f"{sandbox.vtex_url}/__sandbox__/catalog/{path}", timeout=10, **kwargs
    )
    assert response.ok, response.text
    return response


@pytest.mark.sync_env(STORE_BASE_URL=STORE, SYNC_CHUNK_SIZE="100")
def test_the_catalog_arrives_and_stays_in_sync(sandbox, engine, worker):
    skus = all_skus(sandbox)
    truth = sandbox.dataset.expected()["catalog"]
    assert truth["products"] == 400 and truth["deleted"] > 0 and truth["without_price"] > 0

    dry = sync_products("--dry-run")
    assert dry["status"] == "done" and dry["counts"]["would_create"] == len(skus)
    assert items(sandbox) == {} and stats(sandbox)["catalog_bags"] == 0

    first = sync_products()
    assert first["status"] == "done", first["error"]
    assert first["counts"] == {
        "read": len(skus), "sent": len(skus), "skipped": 0, "rejected": 0, "failed": 0,
        "warned": 0, "guest_profiles": {"sent": 0, "skipped": 0, "rejected": 0},
    }  # fmt: skip
    assert first["records_planned"] == len(skus) and first["chunks"]["done"] > 1
    assert_catalog_matches(sandbox, skus)
    assert stats(sandbox)["catalog_bags"] == 1

    second = sync_products()
    assert second["counts"]["sent"] == 0 and second["counts"]["skipped"] == len(skus)

    # One price changes: exactly that SKU is sent again, with the new price.
    plain = next(
        sku for sku in skus
        if sandbox.dataset.catalog_traits(sku) == dict.fromkeys(
            ("product_inactive", "sku_inactive", "no_price", "no_image"), False
        ) and sku % 7
    )  # fmt: skip
    admin(sandbox, "PUT", f"prices/{plain}", json={"basePrice": 999})
    batches = stats(sandbox)["requests"].get("synerise.catalog_items_batch", 0)
    third = sync_products()
    assert third["counts"]["sent"] == 1 and third["counts"]["skipped"] == len(skus) - 1
    assert items(sandbox)[str(plain)]["value"]["price"] == "999.00"
    assert stats(sandbox)["requests"]["synerise.catalog_items_batch"] == batches + 1

    # A SKU is deactivated: it arrives as deleted, once.
    admin(sandbox, "PATCH", f"skus/{plain}", json={"IsActive": False})
    fourth = sync_products()
    assert fourth["counts"]["sent"] == 1
    assert items(sandbox)[str(plain)]["value"]["deleted"] == "1"
    assert items(sandbox)[str(plain)]["value"]["title"]  # a deleted row keeps its columns

    # A product is deleted: its SKUs, gone from VTEX, arrive as deleted, once.
    product = next(
        p for p in sandbox.dataset.product_ids() if len(sandbox.dataset.product_sku_ids(p)) > 1
    )
    gone = sandbox.dataset.product_sku_ids(product)
    admin(sandbox, "DELETE", f"products/{product}")
    fifth = sync_products()
    assert fifth["counts"]["sent"] == len(gone)
    assert fifth["records_planned"] == len(skus)  # the listing lacks them; the ledger does not
    for sku in gone:
        assert items(sandbox)[str(sku)]["value"] == {"itemId": str(sku), "deleted": "1"}
    sixth = sync_products()
    assert sixth["counts"]["sent"] == 0 and sixth["records_planned"] == len(skus) - len(gone)
    assert_catalog_matches(sandbox, skus)


@pytest.mark.sync_env(STORE_BASE_URL=STORE, SYNC_CHUNK_SIZE="100")
def test_a_deleted_catalog_is_recreated_and_the_run_goes_on(sandbox, engine, worker):
    skus = all_skus(sandbox)
    assert sync_products()["status"] == "done"
    [bag] = [row["catalogId"] for row in listing(sandbox, "catalog-items", limit="1")]
    session = requests.Session()
    token = session.post(
        f"{sandbox.synerise_url}/uauth/v2/auth/login/profile",
        json={"apiKey": SANDBOX_API_KEY}, timeout=10,
    ).json()["token"]  # fmt: skip
    session.headers["Authorization"] = f"Bearer {token}"
    assert session.delete(f"{sandbox.synerise_url}/catalogs/bags/{bag}", timeout=10).ok
    changed = skus[10]
    admin(sandbox, "PUT", f"prices/{changed}", json={"basePrice": 1234})

    run = sync_products()
    assert run["status"] == "done", run["error"]
    assert run["counts"]["failed"] == run["counts"]["rejected"] == 0
    rows = {row["itemKey"]: row for row in listing(sandbox, "catalog-items")}
    assert {row["catalogId"] for row in rows.values()} - {bag} and stats(sandbox)[
        "catalog_bags"
    ] == 1
    assert rows[str(changed)]["value"]["price"] == "1234.00"
    # Chunks read after the recreation hash their items for the new catalog and send them all;
    # the next run sends those done before it (and the batch that met the 404, hashed for the
    # old catalog, once more): the new catalog ends up whole.
    refill = sync_products()
    assert 0 < refill["counts"]["sent"] < len(skus)
    assert run["counts"]["sent"] + refill["counts"]["sent"] >= len(skus)
    assert_catalog_matches(sandbox, skus)
    assert sync_products()["counts"]["sent"] == 0


@pytest.mark.sandbox(fixtures=str(FIXTURES))
@pytest.mark.sync_env(STORE_BASE_URL=STORE, SYNERISE_CATALOG_NAME="fixtures")
def test_fixture_products_and_a_sku_the_mapping_cannot_read(sandbox, engine, worker):
    run = sync_products()
    assert run["status"] == "done"
    assert run["counts"] == {
        "read": 4, "sent": 3, "skipped": 0, "rejected": 1, "failed": 0,
        "warned": 0, "guest_profiles": {"sent": 0, "skipped": 0, "rejected": 0},
    }  # fmt: skip
    [reject] = json_lines(invoke("sync", "rejects", str(run["id"]), "--json").stdout)
    assert (reject["key"], reject["reason"], reject["stream"]) == (
        "9003",
        "MAPPING_ERROR",
        "catalog_items",
    )
    stored = items(sandbox)
    assert stored["9001"]["value"]["price"] == "10.50" and stored["9001"]["value"]["deleted"] == "0"
    assert stored["9002"]["value"]["deleted"] == "1" and "price" not in stored["9002"]["value"]
    assert stored["9011"]["value"]["parentId"] == "902"
    bags = requests.get(f"{sandbox.synerise_url}/__sandbox__/stats", timeout=10).json()
    assert bags["catalog_bags"] == 1


@pytest.mark.sandbox(customers=5, orders=5, products=30, seed=13)
def test_beat_starts_one_catalog_pass_at_a_time(sandbox, engine, worker, store):
    from etl.sync.products import start_scheduled_products
    from workers.dispatch import enqueue

    first = start_scheduled_products(engine)
    assert first is not None and first.kind == "backfill" and first.scope == "products"
    assert start_scheduled_products(engine) is None  # one is under way: not doubled
    finished = wait_for_run(store, first.id)
    assert finished.status == "done" and finished.sent_count == finished.read_count > 30

    enqueue("etl.products", [], "incremental")  # what beat sends on SYNC_PRODUCTS_CRON
    second = wait_until(
        lambda: next((r for r in store.runs.find() if r.id != first.id), None),
        what="the scheduled products run",
    )
    done = wait_for_run(store, second.id)
    assert done.status == "done" and done.sent_count == 0
    assert done.skipped_count == done.records_total == finished.read_count


@pytest.mark.sandbox(customers=5, orders=5, products=10, seed=13)
@pytest.mark.sync_env(SYNERISE_API_KEY="not-the-workspace-key")
def test_a_catalog_that_cannot_be_prepared_is_one_line_and_no_run(sandbox, engine, store):
    result = invoke("sync", "start", "products", expect=1)
    assert result.stderr.startswith("error: the Synerise catalog could not be prepared: ")
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output
    assert store.runs.find() == []
    assert invoke("sync", "start", "products", "--dry-run", "--json").exit_code == 0


@pytest.mark.sandbox(customers=5, orders=5, products=30, seed=13)
@pytest.mark.sync_env(STORE_BASE_URL=STORE)
def test_selected_skus_only_and_an_unknown_one_is_not_found(sandbox, engine, worker):
    # Three SKUs of three products (deleting one's product leaves the others).
    one_each = {sandbox.vtex.catalog.sku(sku)["ProductId"]: sku for sku in all_skus(sandbox)}
    product = {str(sku): product for product, sku in one_each.items()}
    first, second, third = list(product)[:3]
    run = sync_products("--ids", f"{first},{second},999999")
    assert run["status"] == "done" and run["kind"] == "selection", run["error"]
    assert (run["counts"]["read"], run["counts"]["sent"], run["counts"]["rejected"]) == (3, 2, 1)
    assert set(items(sandbox)) == {first, second}  # nothing else read, nothing deleted
    [reject] = json_lines(invoke("sync", "rejects", str(run["id"]), "--json").stdout)
    assert (reject["key"], reject["reason"]) == ("999999", "NOT_FOUND")
    assert_catalog_matches(sandbox, [int(first), int(second)])

    again = sync_products("--ids", f"{first},{second}")
    assert (again["counts"]["sent"], again["counts"]["skipped"]) == (0, 2)

    # A selected SKU the catalog has and VTEX no longer does: a tombstone; one it never had
    # (third, deleted before it was ever sent): not found.
    admin(sandbox, "DELETE", f"products/{product[first]}")
    admin(sandbox, "DELETE", f"products/{product[third]}")
    gone = sync_products("--ids", f"{first},{third}")
    assert (gone["counts"]["sent"], gone["counts"]["rejected"]) == (1, 1)
    assert items(sandbox)[first]["value"] == {"itemId": first, "deleted": "1"}
    assert third not in items(sandbox)
