"""Why a record was rejected, or sent without one of its fields: small, stable code registries
(after Hightouch).

`RejectReason` codes are stored in ``rejected_record.reason`` and shown by ``sync rejects``; a
`WarningCode` names a field dropped from a record that was still sent (a `FieldWarning`).
Renaming a code orphans stored rows, so add new members instead of changing old ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = ["FieldWarning", "RejectReason", "WarningCode", "describe"]


class RejectReason(StrEnum):
    """A rejected record's reason code; ``str(reason)`` is the stored value."""

    INVALID_EMAIL = "INVALID_EMAIL"
    INVALID_PHONE = "INVALID_PHONE"
    INVALID_BIRTHDATE = "INVALID_BIRTHDATE"
    MISSING_IDENTIFIER = "MISSING_IDENTIFIER"
    MAPPING_ERROR = "MAPPING_ERROR"
    SYNERISE_REJECTED = "SYNERISE_REJECTED"
    NOT_FOUND = "NOT_FOUND"
    VETOED = "VETOED"
    ENRICHMENT_ERROR = "ENRICHMENT_ERROR"

    @property
    def description(self) -> str:
        """One line for docs and ``sync rejects``: what went wrong and what fixes it."""
        return _DESCRIPTIONS[self]


_DESCRIPTIONS: dict[RejectReason, str] = {
    RejectReason.INVALID_EMAIL: (
        "e-mail fails Synerise's address rule; fix it in VTEX Master Data, then replay"
    ),
    RejectReason.INVALID_PHONE: (
        "phone fails Synerise's rule (optional +, 6-20 digits, spaces, - ( ) /); fix it in VTEX"
    ),
    RejectReason.INVALID_BIRTHDATE: (
        "birth date is not a real yyyy-mm-dd date between 1900-01-01 and today (older runs only:"
        " such a date is now dropped with a BIRTHDATE_DROPPED warning)"
    ),
    RejectReason.MISSING_IDENTIFIER: (
        "no usable e-mail or VTEX user id to identify the Synerise profile"
    ),
    RejectReason.MAPPING_ERROR: (
        "the VTEX record has a shape or value the mapping cannot convert (see the message)"
    ),
    RejectReason.SYNERISE_REJECTED: "Synerise refused the item (its error message is kept)",
    RejectReason.NOT_FOUND: (
        "VTEX has no such record: listed but gone when its details were read, or a selected id"
        " (sync start --ids/--emails) it does not know"
    ),
    RejectReason.VETOED: "an enricher vetoed the record (its reason is the message)",
    RejectReason.ENRICHMENT_ERROR: (
        "an enricher raised, returned no dict, or left a payload that is not JSON (see the"
        " message); fix the enricher, then replay"
    ),
}


class WarningCode(StrEnum):
    """Why a field was left out of a record that was sent anyway; ``str(code)`` is stored."""

    BIRTHDATE_DROPPED = "BIRTHDATE_DROPPED"
    TEXT_DROPPED = "TEXT_DROPPED"
    WRONG_TYPE_DROPPED = "WRONG_TYPE_DROPPED"
    SEX_UNMAPPED = "SEX_UNMAPPED"
    PHONE_DROPPED = "PHONE_DROPPED"
    PAYMENT_METHOD_UNKNOWN = "PAYMENT_METHOD_UNKNOWN"

    @property
    def description(self) -> str:
        """One line for docs and ``sync rejects --warnings``: what was left out, what fixes it."""
        return _WARNING_DESCRIPTIONS[self]


_WARNING_DESCRIPTIONS: dict[WarningCode, str] = {
    WarningCode.BIRTHDATE_DROPPED: (
        "birth date is not a real yyyy-mm-dd date between 1900-01-01 and today; the profile was"
        " sent without it (fix it in VTEX Master Data)"
    ),
    WarningCode.TEXT_DROPPED: (
        "a name or attribute holds a NUL character or only variation selectors, which Synerise"
        " refuses; the record was sent without that field"
    ),
    WarningCode.WRONG_TYPE_DROPPED: (
        "an optional field has the wrong JSON type (e.g. a number where text is expected); the"
        " record was sent without it"
    ),
    WarningCode.SEX_UNMAPPED: (
        "gender is not one of male/m/female/f/other/not_specified; the profile was sent without"
        " sex rather than a guess"
    ),
    WarningCode.PHONE_DROPPED: (
        "the order's phone fails Synerise's rule; the guest profile was sent without it"
    ),
    WarningCode.PAYMENT_METHOD_UNKNOWN: (
        'the order names no payment method; paymentInfo.method was sent as "unknown"'
    ),
}


@dataclass(frozen=True, slots=True)
class FieldWarning:
    """A field left out of a sent record. The message names the field, never its value.

    Attributes:
        field: the Synerise field (``birthDate``, ``attributes.rfm``, ``paymentInfo.method``).
        code: why it was left out.
        message: one line naming the VTEX field it came from.
    """

    field: str
    code: WarningCode
    message: str


def describe(code: str) -> str:
    """Describe a stored reason or warning code; codes this version does not know are named."""
    if code in RejectReason.__members__:
        return RejectReason(code).description
    if code in WarningCode.__members__:
        return WarningCode(code).description
    return f"unknown reason code {code!r}"
