"""Contract tests: the VTEX emulator's real HTTP answers against VTEX's own OpenAPI specs.

The specs are read from ``../shared/specs/vtex`` (next to the repository); schemas are
resolved in place with ``referencing`` (no copied schemas) and checked with
``openapi_schema_validator.OAS30Validator`` (a ``jsonschema`` validator that knows OpenAPI 3.0's
``nullable``). Without the specs every test here fails in CI and is skipped locally, with a
message saying what is missing (``tests.helpers.specs``).

Where a spec's schema and its own example disagree the sandbox follows the schema:

* Get order: the schema names the line price breakdown ``priceDefinitions`` (the example:
  ``priceDefinition``); ``unitMultiplier`` and ``additionalInfo.dimension`` sizes are
  integers (the example: ``1.0``, ``10.0``).
* List orders: ``stats`` facets *require* ``origin.Fulfillment``, ``origin.Marketplace`` and
  ``currencyCode.BRL`` (the schema was generated from one example), so they are always present;
  ``totalItems`` facets type ``Fulfillment.Mean``/``StdDev`` as integers, so whole values are
  sent without a fraction.
* Master Data search: the header text shows ``resources={x}-{y}/{total}``; the sandbox sends
  ``resources {x}-{y}/{total}`` as observed in the field (the header's schema is a free string).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import cache
from typing import Any

import pytest
import requests
from openapi_schema_validator import OAS30Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

from etl.sandbox.data import CUSTOMER_DIRTY_KINDS, ORDER_DIRTY_KINDS, Dataset
from etl.sandbox.server import SandboxServer
from etl.sandbox.vtex import VtexSandbox
from etl.vtex.client import VtexClient
from tests.helpers.specs import require_specs, specs_folder

SPECS = specs_folder("vtex")
FILES = ("orders-api.json", "masterdata-v10.2.json", "catalog-api.json", "pricing-api.json")


@pytest.fixture(scope="module", autouse=True)
def _specs_present() -> None:
    """First of the module's fixtures: no sandbox is started for tests that cannot run."""
    require_specs("vtex", FILES)


@cache
def spec(name: str) -> dict[str, Any]:
    return json.loads((SPECS / name).read_text(encoding="utf-8"))


@cache
def registry() -> Registry:
    resources = [
        (f"urn:vtex:{name}", Resource.from_contents(spec(name), default_specification=DRAFT4))
        for name in FILES
    ]
    return Registry().with_resources(resources)


def _escape(part: str) -> str:
    return part.replace("~", "~0").replace("/", "~1")


def response_spec(name: str, path: str, method: str = "get", status: str = "200") -> dict[str, Any]:
    return spec(name)["paths"][path][method]["responses"][status]


def validator(name: str, path: str, method: str = "get", status: str = "200") -> Any:
    """A validator for the documented JSON body of ``method path`` answering ``status``."""
    content = response_spec(name, path, method, status)["content"]
    media = next(m for m in content if m.startswith("application/json"))
    pointer = "/".join(
        _escape(p) for p in ("paths", path, method, "responses", status, "content", media, "schema")
    )
    return OAS30Validator({"$ref": f"urn:vtex:{name}#/{pointer}"}, registry=registry())


def request_validator(name: str, path: str, method: str = "post") -> Any:
    """A validator for the documented JSON request body of ``method path``."""
    pointer = "/".join(
        _escape(p)
        for p in ("paths", path, method, "requestBody", "content", "application/json", "schema")
    )
    return OAS30Validator({"$ref": f"urn:vtex:{name}#/{pointer}"}, registry=registry())


def assert_valid(check: Any, body: Any, what: str) -> None:
    errors = sorted(check.iter_errors(body), key=lambda e: list(e.absolute_path))
    details = "\n".join(f"  {list(e.absolute_path)}: {e.message[:200]}" for e in errors[:10])
    assert not errors, f"{what} breaks the spec:\n{details}"


def documented_parameters(name: str, path: str, method: str = "get") -> set[str]:
    document = spec(name)
    names = set()
    for parameter in document["paths"][path][method].get("parameters", ()):
        if "$ref" in parameter:
            parameter = document["components"]["parameters"][parameter["$ref"].split("/")[-1]]
        names.add(parameter["name"])
    return names


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    return Dataset(customers=1500, orders=1500, seed=9, dirty_share=0.5, products=300)


@pytest.fixture(scope="module")
def api(dataset: Dataset) -> Iterator[requests.Session]:
    sandbox = VtexSandbox(dataset)
    with SandboxServer(sandbox.make_app()) as server:
        session = requests.Session()
        session.headers.update(
            {"X-VTEX-API-AppKey": sandbox.app_key, "X-VTEX-API-AppToken": sandbox.app_token}
        )
        session.base_url = server.url  # type: ignore[attr-defined]
        # an order changed at run time (canceled, a line removed) is part of the contract too
        order = dataset.order(0)
        requests.post(
            f"{server.url}/__sandbox__/orders/{order['orderId']}/status",
            json={"status": "canceled", "removeItems": [order["items"][0]["id"]]},
            timeout=5,
        ).raise_for_status()
        yield session


