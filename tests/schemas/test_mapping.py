"""VTEX → Synerise mapping: the official Get order example, identity, money, order, stability."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from schemas.mapping import (
    FieldWarning,
    MappingConfig,
    WarningCode,
    payload_hash,
    profile_from_customer,
    transaction_from_order,
)
from schemas.reasons import RejectReason
from tests.schemas.builders import (
    HARD_ALIAS,
    SOFT_ALIAS,
    customer,
    has_null,
    item,
    order,
    rejected,
)
from tests.schemas.references import response_example

FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture
def spec_order() -> dict[str, Any]:
    """The full Get order example of VTEX's OpenAPI spec (a fresh copy per test)."""
    return copy.deepcopy(response_example("/api/oms/pvt/orders/{orderId}"))


CONFIG = MappingConfig()


# --- the official example ------------------------------------------------------------------


def test_spec_example_matches_the_snapshot(spec_order):
    expected = json.loads((FIXTURES / "get_order_example_transaction.json").read_text())
    assert transaction_from_order(spec_order, None, CONFIG) == expected


def test_spec_example_fields(spec_order):
    payload = transaction_from_order(spec_order, None, CONFIG)
    assert payload["orderId"] == "1172452900788-01"
    assert payload["recordedAt"] == "2024-02-04T20:09:43.899Z"  # .899958 truncated, not rounded
    # Σ finalUnitPrice x quantity (9.90), not VTEX's total with shipping (11.60): that one is
    # in metadata, with the shipping.
    assert payload["revenue"] == payload["value"] == {"amount": 9.9, "currency": "BRL"}
    assert payload["metadata"]["orderValue"] == 11.6 and payload["metadata"]["shipping"] == 3.0
    assert "discountAmount" not in payload  # the Discounts total is 0
    assert payload["client"] == {
        "customId": "5660c55f-714d-4b14-88a7-b03e9bfbdd2y",
        "email": "rodrigo.smith@email.com",  # not an alias in this example
    }
    product, removed = payload["products"]
    assert product["sku"] == "18"
    assert product["finalUnitPrice"] == {"amount": 9.9, "currency": "BRL"}
    assert product["regularPrice"] == {"amount": 19.9, "currency": "BRL"}
    assert product["categories"] == ["Coach"]
    assert product["url"] == "/bay-max-9429485/p"  # hostname "luxstore" is no domain
    assert "canceled" not in product
    # changesAttachment removed SKU 1234568358, which items no longer lists: kept, canceled.
    assert removed == {"sku": "1234568358", "name": "Bay Max L", "quantity": 0,
                       "finalUnitPrice": {"amount": 32.9, "currency": "BRL"}, "canceled": True}
    assert payload["paymentInfo"] == {"method": "Visa"}
    assert payload["source"] == "WEB_DESKTOP"
    assert payload["metadata"]["status"] == "handling"
    assert payload["eventSalt"] == "vtex:order:1172452900788-01"
    assert not has_null(payload)


def test_spec_example_with_buyer_document(spec_order):
    buyer = {"id": "cl-1", "userId": "5660c55f-714d-4b14-88a7-b03e9bfbdd2y",
             "email": "rodrigo@real.example.com", "rfm": "gold"}  # fmt: skip
    config = MappingConfig(
        order_customer_attributes=("rfm",), store_base_url="https://shop.example/"
    )
    payload = transaction_from_order(spec_order, buyer, config)
    assert payload["client"]["email"] == "rodrigo@real.example.com"  # CL wins over the order
    assert payload["metadata"]["rfm"] == "gold"
    assert payload["products"][0]["url"] == "https://shop.example/bay-max-9429485/p"


# --- money ---------------------------------------------------------------------------------


def test_cents_become_currency_units():
    payload = transaction_from_order(order(), None, CONFIG)
    assert payload["revenue"] == {"amount": 59.8, "currency": "BRL"}
    assert payload["discountAmount"] == {"amount": 10.0, "currency": "BRL"}
    first, second = payload["products"]
    assert first["finalUnitPrice"] == {"amount": 19.9, "currency": "BRL"}
    assert first["regularPrice"] == {"amount": 24.9, "currency": "BRL"}
    assert second["finalUnitPrice"]["amount"] == 20.0


