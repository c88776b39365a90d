"""VTEX records to Synerise payloads: pure functions, no I/O.

``profile_from_customer`` turns a Master Data ``CL`` document into a ``/v4/clients/batch`` item;
``transaction_from_order`` turns an OMS order (plus the buyer's ``CL`` document, for the real
e-mail) into a ``/v4/transactions/batch`` item. Input is loaded with `schemas.vtex`, output is
dumped with `schemas.synerise`. A record that cannot be sent as it is raises
`etl.errors.SkippableRecordError` with a `RejectReason`; messages name fields, never the
personal data in them.

Values are never invented: a missing or blank VTEX value is left out of the payload (a ``null``
would clear the field in Synerise), and the only transformations are the documented ones
(trimming surrounding whitespace, ``birthDate`` to a date, cents to currency units, the order
time to UTC).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from marshmallow import Schema, ValidationError

from etl.errors import SkippableRecordError
from schemas.reasons import RejectReason
from schemas.rules import (
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
from schemas.synerise import TransactionSchema
from schemas.vtex import OrderSchema, customer_schema

__all__ = [
    "CANCELED_STATUSES",
    "MappingConfig",
    "payload_hash",
    "profile_from_customer",
    "transaction_from_order",
]

CentsDivisorMode = Literal["always_100", "decimal_digits"]

CANCELED_STATUSES = frozenset({"canceled"})
"""Order statuses after which every line is flagged ``canceled`` (the final OMS state only:
``cancellation-requested`` can still be denied)."""

_TRANSACTION_METADATA_KEYS = frozenset(
    {"status", "salesChannel", "orderGroup", "coupon", "utmSource", "utmMedium", "utmCampaign"}
)

_GENDER_TO_SEX = {
    "male": Sex.MALE,
    "m": Sex.MALE,
    "female": Sex.FEMALE,
    "f": Sex.FEMALE,
    "other": Sex.OTHER,
    "not_specified": Sex.NOT_SPECIFIED,
}
"""Only unambiguous values; anything else leaves ``sex`` out rather than guessing."""

_CURRENCY_RE = re.compile(r"[A-Z]{3}")
_SALT_NAMESPACE_RE = re.compile(r"[A-Za-z0-9._-]{1,32}")
_DATE_PREFIX_RE = re.compile(r"([0-9]{4}-[0-9]{2}-[0-9]{2})(?:[T ].*)?", re.DOTALL)
_ORDER_TIME_RE = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[T ]([0-9]{2}):([0-9]{2}):([0-9]{2})"
    r"(?:[.,]([0-9]+))?(Z|[+-][0-9]{2}:?[0-9]{2})?",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class MappingConfig:
    """What a store configures about the mapping (``PROFILE_*`` / ``ORDER_*`` settings).

    Attributes:
        phone_fields: ``CL`` fields tried in order; the first non-blank one is the phone.
        extra_attributes: ``CL`` fields copied into the profile's ``attributes``.
        order_customer_attributes: ``CL`` fields copied into each transaction's ``metadata``.
        store_base_url: the storefront, e.g. ``https://www.example.com``, for product URLs.
        salt_namespace: prefix of every ``eventSalt``; give each VTEX account feeding the same
            Synerise workspace its own, because a salt must be unique per workspace. Changing it
            later makes every order a new transaction (duplicates), so set it once.
        cents_divisor_mode: how VTEX integer money becomes currency units; see
            `transaction_from_order`.
    """

    phone_fields: tuple[str, ...] = ("phone", "homePhone", "cellPhone", "businessPhone")
    extra_attributes: tuple[str, ...] = ()
    order_customer_attributes: tuple[str, ...] = ()
    store_base_url: str | None = None
    salt_namespace: str = "vtex"
    cents_divisor_mode: CentsDivisorMode = "always_100"

    def __post_init__(self) -> None:
        for name in ("phone_fields", "extra_attributes", "order_customer_attributes"):
            object.__setattr__(self, name, tuple(getattr(self, name)))  # lists from settings
        for name in self.extra_attributes:
            if not is_valid_attribute_name(name):
                raise ValueError(
                    f"extra_attributes: {name!r} is reserved by Synerise or has characters it"
                    " forbids in attribute names; Synerise would ignore it"
                )
        for name in self.order_customer_attributes:
            if name in _TRANSACTION_METADATA_KEYS:
                raise ValueError(
                    f"order_customer_attributes: {name!r} would overwrite the transaction"
                    f" metadata key of the same name (taken: {sorted(_TRANSACTION_METADATA_KEYS)})"
                )
        if not _SALT_NAMESPACE_RE.fullmatch(self.salt_namespace):
            raise ValueError(
                f"salt_namespace: expected 1-32 of A-Z a-z 0-9 . _ -, got {self.salt_namespace!r}"
            )
        if self.cents_divisor_mode not in ("always_100", "decimal_digits"):
            raise ValueError(
                "cents_divisor_mode: expected 'always_100' or 'decimal_digits',"
                f" got {self.cents_divisor_mode!r}"
            )
        if self.store_base_url is not None:
            if not self.store_base_url.startswith(("https://", "http://")):
                raise ValueError(
                    f"store_base_url: expected an http(s) URL, got {self.store_base_url!r}"
                )
            object.__setattr__(self, "store_base_url", self.store_base_url.rstrip("/"))

    @property
    def profile_source_fields(self) -> tuple[str, ...]:
        """The ``CL`` fields `profile_from_customer` reads (for Master Data ``_fields``)."""
        return tuple(
            dict.fromkeys(
                ("id", "userId", "email", "firstName", "lastName", *self.phone_fields,
                 "birthDate", "gender", "isNewsletterOptIn", *self.extra_attributes)
            )
        )  # fmt: skip

    @property
    def order_customer_fields(self) -> tuple[str, ...]:
        """The buyer's ``CL`` fields `transaction_from_order` reads."""
        return tuple(dict.fromkeys(("id", "userId", "email", *self.order_customer_attributes)))


