"""What VTEX's APIs promise on the wire: limits, credentials of the sandbox, error bodies,
and the shapes of list rows and stats."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from etl.sandbox.data import (
    Doc,
)

DEFAULT_APP_KEY = "vtexappkey-sandbox-SANDBOX"

DEFAULT_APP_TOKEN = "sandbox-app-token"

OMS_MAX_PAGE = 30

OMS_MAX_PER_PAGE = 100

OMS_DEFAULT_PER_PAGE = 15

MD_MAX_RANGE = 100

MD_SEARCH_CAP = 10_000

MD_DEFAULT_RANGE = (0, 15)

MD_MAX_SCROLL_SIZE = 1000

MD_DEFAULT_SCROLL_SIZE = 100

CATALOG_MAX_RANGE = 250

SYSTEM_FIELDS = ("id", "accountId", "accountName", "dataEntityId")

UNEMULATED_ORDER_FILTERS = frozenset(
    {
        "q", "f_hasInputInvoice", "f_shippingEstimate", "f_UtmSource", "f_sellerNames",
        "f_callCenterOperatorName", "f_salesChannel", "salesChannelId", "f_affiliateId",
        "incompleteOrders", "f_paymentNames", "f_RnB", "searchField", "f_isInstore",
    }
)  # fmt: skip

ORDER_DATE_FILTERS = {
    "f_creationDate": "creationDate",
    "f_authorizedDate": "authorizedDate",
    "f_invoicedDate": "invoicedDate",
}

RANGE_FILTER = re.compile(r"\s*(\w+)\s*:\s*\[\s*(\S+)\s+TO\s+(\S+)\s*\]\s*", re.IGNORECASE)

REST_RANGE = re.compile(r"\s*resources\s*=\s*(\d+)\s*-\s*(\d+)\s*", re.IGNORECASE)

DATE_ONLY = re.compile(r"\d{4}-\d{2}-\d{2}")

DAY_MS = 86_400_000


def oms_error(status: int, message: str, code: str = "1") -> web.Response:
    """An OMS-shaped error (Orders API spec examples)."""
    body = {"error": {"code": code, "message": message, "exception": None}}
    return web.json_response(body, status=status)


def message_error(status: int, message: str) -> web.Response:
    """A Master Data / Catalog shaped error: ``{"Message": ...}``."""
    return web.json_response({"Message": message}, status=status)


def _is_oms(request: web.Request) -> bool:
    name = request.match_info.route.name or ""
    return name.startswith("oms.") or request.path.startswith(("/api/oms/", "/api/orders/"))


def vtex_error_body(request: web.Request, status: int, message: str) -> dict[str, Any]:
    """`FaultInjector` ``error_body`` for VTEX: the OMS or Master Data shape by route."""
    if _is_oms(request):
        return {"error": {"code": "1", "message": message, "exception": None}}
    return {"Message": message}


def error_response(request: web.Request, status: int, message: str) -> web.Response:
    if _is_oms(request):
        return oms_error(status, message)
    return message_error(status, message)


def project_fields(doc: Doc, fields: list[str] | None) -> Doc:
    if fields is None:
        return {name: doc.get(name) for name in SYSTEM_FIELDS}
    if fields == ["_all"]:
        return doc
    return {name: doc.get(name) for name in fields}


def parse_fields(raw: str | None) -> list[str] | None:
    if raw is None or not raw.strip():
        return None
    names = [name.strip() for name in raw.split(",") if name.strip()]
    return ["_all"] if "_all" in names else names


def int_param(query: Mapping[str, str], name: str, default: int) -> int:
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{name} must be a whole number, got {raw!r}") from None


def _compact(value: float) -> float | int:
    """A whole float as an int: the spec types some ``Mean``/``StdDev`` facets as integers."""
    return int(value) if value.is_integer() else value


def page_stats(rows: list[Doc], key: str) -> Doc:
    def summary(values: list[int]) -> Doc:
        count = len(values)
        mean = sum(values) / count if count else 0.0
        variance = sum((v - mean) ** 2 for v in values) / count if count else 0.0
        return {
            "Count": count,
            "Max": max(values, default=0),
            "Mean": _compact(mean),
            "Min": min(values, default=0),
            "Missing": 0,
            "StdDev": _compact(math.sqrt(variance)),
            "Sum": sum(values),
            "SumOfSquares": sum(v * v for v in values),
            "Facets": None,
        }

    origins: dict[str, list[int]] = {"Fulfillment": [], "Marketplace": []}
    currencies: dict[str, list[int]] = {"BRL": []}
    for row in rows:
        origins.setdefault(row["origin"], []).append(row[key])
        currencies.setdefault(row["currencyCode"], []).append(row[key])
    total = summary([row[key] for row in rows])
    total["Facets"] = {
        "origin": {name: summary(values) for name, values in origins.items()},
        "currencyCode": {name: summary(values) for name, values in currencies.items()},
    }
    return total


def list_row(order: Doc) -> Doc:
    """A List orders row built from the Get order document (items are never listed)."""
    profile = order.get("clientProfileData") or {}
    names = [
        payment.get("paymentSystemName") or ""
        for transaction in (order.get("paymentData") or {}).get("transactions") or ()
        for payment in transaction.get("payments") or ()
    ]
    return {
        "orderId": order["orderId"],
        "creationDate": order["creationDate"],
        "clientName": f"{profile.get('firstName') or ''} {profile.get('lastName') or ''}".strip(),
        "items": None,
        "totalValue": order["value"],
        "paymentNames": ", ".join(n for n in names if n),
        "status": order["status"],
        "statusDescription": order.get("statusDescription") or "",
        "marketPlaceOrderId": None,
        "sequence": order["sequence"],
        "salesChannel": order.get("salesChannel") or "1",
        "affiliateId": order.get("affiliateId") or "",
        "origin": order.get("origin") or "Marketplace",
        "workflowInErrorState": False,
        "workflowInRetry": False,
        "lastMessageUnread": None,
        "ShippingEstimatedDate": None,
        "ShippingEstimatedDateMax": None,
        "ShippingEstimatedDateMin": None,
        "orderIsComplete": True,
        "listId": None,
        "listType": None,
        "authorizedDate": order.get("authorizedDate"),
        "callCenterOperatorName": None,
        "totalItems": sum(item.get("quantity") or 0 for item in order.get("items") or ()),
        "currencyCode": (order.get("storePreferencesData") or {}).get("currencyCode") or "",
    }
