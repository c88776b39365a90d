"""The Catalog and Pricing routes of the VTEX emulator, and the catalog changes made at run time.

`CatalogRoutes` owns its state (price changes, SKUs switched on or off, deleted products) over
the `Source`'s generated or fixture catalog, and adds its routes to an aiohttp router:

============================ ======================================================== =====
name                         path                                                     §
============================ ======================================================== =====
catalog.product_and_sku_ids  GET /api/catalog_system/pvt/products/GetProductAndSkuIds 6
catalog.sku                  GET /api/catalog_system/pvt/sku/stockkeepingunitbyid/{id} 6
catalog.sales_channel        GET /api/catalog_system/pub/saleschannel/{id}            6
pricing.price                GET /pricing/prices/{itemId}                             6
pricing.price_api            GET /api/pricing/prices/{itemId} (the same, on this host)
sandbox.catalog_price        PUT|DELETE /__sandbox__/catalog/prices/{itemId}
sandbox.catalog_sku          PATCH /__sandbox__/catalog/skus/{skuId} ``{"IsActive": bool}``
sandbox.catalog_product      DELETE /__sandbox__/catalog/products/{productId}
============================ ======================================================== =====

Sandbox choices for UNCONFIRMED behaviour: ``_from``/``_to`` are 1-based positions in the
(category's) product list, default 1-10; more than 250 answers 400. Inactive products and SKUs
are listed (the listing says nothing about activity). Unknown SKUs, prices and sales channels
answer 404 ``{"Message": ...}``; a deleted product's SKUs and prices answer 404 too. Trade
policies 1 and 2 exist, both in BRL.

Admin (no auth, no faults): ``PUT /__sandbox__/catalog/prices/{itemId}`` merges ``basePrice``,
``listPrice``, ``costPrice``, ``markup`` and ``fixedPrices`` into the SKU's price (creating one
for a SKU that has none); ``DELETE`` removes the price. Every change is counted in
``stats()["catalog_changes"]`` and forgotten by `reset`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from aiohttp import web

from etl.sandbox.data import Doc, Source
from etl.sandbox.vtex.protocol import CATALOG_MAX_RANGE, int_param, message_error

__all__ = ["SALES_CHANNELS", "CatalogRoutes"]

_CURRENCY_FORMAT = {
    "CurrencyDecimalDigits": 2,
    "CurrencyDecimalSeparator": ",",
    "CurrencyGroupSeparator": ".",
    "CurrencyGroupSize": 3,
    "StartsWithCurrencySymbol": True,
}

SALES_CHANNELS: dict[int, Doc] = {
    channel: {
        "Id": channel, "Name": name, "IsActive": True, "ProductClusterId": None,
        "CountryCode": "BRA", "CultureInfo": "pt-BR",
        "TimeZone": "E. South America Standard Time", "CurrencyCode": "BRL",
        "CurrencySymbol": "R$", "CurrencyLocale": 1046,
        "CurrencyFormatInfo": dict(_CURRENCY_FORMAT), "Origin": None, "Position": None,
        "ConditionRule": None, "CurrencyDecimalDigits": 2,
    }
    for channel, name in ((1, "Main store"), (2, "App"))
}  # fmt: skip
"""The trade policies (sales channels) the sandbox account has."""

_PRICE_NUMBERS = ("basePrice", "listPrice", "costPrice", "markup")


class CatalogRoutes:
    """The catalog a `Source` holds plus the changes made at run time; see the module docstring.

    Handlers run in the server's event loop thread and are the only writers of the state.
    """

    def __init__(self, source: Source) -> None:
        self.source = source
        self.reset()

    def reset(self) -> None:
        """Forget every run-time change."""
        self._prices: dict[int, Doc | None] = {}
        self._active: dict[int, bool] = {}
        self._deleted_products: set[int] = set()
        self._deleted_skus: set[int] = set()
        self.changes = {"prices": 0, "skus": 0, "deleted_products": 0}

    def add_routes(self, router: web.UrlDispatcher) -> None:
        """Serve the Catalog and Pricing routes and their admin routes."""
        router.add_get(
            "/api/catalog_system/pvt/products/GetProductAndSkuIds",
            self.product_and_sku_ids,
            name="catalog.product_and_sku_ids",
        )
        router.add_get(
            "/api/catalog_system/pvt/sku/stockkeepingunitbyid/{skuId}",
            self.sku_route,
            name="catalog.sku",
        )
        router.add_get(
            "/api/catalog_system/pub/saleschannel/{salesChannelId}",
            self.sales_channel,
            name="catalog.sales_channel",
        )
        router.add_get("/pricing/prices/{itemId}", self.price_route, name="pricing.price")
        router.add_get("/api/pricing/prices/{itemId}", self.price_route, name="pricing.price_api")
        price = router.add_resource(
            "/__sandbox__/catalog/prices/{itemId}", name="sandbox.catalog_price"
        )
        price.add_route("PUT", self.admin_put_price)
        price.add_route("DELETE", self.admin_delete_price)
        router.add_patch(
            "/__sandbox__/catalog/skus/{skuId}", self.admin_patch_sku, name="sandbox.catalog_sku"
        )
        router.add_delete(
            "/__sandbox__/catalog/products/{productId}",
            self.admin_delete_product,
            name="sandbox.catalog_product",
        )

    # -- the catalog as it is now ---------------------------------------------------------------

    def product_ids(self, category_id: int | None = None) -> list[int]:
        """Listed products, ascending (deleted ones left out)."""
        ids = self.source.product_ids(category_id)
        if not self._deleted_products:
            return ids
        return [p for p in ids if p not in self._deleted_products]

    def product_count(self) -> int:
        return len(self.product_ids())

    def sku(self, sku_id: int) -> Doc | None:
        """The ``stockkeepingunitbyid`` document with run-time changes; None when gone."""
        if sku_id in self._deleted_skus:
            return None
        doc = self.source.sku(sku_id)
        if doc is not None and sku_id in self._active:
            doc["IsActive"] = self._active[sku_id]
        return doc

    def price(self, sku_id: int) -> Doc | None:
        """The Pricing v2 document with run-time changes; None when there is none."""
        if sku_id in self._deleted_skus:
            return None
        if sku_id in self._prices:
            changed = self._prices[sku_id]
            return copy.deepcopy(changed) if changed is not None else None
        return self.source.price(sku_id)

    # -- VTEX routes ------------------------------------------------------------------------------

    async def product_and_sku_ids(self, request: web.Request) -> web.Response:
        try:
            category = int_param(request.query, "categoryId", 0) or None
            first = int_param(request.query, "_from", 1)
            last = int_param(request.query, "_to", 10)
        except ValueError as exc:
            return message_error(400, str(exc))
        if first < 1 or last < first:
            return message_error(400, "_from must be >= 1 and _to >= _from")
        if last - first + 1 > CATALOG_MAX_RANGE:
            return message_error(400, f"The range cannot exceed {CATALOG_MAX_RANGE} products")
        ids = self.product_ids(category)
        data = {str(p): self.source.product_sku_ids(p) for p in ids[first - 1 : last]}
        return web.json_response(
            {"data": data, "range": {"total": len(ids), "from": first, "to": last}}
        )

    async def sku_route(self, request: web.Request) -> web.Response:
        return _by_id(request, "skuId", self.sku, "SKU")

    async def price_route(self, request: web.Request) -> web.Response:
        return _by_id(request, "itemId", self.price, "Price for item")

    async def sales_channel(self, request: web.Request) -> web.Response:
        return _by_id(
            request, "salesChannelId", lambda i: copy.deepcopy(SALES_CHANNELS.get(i)),
            "Sales channel",
        )  # fmt: skip

    # -- admin ----------------------------------------------------------------------------------

    async def admin_put_price(self, request: web.Request) -> web.Response:
        parsed = await _admin_change(request, "itemId")
        if isinstance(parsed, web.Response):
            return parsed
        sku_id, body = parsed
        if self.sku(sku_id) is None:
            return _admin_error(404, f"SKU {sku_id} not found")
        current = self.price(sku_id)
        problem = _price_problem(body, creating=current is None)
        if problem:
            return _admin_error(400, problem)
        if current is None:
            base = body["basePrice"]
            current = {"itemId": str(sku_id), "listPrice": base, "costPrice": 0, "markup": 0,
                       "basePrice": base, "fixedPrices": []}  # fmt: skip
        current.update(body)
        self._prices[sku_id] = current
        self.changes["prices"] += 1
        return web.json_response(current)

    async def admin_delete_price(self, request: web.Request) -> web.Response:
        sku_id = _admin_id(request, "itemId")
        if isinstance(sku_id, web.Response):
            return sku_id
        if self.price(sku_id) is None:
            return _admin_error(404, f"SKU {sku_id} has no price")
        self._prices[sku_id] = None
        self.changes["prices"] += 1
        return web.Response(status=204)

    async def admin_patch_sku(self, request: web.Request) -> web.Response:
        parsed = await _admin_change(request, "skuId")
        if isinstance(parsed, web.Response):
            return parsed
        sku_id, body = parsed
        if set(body) != {"IsActive"} or not isinstance(body["IsActive"], bool):
            return _admin_error(400, 'expected {"IsActive": true|false}')
        if self.sku(sku_id) is None:
            return _admin_error(404, f"SKU {sku_id} not found")
        self._active[sku_id] = body["IsActive"]
        self.changes["skus"] += 1
        return web.json_response(self.sku(sku_id))

    async def admin_delete_product(self, request: web.Request) -> web.Response:
        product_id = _admin_id(request, "productId")
        if isinstance(product_id, web.Response):
            return product_id
        skus = self.source.product_sku_ids(product_id)
        if product_id in self._deleted_products or not skus:
            return _admin_error(404, f"product {product_id} not found")
        self._deleted_products.add(product_id)
        self._deleted_skus.update(skus)
        self.changes["deleted_products"] += 1
        return web.Response(status=204)


def _by_id(
    request: web.Request, param: str, lookup: Callable[[int], Doc | None], what: str
) -> web.Response:
    try:
        key = int(request.match_info[param])
    except ValueError:
        return message_error(400, f"{param} must be a whole number")
    doc = lookup(key)
    if doc is None:
        return message_error(404, f"{what} {key} not found")
    return web.json_response(doc)


def _admin_error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _admin_id(request: web.Request, param: str) -> int | web.Response:
    try:
        return int(request.match_info[param])
    except ValueError:
        return _admin_error(400, f"{param} must be a whole number")


async def _admin_change(
    request: web.Request, param: str
) -> tuple[int, dict[str, Any]] | web.Response:
    """The id in the path and the JSON object in the body, else the 400 answer."""
    key = _admin_id(request, param)
    if isinstance(key, web.Response):
        return key
    try:
        body = await request.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return _admin_error(400, "the body must be a JSON object")
    return key, body


def _price_problem(body: dict[str, Any], creating: bool) -> str | None:
    """Why a price change cannot be applied (None: it can). Values keep the Pricing spec's
    types: whole numbers for the prices, ``{tradePolicyId, value, listPrice, minQuantity}``
    for each fixed price."""
    unknown = sorted(set(body) - {*_PRICE_NUMBERS, "fixedPrices"})
    if unknown:
        return f"unknown price fields: {', '.join(unknown)}"
    if creating and "basePrice" not in body:
        return "the SKU has no price yet: give basePrice"
    for name in _PRICE_NUMBERS:
        if name in body and not _whole(body[name]):
            return f"{name} must be a whole number >= 0 (the Pricing spec types it int32)"
    fixed = body.get("fixedPrices", [])
    if not isinstance(fixed, list) or not all(_fixed_price(entry) for entry in fixed):
        return (
            "fixedPrices must be a list of {tradePolicyId: string, value: number,"
            " listPrice: number|null, minQuantity: whole number}"
        )
    return None


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _fixed_price(entry: Any) -> bool:
    return (
        isinstance(entry, dict)
        and set(entry) <= {"tradePolicyId", "value", "listPrice", "minQuantity", "dateRange"}
        and isinstance(entry.get("tradePolicyId"), str)
        and _number(entry.get("value"))
        and "listPrice" in entry
        and (entry["listPrice"] is None or _number(entry["listPrice"]))
        and _whole(entry.get("minQuantity"))
        and (
            "dateRange" not in entry
            or (isinstance(entry["dateRange"], dict)
                and all(isinstance(entry["dateRange"].get(k), str) for k in ("from", "to")))
        )
    )  # fmt: skip