_ORDER_SCHEMA = OrderSchema()
_TRANSACTION_SCHEMA = TransactionSchema()


def profile_from_customer(doc: Mapping[str, Any], config: MappingConfig) -> dict[str, Any]:
    """Map a ``CL`` document to a Synerise profile.

    Identity is ``customId`` = VTEX ``userId`` plus the e-mail. A Conversation Tracker alias is
    not an address: a hard alias counts as no e-mail, a soft one gives the real address inside.

    Raises:
        SkippableRecordError: ``INVALID_EMAIL`` / ``INVALID_PHONE`` / ``INVALID_BIRTHDATE`` when
            a present value breaks Synerise's rule (the profile is not sent at all: sending it
            without the value would look like success while losing it); ``MISSING_IDENTIFIER``
            without e-mail and ``userId``; ``MAPPING_ERROR`` for anything else unusable.
    """
    key = _record_key(doc, "id")
    data = _load(customer_schema(config.extra_attributes, config.phone_fields), doc, key)
    profile: dict[str, Any] = {}

    raw_email = _clean(data.get("email"))
    email = _real_email(raw_email)
    if raw_email is not None and email is None and not is_masked_vtex_email(raw_email):
        raise SkippableRecordError(
            RejectReason.INVALID_EMAIL, "email is not an address Synerise accepts", key
        )
    if email is not None:
        profile["email"] = email
    custom_id = _custom_id(data.get("userId"), "userId", key)
    if custom_id is not None:
        profile["customId"] = custom_id
    if not profile:
        raise SkippableRecordError(
            RejectReason.MISSING_IDENTIFIER, "no usable email and no userId", key
        )

    for name in ("firstName", "lastName"):
        text = _free_text(data.get(name), name, key)
        if text is not None:
            profile[name] = text

    for field in config.phone_fields:
        phone = _clean(data.get(field))
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

    raw_birth = _clean(data.get("birthDate"))
    if raw_birth is not None:
        match = _DATE_PREFIX_RE.fullmatch(raw_birth)
        if match is None or not is_valid_birthdate(match.group(1)):
            raise SkippableRecordError(
                RejectReason.INVALID_BIRTHDATE,
                "birthDate is not a yyyy-mm-dd date from 1900-01-01 to today",
                key,
            )
        # A birth date is a calendar date, not an instant: keep the written date, whatever
        # the time or offset after it.
        profile["birthDate"] = match.group(1)

    gender = _clean(data.get("gender"))
    sex = _GENDER_TO_SEX.get(gender.lower()) if gender is not None else None
    if sex is not None:
        profile["sex"] = sex.value

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


