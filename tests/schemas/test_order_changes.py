"""Order changes (``changesAttachment``): removed lines keep their product.buy identity.

Synerise keys each ``product.buy`` event by the line's position (Synerise API reference §3.3):
a resend must never shrink the list, and a removed line is sent with quantity 0 and
``canceled: true``. The documents are VTEX's own examples of orders with changes
(fixtures/vtex_orders_with_changes.json) and states derived from them.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from schemas.mapping import MappingConfig, transaction_from_order
from schemas.reasons import RejectReason
from tests.schemas.builders import item, order, rejected
from tests.schemas.references import orders_spec, response_example

CONFIG = MappingConfig()
EXAMPLES = json.loads(
    (Path(__file__).resolve().parent / "fixtures" / "vtex_orders_with_changes.json").read_text(
        encoding="utf-8"
    )
)


def example(name: str) -> dict[str, Any]:
    document: dict[str, Any] = copy.deepcopy(EXAMPLES[name])
    return document


def lines(payload: dict[str, Any]) -> list[tuple[str, float, bool | None]]:
    return [(p["sku"], p["quantity"], p.get("canceled")) for p in payload["products"]]


def change(removed: Sequence[dict[str, Any]] = (), added: Sequence[dict[str, Any]] = ()) -> dict:
    """One ``changesData`` entry shaped like VTEX's example."""
    receipt = {"date": "2024-02-06T20:46:04Z", "orderId": "x", "receipt": "r"}
    return {
        "reason": "test",
        "discountValue": 0,
        "incrementValue": 0,
        "itemsAdded": list(added),
        "itemsRemoved": list(removed),
        "receipt": receipt,
    }


def changed(sku: str, quantity: int = 1, price: int = 500) -> dict[str, Any]:
    return {"id": sku, "name": f"Item {sku}", "quantity": quantity, "price": price,
            "unitMultiplier": None}  # fmt: skip


def test_the_fixtures_are_vtex_examples_verbatim():
    orders_spec()  # fails in CI, skips locally, when the spec is not beside the repository
    assert EXAMPLES["get_order"] == response_example("/api/oms/pvt/orders/{orderId}")
    assert EXAMPLES["user_order"] == response_example("/api/oms/user/orders/{orderId}")
    details = orders_spec()["components"]["schemas"]["Userorderdetails"]["example"]
    assert EXAMPLES["user_order_details"] == details


# --- VTEX's examples ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected", "revenue"),
    [
        # 1234568358 was removed and items no longer lists it: appended, quantity 0, canceled.
        ("get_order", [("18", 1, None), ("1234568358", 0, True)], 9.9),
        ("user_order", [("256", 1, None), ("1234568358", 0, True)], 32.9),
        # items still lists 1234568358 with quantity 1: one of its units was removed.
        ("user_order_details", [("1234568358", 1, None)], 32.9),
    ],
)
def test_vtex_examples_with_changes(name, expected, revenue):
    payload = transaction_from_order(example(name), None, CONFIG)
    assert lines(payload) == expected
    assert payload["revenue"] == payload["value"] == {"amount": revenue, "currency": "BRL"}
    removed = [p for p in payload["products"] if p.get("canceled")]
    for line in removed:
        assert line["name"] == "Bay Max L"
        assert line["finalUnitPrice"] == {"amount": 32.9, "currency": "BRL"}  # price 3290


def test_the_removal_in_vtex_example_as_a_timeline():
    after = example("get_order")
    before = copy.deepcopy(after)
    removed_line = copy.deepcopy(before["items"][0])
    removed_line.update(id="1234568358", quantity=1, sellingPrice=3290, price=3290)
    before["items"].append(removed_line)
    before["changesAttachment"] = None
    in_place = copy.deepcopy(before)  # a store where OMS keeps the line with quantity 0
    in_place["items"][1]["quantity"] = 0
    in_place["changesAttachment"] = after["changesAttachment"]

    sent = [transaction_from_order(doc, None, CONFIG) for doc in (before, after, in_place)]
    assert [lines(p) for p in sent] == [
        [("18", 1, None), ("1234568358", 1, None)],
        [("18", 1, None), ("1234568358", 0, True)],
        [("18", 1, None), ("1234568358", 0, True)],
    ]
    assert [p["revenue"]["amount"] for p in sent] == [42.8, 9.9, 9.9]
    assert len({(p["eventSalt"], p["recordedAt"]) for p in sent}) == 1  # each one overwrites