def get(api: requests.Session, path: str, **kwargs: Any) -> requests.Response:
    response = api.get(api.base_url + path, timeout=10, **kwargs)  # type: ignore[attr-defined]
    assert response.status_code == 200, response.text
    return response


# -- OMS ----------------------------------------------------------------------------------------


def test_list_orders_matches_the_spec(api: requests.Session) -> None:
    check = validator("orders-api.json", "/api/oms/pvt/orders")
    params_used = {"f_creationDate", "f_status", "orderBy", "page", "per_page", "f_invoicedDate"}
    assert params_used <= documented_parameters("orders-api.json", "/api/oms/pvt/orders")
    media = next(iter(response_spec("orders-api.json", "/api/oms/pvt/orders")["content"]))
    for params in (
        {"per_page": 100, "page": 1},
        {"per_page": 100, "page": 15, "orderBy": "creationDate,asc"},
        {"per_page": 5, "f_status": "canceled,invoiced"},
        {"f_invoicedDate": "invoicedDate:[2025-01-01T00:00:00.000Z TO 2027-01-01T00:00:00.000Z]"},
        {"f_creationDate": "creationDate:[2000-01-01T00:00:00.000Z TO 2000-01-02T00:00:00.000Z]"},
    ):
        response = get(api, "/api/oms/pvt/orders", params=params)
        assert response.headers["Content-Type"].replace(" ", "") == media.replace(" ", "")
        assert_valid(check, response.json(), f"list orders {params}")


def test_get_order_matches_the_spec(api: requests.Session, dataset: Dataset) -> None:
    check = validator("orders-api.json", "/api/oms/pvt/orders/{orderId}")
    wanted = set(ORDER_DIRTY_KINDS) | {None}
    samples: dict[str | None, int] = {}
    for i in range(dataset.order_count):
        kind = dataset.dirty_kind("order", i)
        samples.setdefault(kind, i)
        if set(samples) == wanted:
            break
    assert set(samples) == wanted
    for kind, i in sorted(samples.items(), key=lambda item: item[1]):
        order_id = dataset.order(i)["orderId"]
        body = get(api, f"/api/oms/pvt/orders/{order_id}").json()
        assert_valid(check, body, f"order {order_id} ({kind})")
    changed = get(api, f"/api/oms/pvt/orders/{dataset.order(0)['orderId']}").json()
    assert changed["status"] == "canceled"
    assert_valid(check, changed, "an order canceled at run time")


# -- Master Data ----------------------------------------------------------------------------------


def test_search_matches_the_spec(api: requests.Session, dataset: Dataset) -> None:
    path = "/api/dataentities/{acronym}/search"
    check = validator("masterdata-v10.2.json", path)
    assert "REST-Content-Range" in response_spec("masterdata-v10.2.json", path)["headers"]
    assert {"REST-Range", "_fields", "_where", "_sort"} <= documented_parameters(
        "masterdata-v10.2.json", path
    )
    for fields in ("_all", None, "id,email,phone,updatedIn"):
        params = {"_where": "createdIn>2025-06-01", "_sort": "updatedIn DESC"}
        if fields:
            params["_fields"] = fields
        response = get(
            api, "/api/dataentities/CL/search", params=params,
            headers={"REST-Range": "resources=0-100"},
        )  # fmt: skip
        assert response.headers["REST-Content-Range"].startswith("resources 0-100/")
        assert_valid(check, response.json(), f"search with _fields={fields}")


def test_scroll_matches_the_spec(api: requests.Session) -> None:
    path = "/api/dataentities/{acronym}/scroll"
    check = validator("masterdata-v10.2.json", path)
    headers = response_spec("masterdata-v10.2.json", path)["headers"]
    response = get(api, "/api/dataentities/CL/scroll", params={"_fields": "_all", "_size": 1000})
    assert set(headers) <= set(response.headers)
    assert_valid(check, response.json(), "scroll page")
    error_check = validator("masterdata-v10.2.json", path, status="400")
    bad = api.get(
        api.base_url + "/api/dataentities/CL/scroll",  # type: ignore[attr-defined]
        params={"_token": "unknown"},
        timeout=5,
    )
    assert bad.status_code == 400
    assert_valid(error_check, bad.json(), "scroll 400")


def test_document_matches_the_spec(api: requests.Session, dataset: Dataset) -> None:
    check = validator("masterdata-v10.2.json", "/api/dataentities/{acronym}/documents/{id}")
    kinds = {dataset.dirty_kind("customer", i): i for i in range(200)}
    assert set(kinds) == {None, *CUSTOMER_DIRTY_KINDS}
    for kind, i in kinds.items():
        doc_id = dataset.customer(i)["id"]
        for fields in ("_all", None):
            params = {"_fields": fields} if fields else {}
            body = get(api, f"/api/dataentities/CL/documents/{doc_id}", params=params).json()
            assert_valid(check, body, f"CL document of kind {kind} (_fields={fields})")


# -- catalog and pricing ---------------------------------------------------------------------------