def transaction_from_order(
    order: Mapping[str, Any],
    customer: Mapping[str, Any] | None,
    config: MappingConfig,
    status_override: str | None = None,
) -> dict[str, Any]:
    """Map an OMS order to a Synerise transaction that a later resend overwrites.

    Identity: ``client.customId`` = ``clientProfileData.userProfileId`` (else the ``CL``
    ``userId``); ``client.email`` = the first usable of the ``CL`` e-mail and the order's
    e-mail, where a soft Conversation Tracker alias yields the real address inside and a hard
    alias is never used (it expires and would create junk profiles).

    Overwrite, not duplicate (Synerise API reference §3.3): ``eventSalt`` is
    ``{salt_namespace}:order:{orderId}`` and ``recordedAt`` is the creation time, both the same
    string on every run, and lines keep VTEX's order (each ``product.buy`` event is keyed by its
    position). A line removed from the order (quantity 0) stays in place with ``canceled: true``;
    when the order is canceled every line is flagged and ``metadata.status`` says so (§3.4).

    Money: VTEX amounts are integers in minor units. ``cents_divisor_mode="always_100"`` (the
    default) divides by 100: VTEX documents every amount as "in cents" and WoowUp's production
    connector divides by 100 for all stores. Whether a zero-decimal currency (CLP, JPY…) is still
    stored x100 is UNCONFIRMED (VTEX API reference §3); if a store's amounts turn out to be in
    whole units, ``"decimal_digits"`` divides by ``10 ** CurrencyDecimalDigits`` instead
    (default 2). ``revenue`` and ``value`` are the order total (``value``, gross, shipping
    included: VTEX gives no net figure), ``discountAmount`` the absolute ``Discounts`` total when
    above zero.

    Args:
        order: a Get order response.
        customer: the buyer's ``CL`` document (``config.order_customer_fields``), if any.
        config: the mapping configuration.
        status_override: the status to report when it is newer than the order body's (hook).

    Raises:
        SkippableRecordError: ``MISSING_IDENTIFIER`` when neither a usable e-mail nor a user id
            exists; ``MAPPING_ERROR`` for a missing/invalid field, negative money or currency.
    """
    data = _load(_ORDER_SCHEMA, order, _record_key(order, "orderId"))
    key = _clean(data["orderId"]) or ""
    if not key:
        raise SkippableRecordError(RejectReason.MAPPING_ERROR, "orderId is blank", _NO_KEY)
    buyer = (
        _load(customer_schema(config.order_customer_attributes), customer, key)
        if customer is not None
        else {}
    )
    profile_data = data.get("clientProfileData") or {}

    client: dict[str, Any] = {}
    custom_id = _custom_id(profile_data.get("userProfileId"), "userProfileId", key)
    if custom_id is None:
        custom_id = _custom_id(buyer.get("userId"), "userId", key)
    if custom_id is not None:
        client["customId"] = custom_id
    for candidate in (buyer.get("email"), profile_data.get("email")):
        email = _real_email(_clean(candidate))
        if email is not None:
            client["email"] = email
            break
    if not client:
        raise SkippableRecordError(
            RejectReason.MISSING_IDENTIFIER,
            "no usable email (a hard-masked VTEX alias does not count) and no userProfileId",
            key,
        )

    preferences = data.get("storePreferencesData") or {}
    currency = preferences.get("currencyCode")
    if currency is None or not _CURRENCY_RE.fullmatch(currency):
        raise SkippableRecordError(
            RejectReason.MAPPING_ERROR,
            "storePreferencesData.currencyCode is not a 3-letter ISO 4217 code",
            key,
        )
    divisor = _divisor(preferences, config, key)

    def money(cents: int | None, where: str) -> dict[str, Any]:
        if cents is None:
            raise SkippableRecordError(RejectReason.MAPPING_ERROR, f"{where} is missing", key)
        if cents < 0:
            raise SkippableRecordError(
                RejectReason.MAPPING_ERROR, f"{where} is negative; Synerise needs >= 0", key
            )
        return {"amount": cents / divisor, "currency": currency}

    status = _clean(status_override) or _clean(data.get("status"))
    order_canceled = status in CANCELED_STATUSES
    base_url = config.store_base_url or _hostname_url(_clean(data.get("hostname")))
    products = [
        _product(item, index, order_canceled, base_url, money, key)
        for index, item in enumerate(data.get("items") or ())
    ]

    total = money(data["value"], "value")
    transaction: dict[str, Any] = {
        "client": client,
        "orderId": key,
        "recordedAt": _utc_timestamp(data["creationDate"], key),
        "revenue": total,
        "value": total,
        "products": products,
        "eventSalt": f"{config.salt_namespace}:order:{key}",
    }
    discounts = data.get("discounts")
    if discounts:  # VTEX writes discounts as a negative total
        transaction["discountAmount"] = money(abs(discounts), "totals.Discounts")
    method = _payment_method(data.get("paymentData"))
    if method is not None:
        transaction["paymentInfo"] = {"method": method}

    marketing = data.get("marketingData") or {}
    metadata = {
        "status": status,
        "salesChannel": _clean(data.get("salesChannel")),
        "orderGroup": _clean(data.get("orderGroup")),
        "coupon": _clean(marketing.get("coupon")),
        "utmSource": _clean(marketing.get("utmSource")),
        "utmMedium": _clean(marketing.get("utmMedium")),
        "utmCampaign": _clean(marketing.get("utmCampaign")),
    }
    for name in config.order_customer_attributes:
        metadata[name] = buyer.get(name)
    transaction["metadata"] = metadata
    return _TRANSACTION_SCHEMA.dump(transaction)


