"""Marshmallow schemas for what we send to Synerise: items of ``/v4/clients/batch``,
``/v4/transactions/batch`` and ``/catalogs/bags/{id}/items/batch`` (Synerise API reference §2.2,
§3.2 and §5).

Dumping emits only fields that hold a value. Synerise reads ``null`` as "clear this field"
(§2.1), so a value VTEX does not have must be left out, never sent as ``null``.
"""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields, post_dump

__all__ = [
    "CatalogItemSchema",
    "ClientSchema",
    "Money",
    "PaymentInfoSchema",
    "ProductSchema",
    "ProfileSchema",
    "TransactionSchema",
]


class CompactDict(fields.Dict):
    """A free-form object (``attributes``, ``metadata``) without its ``None`` entries."""

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> Any:
        if value is None:
            return None
        return {key: item for key, item in value.items() if item is not None}


class _Payload(Schema):
    """Drops keys whose value is ``None`` after dumping."""

    @post_dump
    def _omit_none(self, data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        return {key: value for key, value in data.items() if value is not None}


class AgreementsSchema(_Payload):
    """Marketing consents; only the e-mail one is known from VTEX."""

    email = fields.Boolean()


class ProfileSchema(_Payload):
    """One ``/v4/clients/batch`` item (an upsert keyed by ``customId`` and/or ``email``)."""

    email = fields.String()
    customId = fields.String()
    phone = fields.String()
    firstName = fields.String()
    lastName = fields.String()
    birthDate = fields.String()
    sex = fields.String()
    agreements = fields.Nested(AgreementsSchema)
    attributes = CompactDict()


class Money(fields.Field):
    """``{amount, currency}``: an amount in currency units (not cents), an ISO 4217 code.

    A field rather than a nested schema: a transaction holds 2 + 2 per line of these, and a
    nested dump costs several times more for the same two keys.
    """

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> Any:
        if value is None:
            return None
        return {"amount": float(value["amount"]), "currency": str(value["currency"])}


class ClientSchema(_Payload):
    """Who bought: Synerise needs at least one of these identifiers."""

    customId = fields.String()
    email = fields.String()


class ProductSchema(_Payload):
    """One order line, and so one ``product.buy`` event (its position in the list matters)."""

    sku = fields.String()
    name = fields.String()
    quantity = fields.Integer()
    finalUnitPrice = Money()
    regularPrice = Money()
    categories = fields.List(fields.String())
    url = fields.String()
    image = fields.String()
    # Free-form keys Synerise stores on the product.buy event (``canceled`` only on removed lines):
    canceled = fields.Boolean()
    productId = fields.String()
    refId = fields.String()
    brand = fields.String()
    seller = fields.String()


class PaymentInfoSchema(_Payload):
    method = fields.String()


class TransactionSchema(_Payload):
    """One ``/v4/transactions/batch`` item; ``eventSalt`` + ``recordedAt`` make a resend an
    overwrite instead of a duplicate (Synerise API reference §3.3)."""

    client = fields.Nested(ClientSchema)
    orderId = fields.String()
    recordedAt = fields.String()
    revenue = Money()
    value = Money()
    discountAmount = Money()
    products = fields.Nested(ProductSchema, many=True)
    paymentInfo = fields.Nested(PaymentInfoSchema)
    metadata = CompactDict()
    eventSalt = fields.String()
    source = fields.String()


class CatalogItemSchema(_Payload):
    """One ``/catalogs/bags/{catalogId}/items/batch`` item: ``itemKey`` and the row's columns.

    Synerise's generated client types ``value`` as ``map<string, string>``
    (``catalogs_items_batch.json``), so every column is text and an empty one is left out.
    """

    itemKey = fields.String(required=True)
    value = fields.Dict(keys=fields.String(), values=fields.String(), required=True)
