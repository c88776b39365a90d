"""What the VTEX emulator reads (`Source`) and the ground truth of dirty records."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from etl.sandbox.data.timefmt import to_ms
from etl.sandbox.data.timelines import TimeField
from schemas.reasons import RejectReason

Doc = dict[str, Any]

Ref = int | str
"""A customer in a `Store`: a generated index (int) or the id of an overlay document (str)."""

Getter = Callable[[str], Any]

Predicate = Callable[[Getter], bool]

CUSTOMER_DIRTY_KINDS: dict[str, RejectReason | None] = {
    "invalid_email": RejectReason.INVALID_EMAIL,
    "phone_with_letters": RejectReason.INVALID_PHONE,
    "phone_too_long": RejectReason.INVALID_PHONE,
    "missing_identifier": RejectReason.MISSING_IDENTIFIER,
    "invalid_birthdate": None,
    "empty_names": None,
    "phone_only_secondary": None,
    "unicode_names": None,
    "duplicate_email": None,
    "masked_email": None,
}
"""Customer defect -> the reason the ETL must reject it with (None: must be sent)."""

ORDER_DIRTY_KINDS: dict[str, RejectReason | None] = {
    "guest": None,
    "anonymous_guest": RejectReason.MISSING_IDENTIFIER,
    "canceled": None,
    "removed_item": None,
    "zero_decimal_currency": None,
}
"""Order defect -> the reason the ETL must reject it with (None: must be sent)."""

CUSTOMER_TIME_FIELDS = ("createdIn", "updatedIn")

ORDER_TIME_FIELDS = ("creationDate", "authorizedDate", "invoicedDate")


class NotSortable(ValueError):
    """A query asks for an order the sandbox can only give by sorting too many documents."""


class Source(ABC):
    """What the VTEX emulator reads: customers, orders and a catalog, by index.

    Customer and order indices are in ``createdIn`` / ``creationDate`` order. ``*_time``
    methods are cheap (no document is built) so that windows and filters can be computed on
    large datasets.
    """

    account: str
    account_id: str
    customer_count: int
    order_count: int

    # customers
    @abstractmethod
    def customer(self, i: int) -> Doc:
        """The ``CL`` document of customer ``i`` (a new dict each call)."""

    _customer_fields: dict[str, TimeField]
    _order_fields: dict[str, TimeField]

    def customer_field(self, name: str) -> TimeField:
        """The time field ``createdIn`` or ``updatedIn`` of the customers."""
        try:
            return self._customer_fields[name]
        except KeyError:
            raise ValueError(
                f"customer time fields are {CUSTOMER_TIME_FIELDS}, not {name!r}"
            ) from None

    @abstractmethod
    def find_customers(self, field: str, value: str) -> list[int]:
        """Indices whose ``id``, ``userId`` or ``email`` equals ``value`` exactly, ascending."""

    # orders
    @abstractmethod
    def order(self, i: int) -> Doc:
        """The Get order document of order ``i`` (a new dict each call)."""

    def order_field(self, name: str) -> TimeField:
        """The time field ``creationDate``, ``authorizedDate`` or ``invoicedDate``."""
        try:
            return self._order_fields[name]
        except KeyError:
            raise ValueError(f"order time fields are {ORDER_TIME_FIELDS}, not {name!r}") from None

    @abstractmethod
    def order_status(self, i: int) -> str:
        """The generated status of order ``i`` (cheap)."""

    @abstractmethod
    def order_index(self, order_id: str) -> int | None:
        """The index of an ``orderId`` (or ``seq{sequence}``), None when unknown."""

    # catalog
    @abstractmethod
    def product_ids(self, category_id: int | None = None) -> list[int]:
        """Product ids, ascending, optionally of one category (or department)."""

    @abstractmethod
    def product_sku_ids(self, product_id: int) -> list[int]: ...

    @abstractmethod
    def sku(self, sku_id: int) -> Doc | None:
        """The ``stockkeepingunitbyid`` document, None when unknown."""

    @abstractmethod
    def price(self, sku_id: int) -> Doc | None:
        """The Pricing v2 ``GET /pricing/prices/{itemId}`` document, None when unknown."""

    # ground truth
    def dirty_kind(self, kind: str, i: int) -> str | None:
        """The defect of customer/order ``i`` (see the module docstring), None when clean."""
        check_kind(kind)
        return None

    def expected_reason(self, kind: str, i: int) -> RejectReason | None:
        """The ``RejectReason`` code the ETL must reject record ``i`` with, None to send it."""
        dirty = self.dirty_kind(kind, i)
        table = CUSTOMER_DIRTY_KINDS if kind == "customer" else ORDER_DIRTY_KINDS
        return table[dirty] if dirty else None

    def guest_order(self, i: int) -> bool:
        """Whether order ``i``'s buyer has no ``CL`` document: a guest, to whom the ETL sends a
        minimal profile along with the order's transaction."""
        user_id = (self.order(i).get("clientProfileData") or {}).get("userProfileId")
        return not user_id or not self.find_customers("userId", user_id)

    def expected(self) -> dict[str, Any]:
        """Counts for the whole generated population: clean, by defect, by reject reason, and
        the guest profiles the orders bring."""
        return {
            "customers": self._tally("customer", self.customer_count),
            "orders": self._tally("order", self.order_count),
            "catalog": self.catalog_tally(),
            "assumptions": (
                "schemas.mapping with the default MappingConfig; records changed at run time"
                " are not counted"
            ),
        }

    def catalog_tally(self) -> dict[str, int]:
        """Products and SKUs, and how many SKUs a sync must send as deleted (the SKU or its
        product inactive), without a price (404 from Pricing) or without an image."""
        counts = dict.fromkeys(("products", "skus", "deleted", "without_price", "without_image"), 0)
        for product_id in self.product_ids():
            counts["products"] += 1
            for sku_id in self.product_sku_ids(product_id):
                doc = self.sku(sku_id) or {}
                counts["skus"] += 1
                counts["deleted"] += not (doc.get("IsActive") and doc.get("IsProductActive", True))
                counts["without_price"] += self.price(sku_id) is None
                counts["without_image"] += not (doc.get("Images") or doc.get("ImageUrl"))
        return counts

    def _tally(self, kind: str, n: int) -> dict[str, Any]:
        by_kind: dict[str, int] = {}
        by_reason: dict[str, int] = {}
        for i in range(n):
            dirty = self.dirty_kind(kind, i)
            if dirty is None:
                continue
            by_kind[dirty] = by_kind.get(dirty, 0) + 1
            reason = self.expected_reason(kind, i)
            if reason is not None:
                by_reason[reason] = by_reason.get(reason, 0) + 1
        rejected = sum(by_reason.values())
        tally = {
            "total": n,
            "clean": n - sum(by_kind.values()),
            "sent": n - rejected,
            "rejected": rejected,
            "by_kind": dict(sorted(by_kind.items())),
            "by_reason": dict(sorted(by_reason.items())),
        }
        if kind == "order":  # each guest of a sent order gets a profile of its own
            tally["guest_profiles"] = sum(
                1 for i in range(n) if self.expected_reason(kind, i) is None and self.guest_order(i)
            )
        return tally

    def customer_ids_in_window(
        self, field: str, start: datetime | int, end: datetime | int
    ) -> Iterable[int]:
        """Customer indices whose ``field`` lies in ``[start, end]`` (inclusive), ascending.

        ``createdIn`` gives a `range` (binary search); ``updatedIn`` an iterator that checks
        only both ends of the candidate range.
        """
        lo, hi = _ms(start), _ms(end)
        time_field = self.customer_field(field)
        if time_field.max_delay == 0 and time_field.always:
            return time_field.timeline.index_range(lo, hi)
        return time_field.matches(lo, hi)

    def order_ids_in_window(
        self, field: str, start: datetime | int, end: datetime | int
    ) -> Iterable[int]:
        """Order indices whose ``field`` lies in ``[start, end]`` (inclusive), ascending."""
        lo, hi = _ms(start), _ms(end)
        time_field = self.order_field(field)
        if time_field.max_delay == 0 and time_field.always:
            return time_field.timeline.index_range(lo, hi)
        return time_field.matches(lo, hi)


def _ms(value: datetime | int) -> int:
    return to_ms(value) if isinstance(value, datetime) else int(value)


def check_kind(kind: str) -> None:
    if kind not in ("customer", "order"):
        raise ValueError(f"kind must be 'customer' or 'order', got {kind!r}")


def check_index(i: int, n: int, what: str) -> None:
    if not 0 <= i < n:
        raise IndexError(f"{what} index {i} out of range 0..{n - 1}")
