"""The strict Synerise emulator refuses every body that breaks Synerise's request models or its
documented rules, one rule at a time, the way the API answers: a batch item gets a per-item
``Error`` in a 207, a single call a 400 with the ``HTTP400`` body. The relaxed emulator refuses
only what the API itself enforces and counts the rest.

Each case feeds one violation into an otherwise valid body and names the layers that must
catch it: ``schema`` (the vendored JSON Schemas), ``rule`` (enforced by the API itself, so
refused in both modes) or ``prose`` (a documented rule the API leaves unchecked: refused only
when strict). Every refusal is counted per route in ``stats()["refused"]``.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from etl.sandbox.server import SandboxServer
from etl.sandbox.synerise import SyneriseSandbox
from tests.etl.sandbox.test_synerise_sandbox import HTTP400_KEYS, Api, event, money, transaction

TOMORROW = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
PROFILE = {"customId": "c1", "email": "ana@example.com", "firstName": "Ana"}
CATALOG_ITEM = {"itemKey": "SKU1", "value": {"title": "Vase", "price": "19.90"}}


def changed(body: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of ``body`` with the member at ``a.b.0.c`` set to ``value`` (``...``: removed)."""
    copied = copy.deepcopy(body)
    *parents, last = path.split(".")
    target: Any = copied
    for part in parents:
        target = target[int(part)] if isinstance(target, list) else target[part]
    if value is ...:
        del target[last]
    else:
        target[last] = value
    return copied


