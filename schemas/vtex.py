"""Marshmallow schemas for what we read from VTEX: a Master Data ``CL`` document, an OMS order, a
Catalog SKU context and a Pricing v2 price.

Only the fields the mapping uses are declared, and unknown keys are excluded: marshmallow's
cost grows with the declared fields, not with the (large) VTEX payload. Every field allows
``null`` because VTEX sends ``null`` freely; a missing key stays missing (no defaults are
invented). Field references: VTEX API reference §3 (Get order), §5 (CL fields) and §6 (catalog,
pricing; ``catalog-api.json``'s ``GetSKUandContext``, ``pricing-api.json``'s ``Getprice``).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from functools import lru_cache
from typing import Any

from marshmallow import EXCLUDE, Schema, fields

__all__ = [
    "Amount",
    "CustomerDocumentSchema",
    "Flag",
    "Integral",
    "OrderSchema",
    "PriceSchema",
    "SkuContextSchema",
    "Text",
    "Totals",
    "customer_schema",
]


class _PassThrough(fields.Field):
    """A value that already has the loaded type is returned as is, skipping marshmallow's
    generic path (half of a field's cost; an order loads about fifty fields, more per line).

    The result is what the generic path would return: it applies only when the field has no
    validators or field-level hooks, and ``None`` only where ``None`` is allowed.
    """

    loaded_type: type

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self._plain = not (self.validators or self.pre_load or self.post_load)

    def deserialize(
        self,
        value: Any,
        attr: str | None = None,
        data: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> Any:
        if value is None and self.allow_none:
            return None
        if type(value) is self.loaded_type and self._plain:
            return value
        return super().deserialize(value, attr, data, **kwargs)


class Text(_PassThrough, fields.String):
    """A string field (see `_PassThrough`)."""

    loaded_type = str


class Integral(_PassThrough, fields.Integer):
    """A whole number (VTEX cents, quantities); ``12.0`` is accepted, ``12.5`` is an error.

    marshmallow's non-strict ``Integer`` would truncate ``12.5`` to ``12``, silently changing
    money; its strict mode would refuse a float that JSON wrote as ``12.0``.
    """

    loaded_type = int
    default_error_messages = {"invalid": "Not a whole number."}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise self.make_error("invalid")


def _text() -> Text:
    return Text(allow_none=True)


def _whole() -> Integral:
    return Integral(allow_none=True)


class _VtexSchema(Schema):
    class Meta:
        unknown = EXCLUDE


class CustomerDocumentSchema(_VtexSchema):
    """A Master Data ``CL`` document; use `customer_schema` to pass configured fields through.

    The document ``id`` and the ``createdIn``/``updatedIn`` cursors are read by the streams,
    not by the mapping, so they are not loaded here.
    """

    userId = _text()
    email = _text()
    firstName = _text()
    lastName = _text()
    phone = _text()
    homePhone = _text()
    cellPhone = _text()
    businessPhone = _text()
    birthDate = _text()
    gender = _text()
    isNewsletterOptIn = fields.Boolean(allow_none=True)


@lru_cache(maxsize=32)
def customer_schema(
    extra_fields: tuple[str, ...] = (), text_fields: tuple[str, ...] = ()
) -> CustomerDocumentSchema:
    """A shared `CustomerDocumentSchema` that also loads configured custom ``CL`` fields.

    Args:
        extra_fields: passed through unchanged (custom fields have store-defined types).
        text_fields: loaded as strings (e.g. a custom phone field); a number there is an error.

    Schemas are cached per field list: building one costs far more than loading a record.
    Names the schema already declares keep their declared type.
    """
    declared = CustomerDocumentSchema._declared_fields
    extras: dict[str, fields.Field] = {
        name: fields.Raw(allow_none=True) for name in extra_fields if name not in declared
    }
    extras.update((name, _text()) for name in text_fields if name not in declared)
    if not extras:
        return CustomerDocumentSchema()
    generated = CustomerDocumentSchema.from_dict(extras, name="CustomerDocumentWithExtras")
    return generated()  # type: ignore[return-value]  # from_dict subclasses its receiver


class CategorySchema(_VtexSchema):
    name = _text()


class ItemAdditionalInfoSchema(_VtexSchema):
    brandName = _text()
    categories = fields.Nested(CategorySchema, many=True, allow_none=True)


class OrderItemSchema(_VtexSchema):
    """One order line; prices are integer cents."""

    id = _text()
    productId = _text()
    refId = _text()
    name = _text()
    quantity = _whole()
    listPrice = _whole()
    sellingPrice = _whole()
    imageUrl = _text()
    detailUrl = _text()
    seller = _text()
    additionalInfo = fields.Nested(ItemAdditionalInfoSchema, allow_none=True)


class ChangedItemSchema(_VtexSchema):
    """An item of an order change (``itemsAdded`` / ``itemsRemoved``); ``price`` in cents."""

    id = _text()
    name = _text()
    quantity = _whole()
    price = _whole()


class OrderChangeSchema(_VtexSchema):
    """One entry of ``changesAttachment.changesData``: what one order change added and removed."""

    itemsAdded = fields.Nested(ChangedItemSchema, many=True, allow_none=True)
    itemsRemoved = fields.Nested(ChangedItemSchema, many=True, allow_none=True)


class ChangesAttachmentSchema(_VtexSchema):
    """Where OMS records order changes (VTEX API reference: Get order, ``changesAttachment``)."""

    changesData = fields.Nested(OrderChangeSchema, many=True, allow_none=True)


class Totals(fields.Field):
    """Some entries of an order's ``totals`` list, as ``{id: value}`` for the ids asked for.

    VTEX sends ``Items``, ``Discounts``, ``Shipping`` and ``Tax`` (and may add others); picking
    the wanted ones here spares loading the rest. A missing entry loads as ``None``; ids are
    assumed unique, as VTEX builds them, and a repeated one is an error rather than a guess.
    """

    default_error_messages = {
        "invalid": "Not a list of {{id, value}} objects.",
        "repeated": "Total {total_id!r} appears more than once.",
    }

    def __init__(self, total_ids: tuple[str, ...], **kwargs: Any):
        super().__init__(allow_none=True, **kwargs)
        self.total_ids = total_ids
        self._value = Integral(allow_none=True)

    def _deserialize(
        self, value: Any, attr: str | None, data: Any, **kwargs: Any
    ) -> dict[str, int | None]:
        if not isinstance(value, list) or not all(isinstance(t, Mapping) for t in value):
            raise self.make_error("invalid")
        picked: dict[str, int | None] = dict.fromkeys(self.total_ids)
        seen: set[str] = set()
        for total in value:
            total_id = total.get("id")
            if total_id not in picked:
                continue
            if total_id in seen:
                raise self.make_error("repeated", total_id=total_id)
            seen.add(total_id)
            picked[total_id] = self._value.deserialize(total.get("value"))
        return picked


class CurrencyFormatInfoSchema(_VtexSchema):
    CurrencyDecimalDigits = _whole()


class StorePreferencesSchema(_VtexSchema):
    currencyCode = _text()
    currencyFormatInfo = fields.Nested(CurrencyFormatInfoSchema, allow_none=True)


class ClientProfileSchema(_VtexSchema):
    email = _text()
    userProfileId = _text()
    firstName = _text()
    lastName = _text()
    phone = _text()


class SellerSchema(_VtexSchema):
    id = _text()
    name = _text()


class PaymentSchema(_VtexSchema):
    paymentSystemName = _text()
    group = _text()


class PaymentTransactionSchema(_VtexSchema):
    payments = fields.Nested(PaymentSchema, many=True, allow_none=True)


class PaymentDataSchema(_VtexSchema):
    transactions = fields.Nested(PaymentTransactionSchema, many=True, allow_none=True)


class MarketingDataSchema(_VtexSchema):
    utmSource = _text()
    utmMedium = _text()
    utmCampaign = _text()
    coupon = _text()


class OrderSchema(_VtexSchema):
    """An OMS Get order response: the fields a Synerise transaction is built from."""

    orderId = Text(required=True)
    creationDate = Text(required=True)
    status = _text()
    value = Integral(required=True)
    totals = Totals(("Discounts", "Shipping", "Tax"))
    items = fields.Nested(OrderItemSchema, many=True, allow_none=True)
    changesAttachment = fields.Nested(ChangesAttachmentSchema, allow_none=True)
    sellers = fields.Nested(SellerSchema, many=True, allow_none=True)
    storePreferencesData = fields.Nested(StorePreferencesSchema, allow_none=True)
    clientProfileData = fields.Nested(ClientProfileSchema, allow_none=True)
    paymentData = fields.Nested(PaymentDataSchema, allow_none=True)
    marketingData = fields.Nested(MarketingDataSchema, allow_none=True)
    salesChannel = _text()
    origin = _text()
    affiliateId = _text()
    orderGroup = _text()
    hostname = _text()


class Amount(fields.Field):
    """A price in currency units (Pricing v2 sends numbers, not cents), loaded as an exact
    ``Decimal`` of the number JSON wrote; a string or a boolean is an error, not a price."""

    default_error_messages = {"invalid": "Not a number."}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Decimal:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.make_error("invalid")
        amount = Decimal(str(value))
        if not amount.is_finite():
            raise self.make_error("invalid")
        return amount


class Flag(fields.Field):
    """A JSON boolean and nothing else: ``"yes"`` or ``1`` in an activity flag is a shape the
    mapping does not guess about (marshmallow's ``Boolean`` would read both as true)."""

    default_error_messages = {"invalid": "Not a boolean."}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise self.make_error("invalid")
        return value


class SkuImageSchema(_VtexSchema):
    ImageUrl = _text()


class SkuContextSchema(_VtexSchema):
    """A Catalog ``stockkeepingunitbyid`` answer (SKU and product context)."""

    Id = Integral(required=True)
    ProductId = _whole()
    NameComplete = _text()
    ProductName = _text()
    SkuName = _text()
    ProductDescription = _text()
    BrandName = _text()
    DetailUrl = _text()
    ImageUrl = _text()
    Images = fields.Nested(SkuImageSchema, many=True, allow_none=True)
    ProductCategoryIds = _text()
    ProductCategories = fields.Dict(keys=fields.String(), values=_text(), allow_none=True)
    SalesChannels = fields.List(_whole(), allow_none=True)
    AlternateIds = fields.Dict(
        keys=fields.String(), values=fields.Raw(allow_none=True), allow_none=True
    )
    IsActive = Flag(required=True)
    IsProductActive = Flag(allow_none=True)


class DateRangeSchema(_VtexSchema):
    from_ = Text(allow_none=True, data_key="from")
    to = _text()


class FixedPriceSchema(_VtexSchema):
    """A trade policy's fixed price; it overrides the base price there (within its dates)."""

    tradePolicyId = _text()
    value = Amount(allow_none=True)
    listPrice = Amount(allow_none=True)
    minQuantity = _whole()
    dateRange = fields.Nested(DateRangeSchema, allow_none=True)


class PriceSchema(_VtexSchema):
    """A Pricing v2 ``GET /pricing/prices/{itemId}`` answer."""

    basePrice = Amount(allow_none=True)
    listPrice = Amount(allow_none=True)
    costPrice = Amount(allow_none=True)
    markup = Amount(allow_none=True)
    fixedPrices = fields.Nested(FixedPriceSchema, many=True, allow_none=True)