def payload_hash(payload: Mapping[str, Any]) -> str:
    """SHA-256 of the payload's canonical JSON, so the entity ledger can skip unchanged records.

    Key order does not matter; any changed value, key or list order does.
    """
    canonical = json.dumps(
        payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


# --- helpers -----------------------------------------------------------------------------------


_NO_KEY = "?"


def _record_key(record: Any, name: str) -> str:
    """The record's key for an error, read before loading (the record may be malformed)."""
    value = record.get(name) if isinstance(record, Mapping) else None
    return str(value) if value is not None else _NO_KEY


def _load(schema: Schema, record: Any, key: str) -> dict[str, Any]:
    """Load with ``schema``; a record of the wrong shape is a ``MAPPING_ERROR``."""
    try:
        return schema.load(record)
    except ValidationError as error:
        raise SkippableRecordError(
            RejectReason.MAPPING_ERROR, _describe_errors(error.messages), key
        ) from None


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


def _clean(value: str | None) -> str | None:
    """The value without surrounding whitespace; blank counts as absent."""
    if value is None:
        return None
    value = value.strip()
    return value or None


def _real_email(value: str | None) -> str | None:
    """A sendable address from a VTEX e-mail field: the address itself, the real address in a
    soft alias, or None (absent, hard alias, or invalid)."""
    if value is None:
        return None
    if is_masked_vtex_email(value):
        value = unmask_soft_alias(value)
        if value is None:
            return None
    return value if is_valid_email(value) else None


def _custom_id(value: str | None, field: str, key: str) -> str | None:
    custom_id = _clean(value)
    if custom_id is not None and has_forbidden_identifier_chars(custom_id):
        raise SkippableRecordError(
            RejectReason.MAPPING_ERROR,
            f"{field} has characters Synerise forbids in identifiers",
            key,
        )
    return custom_id


def _free_text(value: str | None, field: str, key: str) -> str | None:
    text = _clean(value)
    if text is not None and not is_valid_free_text(text):
        raise SkippableRecordError(
            RejectReason.MAPPING_ERROR,
            f"{field} has a NUL character or only variation selectors",
            key,
        )
    return text


def _divisor(preferences: Mapping[str, Any], config: MappingConfig, key: str) -> int:
    if config.cents_divisor_mode == "always_100":
        return 100
    digits = (preferences.get("currencyFormatInfo") or {}).get("CurrencyDecimalDigits")
    if digits is None:
        return 100
    if not 0 <= digits <= 4:
        raise SkippableRecordError(
            RejectReason.MAPPING_ERROR,
            "storePreferencesData.currencyFormatInfo.CurrencyDecimalDigits is not 0-4",
            key,
        )
    return 10**digits


def _utc_timestamp(value: str, key: str) -> str:
    """VTEX's creation time as ``yyyy-mm-ddThh:mm:ss.mmmZ``: truncated (never rounded) to
    milliseconds, so the same input gives the same string on every run.

    VTEX writes 0-7 fraction digits and an offset; a time without an offset is read as UTC,
    the zone OMS documents for its dates (VTEX API reference §2).
    """
    match = _ORDER_TIME_RE.fullmatch(value.strip())
    try:
        if match is None:
            raise ValueError(value)
        year, month, day, hour, minute, second, fraction, offset = match.groups()
        moment = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second))
        if offset and offset.upper() != "Z":
            sign = -1 if offset[0] == "-" else 1
            digits = offset[1:].replace(":", "")
            moment -= sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
    except (ValueError, OverflowError):
        raise SkippableRecordError(
            RejectReason.MAPPING_ERROR, "creationDate is not an ISO 8601 date-time", key
        ) from None
    millis = (fraction or "")[:3].ljust(3, "0")
    return (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}T{moment.hour:02d}:"
        f"{moment.minute:02d}:{moment.second:02d}.{millis}Z"
    )


