"""The webhook bodies we accept, parsed into small records, or refused with a reason (HTTP 400).

Wire formats (documented for operators in ``docs/webhooks.md``):

=============================  ==========================================================
endpoint / method              body
=============================  ==========================================================
customer trigger POST, PATCH   ``{"id": "<CL document id>"}`` (record created / changed)
customer trigger DELETE        ``{"email": "...", "userId": "...", "id": "..."}``; email or
                               userId required, ``id`` (the CL id) optional
orders hook POST               VTEX's notification ``{"Domain", "OrderId", "State",
                               "LastState", "LastChange", "CurrentChange", "Origin"}``
                               (OrderId, State, LastChange required) or the save-time ping
                               ``{"hookConfig": "ping"}``
consent POST                   ``{"customId": "...", "email": "...", "agreements":
                               {"email": true}}``; customId or email required
=============================  ==========================================================

The records are the engine's (``etl.sync.changes``): plain dataclasses of JSON values; the webhook
sends ``asdict(record)`` as the task argument and the task rebuilds it with ``Record(**args)``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from etl.sync.changes import ConsentChange, CustomerChange, CustomerDeletion, OrderNotice
from etl.sync.windows import parse_time
from schemas.rules import is_valid_email

__all__ = [
    "PayloadError",
    "is_ping",
    "parse_consent",
    "parse_customer_change",
    "parse_customer_deletion",
    "parse_json",
    "parse_order_notice",
]

MAX_ID_LENGTH = 256
MAX_EMAIL_LENGTH = 320
UNSEARCHABLE = frozenset('*"=!\'')
"""Characters a Master Data ``_where`` value cannot hold literally (wildcard, quotes, operators)."""


class PayloadError(ValueError):
    """A body we refuse; the message is the reason sent back with the 400 (no personal data)."""


def parse_json(body: bytes) -> dict[str, Any]:
    """The body as a JSON object."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, ValueError) as error:
        raise PayloadError(f"body is not valid JSON ({type(error).__name__})") from None
    if not isinstance(data, dict):
        raise PayloadError("body must be a JSON object")
    return data


def is_ping(data: Mapping[str, Any]) -> bool:
    """VTEX's hook-configuration ping, sent when the hook is saved."""
    return data.get("hookConfig") == "ping"


def parse_customer_change(data: Mapping[str, Any], change: str) -> CustomerChange:
    return CustomerChange(_text(data, "id", required=True) or "", change)


def parse_customer_deletion(data: Mapping[str, Any]) -> CustomerDeletion:
    # Taken as sent: a trigger is never retried, so an unusable address is better recorded as
    # a reject by the task than refused here (the deletion would be lost).
    email = _text(data, "email")
    user_id = _text(data, "userId")
    if email is None and user_id is None:
        raise PayloadError("a deletion needs 'email' or 'userId' to find the profile")
    return CustomerDeletion(email, user_id, _text(data, "id"))


def parse_order_notice(data: Mapping[str, Any]) -> OrderNotice:
    notice = OrderNotice(
        order_id=_text(data, "OrderId", required=True) or "",
        state=_text(data, "State", required=True) or "",
        last_change=_time(data, "LastChange", required=True) or "",
        last_state=_text(data, "LastState"),
        current_change=_time(data, "CurrentChange"),
        domain=_text(data, "Domain"),
        origin_account=_text(_object(data, "Origin"), "Account"),
    )
    return notice


def parse_consent(data: Mapping[str, Any]) -> ConsentChange:
    custom_id = _text(data, "customId")
    email = _email(data, "email")
    if custom_id is None and email is None:
        raise PayloadError("consent needs 'customId' or 'email' to find the customer")
    agreements = _object(data, "agreements")
    if "email" not in agreements:
        raise PayloadError("missing field 'agreements.email'")
    return ConsentChange(custom_id, email, _flag(agreements["email"], "agreements.email"))


# -- field readers ---------------------------------------------------------------------------


def _text(data: Mapping[str, Any], name: str, *, required: bool = False) -> str | None:
    value = data.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise PayloadError(f"missing field '{name}'")
        return None
    if not isinstance(value, str):
        raise PayloadError(f"'{name}' must be a string")
    value = value.strip()
    if len(value) > MAX_ID_LENGTH:
        raise PayloadError(f"'{name}' is longer than {MAX_ID_LENGTH} characters")
    return value


def _email(data: Mapping[str, Any], name: str) -> str | None:
    value = data.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str):
        raise PayloadError(f"'{name}' must be a string")
    value = value.strip()
    if len(value) > MAX_EMAIL_LENGTH or not is_valid_email(value):
        raise PayloadError(f"'{name}' is not an e-mail address")
    if UNSEARCHABLE.intersection(value):
        raise PayloadError(f"'{name}' has characters Master Data search cannot match (* \" = ! ')")
    return value


def _time(data: Mapping[str, Any], name: str, *, required: bool = False) -> str | None:
    value = _text(data, name, required=required)
    if value is not None:
        try:
            parse_time(value)
        except ValueError:
            raise PayloadError(f"'{name}' is not an ISO 8601 date-time") from None
    return value


def _object(data: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = data.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise PayloadError(f"'{name}' must be an object")
    return value


def _flag(value: Any, name: str) -> bool:
    """Synerise's agreement values: booleans, "true"/"false" in any case, or 1/0."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise PayloadError(f"'{name}' must be true or false")
