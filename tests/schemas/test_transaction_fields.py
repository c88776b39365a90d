"""Transaction fields Synerise requires or defines: source, revenue/value, discounts, metadata."""

from __future__ import annotations

from decimal import Decimal

import pytest

from etl.config import TRANSACTION_SOURCES, Settings
from schemas.mapping import MappingConfig, transaction_from_order
from tests.schemas.builders import item, order

CONFIG = MappingConfig()


# --- source ------------------------------------------------------------------------------------


def test_source_is_always_sent_and_defaults_to_web_desktop():
    assert transaction_from_order(order(), None, CONFIG)["source"] == "WEB_DESKTOP"
    pos = MappingConfig(transaction_source="POS")
    assert transaction_from_order(order(), None, pos)["source"] == "POS"


RULES = MappingConfig(
    transaction_source="WEB_DESKTOP",
    transaction_source_rules=(
        ("origin", "Fulfillment", "POS"),
        ("salesChannel", "2", "MOBILE_APP"),
        ("affiliateId", "MLB", "WEB_MOBILE"),
    ),
)


@pytest.mark.parametrize(
    ("fields", "source"),
    [
        ({"salesChannel": "1"}, "WEB_DESKTOP"),
        ({"salesChannel": "2"}, "MOBILE_APP"),
        ({"salesChannel": " 2 "}, "MOBILE_APP"),  # VTEX values are trimmed, as everywhere
        ({"salesChannel": "22"}, "WEB_DESKTOP"),
        ({"salesChannel": None}, "WEB_DESKTOP"),
        ({"affiliateId": "MLB"}, "WEB_MOBILE"),
        ({"salesChannel": "2", "origin": "Fulfillment"}, "POS"),  # the first rule wins
        ({"salesChannel": "2", "affiliateId": "MLB"}, "MOBILE_APP"),
        ({"origin": "fulfillment"}, "WEB_DESKTOP"),  # values compare exactly
    ],
)
def test_source_rules_are_tried_in_order(fields, source):
    assert transaction_from_order(order(**fields), None, RULES)["source"] == source


@pytest.mark.parametrize(
    "kwargs",
    [
        {"transaction_source": "web_desktop"},
        {"transaction_source": "APP"},
        {"transaction_source_rules": (("salesChannel", "1", "APP"),)},
        {"transaction_source_rules": (("hostname", "x", "POS"),)},
    ],
)
def test_source_settings_must_name_synerise_values(kwargs):
    with pytest.raises(ValueError):
        MappingConfig(**kwargs)


def test_the_config_is_made_from_the_settings():
    settings = Settings.from_env(
        {"SYNERISE_TRANSACTION_SOURCE": "MOBILE", "SYNERISE_GUEST_PROFILES": "off",
         "SYNERISE_TRANSACTION_SOURCE_MAP": "3=POS", "PROFILE_PHONE_FIELDS": "cellPhone",
         "SYNERISE_SALT_NAMESPACE": "br", "VTEX_CENTS_DIVISOR_MODE": "decimal_digits"},
        require=(),
    )  # fmt: skip
    config = MappingConfig.from_settings(settings)
    assert config == MappingConfig(
        phone_fields=("cellPhone",),
        salt_namespace="br",
        cents_divisor_mode="decimal_digits",
        transaction_source="MOBILE",
        transaction_source_rules=(("salesChannel", "3", "POS"),),
        guest_profiles=False,
    )
    assert MappingConfig.from_settings(Settings.from_env({}, require=())) == MappingConfig()
    assert set(TRANSACTION_SOURCES) == {"WEB_DESKTOP", "WEB_MOBILE", "MOBILE_APP", "POS",
                                        "MOBILE", "DESKTOP"}  # fmt: skip


# --- revenue and value -------------------------------------------------------------------------


def decimal_sum(payload: dict) -> Decimal:
    """Σ finalUnitPrice x quantity in decimal arithmetic, from the amounts as sent (JSON text)."""
    return sum(
        (Decimal(repr(p["finalUnitPrice"]["amount"])) * Decimal(repr(p["quantity"]))
         for p in payload["products"]),
        Decimal(0),
    )  # fmt: skip


