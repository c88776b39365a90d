"""Synerise validation rules (Synerise API reference §8) and VTEX alias helpers (VTEX §3)."""

from __future__ import annotations

from datetime import date

import pytest

from schemas.reasons import RejectReason, describe
from schemas.rules import (
    RESERVED_ATTRIBUTE_NAMES,
    Sex,
    has_forbidden_identifier_chars,
    is_masked_vtex_email,
    is_valid_attribute_name,
    is_valid_birthdate,
    is_valid_email,
    is_valid_free_text,
    is_valid_phone,
    unmask_soft_alias,
)


@pytest.mark.parametrize(
    "phone",
    [
        "+5511987654321",  # E.164
        "+55 (11) 98765-4321",  # VTEX style with formatting, 18 after the +
        "+" + "1" * 19,  # longest with +
        "1" * 20,  # longest without +
        "123456",  # shortest without +
        "+123456",  # shortest with +
        "(11) 3333/4444",
    ],
)
def test_phone_accepted(phone):
    assert is_valid_phone(phone)


@pytest.mark.parametrize(
    "phone",
    [
        "+55 11 9876A-4321",  # a letter
        "+" + "1" * 20,  # too long after +
        "1" * 21,  # too long
        "12345",  # too short
        "+12345",
        "++5511987654321",
        "55+11987654321",  # + only in front
        "+5511987654321\n",  # $ would accept this; fullmatch must not
        "+55.11.98765.4321",
        "+5511987654321 ext 2",
        "",
    ],
)
def test_phone_rejected(phone):
    assert not is_valid_phone(phone)


@pytest.mark.parametrize(
    "email",
    [
        "john@example.com",
        "john.doe+tag@mail.example.co.uk",
        "john@[192.168.0.1]",  # IP literal
        "joão@example.com",  # the server rule allows non-ASCII local parts
        '"john doe"@example.com',  # quoted local part
        "o'brien@example-shop.com.br",
        "UPPER@EXAMPLE.COM",
    ],
)
def test_email_accepted(email):
    assert is_valid_email(email)


@pytest.mark.parametrize(
    "email",
    [
        "john@exämple.com",  # unicode domain
        "john@例え.jp",
        "john@example",  # no TLD
        "john@example.c",  # one-letter TLD
        "john@example.123",
        "john..doe@example.com",
        ".john@example.com",
        "john@@example.com",
        "john doe@example.com",
        "john@exa mple.com",
        "john@example.com\n",
        "@example.com",
        "john@",
        "john",
        '"😀"@example.com',  # the regex allows it, the identifier rule does not
        "john@[192.168.0.1",
    ],
)
def test_email_rejected(email):
    assert not is_valid_email(email)


@pytest.mark.parametrize(
    "value", ["a😀b", "a\rb", "a\nb", "a\u2028b", "a\u2029b", "soft\u00adhyphen", "x\ufe0f", "\x00"]
)
def test_forbidden_identifier_chars(value):
    assert has_forbidden_identifier_chars(value)


@pytest.mark.parametrize("value", ["5660c55f-714d-4b14", "ção", "a b", "名前", "tab\there"])
def test_allowed_identifier_chars(value):
    assert not has_forbidden_identifier_chars(value)


TODAY = date(2026, 11, 23)


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        ("1990-05-17", True),
        ("1900-01-01", True),
        ("2026-11-23", True),  # today
        ("1899-12-31", False),
        ("2026-11-24", False),  # future
        ("1990-5-17", False),  # not zero-padded
        ("1990-05-17T00:00:00Z", False),  # the mapping strips the time, the rule does not
        ("2023-02-30", False),
        ("2024-02-29", True),
        ("17/05/1990", False),
        ("\uff11\uff19\uff19\uff10-05-17", False),  # fullwidth digits
        ("", False),
    ],
)
def test_birthdate(value, valid):
    assert is_valid_birthdate(value, today=TODAY) is valid


def test_birthdate_defaults_to_the_real_today():
    assert is_valid_birthdate("2000-01-01")
    assert not is_valid_birthdate(f"{date.today().year + 1}-01-01")


@pytest.mark.parametrize(
    "value",
    [
        "ff2e63a9bd47441795a0d5e01cb91328@ct.vtex.com.br",  # hard
        "FF2E63@CT.VTEX.COM.BR",
        "johndoe@vtex.com.br-207700027841b.ct.vtex.com.br",  # soft
        "someone@hotmail.com-11b.ct.vtex.com.br",
        "x@ct.vtex.com.br.",
    ],
)
def test_masked_vtex_email(value):
    assert is_masked_vtex_email(value)


@pytest.mark.parametrize(
    "value", ["john@vtex.com.br", "john@notct.vtex.com.br", "ct.vtex.com.br", "john@example.com"]
)
def test_not_masked(value):
    assert not is_masked_vtex_email(value)


@pytest.mark.parametrize(
    ("alias", "real"),
    [
        ("johndoe@vtex.com.br-207700027841b.ct.vtex.com.br", "johndoe@vtex.com.br"),
        ("someone@hotmail.com-11b.ct.vtex.com.br", "someone@hotmail.com"),
        ("a@my-123.com-456B.CT.VTEX.COM.BR", "a@my-123.com"),
        ("ff2e63a1328@ct.vtex.com.br", None),  # hard alias: no address inside
        ("john@example.com", None),
        ("john@example.com-12b.example.com", None),
    ],
)
def test_unmask_soft_alias(alias, real):
    assert unmask_soft_alias(alias) == real


def test_attribute_names():
    assert is_valid_attribute_name("rfmSegment")
    assert is_valid_attribute_name("loyalty_tier")
    for reserved in ("email", "firstname", "birthDate", "status", "geo_loc_city", ""):
        assert reserved in RESERVED_ATTRIBUTE_NAMES
        assert not is_valid_attribute_name(reserved)
    assert is_valid_attribute_name("Email")  # Synerise compares case-sensitively
    assert not is_valid_attribute_name("bad\nname")
    assert not is_valid_attribute_name("bad\u00adname")


def test_free_text():
    assert is_valid_free_text("Ana María")
    assert not is_valid_free_text("Ana\x00")
    assert not is_valid_free_text("\ufe0f\ufe0e")
    assert is_valid_free_text("Ana\ufe0f")


def test_sex_values_are_synerise_names():
    assert [sex.value for sex in Sex] == ["FEMALE", "MALE", "OTHER", "NOT_SPECIFIED"]


def test_every_reason_is_described():
    assert {reason.value for reason in RejectReason} == {
        "INVALID_EMAIL", "INVALID_PHONE", "INVALID_BIRTHDATE", "MISSING_IDENTIFIER",
        "MAPPING_ERROR", "SYNERISE_REJECTED", "NOT_FOUND", "VETOED", "ENRICHMENT_ERROR",
    }  # fmt: skip
    for reason in RejectReason:
        assert str(reason) == reason.name
        assert reason.description and "\n" not in reason.description
        assert describe(reason.value) == reason.description
    assert describe("SOMETHING_NEW") == "unknown reason code 'SOMETHING_NEW'"