def _hostname_url(hostname: str | None) -> str | None:
    """``https://{hostname}`` when the order's hostname is a domain; OMS often holds just the
    account name (``luxstore``), which is no URL, and then product URLs stay relative."""
    return f"https://{hostname}" if hostname and "." in hostname else None


def _product(
    item: Mapping[str, Any],
    index: int,
    order_canceled: bool,
    base_url: str | None,
    money: Callable[[int | None, str], dict[str, Any]],
    key: str,
) -> dict[str, Any]:
    where = f"items.{index}"
    sku = _clean(item.get("id"))
    name = _clean(item.get("name"))
    quantity = item.get("quantity")
    if sku is None or name is None or quantity is None:
        raise SkippableRecordError(
            RejectReason.MAPPING_ERROR, f"{where} needs id, name and quantity", key
        )
    if quantity < 0:
        raise SkippableRecordError(RejectReason.MAPPING_ERROR, f"{where}.quantity < 0", key)
    product: dict[str, Any] = {
        "sku": sku,
        "name": name,
        "quantity": quantity,
        "finalUnitPrice": money(item.get("sellingPrice"), f"{where}.sellingPrice"),
        "canceled": order_canceled or quantity == 0,
    }
    list_price = item.get("listPrice")
    if list_price is not None:
        product["regularPrice"] = money(list_price, f"{where}.listPrice")
    info = item.get("additionalInfo") or {}
    categories = [
        category_name
        for category in info.get("categories") or ()
        if (category_name := _clean(category.get("name"))) is not None
    ]
    if categories:
        product["categories"] = categories
    detail_url = _clean(item.get("detailUrl"))
    if detail_url is not None:
        product["url"] = _join_url(base_url, detail_url)
    product["image"] = _clean(item.get("imageUrl"))
    product["productId"] = _clean(item.get("productId"))
    product["refId"] = _clean(item.get("refId"))
    product["brand"] = _clean(info.get("brandName"))
    return product


def _join_url(base_url: str | None, path: str) -> str:
    if base_url is None or path.startswith(("https://", "http://")):
        return path
    return f"{base_url}{path}" if path.startswith("/") else f"{base_url}/{path}"


def _payment_method(payment_data: Mapping[str, Any] | None) -> str | None:
    """The first payment's system name (``Visa``), else its group (``creditCard``)."""
    for transaction in (payment_data or {}).get("transactions") or ():
        for payment in transaction.get("payments") or ():
            method = _clean(payment.get("paymentSystemName")) or _clean(payment.get("group"))
            if method is not None:
                return method
    return None