def zero_decimal_order(value: int, selling: int, digits: int | None) -> dict[str, Any]:
    info = {} if digits is None else {"CurrencyDecimalDigits": digits}
    return order(
        value=value,
        totals=[],
        items=[item("1", "Sofa", quantity=1, selling=selling, listed=selling)],
        storePreferencesData={"currencyCode": "CLP", "currencyFormatInfo": info},
    )


def test_zero_decimal_currency_default_divides_by_100():
    # VTEX documents amounts as cents; CLP 15.990 stored as 1599000.
    payload = transaction_from_order(zero_decimal_order(1599000, 1599000, 0), None, CONFIG)
    assert payload["revenue"] == {"amount": 15990.0, "currency": "CLP"}
    assert payload["products"][0]["finalUnitPrice"]["amount"] == 15990.0


def test_zero_decimal_currency_in_decimal_digits_mode():
    config = MappingConfig(cents_divisor_mode="decimal_digits")
    payload = transaction_from_order(zero_decimal_order(15990, 15990, 0), None, config)
    assert payload["revenue"] == {"amount": 15990.0, "currency": "CLP"}
    three = transaction_from_order(zero_decimal_order(1500, 1500, 3), None, config)
    assert three["revenue"]["amount"] == 1.5
    unknown = transaction_from_order(zero_decimal_order(1500, 1500, None), None, config)
    assert unknown["revenue"]["amount"] == 15.0  # digits missing: 2, as VTEX's default


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"value": -1}, "value is negative"),
        ({"value": 59.5}, "value: Not a whole number."),
        ({"value": None}, "value: Field may not be null."),
        ({"storePreferencesData": {"currencyCode": "R$"}}, "currencyCode"),
        ({"storePreferencesData": None}, "currencyCode"),
        ({"items": [item("1", "A", quantity=1, selling=-5, listed=10)]}, "items.0.sellingPrice"),
        ({"items": [{**item("1", "A", quantity=1, selling=5, listed=10), "sellingPrice": None}]},
         "items.0.sellingPrice is missing"),
        ({"items": [{**item("1", "A", quantity=1, selling=5, listed=10), "quantity": "x"}]},
         "items.0.quantity: Not a whole number."),
        ({"items": [{**item("1", "A", quantity=1, selling=5, listed=10), "id": ""}]},
         "items.0 needs id, name and quantity"),
        ({"items": "nope"}, "items"),
        ({"creationDate": "yesterday"}, "creationDate"),
        ({"creationDate": "2024-02-30T10:00:00Z"}, "creationDate"),
        ({"totals": [{"id": "Discounts", "value": -1}, {"id": "Discounts", "value": -2}]},
         "totals"),
        ({"orderId": "  "}, "orderId is blank"),
    ],
)  # fmt: skip
def test_bad_values_are_mapping_errors(overrides, fragment):
    error = rejected(transaction_from_order, order(**overrides), None, CONFIG)
    assert error.reason == RejectReason.MAPPING_ERROR
    assert fragment in error.message


def test_missing_order_id_is_a_mapping_error():
    record = order()
    del record["orderId"]
    error = rejected(transaction_from_order, record, None, CONFIG)
    assert (error.reason, error.message) == (
        RejectReason.MAPPING_ERROR,
        "orderId: Missing data for required field.",
    )
    not_a_dict = rejected(transaction_from_order, ["x"], None, CONFIG)
    assert not_a_dict.reason == RejectReason.MAPPING_ERROR


def test_whole_float_cents_are_accepted():
    payload = transaction_from_order(order(value=5980.0), None, CONFIG)
    assert payload["revenue"]["amount"] == 59.8


# --- lines ---------------------------------------------------------------------------------


def test_removed_line_keeps_its_place_flagged_canceled():
    items = [
        item("A", "First", quantity=1, selling=1000, listed=1000),
        item("B", "Removed", quantity=0, selling=500, listed=500),
        item("C", "Third", quantity=3, selling=200, listed=250),
    ]
    payload = transaction_from_order(order(items=items), None, CONFIG)
    assert [p["sku"] for p in payload["products"]] == ["A", "B", "C"]
    assert [p["quantity"] for p in payload["products"]] == [1, 0, 3]
    # ``canceled`` is on the removed line only (the old mapping sent ``canceled: false`` on
    # every other line).
    assert [p.get("canceled") for p in payload["products"]] == [None, True, None]
    assert payload["revenue"]["amount"] == 16.0  # 10.00 + 0 x 5.00 + 3 x 2.00


