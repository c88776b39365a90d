"""VTEX buyers to Synerise profiles (``/v4/clients/batch`` items): pure functions, no I/O.

Only what Synerise's rules refuse in an *identifier* rejects a profile (an invalid e-mail or
phone, no identifier at all, a forbidden character in ``userId``): sending the profile without
it would look like success while losing the person. An unusable *optional* value (birth date,
names, sex, consent) is left out and reported as a `FieldWarning`; the profile is
still sent. Values are never invented: a missing or blank VTEX value is left out of the payload
(a ``null`` would clear the field in Synerise).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from etl.errors import SkippableRecordError
from schemas.mapping_config import MappingConfig
from schemas.reasons import RejectReason, WarningCode
from schemas.rules import Sex, is_masked_vtex_email, is_valid_birthdate, is_valid_phone
from schemas.transactions import load_order, order_client
from schemas.values import (
    Warnings,
    clean,
    custom_id,
    free_text,
    load,
    real_email,
    record_key,
    warn,
)
from schemas.vtex import customer_schema

__all__ = ["guest_profile_from_order", "profile_from_customer"]

_GENDER_TO_SEX = {
    "male": Sex.MALE,
    "m": Sex.MALE,
    "female": Sex.FEMALE,
    "f": Sex.FEMALE,
    "other": Sex.OTHER,
    "not_specified": Sex.NOT_SPECIFIED,
}
"""Only unambiguous values; anything else leaves ``sex`` out rather than guessing."""

_OPTIONAL_FIELDS = {
    "firstName": "firstName",
    "lastName": "lastName",
    "birthDate": "birthDate",
    "gender": "sex",
    "isNewsletterOptIn": "agreements.email",
}
"""``CL`` fields a profile can do without -> the Synerise field each one feeds."""

_DATE_PREFIX_RE = re.compile(r"([0-9]{4}-[0-9]{2}-[0-9]{2})(?:[T ].*)?", re.DOTALL)


def profile_from_customer(
    doc: Mapping[str, Any], config: MappingConfig, *, warnings: Warnings = None
) -> dict[str, Any]:
    """Map a ``CL`` document to a Synerise profile.

    Identity is ``customId`` = VTEX ``userId`` plus the e-mail. A Conversation Tracker alias is
    not an address: a hard alias counts as no e-mail, a soft one gives the real address inside.

    Args:
        warnings: receives a `FieldWarning` per optional field left out.

    Raises:
        SkippableRecordError: ``INVALID_EMAIL`` / ``INVALID_PHONE`` when a present value breaks
            Synerise's rule; ``MISSING_IDENTIFIER`` without e-mail and ``userId``;
            ``MAPPING_ERROR`` for an identifier or phone of the wrong shape.
    """
    key = record_key(doc, "id")
    schema = customer_schema(config.extra_attributes, config.phone_fields)
    data = load(schema, doc, key, _OPTIONAL_FIELDS, warnings)
    profile: dict[str, Any] = {}

    raw_email = clean(data.get("email"))
    email = real_email(raw_email)
    if raw_email is not None and email is None and not is_masked_vtex_email(raw_email):
        raise SkippableRecordError(
            RejectReason.INVALID_EMAIL, "email is not an address Synerise accepts", key
        )
    if email is not None:
        profile["email"] = email
    identifier = custom_id(data.get("userId"), "userId", key)
    if identifier is not None:
        profile["customId"] = identifier
    if not profile:
        raise SkippableRecordError(
            RejectReason.MISSING_IDENTIFIER, "no usable email and no userId", key
        )

    for name in ("firstName", "lastName"):
        text = free_text(data.get(name), name, name, warnings)
        if text is not None:
            profile[name] = text

    for field in config.phone_fields:
        phone = clean(data.get(field))
        if phone is not None:
            if not is_valid_phone(phone):
                raise SkippableRecordError(
                    RejectReason.INVALID_PHONE,
                    f"{field} is not a phone Synerise accepts (optional +, then 6-20 of digits,"
                    " spaces, - ( ) /)",
                    key,
                )
            profile["phone"] = phone
            break

    raw_birth = clean(data.get("birthDate"))
    if raw_birth is not None:
        match = _DATE_PREFIX_RE.fullmatch(raw_birth)
        if match is not None and is_valid_birthdate(match.group(1)):
            # A birth date is a calendar date, not an instant: keep the written date, whatever
            # the time or offset after it.
            profile["birthDate"] = match.group(1)
        else:
            warn(
                warnings,
                "birthDate",
                WarningCode.BIRTHDATE_DROPPED,
                "birthDate is not a yyyy-mm-dd date from 1900-01-01 to today; left out",
            )

    gender = clean(data.get("gender"))
    if gender is not None:
        sex = _GENDER_TO_SEX.get(gender.lower())
        if sex is not None:
            profile["sex"] = sex.value
        else:
            warn(
                warnings,
                "sex",
                WarningCode.SEX_UNMAPPED,
                "gender is none of male/m/female/f/other/not_specified; sex left out",
            )

    opt_in = data.get("isNewsletterOptIn")
    if opt_in is not None:
        profile["agreements"] = {"email": opt_in}

    attributes = {
        name: data[name] for name in config.extra_attributes if data.get(name) is not None
    }
    if attributes:
        profile["attributes"] = attributes
    # Performance (bench/customers.py): ``ProfileSchema().dump(profile)`` cost ~10 µs a record,
    # a third of this function, to return an equal dict: every value above is already the
    # type it is sent as and none is ``None``. tests/schemas/test_profile_payload.py keeps the
    # two equal over generated and dirty customers, so ProfileSchema stays the contract.
    return profile


def guest_profile_from_order(
    order: Mapping[str, Any],
    customer: Mapping[str, Any] | None,
    config: MappingConfig,
    *,
    warnings: Warnings = None,
) -> dict[str, Any] | None:
    """A minimal profile for a guest buyer, so the order's transaction has a profile to land on.

    A guest is a buyer without a Master Data ``CL`` document (``customer`` is None: none has
    ``userId`` = the order's ``userProfileId``, or the order has none). A registered buyer's
    profile comes from the customers sync instead. After Synerise's Magento plugin
    (``CustomerFromOrder``): the identifiers are exactly the transaction's ``client`` (``customId``
    = ``userProfileId``, the real e-mail, never a hard-masked alias), plus ``firstName``,
    ``lastName`` and ``phone`` from ``clientProfileData``. An unusable name or phone is left out
    with a warning: the profile exists for the transaction, which never fails because of it.

    Call it after `schemas.transactions.transaction_from_order` mapped the same order: it then
    never raises.

    Returns:
        The ``/v4/clients/batch`` item, or None for a registered buyer, when guest profiles are
        off (``SYNERISE_GUEST_PROFILES=false``), or when nothing identifies the buyer.

    Raises:
        SkippableRecordError: ``MAPPING_ERROR`` for an order the transaction mapping rejects too.
    """
    if customer is not None or not config.guest_profiles:
        return None
    data, key = load_order(order)
    profile = order_client(data, {}, key)
    if not profile:
        return None
    buyer = data.get("clientProfileData") or {}
    for name in ("firstName", "lastName"):
        text = free_text(buyer.get(name), name, f"clientProfileData.{name}", warnings)
        if text is not None:
            profile[name] = text
    phone = clean(buyer.get("phone"))
    if phone is not None:
        if is_valid_phone(phone):
            profile["phone"] = phone
        else:
            warn(
                warnings,
                "phone",
                WarningCode.PHONE_DROPPED,
                "clientProfileData.phone is not a phone Synerise accepts; left out",
            )
    return profile