# name -> (endpoint, the body with one violation, the field named, the layers that catch it)
CASES = {
    # -- profiles: the model ---------------------------------------------------------------
    "profile without identifier": ("clients", {"firstName": "Ana"}, "", "schema+rule"),
    "profile e-mail not a string": (
        "clients", changed(PROFILE, "email", 5), "email", "schema+rule"),
    "profile e-mail pattern": (
        "clients", changed(PROFILE, "email", "ana@x"), "email", "schema+rule"),
    "profile phone pattern": (
        "clients", changed(PROFILE, "phone", "12-ab"), "phone", "schema+rule"),
    "profile identifier character": (
        "clients", changed(PROFILE, "customId", "c\u00ad1"), "customId", "schema+rule"),
    "profile text with NUL": (
        "clients", changed(PROFILE, "firstName", "A\u0000"), "firstName", "schema+rule"),
    "profile sex enum": ("clients", changed(PROFILE, "sex", "F"), "sex", "schema+rule"),
    "profile birthDate format": (
        "clients", changed(PROFILE, "birthDate", "1990-1-5"), "birthDate", "schema+rule"),
    "profile agreement value": (
        "clients", changed(PROFILE, "agreements", {"email": "yes"}), "agreements.email",
        "schema+rule"),
    "profile attribute name": (
        "clients", changed(PROFILE, "attributes", {"a\nb": 1}), "attributes.a\nb", "schema+rule"),
    "profile tags of text": ("clients", changed(PROFILE, "tags", [1]), "tags[0]", "schema+rule"),
    "profile clientId integer": (
        "clients", changed(PROFILE, "clientId", "7"), "clientId", "schema+rule"),
    # -- profiles: the API's rules -----------------------------------------------------------
    "profile birthDate not a date": (
        "clients", changed(PROFILE, "birthDate", "1990-02-30"), "birthDate", "rule"),
    "profile birthDate before 1900": (
        "clients", changed(PROFILE, "birthDate", "1899-12-31"), "birthDate", "rule"),
    "profile birthDate in the future": (
        "clients", changed(PROFILE, "birthDate", TOMORROW), "birthDate", "rule"),
    "profile blank customId": ("clients", changed(PROFILE, "customId", " "), "customId", "rule"),
    "profile unknown agreement": (
        "clients", changed(PROFILE, "agreements", {"fax": True}), "agreements.fax", "rule"),
    # -- profiles: documented, unchecked by the API ------------------------------------------
    "profile reserved attribute name": (
        "clients", changed(PROFILE, "attributes", {"birthdate": "x"}), "attributes.birthdate",
        "prose"),
    # -- transactions: the model -------------------------------------------------------------
    "transaction without source": (
        "transactions", changed(transaction(), "source", ...), "source", "schema"),
    "transaction source enum": (
        "transactions", changed(transaction(), "source", "SHOP"), "source", "schema+rule"),
    "transaction without paymentInfo": (
        "transactions", changed(transaction(), "paymentInfo", ...), "paymentInfo", "schema"),
    "transaction paymentInfo without method": (
        "transactions", changed(transaction(), "paymentInfo", {}), "paymentInfo.method",
        "schema"),
    "transaction line without quantity": (
        "transactions", changed(transaction(), "products.0.quantity", ...),
        "products[0].quantity", "schema"),
    "transaction client without identifier": (
        "transactions", changed(transaction(), "client", {"phone": "+5511987654321"}), "client",
        "schema+rule"),
    "transaction recordedAt format": (
        "transactions", changed(transaction(), "recordedAt", "2024-03-01 10:00"), "recordedAt",
        "schema+rule"),
    "transaction currency code": (
        "transactions", changed(transaction(), "value.currency", "REAL"), "value.currency",
        "schema+rule"),
    "transaction negative amount": (
        "transactions", changed(transaction(), "products.1.finalUnitPrice.amount", -20.0),
        "products[1].finalUnitPrice.amount", "schema+rule"),
    "transaction empty eventSalt": (
        "transactions", changed(transaction(), "eventSalt", ""), "eventSalt", "schema+rule"),
    "transaction metadata not an object": (
        "transactions", changed(transaction(), "metadata", ["x"]), "metadata", "schema+rule"),
    # -- transactions: the API's rules -------------------------------------------------------
    "transaction discountAmount zero": (
        "transactions", changed(transaction(), "discountAmount", money(0)),
        "discountAmount.amount", "rule"),
    "transaction two currencies": (
        "transactions", changed(transaction(), "value.currency", "USD"), "currency", "rule"),
    "transaction recordedAt not a time": (
        "transactions", changed(transaction(), "recordedAt", "2024-02-30T10:00:00Z"),
        "recordedAt", "rule"),
    "transaction without lines": (
        "transactions", changed(transaction(revenue=money(0), value=money(0)), "products", []),
        "products", "rule"),
    "transaction blank orderId": (
        "transactions", changed(transaction(), "orderId", " "), "orderId", "rule"),
    # -- transactions: documented, unchecked by the API --------------------------------------
    "transaction revenue is not the sum of its lines": (
        "transactions", changed(transaction(), "revenue.amount", 31.6), "revenue", "prose"),
    "transaction revenue counts quantities": (
        "transactions", changed(transaction(), "products.0.quantity", 2), "revenue", "prose"),
    # -- events ------------------------------------------------------------------------------
    "event action pattern": ("events", event(action="client deleted"), "action", "schema+rule"),
    "event action of 33 characters": ("events", event(action="a" * 33), "action", "schema+rule"),
    "event without time": ("events", changed(event(), "time", ...), "time", "schema"),
    "event without params": ("events", changed(event(), "params", ...), "params", "schema"),
    "event empty label": ("events", event(label=""), "label", "schema+rule"),
    "event time not a time": ("events", event(time="2024-13-01T10:00:00Z"), "time", "rule"),
    # -- catalogs ----------------------------------------------------------------------------
    "catalog value not text": (
        "catalog", changed(CATALOG_ITEM, "value.price", 19.9), "value.price", "schema"),
    "catalog without itemKey": (
        "catalog", changed(CATALOG_ITEM, "itemKey", ...), "itemKey", "rule"),
}  # fmt: skip

VALID = {"clients": PROFILE, "transactions": transaction(orderId="ok"), "events": event(),
         "catalog": CATALOG_ITEM}  # fmt: skip
SINGLE = {"clients": "/v4/clients", "transactions": "/v4/transactions",
          "events": "/v4/events/custom", "catalog": None}  # fmt: skip
ROUTES = {"clients": "synerise.clients_batch", "transactions": "synerise.transactions_batch",
          "events": "synerise.events_batch", "catalog": "synerise.catalog_items_batch"}  # fmt: skip


@pytest.fixture(params=[True, False], ids=["strict", "relaxed"])
def workspace(request: pytest.FixtureRequest) -> Iterator[tuple[SyneriseSandbox, Api]]:
    sandbox = SyneriseSandbox(seed=5, strict=request.param)
    with SandboxServer(sandbox.make_app()) as server:
        api = Api(server.url)
        api.login()
        yield sandbox, api


def batch_path(api: Api, kind: str) -> str:
    if kind != "catalog":
        return {"clients": "/v4/clients/batch", "transactions": "/v4/transactions/batch",
                "events": "/v4/events/batch"}[kind]  # fmt: skip
    bag = api.post("/catalogs/bags", {"name": "store-1"}).json()["data"]
    return f"/catalogs/bags/{bag['id']}/items/batch"