@pytest.mark.parametrize(
    ("status", "override", "reported"),
    [("canceled", None, "canceled"), ("invoiced", "canceled", "canceled")],
)
def test_canceled_order_keeps_its_lines_and_says_so_in_the_status(status, override, reported):
    # No item was removed, so no line is ``canceled`` (the old mapping flagged every line).
    payload = transaction_from_order(order(status=status), None, CONFIG, status_override=override)
    assert payload["metadata"]["status"] == reported
    assert not any("canceled" in p for p in payload["products"])
    assert [p["sku"] for p in payload["products"]] == ["1", "2"]
    assert payload["revenue"] == transaction_from_order(order(), None, CONFIG)["revenue"]


def test_status_override_wins():
    payload = transaction_from_order(order(), None, CONFIG, status_override="payment-approved")
    assert payload["metadata"]["status"] == "payment-approved"
    assert not any("canceled" in p for p in payload["products"])


def test_line_details():
    payload = transaction_from_order(order(), None, CONFIG)
    first = payload["products"][0]
    assert first == {
        "sku": "1",
        "name": "Blue shirt",
        "quantity": 2,
        "finalUnitPrice": {"amount": 19.9, "currency": "BRL"},
        "regularPrice": {"amount": 24.9, "currency": "BRL"},
        "categories": ["Shirts"],
        "url": "/blue-shirt/p",
        "image": "https://luxstore.vteximg.com.br/ids/1-55-55/img.jpg",
        "productId": "p1",
        "refId": "REF-1",
        "brand": "Lux",
    }


@pytest.mark.parametrize(
    ("hostname", "base", "url"),
    [
        ("luxstore", None, "/blue-shirt/p"),
        ("www.luxstore.com", None, "https://www.luxstore.com/blue-shirt/p"),
        ("www.luxstore.com", "https://shop.example", "https://shop.example/blue-shirt/p"),
        (None, None, "/blue-shirt/p"),
    ],
)
def test_product_url(hostname, base, url):
    config = MappingConfig(store_base_url=base)
    payload = transaction_from_order(order(hostname=hostname), None, config)
    assert payload["products"][0]["url"] == url


def test_payment_method_falls_back_to_group_then_to_unknown():
    group_only = {
        "transactions": [{"payments": [{"paymentSystemName": " ", "group": "creditCard"}]}]
    }
    assert transaction_from_order(order(paymentData=group_only), None, CONFIG)["paymentInfo"] == {
        "method": "creditCard"
    }
    # Synerise requires paymentInfo: the old mapping left it out here.
    for payment_data in (None, {"transactions": []}, {"transactions": [{"payments": None}]}):
        warnings: list[FieldWarning] = []
        payload = transaction_from_order(
            order(paymentData=payment_data), None, CONFIG, warnings=warnings
        )
        assert payload["paymentInfo"] == {"method": "unknown"}
        assert [(w.field, w.code) for w in warnings] == [
            ("paymentInfo.method", WarningCode.PAYMENT_METHOD_UNKNOWN)
        ]


# --- identity ------------------------------------------------------------------------------


def test_hard_masked_email_is_never_sent():
    payload = transaction_from_order(order(), None, CONFIG)
    assert payload["client"] == {"customId": "user-1"}
    assert "ct.vtex.com.br" not in json.dumps(payload)


def test_masked_email_in_cl_too():
    buyer = customer(email="x" + HARD_ALIAS)
    payload = transaction_from_order(order(), buyer, CONFIG)
    assert payload["client"] == {"customId": "user-1"}


def test_soft_alias_gives_the_real_address():
    payload = transaction_from_order(
        order(clientProfileData={"email": SOFT_ALIAS, "userProfileId": "user-1"}), None, CONFIG
    )
    assert payload["client"] == {"customId": "user-1", "email": "rodrigo.smith@email.com"}
    assert "ct.vtex.com.br" not in json.dumps(payload)


def test_real_email_comes_from_the_cl_document():
    payload = transaction_from_order(order(), customer(), CONFIG)
    assert payload["client"] == {"customId": "user-1", "email": "ana.silva@example.com"}


def test_cl_email_wins_over_a_real_order_email():
    profile = {"email": "buyer@checkout.example.com", "userProfileId": "user-1"}
    payload = transaction_from_order(order(clientProfileData=profile), customer(), CONFIG)
    assert payload["client"]["email"] == "ana.silva@example.com"
    alone = transaction_from_order(order(clientProfileData=profile), None, CONFIG)
    assert alone["client"]["email"] == "buyer@checkout.example.com"


