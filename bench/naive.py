"""The naive baseline: the sequential script a user would write by hand, for bench/orders.py.

List orders page by page, get each order, post each transaction on its own to
``/v4/transactions`` with a token login; one ``requests.Session``, no threads, no batching, no
state, no rate budget (at one request at a time it never nears a limit). It does less than the
pipeline (no buyer lookup in Master Data, no validation, no ledger), which only flatters it.

    python bench/naive.py --vtex-url URL --app-key KEY --app-token TOKEN \\
        --synerise-url URL --api-key KEY --from 2025-06-01 --to 2026-06-01 [--limit N] [--json]

Prints ``{"orders": n, "posted": n, "failed": n, "seconds": s, "orders_per_s": r}`` with --json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import requests


def login(session: requests.Session, synerise: str, api_key: str) -> str:
    response = session.post(f"{synerise}/uauth/v2/auth/login/profile", json={"apiKey": api_key})
    response.raise_for_status()
    return str(response.json()["token"])


def to_transaction(order: dict[str, Any]) -> dict[str, Any]:
    """A hand-written mapping: the fields the Synerise docs' example shows."""
    profile = order.get("clientProfileData") or {}
    currency = (order.get("storePreferencesData") or {}).get("currencyCode") or "BRL"
    client = {"email": profile.get("email")}
    if profile.get("userProfileId"):
        client["customId"] = profile["userProfileId"]
    total = order.get("value", 0) / 100
    return {
        "client": client,
        "orderId": order["orderId"],
        "recordedAt": order.get("creationDate"),
        "revenue": {"amount": total, "currency": currency},
        "value": {"amount": total, "currency": currency},
        "source": "WEB_DESKTOP",
        "products": [
            {
                "sku": str(item.get("refId") or item.get("id")),
                "name": item.get("name") or "?",
                "quantity": item.get("quantity", 1),
                "finalUnitPrice": {
                    "amount": (item.get("sellingPrice") or item.get("price") or 0) / 100,
                    "currency": currency,
                },
            }
            for item in order.get("items") or []
        ],
    }


def run(
    vtex: str,
    app_key: str,
    app_token: str,
    synerise: str,
    api_key: str,
    date_from: str,
    date_to: str,
    limit: int | None = None,
) -> dict[str, Any]:
    """Sync orders one by one; stop after ``limit`` orders. Returns counts and timing."""
    session = requests.Session()
    vtex_headers = {"X-VTEX-API-AppKey": app_key, "X-VTEX-API-AppToken": app_token}
    started = time.perf_counter()
    token = login(session, synerise, api_key)
    orders = posted = failed = 0
    page = 1
    while True:
        listing = session.get(
            f"{vtex}/api/oms/pvt/orders",
            params={
                "f_creationDate": f"creationDate:[{date_from} TO {date_to}]",
                "page": page,
                "per_page": 100,
                "orderBy": "creationDate,asc",
            },
            headers=vtex_headers,
        )
        listing.raise_for_status()
        body = listing.json()
        for row in body["list"]:
            order = session.get(
                f"{vtex}/api/oms/pvt/orders/{row['orderId']}", headers=vtex_headers
            ).json()
            transaction = to_transaction(order)
            for _ in range(2):  # one new login when the token expired
                answer = session.post(
                    f"{synerise}/v4/transactions",
                    json=transaction,
                    headers={"Authorization": f"Bearer {token}"},
                )
                if answer.status_code != 401:
                    break
                token = login(session, synerise, api_key)
            orders += 1
            if answer.status_code < 300:
                posted += 1
            else:
                failed += 1
            if limit is not None and orders >= limit:
                break
        if (limit is not None and orders >= limit) or page >= min(body["paging"]["pages"], 30):
            break
        page += 1
    seconds = time.perf_counter() - started
    return {
        "orders": orders,
        "posted": posted,
        "failed": failed,
        "seconds": round(seconds, 3),
        "orders_per_s": round(orders / seconds, 2) if seconds else 0.0,
    }


def add_connection_args(parser: argparse.ArgumentParser) -> None:
    """The URL and credential flags of the hand-written scripts (``Stack.script_args``)."""
    for flag in ("--vtex-url", "--app-key", "--app-token", "--synerise-url", "--api-key"):
        parser.add_argument(flag, required=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Naive sequential VTEX -> Synerise orders sync")
    add_connection_args(parser)
    parser.add_argument("--from", dest="date_from", default="2025-06-01T00:00:00.000Z")
    parser.add_argument("--to", dest="date_to", default="2026-05-31T23:59:59.999Z")
    parser.add_argument("--limit", type=int, default=None, help="Stop after this many orders.")
    parser.add_argument("--json", action="store_true", help="Print the result as JSON.")
    args = parser.parse_args(argv)
    result = run(
        args.vtex_url, args.app_key, args.app_token, args.synerise_url, args.api_key,
        args.date_from, args.date_to, args.limit,
    )  # fmt: skip
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"{result['orders']} orders in {result['seconds']:.1f} s "
            f"({result['orders_per_s']:.1f}/s), {result['failed']} failed"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
