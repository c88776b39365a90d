"""VTEX SKUs to Synerise catalog items (``/catalogs/bags/{id}/items/batch``): pure functions.

One item per SKU, keyed by the SKU id (``itemKey`` and the ``itemId`` column), built from the
Catalog's SKU context (``stockkeepingunitbyid``) and the SKU's Pricing v2 price. Which VTEX value
feeds which column is a table (`DEFAULT_COLUMNS`, changed with ``CATALOG_COLUMNS``; the table
and every rule are in ``docs/mapping.md``). Rules:

* Every column is text: Synerise's generated client types an item's ``value`` as
  ``map<string, string>``. Numbers are written in full (``49.90`` for money), lists joined with
  commas, ``deleted`` is ``"1"`` or ``"0"``.
* Values are never invented: a missing or blank VTEX value leaves its column out (a SKU without
  a price has no ``price`` column, one without an image no ``image``).
* ``deleted`` is ``"1"`` when the SKU or its product is inactive; a SKU gone from VTEX becomes
  `catalog_tombstone` (its id and ``deleted: "1"``, all a sync still knows about it).
* A value of the wrong type in a field that feeds a column is left out with a
  ``WRONG_TYPE_DROPPED`` warning; a SKU whose ``Id`` or ``IsActive`` cannot be read is rejected
  with ``MAPPING_ERROR``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from marshmallow import fields

from etl.config import CATALOG_DERIVED_SOURCES, CATALOG_FIXED_COLUMNS, CatalogColumn
from etl.errors import SkippableRecordError
from schemas.reasons import RejectReason
from schemas.synerise import CatalogItemSchema
from schemas.values import Warnings, load
from schemas.vtex import PriceSchema, SkuContextSchema

if TYPE_CHECKING:
    from etl.config import Settings

__all__ = [
    "DEFAULT_COLUMNS",
    "CatalogConfig",
    "catalog_item",
    "catalog_tombstone",
    "merge_columns",
]

DEFAULT_COLUMNS: tuple[CatalogColumn, ...] = (
    ("itemId", "sku:Id"),
    ("parentId", "sku:ProductId"),
    ("title", "sku:NameComplete"),
    ("description", "sku:ProductDescription"),
    ("brand", "sku:BrandName"),
    ("url", "url"),
    ("image", "image"),
    ("categories", "categories"),
    ("price", "price"),
    ("listPrice", "listPrice"),
    ("currency", "currency"),
    ("salesChannels", "sku:SalesChannels"),
    ("refId", "sku:AlternateIds.RefId"),
    ("ean", "sku:AlternateIds.Ean"),
    ("deleted", "deleted"),
)
"""``(column, source)``: the catalog row of a SKU unless ``CATALOG_COLUMNS`` changes it."""

_CENT = Decimal("0.01")
_ITEM_SCHEMA = CatalogItemSchema()
_PRICE_SCHEMA = PriceSchema()
_PRICE_OPTIONAL = {name: "price" for name in PriceSchema._declared_fields}


def merge_columns(changes: Sequence[CatalogColumn]) -> tuple[CatalogColumn, ...]:
    """The default table with ``CATALOG_COLUMNS`` changes applied: a known column gets the new
    source (an empty one drops it), a new column is added at the end.

    Raises:
        ValueError: a change touches ``itemId`` or ``deleted``, or names an unknown source.
    """
    table = dict(DEFAULT_COLUMNS)
    for column, source in changes:
        if column in CATALOG_FIXED_COLUMNS:
            raise ValueError(f"catalog column {column!r} cannot be changed")
        if (
            source
            and source not in CATALOG_DERIVED_SOURCES
            and not source.startswith(("sku:", "price:"))
        ):
            raise ValueError(f"catalog column {column!r}: unknown source {source!r}")
        if source:
            table[column] = source
        else:
            table.pop(column, None)
    return tuple(table.items())


@dataclass(frozen=True)
class CatalogConfig:
    """What a store configures about its catalog items.

    Attributes:
        columns: ``(column, source)`` pairs, `DEFAULT_COLUMNS` by default (`merge_columns`).
        store_base_url: the storefront (``STORE_BASE_URL``) that makes ``DetailUrl`` absolute.
        trade_policy: the trade policy whose fixed price, when one applies, is the ``price``.
    """

    columns: tuple[CatalogColumn, ...] = DEFAULT_COLUMNS
    store_base_url: str | None = None
    trade_policy: str = "1"

    def __post_init__(self) -> None:
        object.__setattr__(self, "columns", tuple(map(tuple, self.columns)))
        names = [column for column, _ in self.columns]
        if len(set(names)) != len(names):
            raise ValueError("catalog columns: each column once")
        for column in CATALOG_FIXED_COLUMNS:
            if dict(self.columns).get(column) != dict(DEFAULT_COLUMNS)[column]:
                raise ValueError(f"catalog columns: {column!r} must keep its default source")
        if self.store_base_url is not None:
            object.__setattr__(self, "store_base_url", self.store_base_url.rstrip("/"))

    @classmethod
    def from_settings(cls, settings: Settings) -> CatalogConfig:
        """The catalog part of the settings; without ``STORE_BASE_URL`` product links use the
        account's ``https://{account}.myvtex.com``, which every VTEX store answers."""
        base = settings.store_base_url or (
            f"https://{settings.vtex_account}.myvtex.com" if settings.vtex_account else None
        )
        return cls(
            columns=merge_columns(settings.catalog_columns),
            store_base_url=base,
            trade_policy=settings.catalog_trade_policy,
        )

    @property
    def sku_fields(self) -> tuple[str, ...]:
        """Top-level SKU context fields the configured ``sku:`` sources read."""
        return tuple(
            dict.fromkeys(
                source[4:].split(".", 1)[0] for _, source in self.columns
                if source.startswith("sku:")
            )
        )  # fmt: skip