def test_invalid_cl_email_falls_back_to_the_order():
    payload = transaction_from_order(
        order(clientProfileData={"email": SOFT_ALIAS, "userProfileId": "user-1"}),
        customer(email="not-an-address"),
        CONFIG,
    )
    assert payload["client"]["email"] == "rodrigo.smith@email.com"


def test_user_id_from_cl_when_the_order_has_none():
    payload = transaction_from_order(
        order(clientProfileData={"email": HARD_ALIAS}), customer(userId="user-9"), CONFIG
    )
    assert payload["client"] == {"customId": "user-9", "email": "ana.silva@example.com"}


def test_no_identifier_is_rejected():
    error = rejected(
        transaction_from_order, order(clientProfileData={"email": HARD_ALIAS}), None, CONFIG
    )
    assert error.reason == RejectReason.MISSING_IDENTIFIER
    assert error.key == "v502556llux-01"
    assert HARD_ALIAS not in error.message


def test_customer_attributes_go_to_metadata():
    config = MappingConfig(order_customer_attributes=("rfm", "tier"))
    payload = transaction_from_order(order(), customer(rfm="gold", tier=None), config)
    assert payload["metadata"] == {
        "status": "invoiced",
        "salesChannel": "1",
        "orderGroup": "v502556llux",
        "orderValue": 59.8,
        "shipping": 0.0,
        "discounts": 10.0,
        "rfm": "gold",
    }


def test_marketing_metadata_drops_blanks():
    marketing = {"utmSource": "fb", "utmMedium": " ", "utmCampaign": None, "coupon": "SALE10",
                 "utmiCampaign": " "}  # fmt: skip
    payload = transaction_from_order(order(marketingData=marketing), None, CONFIG)
    assert payload["metadata"] == {
        "status": "invoiced",
        "salesChannel": "1",
        "orderGroup": "v502556llux",
        "coupon": "SALE10",
        "utmSource": "fb",
        "orderValue": 59.8,
        "shipping": 0.0,
        "discounts": 10.0,
    }


# --- stability -----------------------------------------------------------------------------


def test_salt_and_recorded_at_are_stable():
    first = transaction_from_order(order(), None, CONFIG)
    later = transaction_from_order(order(status="canceled"), customer(), CONFIG)
    assert first["eventSalt"] == later["eventSalt"] == "vtex:order:v502556llux-01"
    assert first["recordedAt"] == later["recordedAt"] == "2024-02-04T20:09:43.899Z"
    namespaced = transaction_from_order(order(), None, MappingConfig(salt_namespace="store-br"))
    assert namespaced["eventSalt"] == "store-br:order:v502556llux-01"


@pytest.mark.parametrize(
    ("created", "recorded"),
    [
        ("2024-02-04T20:09:43.8999580+00:00", "2024-02-04T20:09:43.899Z"),
        ("2024-02-04T20:09:43.899958+00:00", "2024-02-04T20:09:43.899Z"),
        ("2024-02-04T17:09:43.8999-03:00", "2024-02-04T20:09:43.899Z"),
        ("2024-02-04T20:09:43Z", "2024-02-04T20:09:43.000Z"),
        ("2024-02-04T20:09:43.5Z", "2024-02-04T20:09:43.500Z"),
        ("2024-02-04T20:09:43", "2024-02-04T20:09:43.000Z"),  # OMS dates are UTC
        ("2024-12-31T23:30:00-01:00", "2025-01-01T00:30:00.000Z"),
        ("2024-03-01T01:00:00+0230", "2024-02-29T22:30:00.000Z"),
    ],
)
def test_recorded_at_is_utc_with_milliseconds(created, recorded):
    assert (
        transaction_from_order(order(creationDate=created), None, CONFIG)["recordedAt"] == recorded
    )


def test_payload_hash_is_stable_and_sensitive():
    payload = transaction_from_order(order(), None, CONFIG)
    digest = payload_hash(payload)
    assert len(digest) == 64 and int(digest, 16) >= 0
    assert payload_hash(transaction_from_order(order(), None, CONFIG)) == digest
    assert payload_hash(dict(reversed(list(payload.items())))) == digest  # key order ignored
    assert digest == payload_hash(json.loads(json.dumps(payload)))

    changed = copy.deepcopy(payload)
    changed["products"][0]["finalUnitPrice"]["amount"] = 19.91
    assert payload_hash(changed) != digest
    swapped = copy.deepcopy(payload)
    swapped["products"].reverse()
    assert payload_hash(swapped) != digest
    status = transaction_from_order(order(), None, CONFIG, status_override="canceled")
    assert payload_hash(status) != digest



