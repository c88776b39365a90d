"""OMS orders to Synerise transactions (``/v4/transactions/batch`` items): pure functions, no I/O.

The rules every payload follows, whatever the order (Synerise API reference §3.2-§3.3):

* ``revenue`` = ``value`` = Σ ``finalUnitPrice.amount x quantity`` over the lines, summed in
  integer minor units and divided once, so the decimal amounts sent add up exactly;
* one currency (``storePreferencesData.currencyCode``) on every amount;
* ``discountAmount`` only when above zero; ``paymentInfo`` and ``source`` always;
* ``recordedAt`` = the order's creation time and ``eventSalt`` = ``{namespace}:order:{orderId}``,
  the same on every run, and lines in a stable order, so a resend overwrites.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from etl.errors import SkippableRecordError
from schemas.mapping_config import MappingConfig
from schemas.reasons import RejectReason, WarningCode
from schemas.synerise import TransactionSchema
from schemas.values import (
    NO_KEY,
    Warnings,
    clean,
    custom_id,
    load,
    real_email,
    record_key,
    warn,
)
from schemas.vtex import OrderSchema, customer_schema

__all__ = ["UNKNOWN_PAYMENT_METHOD", "load_order", "order_client", "transaction_from_order"]

UNKNOWN_PAYMENT_METHOD = "unknown"
"""``paymentInfo.method`` when the order names no payment (Synerise requires ``paymentInfo``)."""

_CURRENCY_RE = re.compile(r"[A-Z]{3}")
_ORDER_TIME_RE = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[T ]([0-9]{2}):([0-9]{2}):([0-9]{2})"
    r"(?:[.,]([0-9]+))?(Z|[+-][0-9]{2}:?[0-9]{2})?",
    re.IGNORECASE,
)
_ORDER_SCHEMA = OrderSchema()
_TRANSACTION_SCHEMA = TransactionSchema()


def transaction_from_order(
    order: Mapping[str, Any],
    customer: Mapping[str, Any] | None,
    config: MappingConfig,
    status_override: str | None = None,
    *,
    warnings: Warnings = None,
) -> dict[str, Any]:
    """Map an OMS order to a Synerise transaction that a later resend overwrites.

    Lines: the order's ``items`` in VTEX's order (each ``product.buy`` event is keyed by its
    position), then every line that a change in ``changesAttachment`` removed and VTEX no longer
    lists, in the order the changes removed them, so the list never shrinks and no earlier event
    keeps stale data. A removed line (quantity 0 in ``items``, or gone from it) is sent with
    quantity 0 and ``canceled: true``; no other line carries ``canceled``. A canceled order keeps
    its lines: ``metadata.status`` says ``canceled``.

    Money: VTEX amounts are integers in minor units. ``cents_divisor_mode="always_100"`` (the
    default) divides by 100: VTEX documents every amount as "in cents" and WoowUp's production
    connector divides by 100 for all stores. Whether a zero-decimal currency (CLP, JPY…) is still
    stored x100 is UNCONFIRMED (VTEX API reference §3); if a store's amounts turn out to be in
    whole units, ``"decimal_digits"`` divides by ``10 ** CurrencyDecimalDigits`` instead
    (default 2). ``finalUnitPrice`` is VTEX's ``sellingPrice`` (after discounts; a tax VTEX
    charges on top, its ``Tax`` total, is not in it, so ``revenue`` is before that tax and equals
    ``value``); shipping, tax, discounts and VTEX's order total go to ``metadata``.

    Args:
        order: a Get order response.
        customer: the buyer's ``CL`` document (``config.order_customer_fields``), if any.
        config: the mapping configuration.
        status_override: the status to report when it is newer than the order body's (hook).
        warnings: receives a `FieldWarning` per field sent in a fallback form.

    Raises:
        SkippableRecordError: ``MISSING_IDENTIFIER`` when neither a usable e-mail nor a user id
            exists; ``MAPPING_ERROR`` for a missing/invalid field, negative money or currency.
    """
    data, key = load_order(order)
    buyer = (
        load(customer_schema(config.order_customer_attributes), customer, key)
        if customer is not None
        else {}
    )
    client = order_client(data, buyer, key)
    if not client:
        raise SkippableRecordError(
            RejectReason.MISSING_IDENTIFIER,
            "no usable email (a hard-masked VTEX alias does not count) and no userProfileId",
            key,
        )
    money = _Money(data, config, key)
    base_url = config.store_base_url or _hostname_url(clean(data.get("hostname")))
    items = data.get("items") or ()
    products = [_product(item, index, base_url, money, key) for index, item in enumerate(items)]
    present = {product["sku"] for product in products}
    products.extend(_removed_lines(data, present, money, key))
    revenue = money(sum(item["sellingPrice"] * item["quantity"] for item in items), "revenue")

    transaction: dict[str, Any] = {
        "client": client,
        "orderId": key,
        "recordedAt": _utc_timestamp(data["creationDate"], key),
        "revenue": revenue,
        "value": dict(revenue),
        "products": products,
        "paymentInfo": {"method": _payment_method(data.get("paymentData"), warnings)},
        "source": _source(data, config),
        "eventSalt": f"{config.salt_namespace}:order:{key}",
    }
    totals = data.get("totals") or {}
    discounts = totals.get("Discounts")
    if discounts is not None and discounts < 0:  # VTEX writes discounts as a negative total
        transaction["discountAmount"] = money(-discounts, "totals.Discounts")
    transaction["metadata"] = _metadata(data, buyer, config, status_override, totals, money)
    return _TRANSACTION_SCHEMA.dump(transaction)


def load_order(order: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
    """The order loaded with `schemas.vtex.OrderSchema`, and its key (the trimmed ``orderId``).

    Raises:
        SkippableRecordError: ``MAPPING_ERROR`` for an order of the wrong shape.
    """
    data = load(_ORDER_SCHEMA, order, record_key(order, "orderId"))
    key = clean(data["orderId"])
    if key is None:
        raise SkippableRecordError(RejectReason.MAPPING_ERROR, "orderId is blank", NO_KEY)
    return data, key


def order_client(data: Mapping[str, Any], buyer: Mapping[str, Any], key: str) -> dict[str, Any]:
    """Who bought, as a transaction's ``client`` (empty when nothing identifies the buyer).

    ``customId`` = ``clientProfileData.userProfileId`` (else the ``CL`` ``userId``); ``email`` =
    the first usable of the ``CL`` e-mail and the order's e-mail, where a soft Conversation
    Tracker alias yields the real address inside and a hard alias is never used (it expires and
    would create junk profiles).
    """
    profile_data = data.get("clientProfileData") or {}
    client: dict[str, Any] = {}
    identifier = custom_id(profile_data.get("userProfileId"), "userProfileId", key)
    if identifier is None:
        identifier = custom_id(buyer.get("userId"), "userId", key)
    if identifier is not None:
        client["customId"] = identifier
    for candidate in (buyer.get("email"), profile_data.get("email")):
        email = real_email(clean(candidate))
        if email is not None:
            client["email"] = email
            break
    return client


class _Money:
    """One order's money: integer minor units to ``{amount, currency}`` in currency units."""

    __slots__ = ("currency", "divisor", "key")

    def __init__(self, data: Mapping[str, Any], config: MappingConfig, key: str):
        preferences = data.get("storePreferencesData") or {}
        currency = preferences.get("currencyCode")
        if currency is None or not _CURRENCY_RE.fullmatch(currency):
            raise SkippableRecordError(
                RejectReason.MAPPING_ERROR,
                "storePreferencesData.currencyCode is not a 3-letter ISO 4217 code",
                key,
            )
        self.currency, self.key = currency, key
        self.divisor = _divisor(preferences, config, key)

    def __call__(self, cents: int | None, where: str) -> dict[str, Any]:
        """A Synerise money object; missing or negative money makes the order unusable."""
        if cents is None:
            raise SkippableRecordError(RejectReason.MAPPING_ERROR, f"{where} is missing", self.key)
        if cents < 0:
            raise SkippableRecordError(
                RejectReason.MAPPING_ERROR, f"{where} is negative; Synerise needs >= 0", self.key
            )
        return {"amount": cents / self.divisor, "currency": self.currency}

    def amount(self, cents: int | None) -> float | None:
        """A plain amount in currency units (for ``metadata``), signed as VTEX gives it."""
        return None if cents is None else cents / self.divisor


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