# --- changes over an order's life ---------------------------------------------------------------


def test_lines_never_shrink_through_removals_and_additions():
    a, b, c = (item(s, f"Item {s}", quantity=q, selling=p, listed=p)
               for s, q, p in (("A", 1, 1000), ("B", 2, 500), ("C", 1, 250)))  # fmt: skip
    d = item("D", "Item D", quantity=1, selling=700, listed=700)
    states = [
        order(items=[a, b, c]),
        # B removed in the middle and gone from items: appended, so no event is left stale.
        order(items=[a, c], changesAttachment={"changesData": [change([changed("B", 2)])]}),
        # D added (VTEX appends it): it takes the next position, B moves after it.
        order(items=[a, c, d], changesAttachment={"changesData": [
            change([changed("B", 2)]), change(added=[changed("D")])]}),
        # D removed again.
        order(items=[a, c], changesAttachment={"changesData": [
            change([changed("B", 2)]), change(added=[changed("D")]), change([changed("D")])]}),
    ]  # fmt: skip
    sent = [transaction_from_order(doc, None, CONFIG) for doc in states]
    assert [lines(p) for p in sent] == [
        [("A", 1, None), ("B", 2, None), ("C", 1, None)],
        [("A", 1, None), ("C", 1, None), ("B", 0, True)],
        [("A", 1, None), ("C", 1, None), ("D", 1, None), ("B", 0, True)],
        [("A", 1, None), ("C", 1, None), ("B", 0, True), ("D", 0, True)],
    ]
    lengths = [len(p["products"]) for p in sent]
    assert lengths == sorted(lengths)
    assert [p["revenue"]["amount"] for p in sent] == [22.5, 12.5, 19.5, 12.5]


def test_a_quantity_change_is_no_removal():
    doc = order(
        items=[item("A", "Item A", quantity=1, selling=1000, listed=1000)],
        changesAttachment={"changesData": [change([changed("A", 2)])]},
    )
    payload = transaction_from_order(doc, None, CONFIG)
    assert lines(payload) == [("A", 1, None)]
    assert payload["revenue"]["amount"] == 10.0


def test_a_line_removed_then_added_back_is_an_ordinary_line():
    doc = order(
        items=[item("A", "Item A", quantity=1, selling=1000, listed=1000)],
        changesAttachment={"changesData": [change([changed("A")]), change(added=[changed("A")])]},
    )
    assert lines(transaction_from_order(doc, None, CONFIG)) == [("A", 1, None)]


@pytest.mark.parametrize(
    "attachment",
    [None, {"changesData": None}, {"changesData": []},
     {"changesData": [{"itemsRemoved": None, "itemsAdded": None}]}],
)  # fmt: skip
def test_no_changes(attachment):
    payload = transaction_from_order(order(changesAttachment=attachment), None, CONFIG)
    assert lines(payload) == [("1", 2, None), ("2", 1, None)]


@pytest.mark.parametrize(
    ("removed", "fragment"),
    [
        ({**changed("B"), "name": " "}, "itemsRemoved.0 needs id and name"),
        ({**changed("B"), "id": None}, "itemsRemoved.0 needs id and name"),
        ({**changed("B"), "price": None}, "itemsRemoved.0.price is missing"),
        ({**changed("B"), "price": -1}, "itemsRemoved.0.price is negative"),
        ({**changed("B"), "price": 1.5}, "itemsRemoved.0.price: Not a whole number."),
    ],
)
def test_a_removed_line_vtex_describes_badly_is_a_mapping_error(removed, fragment):
    doc = order(changesAttachment={"changesData": [change([removed])]})
    error = rejected(transaction_from_order, doc, None, CONFIG)
    assert error.reason == RejectReason.MAPPING_ERROR
    assert fragment in error.message
