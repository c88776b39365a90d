"""Reading VTEX values the way every mapping does: loading with a reason, trimming, identifiers,
e-mails behind Conversation Tracker aliases, and recording a dropped field as a `FieldWarning`.

A record that cannot be sent raises `etl.errors.SkippableRecordError`; an optional value that
cannot be sent is left out and reported. Messages name fields, never the personal data in them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from marshmallow import Schema, ValidationError

from etl.errors import SkippableRecordError
from schemas.reasons import FieldWarning, RejectReason, WarningCode
from schemas.rules import (
    has_forbidden_identifier_chars,
    is_masked_vtex_email,
    is_valid_email,
    is_valid_free_text,
    unmask_soft_alias,
)

__all__ = [
    "NO_KEY",
    "Warnings",
    "clean",
    "custom_id",
    "free_text",
    "load",
    "real_email",
    "record_key",
    "warn",
]

NO_KEY = "?"
"""The key of a record whose own key cannot be read."""

Warnings = list[FieldWarning] | None
"""Where a mapping function appends its warnings; ``None`` discards them."""


def warn(warnings: Warnings, field: str, code: WarningCode, message: str) -> None:
    """Record that ``field`` was left out of the payload, and why."""
    if warnings is not None:
        warnings.append(FieldWarning(field, code, message))


def record_key(record: Any, name: str) -> str:
    """The record's key for an error, read before loading (the record may be malformed)."""
    value = record.get(name) if isinstance(record, Mapping) else None
    return str(value) if value is not None else NO_KEY


def load(
    schema: Schema,
    record: Any,
    key: str,
    optional: Mapping[str, str] | None = None,
    warnings: Warnings = None,
) -> dict[str, Any]:
    """Load ``record`` with ``schema``.

    Args:
        optional: VTEX field -> the Synerise field it feeds, for fields that may be left out: a
            value of the wrong type there is dropped with a ``WRONG_TYPE_DROPPED`` warning.

    Raises:
        SkippableRecordError: ``MAPPING_ERROR`` when any other field has the wrong shape.
    """
    try:
        data: dict[str, Any] = schema.load(record)
        return data
    except ValidationError as error:
        messages = error.messages
        dropped: dict[str, Any] = messages if isinstance(messages, dict) else {}
        if not optional or not dropped or not all(name in optional for name in dropped):
            raise SkippableRecordError(
                RejectReason.MAPPING_ERROR, _describe_errors(messages), key
            ) from None
        for name, problem in dropped.items():
            warn(
                warnings,
                optional[name],
                WarningCode.WRONG_TYPE_DROPPED,
                f"{_describe_errors(problem, name)} (wrong type); left out",
            )
        valid = error.valid_data
        return valid if isinstance(valid, dict) else {}


def _describe_errors(messages: Any, path: str = "") -> str:
    """Flatten marshmallow's nested messages to ``items.0.quantity: Not a whole number.``."""
    if isinstance(messages, dict):
        parts = [
            _describe_errors(inner, f"{path}.{name}" if path else str(name))
            for name, inner in messages.items()
        ]
        return "; ".join(parts)
    if isinstance(messages, list):
        return f"{path or 'record'}: {' '.join(str(message) for message in messages)}"
    return f"{path or 'record'}: {messages}"


def clean(value: str | None) -> str | None:
    """The value without surrounding whitespace; blank counts as absent."""
    if value is None:
        return None
    value = value.strip()
    return value or None


def real_email(value: str | None) -> str | None:
    """A sendable address from a VTEX e-mail field: the address itself, the real address in a
    soft alias, or None (absent, hard alias, or invalid)."""
    if value is None:
        return None
    if is_masked_vtex_email(value):
        value = unmask_soft_alias(value)
        if value is None:
            return None
    return value if is_valid_email(value) else None


def custom_id(value: str | None, field: str, key: str) -> str | None:
    """A ``customId`` from a VTEX user id; one Synerise would refuse rejects the record."""
    identifier = clean(value)
    if identifier is not None and has_forbidden_identifier_chars(identifier):
        raise SkippableRecordError(
            RejectReason.MAPPING_ERROR,
            f"{field} has characters Synerise forbids in identifiers",
            key,
        )
    return identifier


def free_text(value: str | None, field: str, source: str, warnings: Warnings) -> str | None:
    """A name-like value; one Synerise would refuse is left out with a ``TEXT_DROPPED`` warning.

    Args:
        field: the Synerise field; ``source`` names the VTEX field in the warning.
    """
    text = clean(value)
    if text is not None and not is_valid_free_text(text):
        warn(
            warnings,
            field,
            WarningCode.TEXT_DROPPED,
            f"{source} has a NUL character or only variation selectors; left out",
        )
        return None
    return text
