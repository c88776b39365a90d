"""The generator's shared state and ids; one subclass per entity adds its documents."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from etl.sandbox.data.rng import Hasher, spread48, unspread48
from etl.sandbox.data.source import CUSTOMER_DIRTY_KINDS, ORDER_DIRTY_KINDS, Source

_CUSTOMER_KINDS = tuple(CUSTOMER_DIRTY_KINDS)

_ORDER_KINDS = tuple(ORDER_DIRTY_KINDS)


class GeneratedData(Source):
    """State every generator layer reads (set by `Dataset.__init__`), ids and defect draws."""

    products: int
    seed: int
    dirty_share: float
    start: datetime
    end: datetime
    _h: Hasher
    max_update_delay_ms: int
    _order_tag: str
    _expected: dict[str, Any] | None
    _products: dict[int, dict[str, Any]]

    def _uuid(self, tag: str, i: int) -> str:
        """A version-4-shaped UUID whose last group encodes ``i`` (an invertible 48-bit mix)."""
        a, b = self._h(tag + ".uuid", i), self._h(tag + ".uuid2", i)
        last = spread48(i, self._h(tag + ".key", 0))
        variant = "89ab"[b & 3]
        return (
            f"{a >> 32:08x}-{(a >> 16) & 0xFFFF:04x}-4{(a >> 4) & 0xFFF:03x}"
            f"-{variant}{(b >> 8) & 0xFFF:03x}-{last:012x}"
        )

    def _uuid_index(self, tag: str, value: str) -> int | None:
        if len(value) != 36 or value[-13] != "-":
            return None
        try:
            i = unspread48(int(value[-12:], 16), self._h(tag + ".key", 0))
        except ValueError:
            return None
        return i if self._uuid(tag, i) == value else None

    def _raw_kind(self, kind: str, i: int) -> str | None:
        if self._h.unit(f"{kind}.dirty", i) >= self.dirty_share:
            return None
        kinds = _CUSTOMER_KINDS if kind == "customer" else _ORDER_KINDS
        return kinds[self._h(f"{kind}.kind", i) % len(kinds)]
