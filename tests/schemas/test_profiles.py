"""Profiles keep the person: an unusable optional field is dropped and reported, never the profile;
guest buyers get a minimal profile that their transaction lands on."""

from __future__ import annotations

from typing import Any

import pytest

from schemas.mapping import (
    FieldWarning,
    MappingConfig,
    WarningCode,
    guest_profile_from_order,
    profile_from_customer,
    transaction_from_order,
)
from schemas.reasons import RejectReason, describe
from tests.schemas.builders import HARD_ALIAS, SOFT_ALIAS, customer, order, rejected

CONFIG = MappingConfig()


def mapped(doc: dict[str, Any], config: MappingConfig = CONFIG):
    warnings: list[FieldWarning] = []
    return profile_from_customer(doc, config, warnings=warnings), warnings


# --- optional fields: dropped with a warning ---------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "field", "code", "source"),
    [
        ({"birthDate": "1990-13-01"}, "birthDate", WarningCode.BIRTHDATE_DROPPED, "birthDate"),
        ({"birthDate": "01/02/1990"}, "birthDate", WarningCode.BIRTHDATE_DROPPED, "birthDate"),
        ({"firstName": "A\x00na"}, "firstName", WarningCode.TEXT_DROPPED, "firstName"),
        ({"lastName": "\ufe0f\ufe0e"}, "lastName", WarningCode.TEXT_DROPPED, "lastName"),
        ({"firstName": 42}, "firstName", WarningCode.WRONG_TYPE_DROPPED, "firstName"),
        ({"birthDate": 19900517}, "birthDate", WarningCode.WRONG_TYPE_DROPPED, "birthDate"),
        ({"gender": "masculino"}, "sex", WarningCode.SEX_UNMAPPED, "gender"),
        ({"gender": ["f"]}, "sex", WarningCode.WRONG_TYPE_DROPPED, "gender"),
        ({"isNewsletterOptIn": "maybe"}, "agreements.email", WarningCode.WRONG_TYPE_DROPPED,
         "isNewsletterOptIn"),
    ],
)  # fmt: skip
def test_an_unusable_optional_field_is_dropped_and_reported(overrides, field, code, source):
    profile, warnings = mapped(customer(**overrides))
    (warning,) = warnings
    assert (warning.field, warning.code) == (field, code)
    assert warning.message.startswith(source)
    for value in overrides.values():
        assert str(value) not in warning.message  # the field is named, its value never
    top = field.split(".")[0]
    assert top not in profile
    assert profile["customId"] == "user-1" and profile["email"] == "ana.silva@example.com"
    clean, none = mapped(customer())
    assert none == [] and {k: v for k, v in clean.items() if k != top} == profile


def test_several_drops_are_all_reported_in_field_order():
    doc = customer(firstName="\x00", lastName="\x00", birthDate="3000-01-01", gender="x")
    profile, warnings = mapped(doc)
    assert [w.field for w in warnings] == ["firstName", "lastName", "birthDate", "sex"]
    assert set(profile) == {"email", "customId", "phone", "agreements"}


def test_warnings_are_optional_and_per_call():
    doc = customer(birthDate="1800-01-01")
    assert "birthDate" not in profile_from_customer(doc, CONFIG)  # no list: nothing kept
    first: list[FieldWarning] = []
    second: list[FieldWarning] = []
    profile_from_customer(doc, CONFIG, warnings=first)
    profile_from_customer(customer(), CONFIG, warnings=second)
    assert len(first) == 1 and second == []