def test_the_valid_bodies_are_accepted_by_the_strict_emulator() -> None:
    sandbox = SyneriseSandbox()
    assert sandbox.strict
    with SandboxServer(sandbox.make_app()) as server:
        api = Api(server.url)
        api.login()
        for kind, body in VALID.items():
            assert api.post(batch_path(api, kind), [body]).status_code in (200, 202), kind
        stats = api.stats()
    assert stats["refused"] == {}
    assert stats["violations"] == {"schema": 0, "rule": 0, "prose": 0}


@pytest.mark.parametrize(("kind", "body", "field", "layers"), CASES.values(), ids=CASES.keys())
def test_each_rule_refuses_its_violation(
    workspace: tuple[SyneriseSandbox, Api], kind: str, body: dict, field: str, layers: str
) -> None:
    sandbox, api = workspace
    path = batch_path(api, kind)
    response = api.post(path, [VALID[kind], body])
    stats = api.stats()
    counted = {layer: int(layer in layers.split("+")) for layer in ("schema", "rule", "prose")}
    assert stats["violations"] == counted
    if not sandbox.strict and "rule" not in layers:  # the API takes it: relaxed only counts it
        assert response.status_code in (200, 202), response.text
        assert stats["refused"] == {}
        return
    assert response.status_code == 207, response.text
    errors = response.json()
    assert {error["index"] for error in errors} == {1}
    assert errors[0]["code"] == 400 and errors[0]["message"]
    assert isinstance(errors[0]["rejectedValue"], str)
    assert stats["refused"] == {ROUTES[kind]: 1}
    assert stats["rejected_items"] == 1
    if sandbox.strict:  # one error, where the model (else the rule) says
        assert [error["field"] for error in errors] == [f"[1].{field}" if field else "[1]"]

    single = SINGLE[kind]
    if single is not None:
        answer = api.post(single, body)
        assert answer.status_code == 400, answer.text
        refusal = answer.json()
        assert set(refusal) == HTTP400_KEYS
        assert (refusal["status"], refusal["error"], refusal["path"]) == (
            400, "Bad Request", single)  # fmt: skip
        assert refusal["errors"] and "index" not in refusal["errors"][0]
        if sandbox.strict:
            assert [error["field"] for error in refusal["errors"]] == [field or "body"]


def test_a_refused_item_is_not_stored_and_its_batch_mates_are(
    workspace: tuple[SyneriseSandbox, Api],
) -> None:
    _, api = workspace
    bad = changed(transaction(orderId="bad"), "discountAmount", money(0))
    assert api.post("/v4/transactions/batch", [VALID["transactions"], bad]).status_code == 207
    assert [t["orderId"] for t in api.inspect("transactions")] == ["ok"]


def test_relaxed_ignores_a_reserved_attribute_as_synerise_does() -> None:
    sandbox = SyneriseSandbox(strict=False)
    with SandboxServer(sandbox.make_app()) as server:
        api = Api(server.url)
        api.login()
        body = changed(PROFILE, "attributes", {"tier": "gold", "email": "x@example.com"})
        assert api.post("/v4/clients/batch", [body]).status_code == 202
        [profile] = api.inspect("profiles")
        assert profile["attributes"] == {"tier": "gold"}
        assert profile["email"] == "ana@example.com"
        assert api.stats()["violations"]["prose"] == 1


def test_null_resets_a_profile_field_and_breaks_no_model() -> None:
    sandbox = SyneriseSandbox()
    with SandboxServer(sandbox.make_app()) as server:
        api = Api(server.url)
        api.login()
        assert api.post("/v4/clients/batch", [PROFILE]).status_code == 202
        reset = {"customId": "c1", "firstName": None, "agreements": {"email": None}}
        assert api.post("/v4/clients/batch", [reset]).status_code == 202
        assert "firstName" not in api.inspect("profiles")[0]
        assert api.stats()["refused"] == {}


def test_malformed_bodies_count_as_refusals() -> None:
    sandbox = SyneriseSandbox()
    with SandboxServer(sandbox.make_app()) as server:
        api = Api(server.url)
        api.login()
        assert api.post("/v4/clients/batch", {"customId": "c1"}).status_code == 400
        assert api.post("/v4/transactions", data="{", headers={
            "Content-Type": "application/json"}).status_code == 400  # fmt: skip
        refused = api.stats()["refused"]
    assert refused == {"synerise.clients_batch": 1, "synerise.transactions": 1}
