"""The emulator's compiled predicates say "valid" exactly when ``jsonschema`` does.

`etl.sandbox.synerise.models` answers "valid?" with a predicate compiled from each vendored
schema and asks ``jsonschema`` (the authority) only about the items the predicate doubts. A
predicate that called an invalid item valid would let the emulator accept what Synerise's model
refuses, so this compares both on mapped payloads and on every one-value mutation of them.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from typing import Any

import pytest

from etl.errors import SkippableRecordError
from etl.sandbox import build_dataset
from etl.sandbox.synerise.models import (
    ROUTE_MODELS,
    SchemaCompileError,
    compile_predicate,
    model,
)
from schemas.mapping import (
    MappingConfig,
    guest_profile_from_order,
    profile_from_customer,
    transaction_from_order,
)

ODD_VALUES = (None, "", " ", "x\u0000", "\ufe0f", "ana@x", "1990-02-30", 0, -1, 1.5, 2**70,
              True, [], ["x"], {}, {"amount": 1})  # fmt: skip


def mapped_payloads() -> dict[str, list[dict[str, Any]]]:
    data, config = build_dataset(60, 60, seed=4, dirty_share=0.5), MappingConfig()
    profiles, guests, transactions = [], [], []
    for i in range(data.customer_count):
        with contextlib.suppress(SkippableRecordError):
            profiles.append(profile_from_customer(data.customer(i), config))
    for i in range(data.order_count):
        try:
            transactions.append(transaction_from_order(data.order(i), None, config))
        except SkippableRecordError:
            continue
        guest = guest_profile_from_order(data.order(i), None, config)
        if guest is not None:
            guests.append(guest)
    event = {"action": "client.deleteAccount", "label": "x", "client": {"customId": "c1"},
             "time": "2024-03-01T10:00:00Z", "eventSalt": "s", "params": {"a": 1}}  # fmt: skip
    return {
        "clients": profiles[:10] + guests[:2],
        "transactions": transactions[:4],
        "events": [event],
        "catalog": [{"itemKey": "SKU1", "value": {"title": "Vase", "price": "1"}}],
        "bags": [{"name": "store-1"}],
    }


def mutations(value: Any) -> Iterator[Any]:
    """``value`` with one member replaced by each odd value, or removed."""
    if isinstance(value, dict):
        for key in value:
            for odd in ODD_VALUES:
                yield {**value, key: odd}
            yield {k: v for k, v in value.items() if k != key}
            for inner in mutations(value[key]):
                yield {**value, key: inner}
    elif isinstance(value, list):
        for index, item in enumerate(value[:2]):
            for inner in [*mutations(item), *ODD_VALUES]:
                changed = copy.copy(value)
                changed[index] = inner
                yield changed


ROUTES_BY_KIND = {
    "clients": ("synerise.clients_batch", "synerise.clients_create"),
    "transactions": ("synerise.transactions_batch", "synerise.transactions"),
    "events": ("synerise.events_batch", "synerise.events_custom"),
    "catalog": ("synerise.catalog_items_batch",),
    "bags": ("synerise.catalog_bags",),
}


def test_every_route_has_a_compiled_model() -> None:
    assert {route for routes in ROUTES_BY_KIND.values() for route in routes} == set(ROUTE_MODELS)


@pytest.mark.parametrize("kind", ROUTES_BY_KIND)
def test_the_predicate_agrees_with_jsonschema(kind: str) -> None:
    payloads = mapped_payloads()[kind]
    assert payloads
    for route in ROUTES_BY_KIND[kind]:
        checked = model(route)
        seen = {"valid": 0, "invalid": 0}
        for payload in payloads:
            assert checked.is_valid(payload), route
            for candidate in mutations(payload):
                verdict = checked.validator.is_valid(candidate)
                assert checked.is_valid(candidate) == verdict, (route, candidate)
                seen["valid" if verdict else "invalid"] += 1
        assert seen["invalid"] > 0 and seen["valid"] > 0, seen


@pytest.mark.parametrize(
    ("schema", "good", "bad"),
    [
        ({"type": "integer"}, 3.0, True),
        ({"enum": [0, 1]}, 1.0, False),
        ({"enum": [True]}, True, 1),
        ({"type": ["string", "null"]}, None, 1),
        ({"oneOf": [{"minimum": 0}, {"maximum": 10}]}, -1, 5),
        ({"additionalProperties": {"type": "string"}, "properties": {"n": {}}}, {"n": 1}, {"m": 1}),
        ({"propertyNames": {"maxLength": 2}}, {"ab": 1}, {"abc": 1}),
        ({"exclusiveMinimum": 0}, 0.1, 0),
        ({"const": "a"}, "a", "b"),
    ],
)
def test_the_predicate_follows_json_schema_semantics(schema: dict, good: Any, bad: Any) -> None:
    check = compile_predicate(schema)
    assert check(good) and not check(bad)


def test_an_unknown_keyword_is_refused_at_compile_time() -> None:
    with pytest.raises(SchemaCompileError, match="dependentSchemas"):
        compile_predicate({"properties": {"a": {"dependentSchemas": {}}}})


def test_errors_name_the_field_and_never_quote_the_value() -> None:
    errors = model("synerise.clients_batch").errors(
        {"customId": "c1", "email": "secret.person@nowhere", "sex": "F"}, "[4]"
    )
    assert [(error.field, error.kind) for error in errors] == [
        ("[4].email", "schema"),
        ("[4].sex", "schema"),
    ]
    assert all("secret" not in error.message for error in errors)
    assert errors[0].rejected == "secret.person@nowhere"  # rejectedValue, as the API echoes it