def test_product_and_sku_ids_match_the_spec(api: requests.Session) -> None:
    path = "/api/catalog_system/pvt/products/GetProductAndSkuIds"
    check = validator("catalog-api.json", path)
    assert {"categoryId", "_from", "_to"} <= documented_parameters("catalog-api.json", path)
    for params in ({"_from": 1, "_to": 250}, {"_from": 5, "_to": 9, "categoryId": 1}):
        assert_valid(check, get(api, path, params=params).json(), f"product ids {params}")


def _skus_of_every_trait(dataset: Dataset) -> list[int]:
    """One SKU per catalog trait (inactive product or SKU, no price, no image) and clean ones."""
    picked: dict[tuple[bool, ...], int] = {}
    for product in dataset.product_ids():
        for sku in dataset.product_sku_ids(product):
            picked.setdefault(tuple(dataset.catalog_traits(sku).values()), sku)
    assert len(picked) >= 5
    return sorted(picked.values())


def test_sku_matches_the_spec(api: requests.Session, dataset: Dataset) -> None:
    check = validator(
        "catalog-api.json", "/api/catalog_system/pvt/sku/stockkeepingunitbyid/{skuId}"
    )
    skus = _skus_of_every_trait(dataset)
    requests.patch(
        f"{api.base_url}/__sandbox__/catalog/skus/{skus[0]}",  # type: ignore[attr-defined]
        json={"IsActive": False},
        timeout=5,
    ).raise_for_status()
    for sku in skus:
        body = get(api, f"/api/catalog_system/pvt/sku/stockkeepingunitbyid/{sku}").json()
        assert_valid(check, body, f"SKU {sku} {dataset.catalog_traits(sku)}")


def test_price_matches_the_spec(api: requests.Session, dataset: Dataset) -> None:
    check = validator("pricing-api.json", "/pricing/prices/{itemId}")
    skus = [s for s in _skus_of_every_trait(dataset) if dataset.price(s) is not None]
    unpriced = next(s for s in _skus_of_every_trait(dataset) if dataset.price(s) is None)
    admin = f"{api.base_url}/__sandbox__/catalog/prices"  # type: ignore[attr-defined]
    for sku, change in (
        (skus[0], {"basePrice": 321, "fixedPrices": [
            {"tradePolicyId": "1", "value": 300.5, "listPrice": None, "minQuantity": 1,
             "dateRange": {"from": "2025-01-01T00:00:00Z", "to": "2030-01-01T00:00:00Z"}}]}),
        (unpriced, {"basePrice": 10}),
    ):  # fmt: skip
        requests.put(f"{admin}/{sku}", json=change, timeout=5).raise_for_status()
    for sku in [*skus, unpriced]:
        for prefix in ("", "/api"):
            body = get(api, f"{prefix}/pricing/prices/{sku}").json()
            assert_valid(check, body, f"price of {sku}")


def test_sales_channel_matches_the_spec(api: requests.Session) -> None:
    check = validator("catalog-api.json", "/api/catalog_system/pub/saleschannel/{salesChannelId}")
    for channel in (1, 2):
        body = get(api, f"/api/catalog_system/pub/saleschannel/{channel}").json()
        assert_valid(check, body, f"sales channel {channel}")


# -- Orders Feed v3 -------------------------------------------------------------------------------


def test_the_feed_and_the_client_s_configuration_match_the_spec(
    api: requests.Session, dataset: Dataset
) -> None:
    base = api.base_url  # type: ignore[attr-defined]
    sent: list[Any] = []

    class Recorder(requests.Session):
        def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
            if url.endswith("/api/orders/feed/config") and method == "POST":
                sent.append(kwargs.get("json"))
            return super().request(method, url, *args, **kwargs)

    client = VtexClient(base, api.headers["X-VTEX-API-AppKey"],
                        api.headers["X-VTEX-API-AppToken"], session=Recorder())  # fmt: skip
    client.set_feed_config(["invoiced", "canceled"])
    assert_valid(request_validator("orders-api.json", "/api/orders/feed/config"), sent[0],
                 "the client's feed configuration")  # fmt: skip
    order = dataset.order(7)
    requests.post(f"{base}/__sandbox__/orders/{order['orderId']}/status",
                  json={"status": "invoiced"}, timeout=5).raise_for_status()  # fmt: skip
    config = get(api, "/api/orders/feed/config").json()
    assert_valid(validator("orders-api.json", "/api/orders/feed/config"), config, "feed config")
    events = get(api, "/api/orders/feed", params={"maxlot": 10}).json()
    assert events, "the status change should be in the feed"
    assert_valid(validator("orders-api.json", "/api/orders/feed"), events, "feed events")
    assert "maxlot" in documented_parameters("orders-api.json", "/api/orders/feed")
    client.commit_feed([event["handle"] for event in events])
    assert client.read_feed() == []
    assert client.delete_feed_config() is True


def test_the_validator_does_reject_a_broken_body(api: requests.Session) -> None:
    check = validator("orders-api.json", "/api/oms/pvt/orders")
    body = get(api, "/api/oms/pvt/orders", params={"per_page": 1}).json()
    body["list"][0]["totalValue"] = "12.50"
    del body["paging"]["total"]
    assert len(list(check.iter_errors(body))) == 2
