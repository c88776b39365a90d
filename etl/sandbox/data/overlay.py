"""Run-time changes over the data (`Store`): status changes, customer creates, patches and deletes,
and the ``CL`` queries that must see them."""

from __future__ import annotations

import hashlib
import heapq
import itertools
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from etl.sandbox.data.orders import set_order_money, zero_line
from etl.sandbox.data.source import (
    CUSTOMER_TIME_FIELDS,
    Doc,
    Getter,
    NotSortable,
    Predicate,
    Ref,
    Source,
)
from etl.sandbox.data.timefmt import format_md_time, format_oms_time, parse_time
from etl.sandbox.data.words import STATUS_DESCRIPTIONS


@dataclass
class OrderChange:
    """What the sandbox changed on an order: new status, zeroed lines, change times."""

    status: str
    last_change: int
    removed_skus: frozenset[str]


_FULL = (None, None)

_Bounds = tuple[int | None, int | None]


class Store:
    """A `Source` plus the changes made at run time (kept in small dicts).

    Generated customers that were patched or deleted leave the generated stream and live in the
    overlay (``_docs``, keyed by document id); created customers live there too. Every change
    bumps `version`, which callers use to invalidate cached query results.

    Args:
        source: the data.
        wall_clock: seconds since the epoch, for ``createdIn``/``updatedIn``/``lastChange`` of
            changes.
    """

    MAX_SORT = 50_000
    """Most documents the store sorts in memory (by a field other than the time fields)."""

    def __init__(self, source: Source, wall_clock: Callable[[], float] = time.time) -> None:
        self.source = source
        self._wall_clock = wall_clock
        self.version = 0
        self._docs: dict[str, Doc] = {}
        self._touched: set[int] = set()
        self._orders: dict[int, OrderChange] = {}
        self._created = itertools.count()
        self.counters = {"created": 0, "patched": 0, "deleted": 0, "status_changes": 0}

    def reset(self) -> None:
        """Drop every run-time change."""
        self._docs.clear()
        self._touched.clear()
        self._orders.clear()
        self._created = itertools.count()
        self.counters = dict.fromkeys(self.counters, 0)
        self.version += 1

    def now_ms(self) -> int:
        return int(self._wall_clock() * 1000)

    # -- customers ------------------------------------------------------------------------------

    def customer(self, ref: Ref) -> Doc | None:
        """The current document of a query result reference."""
        if isinstance(ref, str):
            doc = self._docs.get(ref)
            return dict(doc) if doc is not None else None
        return None if ref in self._touched else self.source.customer(ref)

    def customer_by_id(self, doc_id: str) -> Doc | None:
        if doc_id in self._docs:
            return dict(self._docs[doc_id])
        for i in self.source.find_customers("id", doc_id):
            if i not in self._touched:
                return self.source.customer(i)
        return None

    def create_customer(self, fields: Mapping[str, Any], doc_id: str | None = None) -> Doc:
        """Create a ``CL`` document (``createdIn`` = ``updatedIn`` = now)."""
        now = format_md_time(self.now_ms())
        if doc_id is None:
            serial = next(self._created)
            digest = hashlib.md5(f"{self.source.account}:created:{serial}".encode()).hexdigest()
            doc_id = (
                f"{digest[:8]}-{digest[8:12]}-4{digest[13:16]}-a{digest[17:20]}-{digest[20:32]}"
            )
        doc: Doc = {
            "id": doc_id, "accountId": self.source.account_id, "accountName": self.source.account,
            "dataEntityId": "CL", "userId": None, "email": None, "firstName": None,
            "lastName": None, "phone": None, "homePhone": None, "cellPhone": None,
            "businessPhone": None, "birthDate": None, "gender": None, "document": None,
            "documentType": None, "isNewsletterOptIn": None, "localeDefault": None,
        }  # fmt: skip
        doc.update(_writable(fields))
        doc.update({"createdIn": now, "updatedIn": now})
        self._docs[doc_id] = doc
        self.counters["created"] += 1
        self.version += 1
        return dict(doc)

    def patch_customer(self, doc_id: str, fields: Mapping[str, Any]) -> Doc | None:
        """Partial update (``updatedIn`` = now); None when the document does not exist."""
        doc = self._take(doc_id)
        if doc is None:
            return None
        doc.update(_writable(fields))
        doc["updatedIn"] = format_md_time(self.now_ms())
        self._docs[doc_id] = doc
        self.counters["patched"] += 1
        self.version += 1
        return dict(doc)

    def delete_customer(self, doc_id: str) -> bool:
        if self._take(doc_id) is None:
            return False
        self._docs.pop(doc_id, None)
        self.counters["deleted"] += 1
        self.version += 1
        return True

    def _take(self, doc_id: str) -> Doc | None:
        """The document, moved out of the generated stream into the overlay."""
        if doc_id in self._docs:
            return self._docs[doc_id]
        for i in self.source.find_customers("id", doc_id):
            if i not in self._touched:
                self._touched.add(i)
                doc = self.source.customer(i)
                self._docs[doc_id] = doc
                return doc
        return None

    def find_customers(self, field: str, value: str) -> list[Ref]:
        """Generated indices and overlay ids whose ``field`` equals ``value``."""
        refs: list[Ref] = [
            i for i in self.source.find_customers(field, value) if i not in self._touched
        ]
        refs += [doc_id for doc_id, doc in self._docs.items() if doc.get(field) == value]
        return refs

    def query_customers(
        self,
        created: _Bounds = _FULL,
        updated: _Bounds = _FULL,
        points: list[Ref] | None = None,
        predicate: Predicate | None = None,
        sort: str = "createdIn",
        desc: bool = False,
    ) -> CustomerQuery:
        """Customers with ``createdIn`` / ``updatedIn`` in the (inclusive, ms) bounds, among
        ``points`` when given, passing ``predicate`` (called with a field getter that returns
        the time fields as epoch ms), ordered by ``sort`` then reference.

        Raises:
            NotSortable: ``sort`` is not a time field and more than `MAX_SORT` documents match.
        """
        return CustomerQuery(self, created, updated, points, predicate, sort, desc)

    def getter(self, ref: Ref) -> Getter:
        """A field reader for predicates: time fields as ms, others from the document."""
        doc: Doc | None = None

        def get(name: str) -> Any:
            nonlocal doc
            if isinstance(ref, int) and name in CUSTOMER_TIME_FIELDS:
                return self.source.customer_field(name).value(ref)
            if doc is None:
                doc = self.customer(ref) or {}
            value = doc.get(name)
            if name in CUSTOMER_TIME_FIELDS and isinstance(value, str):
                return parse_time(value)
            return value

        return get

    def overlay_customers(self) -> dict[str, Doc]:
        return self._docs

    def touched(self) -> set[int]:
        return self._touched

    # -- orders ---------------------------------------------------------------------------------

    def order(self, order_id: str) -> Doc | None:
        i = self.source.order_index(order_id)
        return None if i is None else self.order_at(i)

    def order_at(self, i: int) -> Doc:
        doc = self.source.order(i)
        change = self._orders.get(i)
        if change is not None:
            doc["status"] = change.status
            doc["statusDescription"] = STATUS_DESCRIPTIONS.get(change.status, change.status)
            doc["lastChange"] = format_oms_time(change.last_change)
            if change.status == "canceled":
                doc["cancelReason"] = doc.get("cancelReason") or "Canceled in the sandbox"
                doc["allowCancellation"] = False
            if change.removed_skus:
                for item in doc["items"]:
                    if item["id"] in change.removed_skus:
                        zero_line(item)
                set_order_money(doc)
        return doc

    def order_status(self, i: int) -> str:
        change = self._orders.get(i)
        return change.status if change is not None else self.source.order_status(i)

    def set_order_status(
        self, order_id: str, status: str, remove_skus: Iterable[str] = ()
    ) -> tuple[Doc, str, str] | None:
        """Change an order's status (and zero some lines); None when the order is unknown.

        Returns:
            ``(the new document, previous status, previous lastChange)``.

        Raises:
            ValueError: a SKU to remove is not a line of the order.
        """
        i = self.source.order_index(order_id)
        if i is None:
            return None
        before = self.order_at(i)
        skus = frozenset(str(s) for s in remove_skus)
        unknown = skus - {item["id"] for item in before["items"]}
        if unknown:
            raise ValueError(f"not lines of {order_id}: {', '.join(sorted(unknown))}")
        previous = self._orders.get(i)
        removed = skus | (previous.removed_skus if previous else frozenset())
        now = max(self.now_ms(), parse_time(before["lastChange"]) + 1)
        self._orders[i] = OrderChange(status, now, removed)
        self.counters["status_changes"] += 1
        self.version += 1
        return self.order_at(i), before["status"], before["lastChange"]

    def query_orders(
        self,
        bounds: Mapping[str, _Bounds],
        statuses: frozenset[str] | None = None,
        desc: bool = False,
    ) -> Iterator[int]:
        """Order indices with every ``bounds[field]`` (inclusive ms) and a status in
        ``statuses``, in ``creationDate`` order (ascending unless ``desc``)."""
        fields = {name: self.source.order_field(name) for name in bounds}
        span = range(0, self.source.order_count)
        for name, (lo, hi) in bounds.items():
            span = _intersect(span, fields[name].candidates(lo, hi))
        checks = [(fields[name], lo, hi) for name, (lo, hi) in bounds.items()
                  if fields[name].max_delay or not fields[name].always]  # fmt: skip
        for i in reversed(span) if desc else span:
            if all(f.holds(i, lo, hi) for f, lo, hi in checks) and (
                statuses is None or self.order_status(i) in statuses
            ):
                yield i

    def count_orders(self, bounds: Mapping[str, _Bounds], statuses: frozenset[str] | None) -> int:
        """How many orders `query_orders` yields (O(log n) for a plain ``creationDate`` window)."""
        if statuses is None and set(bounds) <= {"creationDate"}:
            lo, hi = bounds.get("creationDate", _FULL)
            return len(self.source.order_field("creationDate").timeline.index_range(lo, hi))
        return sum(1 for _ in self.query_orders(bounds, statuses))