def _product(
    item: Mapping[str, Any], index: int, base_url: str | None, money: _Money, key: str
) -> dict[str, Any]:
    where = f"items.{index}"
    sku = clean(item.get("id"))
    name = clean(item.get("name"))
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
    }
    if quantity == 0:  # removed by an order change, kept in place by VTEX
        product["canceled"] = True
    list_price = item.get("listPrice")
    if list_price is not None:
        product["regularPrice"] = money(list_price, f"{where}.listPrice")
    info = item.get("additionalInfo") or {}
    categories = [
        category_name
        for category in info.get("categories") or ()
        if (category_name := clean(category.get("name"))) is not None
    ]
    if categories:
        product["categories"] = categories
    detail_url = clean(item.get("detailUrl"))
    if detail_url is not None:
        product["url"] = _join_url(base_url, detail_url)
    product["image"] = clean(item.get("imageUrl"))
    product["productId"] = clean(item.get("productId"))
    product["refId"] = clean(item.get("refId"))
    product["brand"] = clean(info.get("brandName"))
    product["seller"] = clean(item.get("seller"))
    return product


def _removed_lines(
    data: Mapping[str, Any], present: set[str], money: _Money, key: str
) -> list[dict[str, Any]]:
    """The lines order changes removed that ``items`` no longer holds (see the caller)."""
    lines: dict[str, dict[str, Any]] = {}
    changes = (data.get("changesAttachment") or {}).get("changesData") or ()
    for change_index, change in enumerate(changes):
        for item_index, removed in enumerate(change.get("itemsRemoved") or ()):
            where = f"changesAttachment.changesData.{change_index}.itemsRemoved.{item_index}"
            sku, name = clean(removed.get("id")), clean(removed.get("name"))
            if sku is None or name is None:
                raise SkippableRecordError(
                    RejectReason.MAPPING_ERROR, f"{where} needs id and name", key
                )
            if sku in present or sku in lines:
                continue
            lines[sku] = {
                "sku": sku,
                "name": name,
                "quantity": 0,
                "finalUnitPrice": money(removed.get("price"), f"{where}.price"),
                "canceled": True,
            }
    return list(lines.values())