def catalog_item(
    sku: Mapping[str, Any],
    price: Mapping[str, Any] | None,
    config: CatalogConfig,
    *,
    key: str,
    currency: str | None = None,
    now: datetime | None = None,
    warnings: Warnings = None,
) -> dict[str, Any]:
    """A ``/catalogs/bags/{id}/items/batch`` item for a SKU.

    Args:
        sku: the SKU context (``stockkeepingunitbyid``).
        price: its Pricing v2 price, ``None`` when it has none (404).
        key: the SKU id the sync asked for (the ``itemKey``).
        currency: the trade policy's currency (``currency`` column).
        now: when fixed prices with a date range are judged (default: now).

    Raises:
        SkippableRecordError: ``MAPPING_ERROR`` when ``Id`` or ``IsActive`` cannot be read, or
            the context is of another SKU.
    """
    doc = load(sku_schema(config.sku_fields), sku, key, _sku_optional(), warnings)
    if "Id" not in doc or "IsActive" not in doc:
        raise SkippableRecordError(RejectReason.MAPPING_ERROR, "Id or IsActive missing", key)
    if str(doc["Id"]) != key:
        raise SkippableRecordError(
            RejectReason.MAPPING_ERROR, f"asked for SKU {key}, VTEX answered SKU {doc['Id']}", key
        )
    prices = load(_PRICE_SCHEMA, price, key, _PRICE_OPTIONAL, warnings) if price else None
    effective = _effective_price(prices, config.trade_policy, now or datetime.now(UTC))
    derived: dict[str, Callable[[], str | None]] = {
        "url": lambda: _url(doc.get("DetailUrl"), config.store_base_url),
        "image": lambda: _image(doc),
        "categories": lambda: _categories(doc),
        "price": lambda: _money(effective[0]),
        "listPrice": lambda: _money(effective[1]),
        "currency": lambda: currency,
        "deleted": lambda: _deleted(doc),
    }
    value: dict[str, str] = {}
    for column, source in config.columns:
        if source in derived:
            text = derived[source]()
        else:
            scope, _, path = source.partition(":")
            text = _text(_path(doc if scope == "sku" else prices or {}, path))
        if text is not None:
            value[column] = text
    return dict(_ITEM_SCHEMA.dump({"itemKey": key, "value": value}))


def catalog_tombstone(key: str) -> dict[str, Any]:
    """The item for a SKU gone from VTEX: its id and ``deleted: "1"`` (nothing else is known)."""
    return dict(_ITEM_SCHEMA.dump({"itemKey": key, "value": {"itemId": key, "deleted": "1"}}))