def _intersect(a: range, b: range) -> range:
    start = max(a.start, b.start)
    return range(start, max(start, min(a.stop, b.stop)))


_PROTECTED = frozenset({"id", "accountId", "accountName", "dataEntityId", "createdIn", "updatedIn"})


def _writable(fields: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if k not in _PROTECTED}


class CustomerQuery:
    """A customer query over a `Store`: `count` and ordered iteration of references."""

    def __init__(
        self,
        store: Store,
        created: _Bounds,
        updated: _Bounds,
        points: list[Ref] | None,
        predicate: Predicate | None,
        sort: str,
        desc: bool,
    ) -> None:
        self.store, self.source = store, store.source
        self.created, self.updated = created, updated
        self.points, self.predicate = points, predicate
        self.sort, self.desc = sort, desc
        self._created_field = self.source.customer_field("createdIn")
        self._updated_field = self.source.customer_field("updatedIn")
        self.span = _intersect(
            self._created_field.timeline.index_range(*created),
            self._updated_field.candidates(*updated),
        )
        if sort not in CUSTOMER_TIME_FIELDS and points is None and len(self.span) > Store.MAX_SORT:
            raise NotSortable(
                f"sorting by {sort!r} over {len(self.span)} candidate documents is not emulated"
                f" (limit {Store.MAX_SORT}); sort by createdIn or updatedIn"
            )

    # generated records
    def _time_ok(self, i: int) -> bool:
        lo, hi = self.updated
        return (lo is None and hi is None) or self._updated_field.holds(i, lo, hi)

    def _keep(self, i: int) -> bool:
        if i in self.store.touched() or not self._time_ok(i):
            return False
        return self.predicate is None or self.predicate(self.store.getter(i))

    # overlay records
    def _overlay(self) -> list[tuple[tuple[Any, ...], Ref]]:
        out: list[tuple[tuple[Any, ...], Ref]] = []
        wanted = None if self.points is None else {p for p in self.points if isinstance(p, str)}
        for doc_id in self.store.overlay_customers():
            if wanted is not None and doc_id not in wanted:
                continue
            get = self.store.getter(doc_id)
            if not (
                _within(get("createdIn"), self.created) and _within(get("updatedIn"), self.updated)
            ):
                continue
            if self.predicate is None or self.predicate(get):
                out.append((self._key(get, doc_id), doc_id))
        return out

    def _key(self, get: Getter, ref: Ref) -> tuple[Any, ...]:
        value = get(self.sort)
        # None sorts first; generated refs (ints) before overlay ids at equal values
        tail = (0, ref, "") if isinstance(ref, int) else (1, 0, ref)
        return (value is not None, _sortable(value), *tail)

    def count(self) -> int:
        if self.points is not None or self.predicate is not None:
            return sum(1 for _ in self)
        generated = len(self._plain_certain())
        for i in self._plain_uncertain():
            generated += self._time_ok(i)
        touched = sum(1 for i in self.store.touched() if i in self.span and self._time_ok(i))
        return generated - touched + len(self._overlay())

    def _plain_certain(self) -> range:
        return _intersect(self.span, self._updated_field.certain(*self.updated))

    def _plain_uncertain(self) -> Iterator[int]:
        sure = self._plain_certain()
        if not sure:
            yield from self.span
            return
        yield from range(self.span.start, sure.start)
        yield from range(sure.stop, self.span.stop)

    def __iter__(self) -> Iterator[Ref]:
        overlay = sorted(self._overlay(), reverse=self.desc)
        generated = self._generated()
        if not overlay:
            return (ref for _, ref in generated)
        merged = heapq.merge(generated, overlay, reverse=self.desc)
        return (ref for _, ref in merged)

    def _generated(self) -> Iterator[tuple[tuple[Any, ...], Ref]]:
        if self.points is not None:
            refs = [
                p for p in self.points if isinstance(p, int) and p in self.span and self._keep(p)
            ]
            keyed = [(self._key(self.store.getter(i), i), i) for i in refs]
            yield from sorted(keyed, reverse=self.desc)
            return
        if self.sort in CUSTOMER_TIME_FIELDS:
            field = self.source.customer_field(self.sort)
            for i in field.sorted_by_value(self.span, self._keep, self.desc):
                yield (True, _sortable(field.value(i)), 0, i, ""), i
            return
        keyed = [(self._key(self.store.getter(i), i), i) for i in self.span if self._keep(i)]
        yield from sorted(keyed, reverse=self.desc)


def _within(value: Any, bounds: _Bounds) -> bool:
    lo, hi = bounds
    if lo is None and hi is None:
        return True
    return isinstance(value, int) and (lo is None or value >= lo) and (hi is None or value <= hi)


def _sortable(value: Any) -> Any:
    """Mixed-type values compare by type name first (None never reaches here unordered)."""
    if value is None:
        return ("", "")
    return (type(value).__name__ if not isinstance(value, int | float) else "0", value)