@pytest.mark.parametrize(
    "lines",
    [
        [(3, 10), (3, 20)],  # 0.1 x 3 + 0.2 x 3: 0.9000000000000001 in float arithmetic
        [(7, 1), (1, 33), (9, 1999)],
        [(1, 999_999_999), (2, 1)],
        [(1, 0), (0, 1234)],
    ],
)
def test_revenue_is_exactly_the_sum_of_the_lines(lines):
    items = [item(f"{i}", "L", quantity=q, selling=p, listed=p) for i, (q, p) in enumerate(lines)]
    payload = transaction_from_order(order(items=items, value=1), None, CONFIG)
    cents = sum(q * p for q, p in lines)
    assert payload["revenue"] == payload["value"] == {"amount": cents / 100, "currency": "BRL"}
    assert Decimal(repr(payload["revenue"]["amount"])) == decimal_sum(payload)


@pytest.mark.parametrize(("digits", "divisor"), [(0, 1), (2, 100), (3, 1000)])
def test_revenue_is_exact_with_the_currency_digits(digits, divisor):
    items = [item("1", "A", quantity=3, selling=1001, listed=1001),
             item("2", "B", quantity=7, selling=333, listed=333)]  # fmt: skip
    info = {"currencyCode": "KWD", "currencyFormatInfo": {"CurrencyDecimalDigits": digits}}
    payload = transaction_from_order(
        order(items=items, storePreferencesData=info),
        None,
        MappingConfig(cents_divisor_mode="decimal_digits"),
    )
    assert payload["revenue"]["amount"] == (3 * 1001 + 7 * 333) / divisor
    assert Decimal(repr(payload["revenue"]["amount"])) == decimal_sum(payload)


def test_shipping_and_a_tax_on_top_stay_out_of_revenue_and_go_to_metadata():
    # A US-style order: VTEX's total = Items + Discounts + Shipping + Tax.
    items = [item("1", "Lamp", quantity=2, selling=4500, listed=5000)]
    totals = [{"id": "Items", "value": 10000}, {"id": "Discounts", "value": -1000},
              {"id": "Shipping", "value": 1299}, {"id": "Tax", "value": 743}]  # fmt: skip
    doc = order(items=items, totals=totals, value=11042,
                storePreferencesData={"currencyCode": "USD"})  # fmt: skip
    payload = transaction_from_order(doc, None, CONFIG)
    assert payload["revenue"] == payload["value"] == {"amount": 90.0, "currency": "USD"}
    assert payload["discountAmount"] == {"amount": 10.0, "currency": "USD"}
    metadata = payload["metadata"]
    assert (metadata["shipping"], metadata["tax"], metadata["discounts"]) == (12.99, 7.43, 10.0)
    assert metadata["orderValue"] == 110.42
    currencies = {payload[k]["currency"] for k in ("revenue", "value", "discountAmount")}
    for product in payload["products"]:
        currencies |= {product[k]["currency"] for k in ("finalUnitPrice", "regularPrice")}
    assert currencies == {"USD"}  # one currency per transaction


@pytest.mark.parametrize(("discounts", "sent"), [(-1, 0.01), (0, None), (None, None), (250, None)])
def test_discount_amount_only_when_above_zero(discounts, sent):
    totals = [] if discounts is None else [{"id": "Discounts", "value": discounts}]
    payload = transaction_from_order(order(totals=totals), None, CONFIG)
    if sent is None:
        assert "discountAmount" not in payload
    else:
        assert payload["discountAmount"] == {"amount": sent, "currency": "BRL"}
    expected = None if discounts is None else -discounts / 100
    assert payload["metadata"].get("discounts") == expected


# --- metadata ----------------------------------------------------------------------------------


def test_order_context_in_metadata():
    doc = order(
        origin="Marketplace",
        affiliateId="GHB",
        sellers=[{"id": "1", "name": "Lux Store", "logo": None}],
        items=[{**item("1", "A", quantity=1, selling=100, listed=100), "seller": "1"}],
    )
    payload = transaction_from_order(doc, None, CONFIG)
    metadata = payload["metadata"]
    assert {k: metadata[k] for k in ("origin", "affiliateId", "sellerId", "sellerName")} == {
        "origin": "Marketplace", "affiliateId": "GHB", "sellerId": "1", "sellerName": "Lux Store"
    }  # fmt: skip
    assert payload["products"][0]["seller"] == "1"
    two = transaction_from_order(
        order(sellers=[{"id": "1", "name": "A"}, {"id": "2", "name": "B"}]), None, CONFIG
    )
    assert "sellerId" not in two["metadata"]  # several sellers: each line names its own
