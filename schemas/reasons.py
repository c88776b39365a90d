"""Why a record was rejected: a small, stable registry of reason codes (after Hightouch).

The codes are stored in ``rejected_record.reason`` and shown by ``sync rejects``; renaming one
orphans stored rows, so add new members instead of changing old ones.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["RejectReason", "describe"]


class RejectReason(StrEnum):
    """A rejected record's reason code; ``str(reason)`` is the stored value."""

    INVALID_EMAIL = "INVALID_EMAIL"
    INVALID_PHONE = "INVALID_PHONE"
    INVALID_BIRTHDATE = "INVALID_BIRTHDATE"
    MISSING_IDENTIFIER = "MISSING_IDENTIFIER"
    MAPPING_ERROR = "MAPPING_ERROR"
    SYNERISE_REJECTED = "SYNERISE_REJECTED"
    NOT_FOUND = "NOT_FOUND"

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
        "birth date is not a real yyyy-mm-dd date between 1900-01-01 and today; fix it in VTEX"
    ),
    RejectReason.MISSING_IDENTIFIER: (
        "no usable e-mail or VTEX user id to identify the Synerise profile"
    ),
    RejectReason.MAPPING_ERROR: (
        "the VTEX record has a shape or value the mapping cannot convert (see the message)"
    ),
    RejectReason.SYNERISE_REJECTED: "Synerise refused the item (its error message is kept)",
    RejectReason.NOT_FOUND: "listed by VTEX but gone when its details were read",
}


def describe(code: str) -> str:
    """Describe a stored reason code; codes this version does not know are named as such."""
    try:
        return RejectReason(code).description
    except ValueError:
        return f"unknown reason code {code!r}"
