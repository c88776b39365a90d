"""`Dataset`: deterministic customers, orders and catalog computed from ``(seed, index)``."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from etl.sandbox.data.catalog import SKUS_PER_PRODUCT
from etl.sandbox.data.customers import MAX_CUSTOMERS
from etl.sandbox.data.orders import MAX_ORDERS, OrderGenerator
from etl.sandbox.data.rng import Hasher
from etl.sandbox.data.source import check_index, check_kind
from etl.sandbox.data.timefmt import DAY_MS, from_ms, to_ms
from etl.sandbox.data.timelines import LinearTimeline, TimeField


class Dataset(OrderGenerator):
    """Deterministic customers, orders and catalog computed from ``(seed, index)``.

    Args:
        customers: number of ``CL`` documents.
        orders: number of orders.
        seed: any int; the same arguments always give the same data.
        dirty_share: share of records (of each kind) with one defect, 0..1.
        start, end: ``createdIn`` / ``creationDate`` are spread over ``[start, end)``.
        products: catalog size (each product has 1-3 SKUs).
        account: the VTEX account name (``accountName``, order ids, hostnames).
    """

    def __init__(
        self,
        customers: int,
        orders: int,
        seed: int = 0,
        dirty_share: float = 0.05,
        start: datetime = datetime(2025, 6, 1, tzinfo=UTC),
        end: datetime = datetime(2026, 6, 1, tzinfo=UTC),
        products: int = 60,
        account: str = "sandbox",
    ) -> None:
        if not 0 <= customers <= MAX_CUSTOMERS or not 0 <= orders <= MAX_ORDERS:
            raise ValueError(
                f"customers must be 0..{MAX_CUSTOMERS} and orders 0..{MAX_ORDERS}"
                " (ids encode the index)"
            )
        if products < 1 or products * SKUS_PER_PRODUCT > 2**31:
            raise ValueError("products must be 1..2147483")
        if not 0.0 <= dirty_share <= 1.0:
            raise ValueError(f"dirty_share must be between 0 and 1, got {dirty_share!r}")
        start_ms, end_ms = to_ms(start), to_ms(end)
        if end_ms <= start_ms:
            raise ValueError("end must be after start")
        if not re.fullmatch(r"[a-z][a-z0-9]{0,39}", account):
            raise ValueError(f"account must be lowercase letters/digits, got {account!r}")
        self.customer_count, self.order_count, self.products = customers, orders, products
        self.seed, self.dirty_share, self.account = seed, dirty_share, account
        self.start, self.end = from_ms(start_ms), from_ms(end_ms)
        self._h = Hasher(seed)
        span = end_ms - start_ms
        self.max_update_delay_ms = max(1, min(7 * DAY_MS, span // 8))
        self._order_tag = re.sub(r"[^a-z]", "", account)[:4] or "sbx"
        self.account_id = self._uuid("account", 0)
        customer_line = LinearTimeline(
            start_ms, span, customers, lambda i: self._h("customer.created", i)
        )
        order_line = LinearTimeline(start_ms, span, orders, lambda i: self._h("order.created", i))
        self._customer_fields = {
            "createdIn": TimeField(customer_line, customer_line.base, 0, True),
            "updatedIn": TimeField(
                customer_line, self._customer_updated, self.max_update_delay_ms, True
            ),
        }
        self._order_fields = {
            "creationDate": TimeField(order_line, order_line.base, 0, True),
            "authorizedDate": TimeField(order_line, self._order_authorized, 2 * 3_600_000, False),
            "invoicedDate": TimeField(order_line, self._order_invoiced, 10 * DAY_MS, False),
        }
        self._expected: dict[str, Any] | None = None
        self._products: dict[int, dict[str, Any]] = {}

    def __repr__(self) -> str:
        return (
            f"Dataset(customers={self.customer_count}, orders={self.order_count},"
            f" seed={self.seed}, dirty_share={self.dirty_share})"
        )

    def dirty_kind(self, kind: str, i: int) -> str | None:
        check_kind(kind)
        check_index(i, self.customer_count if kind == "customer" else self.order_count, kind)
        dirty = self._raw_kind(kind, i)
        if dirty == "duplicate_email" and self._duplicate_partner(i) is None:
            return "unicode_names"  # no earlier clean e-mail to copy
        return dirty

    def expected(self) -> dict[str, Any]:
        if self._expected is None:
            self._expected = super().expected()
        return self._expected
