"""Every payload the mapping produces is one Synerise's own models accept.

Each profile, guest profile and transaction mapped from the sandbox generator's customers and
orders (dirty ones included) and from VTEX's example orders is validated with ``jsonschema``
against the project's copy of Synerise's request schemas, and by `prose_violations` against the
rules those schemas carry only as notes (``x-source``; Synerise API reference §2.2, §3, §8).
The checker is written from the reference, not from ``schemas/``, so it can catch the mapping.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from etl.errors import SkippableRecordError
from etl.sandbox import build_dataset
from schemas.mapping import (
    MappingConfig,
    guest_profile_from_order,
    profile_from_customer,
    transaction_from_order,
)
from tests.schemas.builders import item, order
from tests.schemas.references import orders_spec, vendored_schema

PROFILE_VALIDATOR = Draft202012Validator(vendored_schema("clients_batch")["items"])
TRANSACTION_VALIDATOR = Draft202012Validator(vendored_schema("transactions_batch")["items"])

RESERVED_ATTRIBUTES = frozenset(
    {
        "email", "clientId", "phone", "customId", "uuid", "firstName", "lastName", "displayName",
        "company", "address", "city", "province", "zipCode", "countryCode", "birthDate", "sex",
        "avatarUrl", "anonymous", "agreements", "tags", "businessProfileId", "time", "ip",
        "source", "newsletter_agreement", "custom_identify", "firstname", "lastname", "created",
        "updated", "last_activity_date", "birthdate", "type", "confirmed", "facebookId",
        "status", "deletedAt", "",
    }
)  # fmt: skip
"""Reserved profile attribute names, as the reference lists them (§2.2; SDK additions)."""

MONEY_FIELDS = ("finalUnitPrice", "regularPrice", "netUnitPrice", "discountPrice")

CONFIGS = {
    "default": MappingConfig(),
    "configured": MappingConfig(
        extra_attributes=("document", "isCorporate", "localeDefault"),
        order_customer_attributes=("document",),
        cents_divisor_mode="decimal_digits",
        store_base_url="https://shop.example",
        transaction_source_rules=(("salesChannel", "2", "MOBILE_APP"),),
    ),
}


# --- the prose rules ---------------------------------------------------------------------------


def decimal(number: Any) -> Decimal:
    """A JSON number as Synerise reads it: the decimal its text spells."""
    return Decimal(json.dumps(number))


def prose_violations(kind: str, payload: dict[str, Any], now: datetime) -> list[str]:
    """What the payload breaks of the rules the schemas only note; ``[]`` when it follows them."""
    problems = [f"null at {path}" for path in _nulls(payload, "")]
    if kind == "profile":
        birth = payload.get("birthDate")
        if birth is not None:
            try:
                parsed = date.fromisoformat(birth)
            except ValueError:
                parsed = None
            if parsed is None or not date(1900, 1, 1) <= parsed <= now.date():
                problems.append("birthDate is not a real date from 1900-01-01 to today")
        for name in payload.get("attributes") or {}:
            if name in RESERVED_ATTRIBUTES:
                problems.append(f"attributes.{name} is reserved (Synerise ignores it)")
        return problems

    lines = payload.get("products") or []
    total = sum(
        (decimal(p["finalUnitPrice"]["amount"]) * decimal(p["quantity"]) for p in lines),
        Decimal(0),
    )
    if decimal(payload["revenue"]["amount"]) != total:
        problems.append(f"revenue {payload['revenue']['amount']} != Σ lines {total}")
    monies = [payload[name] for name in ("revenue", "value", "discountAmount") if name in payload]
    monies += [p[name] for p in lines for name in MONEY_FIELDS if name in p]
    currencies = {money["currency"].upper() for money in monies}
    if len(currencies) != 1:
        problems.append(f"several currencies: {sorted(currencies)}")
    if "discountAmount" in payload and not payload["discountAmount"]["amount"] > 0:
        problems.append("discountAmount is not above zero")
    recorded = datetime.fromisoformat(payload["recordedAt"].replace("Z", "+00:00"))
    if recorded.tzinfo is None or recorded > now:
        problems.append("recordedAt has no zone or is in the future (never overwritable)")
    return problems


def _nulls(value: Any, path: str) -> Iterator[str]:
    if value is None:
        yield path or "<root>"
    elif isinstance(value, dict):
        for key, inner in value.items():
            yield from _nulls(inner, f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            yield from _nulls(inner, f"{path}[{index}]")


def violations(kind: str, payload: dict[str, Any]) -> list[str]:
    validator = PROFILE_VALIDATOR if kind == "profile" else TRANSACTION_VALIDATOR
    found = [
        f"{'/'.join(map(str, error.absolute_path)) or '<item>'}: {error.message}"
        for error in validator.iter_errors(payload)
    ]
    return found + prose_violations(kind, payload, datetime.now(UTC))


# --- the payloads ------------------------------------------------------------------------------


def spec_orders() -> list[dict[str, Any]]:
    """Every full order example of VTEX's Orders spec (Get order, order group, user orders)."""
    spec = orders_spec()

    def example(path: str) -> Any:
        return spec["paths"][path]["get"]["responses"]["200"]["content"]["application/json"][
            "example"
        ]

    return copy.deepcopy(
        [
            example("/api/oms/pvt/orders/{orderId}"),
            *example("/api/oms/pvt/orders/order-group/{orderGroup}"),
            example("/api/oms/user/orders/{orderId}"),
            spec["components"]["schemas"]["Userorderdetails"]["example"],
        ]
    )