@lru_cache(maxsize=32)
def sku_schema(extra_fields: tuple[str, ...] = ()) -> SkuContextSchema:
    """A shared `SkuContextSchema` that also passes through the configured undeclared fields
    (store-defined shapes, read as VTEX sent them)."""
    declared = SkuContextSchema._declared_fields
    extras = {name: fields.Raw(allow_none=True) for name in extra_fields if name not in declared}
    if not extras:
        return SkuContextSchema()
    generated = SkuContextSchema.from_dict(extras, name="SkuContextWithExtras")  # type: ignore[arg-type]
    return generated()  # type: ignore[return-value]  # from_dict subclasses its receiver


@lru_cache(maxsize=1)
def _sku_optional() -> dict[str, str]:
    """SKU context fields whose wrong type drops a column instead of rejecting the SKU."""
    return {
        name: name for name in SkuContextSchema._declared_fields
        if name not in ("Id", "IsActive", "IsProductActive")
    }  # fmt: skip


def _effective_price(
    prices: Mapping[str, Any] | None, trade_policy: str, now: datetime
) -> tuple[Decimal | None, Decimal | None]:
    """``(price, list price)``: the trade policy's fixed price for one unit when one applies
    now (one with a date range before an open-ended one), else the base price (or, without one,
    the cost price plus its markup, as Pricing computes it)."""
    if prices is None:
        return None, None
    applicable = [
        fixed
        for fixed in prices.get("fixedPrices") or ()
        if fixed.get("tradePolicyId") == trade_policy
        and fixed.get("value") is not None
        and (fixed.get("minQuantity") or 1) <= 1
        and _in_range(fixed.get("dateRange"), now)
    ]
    applicable.sort(key=lambda fixed: fixed.get("dateRange") is None)
    list_price = prices.get("listPrice")
    if applicable:
        chosen = applicable[0]
        return chosen["value"], chosen.get("listPrice") or list_price
    base = prices.get("basePrice")
    cost, markup = prices.get("costPrice"), prices.get("markup")
    if base is None and cost is not None and markup is not None:
        base = cost * (1 + markup / 100)
    return base, list_price


def _in_range(span: Mapping[str, Any] | None, now: datetime) -> bool:
    """True when ``now`` falls in a fixed price's ``dateRange`` (no range: always); a range
    that cannot be read never applies."""
    if span is None:
        return True
    try:
        start = datetime.fromisoformat(str(span.get("from_")).replace("Z", "+00:00"))
        end = datetime.fromisoformat(str(span.get("to")).replace("Z", "+00:00"))
    except ValueError:
        return False
    if start.tzinfo is None or end.tzinfo is None:
        return False
    return start <= now < end


def _deleted(doc: Mapping[str, Any]) -> str:
    """``"1"`` when the SKU or its product is inactive (a missing ``IsProductActive``: active)."""
    return "0" if doc["IsActive"] and doc.get("IsProductActive") is not False else "1"


def _url(detail: str | None, base: str | None) -> str | None:
    path = (detail or "").strip()
    if not path or path.startswith(("https://", "http://")):
        return path or None
    return f"{base}/{path.lstrip('/')}" if base else None


def _image(doc: Mapping[str, Any]) -> str | None:
    for image in doc.get("Images") or ():
        url = (image.get("ImageUrl") or "").strip()
        if url:
            return url
    return (doc.get("ImageUrl") or "").strip() or None


def _categories(doc: Mapping[str, Any]) -> str | None:
    """The product's category path by name, department first: ``Apparel > T-Shirts``."""
    names = doc.get("ProductCategories") or {}
    ids = [part for part in (doc.get("ProductCategoryIds") or "").split("/") if part]
    path = [str(names[i]).strip() for i in ids if (names.get(i) or "").strip()]
    return " > ".join(path) or None


def _money(amount: Decimal | None) -> str | None:
    return None if amount is None else str(amount.quantize(_CENT))


def _path(data: Mapping[str, Any], path: str) -> Any:
    value: Any = data
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def _text(value: Any) -> str | None:
    """A column's text; ``None`` (left out) for a missing, blank or empty value."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float | Decimal):
        return format(Decimal(str(value)).normalize(), "f")
    if isinstance(value, list | tuple):
        parts = [text for item in value if (text := _text(item)) is not None]
        return ",".join(parts) or None
    if isinstance(value, Mapping):
        return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str) or None
    return str(value)