def _metadata(
    data: Mapping[str, Any],
    buyer: Mapping[str, Any],
    config: MappingConfig,
    status_override: str | None,
    totals: Mapping[str, int | None],
    money: _Money,
) -> dict[str, Any]:
    marketing = data.get("marketingData") or {}
    sellers: list[dict[str, Any]] = data.get("sellers") or []
    seller = sellers[0] if len(sellers) == 1 else {}
    discounts = totals.get("Discounts")
    metadata = {
        "status": clean(status_override) or clean(data.get("status")),
        "salesChannel": clean(data.get("salesChannel")),
        "origin": clean(data.get("origin")),
        "affiliateId": clean(data.get("affiliateId")),
        "orderGroup": clean(data.get("orderGroup")),
        "sellerId": clean(seller.get("id")),
        "sellerName": clean(seller.get("name")),
        "coupon": clean(marketing.get("coupon")),
        "utmSource": clean(marketing.get("utmSource")),
        "utmMedium": clean(marketing.get("utmMedium")),
        "utmCampaign": clean(marketing.get("utmCampaign")),
        "orderValue": money(data["value"], "value")["amount"],
        "shipping": money.amount(totals.get("Shipping")),
        "tax": money.amount(totals.get("Tax")),
        "discounts": money.amount(None if discounts is None else -discounts),
    }
    for name in config.order_customer_attributes:
        metadata[name] = buyer.get(name)
    return metadata


def _source(data: Mapping[str, Any], config: MappingConfig) -> str:
    """The first rule whose order field equals its value, else the configured default."""
    for field, value, source in config.transaction_source_rules:
        if clean(data.get(field)) == value:
            return source
    return config.transaction_source


def _payment_method(payment_data: Mapping[str, Any] | None, warnings: Warnings) -> str:
    """The first payment's system name (``Visa``), else its group (``creditCard``), else
    `UNKNOWN_PAYMENT_METHOD` with a warning."""
    for transaction in (payment_data or {}).get("transactions") or ():
        for payment in transaction.get("payments") or ():
            method = clean(payment.get("paymentSystemName")) or clean(payment.get("group"))
            if method is not None:
                return method
    warn(
        warnings,
        "paymentInfo.method",
        WarningCode.PAYMENT_METHOD_UNKNOWN,
        "paymentData names no payment system or group; sent as 'unknown'",
    )
    return UNKNOWN_PAYMENT_METHOD


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


def _join_url(base_url: str | None, path: str) -> str:
    if base_url is None or path.startswith(("https://", "http://")):
        return path
    return f"{base_url}{path}" if path.startswith("/") else f"{base_url}/{path}"