def test_a_canonical_payload_is_encoded_once_and_hashes_the_same():
    from etl.synerise.batching import encode_item, split_batches
    from schemas.canonical import Canonical

    payload = transaction_from_order(order(), None, CONFIG)
    canonical = Canonical(payload)
    assert canonical == payload and json.loads(canonical.json) == payload
    # The ledger digest of a record is what it was before (a ledger written then still holds).
    assert payload_hash(canonical) == payload_hash(payload)
    assert hashlib.sha256(canonical.json).hexdigest() == payload_hash(payload)
    # What is sent is those bytes, not a second encoding.
    assert encode_item(canonical) is canonical.json
    [batch], _ = split_batches([canonical, payload], batch_size=10)
    assert batch.parts[0] is canonical.json and json.loads(batch.parts[1]) == payload

# --- profiles ------------------------------------------------------------------------------


def test_profile_from_customer():
    config = MappingConfig(extra_attributes=("rfm", "tier", "score"))
    doc = customer(rfm="gold", tier=None, score=0)
    assert profile_from_customer(doc, config) == {
        "email": "ana.silva@example.com",
        "customId": "user-1",
        "phone": "+5511987654321",
        "firstName": "Ana",
        "lastName": "Silva",
        "birthDate": "1990-05-17",
        "sex": "FEMALE",
        "agreements": {"email": True},
        "attributes": {"rfm": "gold", "score": 0},
    }


def test_profile_omits_what_vtex_lacks():
    doc = {"id": "cl-2", "userId": "user-2", "firstName": " ", "lastName": None,
           "gender": "unknown", "isNewsletterOptIn": None, "email": ""}  # fmt: skip
    assert profile_from_customer(doc, CONFIG) == {"customId": "user-2"}


def test_profile_opt_out_is_sent():
    profile = profile_from_customer(customer(isNewsletterOptIn=False), CONFIG)
    assert profile["agreements"] == {"email": False}


@pytest.mark.parametrize(
    ("gender", "sex"),
    [("male", "MALE"), ("M", "MALE"), ("Female", "FEMALE"), ("f", "FEMALE"), ("other", "OTHER"),
     ("masculino", None), ("x", None)],
)  # fmt: skip
def test_gender_to_sex(gender, sex):
    assert profile_from_customer(customer(gender=gender), CONFIG).get("sex") == sex


def test_phone_is_the_first_non_blank_field_in_order():
    doc = customer(phone="  ", homePhone=None, cellPhone="+55 (11) 91234-5678",
                   businessPhone="+551133334444")  # fmt: skip
    assert profile_from_customer(doc, CONFIG)["phone"] == "+55 (11) 91234-5678"
    business_first = MappingConfig(phone_fields=("businessPhone", "cellPhone"))
    assert profile_from_customer(doc, business_first)["phone"] == "+551133334444"
    custom_field = MappingConfig(phone_fields=("mobile", "phone"))
    assert profile_from_customer(customer(mobile="11 99999-0000"), custom_field)["phone"] == (
        "11 99999-0000"
    )
    assert "phone" not in profile_from_customer(customer(phone=None), CONFIG)


def test_invalid_phone_rejects_the_profile():
    doc = customer(phone="call me", cellPhone="+5511987654321")
    error = rejected(profile_from_customer, doc, CONFIG)
    assert (error.reason, error.key) == (RejectReason.INVALID_PHONE, "cl-doc-1")
    assert "phone" in error.message and "call me" not in error.message


@pytest.mark.parametrize("email", ["ana@", "ana silva@example.com", "ana@exämple.com"])
def test_invalid_email_rejects_the_profile(email):
    error = rejected(profile_from_customer, customer(email=email), CONFIG)
    assert error.reason == RejectReason.INVALID_EMAIL
    assert email not in error.message


def test_masked_email_in_cl_counts_as_absent():
    assert "email" not in profile_from_customer(customer(email=HARD_ALIAS), CONFIG)
    assert profile_from_customer(customer(email=SOFT_ALIAS), CONFIG)["email"] == (
        "rodrigo.smith@email.com"
    )
    error = rejected(profile_from_customer, customer(email=HARD_ALIAS, userId=None), CONFIG)
    assert error.reason == RejectReason.MISSING_IDENTIFIER


