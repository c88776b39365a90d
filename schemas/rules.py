"""Synerise's own validation rules, applied before sending so a bad value is rejected with a
reason instead of being dropped or refused inside an asynchronous batch.

Regexes are Synerise's server-side ones (Synerise API reference §8, de-mangled from the Kiota
client's doc-comments). They are used with ``fullmatch`` because Python's ``$`` also matches
before a trailing newline. The VTEX Conversation Tracker helpers follow VTEX API reference §3.
"""

from __future__ import annotations

import re
from datetime import date
from enum import StrEnum

__all__ = [
    "EMAIL_RE",
    "MIN_BIRTHDATE",
    "PHONE_RE",
    "RESERVED_ATTRIBUTE_NAMES",
    "Sex",
    "has_forbidden_identifier_chars",
    "is_masked_vtex_email",
    "is_valid_attribute_name",
    "is_valid_birthdate",
    "is_valid_email",
    "is_valid_free_text",
    "is_valid_phone",
    "unmask_soft_alias",
]

EMAIL_RE = re.compile(
    r"(([^<>()\[\]\\.,;:\s@\"]+(\.[^<>()\[\]\\.,;:\s@\"]+)*)|(\".+\"))"
    r"@((\[[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\])|(([a-zA-Z\-0-9]+\.)+[a-zA-Z]{2,}))"
)
"""Synerise's e-mail rule: ASCII domain labels, TLD of 2+ letters, or an IPv4 literal."""

PHONE_RE = re.compile(r"\+[0-9 \-()/]{6,19}|[0-9 \-()/]{6,20}")
"""Synerise's phone rule: optional ``+`` then 6-19 (else 6-20) digits, spaces, ``-()/``."""

_FORBIDDEN_IDENTIFIER = re.compile(
    "[\U00010000-\U0010ffff\r\n\u2028\u2029\u00ad\ufe00-\ufe0f\x00\ud800-\udfff]"
)
# Synerise's rule names surrogate *pairs* (astral characters, e.g. emoji); a Python str holds
# those as one code point >= U+10000. Lone surrogates are added: they cannot be UTF-8 encoded.

_FORBIDDEN_ATTRIBUTE_NAME = re.compile("[\r\n\u2028\u2029\u00ad\x00\ufe00-\ufe0f]")
_VARIATION_SELECTORS_ONLY = re.compile("[\ufe00-\ufe0f]+")

_DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
MIN_BIRTHDATE = date(1900, 1, 1)

_MASK_DOMAIN = "ct.vtex.com.br"
_SOFT_ALIAS = re.compile(r"(?P<real>[^@]+@[^@]+)-[0-9]+b\.ct\.vtex\.com\.br\.?", re.IGNORECASE)

RESERVED_ATTRIBUTE_NAMES = frozenset(
    {
        "email", "clientId", "phone", "customId", "uuid", "firstName", "lastName",
        "displayName", "company", "address", "city", "province", "zipCode", "countryCode",
        "birthDate", "sex", "avatarUrl", "anonymous", "agreements", "tags", "businessProfileId",
        "time", "ip", "source", "newsletter_agreement", "custom_identify", "firstname",
        "lastname", "created", "updated", "last_activity_date", "birthdate",
        "external_avatar_url", "displayname", "receive_smses", "receive_push_messages",
        "receive_webpush_messages", "receive_btooth_messages", "receive_rfid_messages",
        "receive_wifi_messages", "confirmation_hash", "ownerId", "anonymous_type", "country_id",
        "geo_loc_city", "geo_loc_country", "geo_loc_as", "geo_loc_country_code", "geo_loc_isp",
        "geo_loc_lat", "geo_loc_lon", "geo_loc_org", "geo_loc_query", "geo_loc_region",
        "geo_loc_region_name", "geo_loc_status", "geo_loc_timezone", "geo_loc_zip",
        "club_card_id", "type", "confirmed", "facebookId", "deletedAt", "status", "",
    }
)  # fmt: skip
"""Profile attribute names Synerise ignores (php-sdk ``ProfileValidator::RESERVED_ATTRIBUTES``;
compared case-sensitively, as there)."""


class Sex(StrEnum):
    """Synerise's ``sex`` values."""

    FEMALE = "FEMALE"
    MALE = "MALE"
    OTHER = "OTHER"
    NOT_SPECIFIED = "NOT_SPECIFIED"


def is_valid_email(value: str) -> bool:
    """True when Synerise accepts ``value`` as an e-mail identifier."""
    return EMAIL_RE.fullmatch(value) is not None and not has_forbidden_identifier_chars(value)


def is_valid_phone(value: str) -> bool:
    """True when Synerise accepts ``value`` as a phone (formatting characters are allowed)."""
    return PHONE_RE.fullmatch(value) is not None


def has_forbidden_identifier_chars(value: str) -> bool:
    """True when ``value`` holds a character Synerise forbids in e-mail/phone/customId/uuid."""
    return _FORBIDDEN_IDENTIFIER.search(value) is not None


def is_valid_attribute_name(name: str) -> bool:
    """True when ``name`` can be a custom profile attribute (non-reserved, allowed characters)."""
    return name not in RESERVED_ATTRIBUTE_NAMES and _FORBIDDEN_ATTRIBUTE_NAME.search(name) is None


def is_valid_free_text(value: str) -> bool:
    """True for names, cities and the like: no NUL, and not only variation selectors."""
    return "\x00" not in value and _VARIATION_SELECTORS_ONLY.fullmatch(value) is None


def is_valid_birthdate(value: str, today: date | None = None) -> bool:
    """True for a zero-padded ``yyyy-mm-dd`` real date from 1900-01-01 up to ``today``.

    Args:
        value: the date as sent to Synerise.
        today: the upper bound (defaults to the local date, as Synerise's SDK does).
    """
    if _DATE_RE.fullmatch(value) is None:
        return False
    try:
        parsed = date.fromisoformat(value)
    except ValueError:  # e.g. 2023-02-30
        return False
    return MIN_BIRTHDATE <= parsed <= (today or date.today())


def is_masked_vtex_email(value: str) -> bool:
    """True for a VTEX Conversation Tracker alias, hard (``…@ct.vtex.com.br``) or soft
    (``real@x.com-123b.ct.vtex.com.br``): such an alias expires and must never be sent."""
    at, domain = value.rpartition("@")[1:]
    domain = domain.strip().rstrip(".").lower()
    return bool(at) and (domain == _MASK_DOMAIN or domain.endswith("." + _MASK_DOMAIN))


def unmask_soft_alias(value: str) -> str | None:
    """The real address inside a *soft* alias (``real@x.com-123b.ct.vtex.com.br``), else None.

    The result is not validated; hard aliases carry no address and give None.
    """
    match = _SOFT_ALIAS.fullmatch(value)
    return match.group("real") if match else None