@pytest.mark.parametrize(
    ("doc", "reason"),
    [
        (customer(email="ana@"), RejectReason.INVALID_EMAIL),
        (customer(phone="call me"), RejectReason.INVALID_PHONE),
        (customer(email=None, userId=None), RejectReason.MISSING_IDENTIFIER),
        (customer(email=7), RejectReason.MAPPING_ERROR),
        (customer(userId="a\nb"), RejectReason.MAPPING_ERROR),
        (customer(phone=5511987654321), RejectReason.MAPPING_ERROR),
    ],
)
def test_identifiers_and_phone_still_reject_even_with_optional_drops(doc, reason):
    doc["birthDate"] = "1800-01-01"  # a warning-only defect must not hide the rejection
    warnings: list[FieldWarning] = []
    error = rejected(profile_from_customer, doc, CONFIG, warnings=warnings)
    assert error.reason == reason


def test_every_warning_code_is_described():
    for code in WarningCode:
        assert describe(code.value) == code.description
        assert code.description and "\n" not in code.description
    assert set(WarningCode).isdisjoint(set(RejectReason))


# --- guest buyers -------------------------------------------------------------------------------


def guest_order(**profile: Any) -> dict[str, Any]:
    data = {"email": "guest@example.com", "userProfileId": "guest-7", "firstName": " Bia ",
            "lastName": "Souza", "phone": "+55 11 98888-7777"}  # fmt: skip
    data.update(profile)
    return order(clientProfileData=data)


def test_a_guest_gets_a_minimal_profile_with_the_transaction_identity():
    doc = guest_order()
    guest = guest_profile_from_order(doc, None, CONFIG)
    assert guest == {
        "customId": "guest-7",
        "email": "guest@example.com",
        "firstName": "Bia",
        "lastName": "Souza",
        "phone": "+55 11 98888-7777",
    }
    client = transaction_from_order(doc, None, CONFIG)["client"]
    assert {k: guest[k] for k in client} == client and set(client) <= set(guest)


@pytest.mark.parametrize(
    ("profile", "identity"),
    [
        ({"email": HARD_ALIAS}, {"customId": "guest-7"}),  # never the expiring alias
        ({"email": SOFT_ALIAS}, {"customId": "guest-7", "email": "rodrigo.smith@email.com"}),
        ({"userProfileId": None}, {"email": "guest@example.com"}),
        ({"userProfileId": "", "email": "not an address"}, None),
        ({"userProfileId": None, "email": HARD_ALIAS}, None),
    ],
)
def test_guest_identity_is_exactly_the_transaction_client(profile, identity):
    doc = guest_order(**profile)
    guest = guest_profile_from_order(doc, None, CONFIG)
    if identity is None:
        assert guest is None
        assert rejected(transaction_from_order, doc, None, CONFIG).reason == (
            RejectReason.MISSING_IDENTIFIER
        )
        return
    assert guest is not None
    assert {k: v for k, v in guest.items() if k in ("customId", "email")} == identity
    assert transaction_from_order(doc, None, CONFIG)["client"] == identity
    assert "ct.vtex.com.br" not in str(guest)


def test_a_registered_buyer_or_the_setting_off_gives_no_guest_profile():
    doc = guest_order()
    assert guest_profile_from_order(doc, customer(userId="guest-7"), CONFIG) is None
    off = MappingConfig(guest_profiles=False)
    assert guest_profile_from_order(doc, None, off) is None


def test_guest_fields_vtex_lacks_or_synerise_refuses_are_left_out():
    warnings: list[FieldWarning] = []
    doc = guest_order(firstName="\x00", lastName=None, phone="ramal 22")
    guest = guest_profile_from_order(doc, None, CONFIG, warnings=warnings)
    assert guest == {"customId": "guest-7", "email": "guest@example.com"}
    assert [(w.field, w.code) for w in warnings] == [
        ("firstName", WarningCode.TEXT_DROPPED),
        ("phone", WarningCode.PHONE_DROPPED),
    ]
    assert all("ramal" not in w.message for w in warnings)
    assert warnings[0].message.startswith("clientProfileData.firstName")


def test_a_malformed_order_raises_as_the_transaction_does():
    doc = order(creationDate=None)
    for call in (guest_profile_from_order, transaction_from_order):
        assert rejected(call, doc, None, CONFIG).reason == RejectReason.MAPPING_ERROR