def test_profile_without_identifier_is_rejected():
    error = rejected(profile_from_customer, customer(email=None, userId=" "), CONFIG)
    assert error.reason == RejectReason.MISSING_IDENTIFIER


@pytest.mark.parametrize(
    ("raw", "sent"),
    [("1990-05-17T00:00:00Z", "1990-05-17"), ("1990-05-17", "1990-05-17"),
     ("1990-05-17T00:00:00", "1990-05-17"), ("1990-05-17T21:00:00-03:00", "1990-05-17")],
)  # fmt: skip
def test_birthdate_is_normalised(raw, sent):
    assert profile_from_customer(customer(birthDate=raw), CONFIG)["birthDate"] == sent


@pytest.mark.parametrize("raw", ["1850-01-01", "3000-01-01", "17/05/1990", "1990-02-30T00:00:00Z"])
def test_invalid_birthdate_is_dropped_with_a_warning(raw):
    # The seed skips only profiles with an invalid e-mail or phone: the old mapping rejected
    # the whole profile (INVALID_BIRTHDATE) and lost the person.
    warnings: list[FieldWarning] = []
    profile = profile_from_customer(customer(birthDate=raw), CONFIG, warnings=warnings)
    assert "birthDate" not in profile
    assert profile["email"] == "ana.silva@example.com" and profile["phone"]
    (warning,) = warnings
    assert (warning.field, warning.code) == ("birthDate", WarningCode.BIRTHDATE_DROPPED)
    assert raw not in warning.message


@pytest.mark.parametrize(
    "doc",
    [customer(userId="user\n1"), customer(email=42), customer(phone=5511987654321),
     customer(phone=None, mobile=5511987654321)],
)  # fmt: skip
def test_unusable_values_are_mapping_errors(doc):
    config = MappingConfig(phone_fields=("phone", "mobile"))
    assert rejected(profile_from_customer, doc, config).reason == RejectReason.MAPPING_ERROR


def test_payloads_never_hold_null():
    doc = {key: None for key in customer()} | {"userId": "u"}
    assert profile_from_customer(doc, CONFIG) == {"customId": "u"}
    sparse = order(items=[{"id": "1", "name": "A", "quantity": 1, "sellingPrice": 100,
                           "listPrice": None, "additionalInfo": None}],
                   totals=None, salesChannel=None, orderGroup=None, hostname=None,
                   paymentData={"transactions": None})  # fmt: skip
    payload = transaction_from_order(sparse, None, CONFIG)
    assert not has_null(payload)
    (line,) = payload["products"]
    assert line == {"sku": "1", "name": "A", "quantity": 1,
                    "finalUnitPrice": {"amount": 1.0, "currency": "BRL"}}  # fmt: skip
    assert payload["paymentInfo"] == {"method": "unknown"}


# --- configuration -------------------------------------------------------------------------


def test_config_takes_lists_and_trims_the_base_url():
    config = MappingConfig(phone_fields=["cellPhone"], extra_attributes=["rfm"],  # type: ignore[arg-type]
                           store_base_url="https://shop.example/")  # fmt: skip
    assert config.phone_fields == ("cellPhone",)
    assert config.extra_attributes == ("rfm",)
    assert config.store_base_url == "https://shop.example"
    assert hash(config) == hash(MappingConfig(("cellPhone",), ("rfm",), (), "https://shop.example"))


def test_config_lists_the_fields_to_read():
    config = MappingConfig(phone_fields=("mobile", "phone"), extra_attributes=("rfm",),
                           order_customer_attributes=("tier",))  # fmt: skip
    assert config.profile_source_fields == (
        "id", "userId", "email", "firstName", "lastName", "mobile", "phone", "birthDate",
        "gender", "isNewsletterOptIn", "rfm",
    )  # fmt: skip
    assert config.order_customer_fields == ("id", "userId", "email", "tier")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"extra_attributes": ("email",)},
        {"extra_attributes": ("status",)},
        {"extra_attributes": ("bad\nname",)},
        {"order_customer_attributes": ("status",)},
        {"salt_namespace": ""},
        {"salt_namespace": "has space"},
        {"cents_divisor_mode": "sometimes"},
        {"store_base_url": "shop.example"},
    ],
)
def test_config_refuses_what_can_never_work(kwargs):
    with pytest.raises(ValueError):
        MappingConfig(**kwargs)