def mapped(config: MappingConfig, customers: int, orders: int) -> Iterator[tuple[str, str, dict]]:
    """``(kind, key, payload)`` for every record the mapping sends; rejected records are skipped."""
    dataset = build_dataset(customers, orders, seed=11, dirty_share=0.3)
    for i in range(dataset.customer_count):
        doc = dataset.customer(i)
        try:
            yield "profile", doc["id"], profile_from_customer(doc, config)
        except SkippableRecordError:
            continue
    documents = [dataset.order(i) for i in range(dataset.order_count)]
    for doc in documents:
        user = (doc.get("clientProfileData") or {}).get("userProfileId")
        found = dataset.find_customers("userId", user) if user else []
        buyer = dataset.customer(found[0]) if found else None
        yield from _order_payloads(doc, buyer, config)


def _order_payloads(
    doc: dict[str, Any], buyer: dict[str, Any] | None, config: MappingConfig
) -> Iterator[tuple[str, str, dict]]:
    try:
        transaction = transaction_from_order(doc, buyer, config)
    except SkippableRecordError:
        return
    guest = guest_profile_from_order(doc, buyer, config)
    if guest is not None:
        yield "profile", f"guest of {doc['orderId']}", guest
    yield "transaction", doc["orderId"], transaction


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_every_generated_payload_is_one_synerise_accepts(name):
    counts = {"profile": 0, "guest": 0, "transaction": 0}
    found = []
    for kind, key, payload in mapped(CONFIGS[name], customers=1500, orders=1500):
        counts["guest" if key.startswith("guest") else kind] += 1
        found += [f"{kind} {key}: {problem}" for problem in violations(kind, payload)]
    assert found == []
    # A dirty share of 0.3 rejects some customers and orders; the rest is checked.
    assert counts["profile"] > 1200 and counts["transaction"] > 1350 and counts["guest"] > 40


def test_vtex_example_orders_give_payloads_synerise_accepts():
    sent = 0
    for doc in spec_orders():
        for kind, key, payload in _order_payloads(doc, None, MappingConfig()):
            assert violations(kind, payload) == [], (kind, key)
            sent += 1
    assert sent == 10  # five orders, each with a transaction and a guest profile


# --- the checker itself ------------------------------------------------------------------------


def good_transaction() -> dict[str, Any]:
    items = [item("1", "A", quantity=3, selling=10, listed=20),
             item("2", "B", quantity=3, selling=20, listed=20)]  # fmt: skip
    return transaction_from_order(order(items=items), None, MappingConfig())


def broken(path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    payload = good_transaction()
    target = payload
    for step in path[:-1]:
        target = target[step]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return payload


_DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "fragment"),
    [
        (("source",), _DELETE, "'source' is a required property"),
        (("source",), "APP", "is not one of"),
        (("paymentInfo",), _DELETE, "'paymentInfo' is a required property"),
        (("revenue", "amount"), 0.91, "Σ lines"),
        (("products", 1, "finalUnitPrice", "currency"), "USD", "several currencies"),
        (("discountAmount", "amount"), 0, "discountAmount is not above zero"),
        (("recordedAt",), "2024-02-04 20:09:43", "does not match"),
        (("recordedAt",), "2999-01-01T00:00:00.000Z", "in the future"),
        (("metadata", "coupon"), None, "null at metadata.coupon"),
        (("client",), {}, "client: {} is not valid under any of the given schemas"),
    ],
)
def test_the_checker_catches_each_rule(path, value, fragment):
    assert violations("transaction", good_transaction()) == []
    problems = violations("transaction", broken(path, value))
    assert any(fragment in problem for problem in problems), problems


@pytest.mark.parametrize(
    ("profile", "fragment"),
    [
        ({"customId": "u", "birthDate": "1850-01-01"}, "birthDate"),
        ({"customId": "u", "birthDate": "1990-02-30"}, "birthDate"),
        ({"customId": "u", "attributes": {"status": "vip"}}, "attributes.status is reserved"),
        ({"customId": "u", "sex": "F"}, "is not one of"),
        ({"firstName": "Ana"}, "is not valid under any of the given schemas"),  # no identifier
        ({"customId": "u", "phone": "call me"}, "does not match"),
    ],
)
def test_the_checker_catches_profile_rules(profile, fragment):
    assert violations("profile", {"customId": "u", "birthDate": "1990-05-17"}) == []
    problems = violations("profile", profile)
    assert any(fragment in problem for problem in problems), problems
