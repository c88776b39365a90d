"""Server-side validation rules of the Synerise API, as the sandbox enforces them.

These rules are written separately from the ETL's own pre-send checks (``schemas/rules.py``) on
purpose: the emulator has to catch what the client gets wrong, so the two must not share code.
Sources are in ``shared/reference/synerise-api.md`` (section numbers below).

Every validator takes the item and a *path* prefix (``"[3]"`` for item 3 of a batch, ``""`` for a
single-object endpoint) and returns `FieldError`s whose ``field`` is ``"[3].client.email"`` style.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, TypeGuard

# -- codes used in Error objects (real codes are UNCONFIRMED; the sandbox uses HTTP-like ones) ----
CODE_INVALID = 400  # the item breaks a validation rule: resending it unchanged will fail again
CODE_FAULT = 503  # rejected by fault injection (partial_reject_rate): resending may succeed

# §8 email (de-mangled OpenAPI regex). Java's \s is ASCII-only, hence re.ASCII.
EMAIL_RE = re.compile(
    r'^(([^<>()\[\]\\.,;:\s@"]+(\.[^<>()\[\]\\.,;:\s@"]+)*)|(".+"))@'
    r"((\[[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\])|(([a-zA-Z\-0-9]+\.)+[a-zA-Z]{2,}))$",
    re.ASCII,
)
# §8 phone.
PHONE_RE = re.compile(r"(^\+[0-9 \-()/]{6,19}$)|(^[0-9 \-()/]{6,20}$)")
# §8 forbidden in identifiers: astral-plane characters (surrogate pairs in Java), CR/LF, U+2028/9,
# soft hyphen, variation selectors, NUL. Lone surrogates (possible via JSON \ud800) count too.
IDENTIFIER_FORBIDDEN_RE = re.compile(
    "[\U00010000-\U0010ffff\ud800-\udfff\r\n\u2028\u2029\u00ad\ufe00-\ufe0f\u0000]"
)
# §2.2 forbidden in attribute names.
ATTRIBUTE_NAME_FORBIDDEN_RE = re.compile("[\r\n\u2028\u2029\u00ad\u0000\ufe00-\ufe0f]")
VARIATION_SELECTORS_ONLY_RE = re.compile("[\ufe00-\ufe0f]+")
BIRTHDATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)
# §3.2 SDK TimeValidator: ^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.?\d+)?(([+-]\d{2}:\d{2})|Z)?$
TIME_RE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.?\d+)?(?:([+-])(\d{2}):(\d{2})|(Z))?",
    re.ASCII,
)
# §4 custom event action.
ACTION_RE = re.compile(r"[a-zA-Z0-9.\-_]+", re.ASCII)
ACTION_MAX_LENGTH = 32
CURRENCY_RE = re.compile(r"[A-Za-z]{3}", re.ASCII)

PROFILE_IDENTIFIERS = ("email", "phone", "customId", "uuid")
PROFILE_TEXT_FIELDS = (
    "firstName",
    "lastName",
    "displayName",
    "company",
    "address",
    "city",
    "province",
    "zipCode",
    "countryCode",
    "avatarUrl",
)
SEX_VALUES = frozenset({"FEMALE", "MALE", "OTHER", "NOT_SPECIFIED"})
AGREEMENT_KEYS = frozenset({"email", "sms", "push", "webPush", "bluetooth", "rfid", "wifi"})
_AGREEMENT_VALUES: dict[Any, bool] = {"true": True, "True": True, "false": False, "False": False}
# §2.2 reserved attribute names: silently ignored (the reference's list, with the SDK additions):
# every profile field, plus these.
RESERVED_ATTRIBUTES = frozenset(
    {
        *PROFILE_IDENTIFIERS,
        *PROFILE_TEXT_FIELDS,
        "",
        "clientId",
        "birthDate",
        "sex",
        "anonymous",
        "agreements",
        "tags",
        "businessProfileId",
        "time",
        "ip",
        "source",
        "newsletter_agreement",
        "custom_identify",
        "firstname",
        "lastname",
        "created",
        "updated",
        "last_activity_date",
        "birthdate",
        "type",
        "confirmed",
        "facebookId",
        "status",
        "deletedAt",
    }
)
TRANSACTION_SOURCES = frozenset(
    {"WEB_DESKTOP", "WEB_MOBILE", "MOBILE_APP", "POS", "MOBILE", "DESKTOP"}
)
CLIENT_IDENTIFIERS = ("customId", "email", "uuid")  # plus numeric "id"
PRODUCT_MONEY_FIELDS = ("finalUnitPrice", "regularPrice", "netUnitPrice", "discountPrice")
MIN_BIRTHDATE = date(1900, 1, 1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class FieldError:
    """One rejected field; serialised as the API's ``Error`` object.

    ``kind`` says which layer found it: ``schema`` (Synerise's request models, `models`),
    ``rule`` (a rule the API enforces, refused in every mode) or ``prose`` (a documented rule the
    API does not check, refused only by a strict emulator).
    """

    field: str
    message: str
    rejected: Any = None
    code: int = CODE_INVALID
    kind: str = "rule"

    def as_json(self, index: int | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "code": self.code,
            "field": self.field,
            "message": self.message,
            "rejectedValue": rejected_text(self.rejected),
        }
        if index is not None:
            body["index"] = index
        return body


def rejected_text(value: Any) -> str:
    """``rejectedValue`` is a string in the schema; long values are cut at 200 characters."""
    text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= 200 else text[:197] + "..."


def join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def is_number(value: Any) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _member_errors(
    item: dict[str, Any], names: Iterable[str], path: str, problem: Callable[[str, Any], str | None]
) -> list[FieldError]:
    """An error for each present (not ``null``) member of ``names`` that ``problem`` objects to."""
    errors = []
    for name in names:
        value = item.get(name)
        message = None if value is None else problem(name, value)
        if message is not None:
            errors.append(FieldError(join(path, name), message, value))
    return errors


def _profile_identifier_problem(name: str, value: Any) -> str | None:
    if not isinstance(value, str):
        return f"{name} must be a string"
    if not value.strip():
        return f"{name} must not be blank"
    return _identifier_text_problem(name, value)


def _client_identifier_problem(name: str, value: Any) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return f"{name} must be a non-empty string"
    return _identifier_text_problem(name, value)


def _identifier_text_problem(name: str, value: str) -> str | None:
    if IDENTIFIER_FORBIDDEN_RE.search(value):
        return f"{name} contains a forbidden character"
    if name == "email" and not is_email(value):
        return "Invalid email address"
    if name == "phone" and PHONE_RE.fullmatch(value) is None:
        return "Invalid phone number"
    return None


def _positive_int_problem(name: str, value: Any) -> str | None:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return None
    return f"{name} must be a positive integer"


def _text_problem(name: str, value: Any) -> str | None:
    if not isinstance(value, str):
        return f"{name} must be a string"
    if "\u0000" in value:
        return f"{name} must not contain NUL"
    if VARIATION_SELECTORS_ONLY_RE.fullmatch(value):
        return f"{name} must not be only variation selectors"
    return None


def _object_errors(value: Any, field: str, name: str) -> list[FieldError]:
    """The rule of an optional object member: absent (or ``null``) or a JSON object."""
    if value is None or isinstance(value, dict):
        return []
    return [FieldError(field, f"{name} must be an object", value)]


def is_email(value: str) -> bool:
    return EMAIL_RE.fullmatch(value) is not None


def parse_time(text: str) -> datetime | None:
    """Parse an SDK-valid ISO-8601 time to an aware UTC datetime; None if invalid.

    Times without an offset are taken as UTC (the sandbox workspace's timezone).
    """
    match = TIME_RE.fullmatch(text)
    if match is None:
        return None
    year, month, day, hour, minute, second, frac, sign, off_h, off_m, _zulu = match.groups()
    digits = (frac or "").lstrip(".")
    micros = int((digits + "000000")[:6]) if digits else 0
    tz: timezone = UTC
    if sign:
        offset = timedelta(hours=int(off_h), minutes=int(off_m))
        if offset >= timedelta(hours=24):
            return None
        tz = timezone(offset if sign == "+" else -offset)
    try:
        moment = datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second), micros, tz
        )
    except ValueError:
        return None
    return moment.astimezone(UTC)


def format_time(moment: datetime) -> str:
    """UTC ISO-8601 with milliseconds and ``Z`` (the format official plugins send)."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def time_key(moment: datetime) -> int:
    """Occurrence time as epoch milliseconds: the precision at which overwrites compare times."""
    return (moment - _EPOCH) // timedelta(milliseconds=1)


# -- profiles (§2.2, §8) -----------------------------------------------------------------------
def validate_profile(item: Any, path: str) -> list[FieldError]:
    """Rules for one ``/v4/clients`` / ``/v4/clients/batch`` item."""
    if not isinstance(item, dict):
        return [FieldError(path or "body", "profile must be a JSON object", item)]
    errors = _member_errors(item, PROFILE_IDENTIFIERS, path, _profile_identifier_problem)
    errors += _member_errors(item, ("clientId",), path, _positive_int_problem)
    # Without errors every identifier given is valid: the item needs only to give one.
    if not errors and all(item.get(k) is None for k in (*PROFILE_IDENTIFIERS, "clientId")):
        errors.append(
            FieldError(
                path or "body",
                "At least one identifier is required: email, phone, customId or uuid",
                {k: item.get(k) for k in PROFILE_IDENTIFIERS if k in item},
            )
        )
    errors += _member_errors(item, PROFILE_TEXT_FIELDS, path, _text_problem)
    errors.extend(_birth_date_errors(item.get("birthDate"), join(path, "birthDate")))
    sex = item.get("sex")
    if sex is not None and sex not in SEX_VALUES:
        errors.append(
            FieldError(join(path, "sex"), f"sex must be one of {sorted(SEX_VALUES)}", sex)
        )
    errors.extend(_agreement_errors(item.get("agreements"), join(path, "agreements")))
    errors.extend(_attribute_errors(item.get("attributes"), join(path, "attributes")))
    tags = item.get("tags")
    if tags is not None and (
        not isinstance(tags, list) or not all(isinstance(t, str) for t in tags)
    ):
        errors.append(FieldError(join(path, "tags"), "tags must be an array of strings", tags))
    return errors


def _birth_date_errors(value: Any, field: str) -> list[FieldError]:
    if value is None:
        return []
    if not isinstance(value, str) or BIRTHDATE_RE.fullmatch(value) is None:
        return [FieldError(field, "birthDate must be yyyy-mm-dd", value)]
    try:
        born = date.fromisoformat(value)
    except ValueError:
        return [FieldError(field, "birthDate is not a calendar date", value)]
    if born < MIN_BIRTHDATE:
        return [FieldError(field, "birthDate must not be before 1900-01-01", value)]
    if born > datetime.now(UTC).date():
        return [FieldError(field, "birthDate must not be in the future", value)]
    return []


def agreement_value(value: Any) -> bool | None:
    """Normalise an accepted agreement value (bool, "true"/"True"/"false"/"False", 1/0)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        return _AGREEMENT_VALUES.get(value)
    return None


def _agreement_errors(value: Any, field: str) -> list[FieldError]:
    if not isinstance(value, dict):
        return _object_errors(value, field, "agreements")
    errors = []
    for key, flag in value.items():
        if key not in AGREEMENT_KEYS:
            errors.append(FieldError(f"{field}.{key}", "unknown agreement", flag))
        elif flag is not None and agreement_value(flag) is None:
            errors.append(
                FieldError(
                    f"{field}.{key}", 'agreement must be a boolean, "true"/"false" or 1/0', flag
                )
            )
    return errors


def _attribute_errors(value: Any, field: str) -> list[FieldError]:
    if not isinstance(value, dict):
        return _object_errors(value, field, "attributes")
    return [
        FieldError(f"{field}.{name}", "attribute name contains a forbidden character", name)
        for name in value
        if ATTRIBUTE_NAME_FORBIDDEN_RE.search(name)
    ]


def profile_prose_errors(item: Any, path: str) -> list[FieldError]:
    """A well-formed profile's breaches of rules the API leaves unchecked (strict mode).

    Synerise silently ignores a custom attribute with a reserved name (§2.2): the value is lost
    while the call succeeds, so a strict emulator refuses it to make the loss visible.
    """
    attributes = item.get("attributes") if isinstance(item, dict) else None
    return [
        FieldError(
            f"{join(path, 'attributes')}.{name}",
            "is a reserved name: Synerise would ignore this attribute silently",
            name,
            kind="prose",
        )
        for name in (attributes if isinstance(attributes, dict) else ())
        if name in RESERVED_ATTRIBUTES
    ]


# -- clients inside transactions and events ----------------------------------------------------
def validate_client(value: Any, field: str) -> list[FieldError]:
    """``client`` of a transaction/event: at least one of id, customId, email, uuid."""
    if not isinstance(value, dict):
        return [FieldError(field, "client is required and must be an object", value)]
    errors = _member_errors(value, CLIENT_IDENTIFIERS, field, _client_identifier_problem)
    errors += _member_errors(value, ("id",), field, _positive_int_problem)
    if not errors and all(value.get(k) is None for k in (*CLIENT_IDENTIFIERS, "id")):
        errors.append(FieldError(field, "client needs one of id, customId, email, uuid", value))
    return errors


# -- transactions (§3.2) -----------------------------------------------------------------------
def validate_transaction(
    item: Any, path: str, now: datetime
) -> tuple[list[FieldError], datetime | None]:
    """Rules for one transaction; returns the errors and the effective ``recordedAt``.

    An omitted or future ``recordedAt`` becomes ``now`` (the time the request was received).
    """
    if not isinstance(item, dict):
        return [FieldError(path or "body", "transaction must be a JSON object", item)], None
    errors = validate_client(item.get("client"), join(path, "client"))
    order_id = item.get("orderId")
    if not isinstance(order_id, str) or not order_id.strip():
        errors.append(FieldError(join(path, "orderId"), "orderId is required", order_id))
    currencies: dict[str, str] = {}
    for name in ("revenue", "value"):
        errors.extend(_money_errors(item.get(name), join(path, name), currencies, required=True))
    if item.get("discountAmount") is not None:
        errors.extend(
            _money_errors(
                item["discountAmount"], join(path, "discountAmount"), currencies, positive=True
            )
        )
    products = item.get("products")
    if not isinstance(products, list) or not products:
        errors.append(
            FieldError(join(path, "products"), "products must be a non-empty array", products)
        )
    else:
        for i, product in enumerate(products):
            errors.extend(_product_errors(product, join(path, f"products[{i}]"), currencies))
    if len(set(currencies.values())) > 1:
        errors.append(
            FieldError(
                join(path, "currency"),
                "all money values of a transaction must use one currency",
                currencies,
            )
        )
    source = item.get("source")
    if source is not None and source not in TRANSACTION_SOURCES:
        errors.append(FieldError(join(path, "source"), "unknown source", source))
    for name in ("metadata", "paymentInfo"):
        errors.extend(_object_errors(item.get(name), join(path, name), name))
    errors.extend(_salt_errors(item.get("eventSalt"), join(path, "eventSalt")))
    moment, time_errors = _occurrence(item.get("recordedAt"), join(path, "recordedAt"), now)
    errors.extend(time_errors)
    return errors, moment


def transaction_prose_errors(item: Any, path: str) -> list[FieldError]:
    """A well-formed transaction's breach of the rule the API documents but does not compute
    (§3.2): ``revenue`` = Σ ``finalUnitPrice.amount`` x ``quantity``, exactly, in decimal (the
    numbers' JSON text, so 0.1 + 0.2 is 0.3)."""
    try:
        lines = sum(
            (
                _decimal(line["finalUnitPrice"]["amount"]) * _decimal(line["quantity"])
                for line in item["products"]
            ),
            Decimal(0),
        )
        revenue = _decimal(item["revenue"]["amount"])
    except (KeyError, TypeError, ValueError):
        return []  # not well formed: the model and the rules have said so already
    if revenue == lines:
        return []
    return [
        FieldError(
            join(path, "revenue"),
            f"revenue.amount must equal the sum of finalUnitPrice.amount x quantity ({lines})",
            item["revenue"],
            kind="prose",
        )
    ]


def _decimal(number: Any) -> Decimal:
    if not is_number(number):
        raise ValueError("not a number")
    return Decimal(str(number))


def _money_errors(
    value: Any,
    field: str,
    currencies: dict[str, str],
    *,
    required: bool = False,
    positive: bool = False,
) -> list[FieldError]:
    if value is None:
        return [FieldError(field, "is required", value)] if required else []
    if not isinstance(value, dict):
        return [FieldError(field, "must be an object {amount, currency}", value)]
    errors = []
    amount = value.get("amount")
    if not is_number(amount):
        errors.append(FieldError(f"{field}.amount", "amount must be a number", amount))
    elif positive and amount <= 0:
        errors.append(FieldError(f"{field}.amount", "amount must be greater than 0", amount))
    elif amount < 0:
        errors.append(FieldError(f"{field}.amount", "amount must not be negative", amount))
    currency = value.get("currency")
    if not isinstance(currency, str) or CURRENCY_RE.fullmatch(currency) is None:
        errors.append(
            FieldError(f"{field}.currency", "currency must be a 3-letter ISO 4217 code", currency)
        )
    else:
        currencies[field] = currency.upper()
    return errors


def _product_errors(product: Any, field: str, currencies: dict[str, str]) -> list[FieldError]:
    if not isinstance(product, dict):
        return [FieldError(field, "product must be an object", product)]
    errors = []
    sku = product.get("sku")
    if not isinstance(sku, str) or not sku.strip():
        errors.append(FieldError(f"{field}.sku", "sku is required", sku))
    name = product.get("name")
    if not isinstance(name, str) or not name.strip():
        errors.append(FieldError(f"{field}.name", "name is required", name))
    for money in PRODUCT_MONEY_FIELDS:
        errors.extend(
            _money_errors(
                product.get(money),
                f"{field}.{money}",
                currencies,
                required=money == "finalUnitPrice",
            )
        )
    for number in ("quantity", "discountPercent", "tax"):
        value = product.get(number)
        if value is not None and (not is_number(value) or value < 0):
            errors.append(
                FieldError(f"{field}.{number}", f"{number} must be a non-negative number", value)
            )
    categories = product.get("categories")
    if categories is not None and (
        not isinstance(categories, list) or not all(isinstance(c, str) for c in categories)
    ):
        errors.append(
            FieldError(f"{field}.categories", "categories must be an array of strings", categories)
        )
    return errors


def _salt_errors(value: Any, field: str) -> list[FieldError]:
    if value is None or (isinstance(value, str) and value):
        return []
    return [FieldError(field, "eventSalt must be a non-empty string", value)]


def _occurrence(value: Any, field: str, now: datetime) -> tuple[datetime | None, list[FieldError]]:
    if value is None:
        return now, []
    if not isinstance(value, str):
        return None, [FieldError(field, "must be an ISO-8601 string", value)]
    moment = parse_time(value)
    if moment is None:
        return None, [FieldError(field, "must be ISO-8601 like 2024-01-31T12:00:00.000Z", value)]
    return (now if moment > now else moment), []


# -- events (§4) -------------------------------------------------------------------------------
def validate_event(item: Any, path: str, now: datetime) -> tuple[list[FieldError], datetime | None]:
    """Rules for one custom/batch event; returns errors and the effective ``time``."""
    if not isinstance(item, dict):
        return [FieldError(path or "body", "event must be a JSON object", item)], None
    errors: list[FieldError] = []
    action = item.get("action")
    if not isinstance(action, str) or ACTION_RE.fullmatch(action) is None:
        errors.append(
            FieldError(join(path, "action"), "action must match ^[a-zA-Z0-9.\\-_]+$", action)
        )
    elif len(action) > ACTION_MAX_LENGTH:
        errors.append(
            FieldError(
                join(path, "action"), f"action must be at most {ACTION_MAX_LENGTH} chars", action
            )
        )
    label = item.get("label")
    if not isinstance(label, str) or not label.strip():
        errors.append(FieldError(join(path, "label"), "label is required", label))
    errors.extend(validate_client(item.get("client"), join(path, "client")))
    errors.extend(_object_errors(item.get("params"), join(path, "params"), "params"))
    errors.extend(_salt_errors(item.get("eventSalt"), join(path, "eventSalt")))
    moment, time_errors = _occurrence(item.get("time"), join(path, "time"), now)
    errors.extend(time_errors)
    return errors, moment


# -- catalogs (§5) -----------------------------------------------------------------------------
def validate_catalog_item(item: Any, path: str) -> list[FieldError]:
    if not isinstance(item, dict):
        return [FieldError(path or "body", "item must be a JSON object", item)]
    errors = []
    key = item.get("itemKey")
    if not isinstance(key, str) or not key.strip():
        errors.append(FieldError(join(path, "itemKey"), "itemKey is required", key))
    value = item.get("value")
    if not isinstance(value, dict):
        errors.append(FieldError(join(path, "value"), "value must be an object", value))
    # Column values must be strings: the schema layer checks that (Synerise's generated client
    # types value as map<string, string>, catalogs_items_batch.json).
    return errors
