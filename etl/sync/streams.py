"""Streams: what a sync reads from VTEX and where it lands in Synerise, one small class each.

After the Singer SDK: a stream declares its name, its ledger and its listing cap, and implements
four hooks. The producer calls ``count`` and ``list_pages`` to plan chunks; a chunk task calls
``fetch`` (``runs.run_chunk``), then ``payload`` (``to_payload``, then the enrichers) and ``send``
(``pipeline.map_diff_send``).

============================  =====================  ==========================================
stream                        listing                details fetched per record
============================  =====================  ==========================================
``customers_created``         MD ``CL`` search on    none: the search returns the fields we map
``customers_updated``         ``createdIn`` /
                              ``updatedIn`` windows
``orders``                    OMS list orders on     Get order, then the buyer's ``CL`` record
                              ``f_creationDate``     (by ``userProfileId``) for the real e-mail
``products``                  GetProductAndSkuIds,   the SKU context and its Pricing price; the
                              the whole catalog      ledger's SKUs the listing lacks (gone)
============================  =====================  ==========================================

An orders chunk also upserts a minimal profile for each guest buyer (no ``CL`` document) before
its transactions (``guest_profile``, ledger stream ``profiles``, key ``guest:<identity>``).
"""

from __future__ import annotations

import math
import sys
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar

from etl.config import Settings
from etl.errors import FatalError, SkippableRecordError
from etl.redaction import fingerprint
from etl.state.ledger import Ledger
from etl.state.store import StateStore
from etl.sync.catalog import CatalogTarget, workspace_key
from etl.sync.windows import Window, format_vtex_time
from etl.synerise.client import BatchResult, SyneriseClient
from etl.vtex.client import VtexClient
from etl.vtex.paginators import MD_SCROLL_MAX_SIZE
from schemas.mapping import (
    CatalogConfig,
    FieldWarning,
    MappingConfig,
    catalog_item,
    catalog_tombstone,
    guest_profile_from_order,
    payload_hash,
    profile_from_customer,
    transaction_from_order,
)
from schemas.reasons import RejectReason

__all__ = [
    "EMAIL_KEY",
    "CustomersStream",
    "Fetched",
    "OrdersStream",
    "ProductsStream",
    "Stream",
    "stream_for_scope",
]


EMAIL_KEY = "email:"
"""Prefix of a customers key that names a ``CL`` document by its e-mail (a selection's)."""


@dataclass(frozen=True, slots=True)
class Fetched:
    """One record ready for mapping, or the reason it could not be read."""

    key: str
    record: dict[str, Any] | None
    context: dict[str, Any] | None = None


class Stream(ABC):
    """One VTEX collection synced to one Synerise endpoint."""

    scope: ClassVar[str]
    """The CLI scope (``orders``, ``customers_created``, ``customers_updated``)."""
    kind: ClassVar[str | None] = None
    """What a payload is, for enrichers (``schemas.enrichment``): ``profile``, ``transaction``;
    ``None``: the stream's payloads are not enriched (catalog items: ``CATALOG_COLUMNS`` shapes
    them)."""
    ledger: ClassVar[str]
    """The entity-ledger stream (``profiles`` or ``transactions``)."""
    window_cap: ClassVar[int]
    """Most records one listing window may hold; larger windows are split."""
    page_size: ClassVar[int] = 100
    carries_payload: ClassVar[bool] = False
    """True when the listing already returns the records, so chunks carry them (in Redis,
    ``etl.state.listed``, or in their rows)."""
    chunk_size: ClassVar[int] = 100
    """Records per chunk unless ``SYNC_CHUNK_SIZE`` says otherwise."""
    slices_end_at_windows: ClassVar[bool] = False
    """True when the listing holds a cursor open on the server (a Master Data scroll, at most
    10 open per account): a planning slice then ends at a window's end, never inside one, so
    it leaves no scroll open until its token expires."""

    def __init__(self, vtex: VtexClient, mapping: MappingConfig, fetch_concurrency: int = 8):
        self.vtex = vtex
        self.mapping = mapping
        self.fetch_concurrency = fetch_concurrency

    @abstractmethod
    def count(self, window: Window) -> int:
        """How many records the window lists (one cheap request)."""

    @abstractmethod
    def list_pages(self, window: Window, total: int) -> Iterator[list[dict[str, Any]]]:
        """Page through a window that fits under ``window_cap``."""

    @abstractmethod
    def key_of(self, listed: dict[str, Any]) -> str:
        """The stable key of a listed record (order id, CL document id)."""

    @abstractmethod
    def fetch(self, keys: Sequence[str], stored: Sequence[dict[str, Any]] | None) -> list[Fetched]:
        """Read the full records of a chunk; a record that vanished has ``record=None``."""

    @abstractmethod
    def to_payload(
        self, fetched: Fetched, warnings: list[FieldWarning] | None = None
    ) -> dict[str, Any]:
        """Map to the Synerise payload; raises ``SkippableRecordError`` for a bad record.
        Appends to ``warnings`` each field the payload goes without (`FieldWarning`)."""

    @abstractmethod
    def send(self, synerise: SyneriseClient, payloads: Sequence[dict[str, Any]]) -> BatchResult:
        """Post the payloads; the result says which were accepted."""

    def payload(
        self, fetched: Fetched, warnings: list[FieldWarning] | None = None
    ) -> dict[str, Any]:
        """The payload to send: ``to_payload``, then the enrichers and attribute rules
        (``MappingConfig.enrichment``); raises ``SkippableRecordError`` for a record either
        rejects (``VETOED``, ``ENRICHMENT_ERROR``)."""
        payload = self.to_payload(fetched, warnings)
        if self.kind is None:
            return payload
        assert fetched.record is not None
        return self.mapping.enrichment.apply(self.kind, fetched.key, fetched.record, payload)

    def vanished(self, run_id: int, store: StateStore, size: int) -> Iterator[list[str]]:
        """After the whole listing is planned: keys, ``size`` at a time, of records sent before
        that the source no longer lists (none, unless the stream lists its source whole)."""
        return iter(())

    def guest_profile(
        self, fetched: Fetched, warnings: list[FieldWarning] | None = None
    ) -> tuple[str, dict[str, Any]] | None:
        """``(profiles ledger key, /v4/clients/batch item)`` to upsert before the record's
        payload, for a record whose payload mapped; None when it needs none (the default)."""
        return None

    def _parallel(self, func: Any, items: Sequence[Any]) -> list[Any]:
        """Map ``func`` over ``items`` with bounded concurrency (the rate budget is shared)."""
        if len(items) <= 1 or self.fetch_concurrency <= 1:
            return [func(item) for item in items]
        with ThreadPoolExecutor(max_workers=min(self.fetch_concurrency, len(items))) as pool:
            return list(pool.map(func, items))


class CustomersStream(Stream):
    """Master Data ``CL`` documents to Synerise profiles (``/v4/clients/batch``)."""

    kind = "profile"
    ledger = "profiles"
    window_cap = 10_000
    carries_payload = True
    slices_end_at_windows = True
    chunk_size = 1000
    """CPU-bound (the listing carries the records): a chunk's fixed cost (its task, claim and
    outcome, its Synerise call: one batch of up to 1,000 profiles) spread over 1,000 records
    costs about 10 µs less CPU per record than 500 in batches of 100 (docs/benchmarks.md,
    section 7; "Per-chunk cost" for smaller sizes)."""

    def __init__(
        self,
        vtex: VtexClient,
        mapping: MappingConfig,
        fetch_concurrency: int = 8,
        *,
        by: str = "created",
    ):
        super().__init__(vtex, mapping, fetch_concurrency)
        if by not in ("created", "updated"):
            raise ValueError(f"customers are listed by 'created' or 'updated', not {by!r}")
        self.field = "createdIn" if by == "created" else "updatedIn"
        self.scope = f"customers_{by}"  # type: ignore[misc]  # per-instance scope name
        self.fields = list(mapping.profile_source_fields)

    def where(self, window: Window) -> str:
        """The ``_where`` clause selecting a window (inclusive bounds, hence ``last_instant``)."""
        return (
            f"{self.field} between {format_vtex_time(window.start)}"
            f" AND {format_vtex_time(window.last_instant)}"
        )

    def count(self, window: Window) -> int:
        _, total = self.vtex.search_customers(self.where(window), ["id"], f"{self.field} ASC", 0, 1)
        return total

    def list_pages(self, window: Window, total: int) -> Iterator[list[dict[str, Any]]]:
        """One search when the window fits in a page, else a scroll of up to 1,000 documents a
        page: a tenth of the calls of 100-document searches, for Master Data and for us
        (docs/benchmarks.md, section 7), and no 10,000 cap for a window too dense to split.
        Sorted, so a producer that resumes skips the same records it chunked before."""
        where, sort = self.where(window), f"{self.field} ASC"
        if total == 0:
            return
        if total <= self.page_size:
            docs, _ = self.vtex.search_customers(where, self.fields, sort, 0, total)
            if docs:
                yield docs
            return
        size = min(total, MD_SCROLL_MAX_SIZE)
        yield from self.vtex.scroll_customers(where, self.fields, size, sort)

    def key_of(self, listed: dict[str, Any]) -> str:
        return str(listed["id"])

    def fetch(self, keys: Sequence[str], stored: Sequence[dict[str, Any]] | None) -> list[Fetched]:
        """The listed documents a chunk carries, else each key read from Master Data (replays
        and selections re-read, so a fixed record is sent as it is now).

        A key read is a ``CL`` document id, else a ``userId`` (an order's
        ``userProfileId``), or ``email:<address>``; a found record is keyed by its document id
        (the ``profiles`` ledger's key), one that is not keeps the key it was asked by. Ids and
        user ids are searched for 50 at a time; an id the search lacks (its index may lag a
        fresh write) is read on its own.
        """
        if stored is not None:
            return [Fetched(key, doc) for key, doc in zip(keys, stored, strict=True)]
        plain = [key for key in keys if not key.startswith(EMAIL_KEY)]
        by_id = self.vtex.find_customers_by_ids(plain, self.fields) if plain else {}
        unlisted = [key for key in plain if key not in by_id]
        by_user = self.vtex.find_customers_by_user_ids(unlisted, self.fields) if unlisted else {}
        missing = [key for key in keys if key not in by_id and key not in by_user]
        read = dict(zip(missing, self._parallel(self._read, missing), strict=True))
        fetched: dict[str, Fetched] = {}
        for key in keys:
            doc = by_id.get(key) or read.get(key) or by_user.get(key)
            found = Fetched(str(doc["id"]), doc) if doc and doc.get("id") else Fetched(key, doc)
            fetched.setdefault(found.key, found)  # one document named twice is sent once
        return list(fetched.values())

    def _read(self, key: str) -> dict[str, Any] | None:
        if key.startswith(EMAIL_KEY):
            return self.vtex.find_customer_by_email(key.removeprefix(EMAIL_KEY), self.fields)
        return self.vtex.get_customer(key, self.fields)

    def to_payload(
        self, fetched: Fetched, warnings: list[FieldWarning] | None = None
    ) -> dict[str, Any]:
        assert fetched.record is not None
        return profile_from_customer(fetched.record, self.mapping, warnings=warnings)

    def send(self, synerise: SyneriseClient, payloads: Sequence[dict[str, Any]]) -> BatchResult:
        return synerise.upsert_profiles(payloads)


class OrdersStream(Stream):
    """OMS orders to Synerise transactions (``/v4/transactions/batch``)."""

    scope = "orders"
    kind = "transaction"
    ledger = "transactions"
    window_cap = 30 * 100  # OMS list orders stops at page 30 of at most 100
    chunk_size = 100
    """Rate-bound (every order is read on its own): small chunks spread a run over the workers
    evenly, and a chunk's fixed cost is small beside 100 Get order calls."""

    def count(self, window: Window) -> int:
        return self.vtex.list_orders(window.start, window.last_instant, page=1, per_page=1).total

    def list_pages(self, window: Window, total: int) -> Iterator[list[dict[str, Any]]]:
        pages = min(30, math.ceil(total / self.page_size))
        for page in range(1, pages + 1):
            result = self.vtex.list_orders(
                window.start, window.last_instant, page=page, per_page=self.page_size
            )
            if not result.orders:
                return
            yield result.orders

    def key_of(self, listed: dict[str, Any]) -> str:
        return str(listed["orderId"])

    def fetch(self, keys: Sequence[str], stored: Sequence[dict[str, Any]] | None) -> list[Fetched]:
        orders = self._parallel(self.vtex.get_order, keys)
        user_ids = sorted(
            {
                uid
                for order in orders
                if order and (uid := (order.get("clientProfileData") or {}).get("userProfileId"))
            }
        )
        # One Master Data search per 50 buyers, not one per buyer: the lookups share the VTEX
        # rate budget with Get order (bench/orders.py, docs/benchmarks.md).
        customers = self.vtex.find_customers_by_user_ids(
            user_ids, list(self.mapping.order_customer_fields)
        )
        fetched = []
        for key, order in zip(keys, orders, strict=True):
            uid = ((order or {}).get("clientProfileData") or {}).get("userProfileId")
            fetched.append(Fetched(key, order, customers.get(uid) if uid else None))
        return fetched

    def to_payload(
        self, fetched: Fetched, warnings: list[FieldWarning] | None = None
    ) -> dict[str, Any]:
        assert fetched.record is not None
        return transaction_from_order(
            fetched.record, self.buyer(fetched), self.mapping, self.status(fetched),
            warnings=warnings,
        )  # fmt: skip

    def guest_profile(
        self, fetched: Fetched, warnings: list[FieldWarning] | None = None
    ) -> tuple[str, dict[str, Any]] | None:
        """A guest buyer's minimal profile (``SYNERISE_GUEST_PROFILES``), so the transaction
        has a profile to land on; None for a registered buyer."""
        assert fetched.record is not None
        profile = guest_profile_from_order(
            fetched.record, self.buyer(fetched), self.mapping, warnings=warnings
        )
        return None if profile is None else (guest_key(profile, self.mapping), profile)

    def buyer(self, fetched: Fetched) -> dict[str, Any] | None:
        """The buyer's ``CL`` document (``fetch`` puts it in the context), None for a guest."""
        return fetched.context

    def status(self, fetched: Fetched) -> str | None:
        """The status to report instead of the order's own (None: the order's)."""
        return None

    def send(self, synerise: SyneriseClient, payloads: Sequence[dict[str, Any]]) -> BatchResult:
        return synerise.send_transactions(payloads)


class ProductsStream(Stream):
    """Catalog SKUs to Synerise catalog items (``/catalogs/bags/{id}/items/batch``).

    The listing is the whole catalog (VTEX has no "changed since" filter for it), so every run
    is a full pass and the ledger keeps it a delta: unchanged items are skipped. A SKU the
    ledger holds but this run's listing lacks is gone from VTEX: `vanished` plans it last, its
    read answers 404 and it is sent once as a tombstone (``deleted: "1"``). Tombstones already
    sent are recognised by their hash and never planned again. A SKU whose read answers 404
    and that was never sent (a selected id that does not exist, one deleted between the
    listing and its read) is rejected ``NOT_FOUND``.
    """

    scope = "products"
    ledger = "catalog_items"
    window_cap = sys.maxsize  # one window: the catalog is listed whole, never split
    page_size = 250  # GetProductAndSkuIds' largest page

    def __init__(
        self,
        vtex: VtexClient,
        mapping: MappingConfig,
        fetch_concurrency: int = 8,
        *,
        catalog: CatalogTarget,
        config: CatalogConfig,
        known: Ledger,
        currency: str | None = None,
    ):
        super().__init__(vtex, mapping, fetch_concurrency)
        self.catalog = catalog
        self.known = known
        """The entity ledger: a SKU gone from VTEX is a tombstone only if it was ever sent."""
        self.config = config
        self._currency = currency
        self._currency_known = currency is not None

    @classmethod
    def from_settings(
        cls, settings: Settings, vtex: VtexClient, synerise: SyneriseClient, store: StateStore
    ) -> ProductsStream:
        """The stream for the settings' catalog (``SYNERISE_CATALOG_NAME``, ``CATALOG_*``)."""
        target = CatalogTarget(
            synerise, store.catalogs, workspace_key(settings), settings.synerise_catalog_name
        )
        return cls(
            vtex,
            MappingConfig.from_settings(settings),
            settings.sync_fetch_concurrency,
            catalog=target,
            config=CatalogConfig.from_settings(settings),
            known=store.ledger,
            currency=settings.catalog_currency,
        )

    def currency(self) -> str | None:
        """``CATALOG_CURRENCY``, else the trade policy's currency (read once per process)."""
        if not self._currency_known:
            channel = self.vtex.get_sales_channel(self.config.trade_policy) or {}
            self._currency = str(channel.get("CurrencyCode") or "") or None
            self._currency_known = True
        return self._currency

    def count(self, window: Window) -> int:
        return self.vtex.product_and_sku_ids(1, 1)[1]

    def list_pages(self, window: Window, total: int) -> Iterator[list[dict[str, Any]]]:
        for first in range(1, total + 1, self.page_size):
            products, _ = self.vtex.product_and_sku_ids(
                first, min(first + self.page_size - 1, total)
            )
            if not products:
                return
            yield [
                {"skuId": sku, "productId": product}
                for product, skus in sorted(products.items(), key=lambda item: int(item[0]))
                for sku in skus
            ]

    def key_of(self, listed: dict[str, Any]) -> str:
        return str(listed["skuId"])

    def fetch(self, keys: Sequence[str], stored: Sequence[dict[str, Any]] | None) -> list[Fetched]:
        # The SKU context and the price are separate reads: all of them share the pool.
        reads = [(self.vtex.get_sku, key) for key in keys] + [
            (self.vtex.get_price, key) for key in keys
        ]
        answers = self._parallel(lambda read: read[0](read[1]), reads)
        context = {
            "catalogId": self.catalog.known_id(),
            "currency": self.currency(),
            "now": datetime.now(UTC),
        }
        skus, prices = answers[: len(keys)], answers[len(keys) :]
        gone = [key for key, sku in zip(keys, skus, strict=True) if sku is None]
        # Gone from VTEX: a tombstone for a SKU the catalog has; one it never had (a selected
        # id that does not exist) is not found (no record: rejected NOT_FOUND).
        sent = self.known.hashes(self.ledger, gone) if gone else {}
        return [
            Fetched(key, {"sku": sku, "price": price} if sku or key in sent else None, context)
            for key, sku, price in zip(keys, skus, prices, strict=True)
        ]

    def to_payload(
        self, fetched: Fetched, warnings: list[FieldWarning] | None = None
    ) -> dict[str, Any]:
        assert fetched.record is not None and fetched.context is not None
        sku, context = fetched.record["sku"], fetched.context
        if sku is None:
            return self._tombstone(fetched.key, context["catalogId"])
        item = catalog_item(
            sku, fetched.record["price"], self.config, key=fetched.key,
            currency=context["currency"], now=context["now"],
        )  # fmt: skip
        return {"catalogId": context["catalogId"], **item}

    def send(self, synerise: SyneriseClient, payloads: Sequence[dict[str, Any]]) -> BatchResult:
        return self.catalog.send(
            [{k: v for k, v in payload.items() if k != "catalogId"} for payload in payloads]
        )

    def vanished(self, run_id: int, store: StateStore, size: int) -> Iterator[list[str]]:
        catalog_id = self.catalog.known_id()
        after, keys = "", []
        if store.runs.get(run_id).records_total == 0 and store.ledger.unplanned(
            self.ledger, run_id, limit=1
        ):
            # An empty listing would mark the whole catalog deleted: more likely a VTEX glitch
            # or a wrong account than a store that sells nothing any more.
            raise FatalError(
                "VTEX listed no product at all, but earlier runs sent some; refusing to mark "
                "the whole Synerise catalog deleted. Check VTEX_ACCOUNT and the app key's "
                "Catalog permissions, then resume the run"
            )
        while page := store.ledger.unplanned(self.ledger, run_id, after, max(size, 500)):
            for key, digest in page:
                if digest != payload_hash(self._tombstone(key, catalog_id)):
                    keys.append(key)
                if len(keys) == size:
                    yield keys
                    keys = []
            after = page[-1][0]
        if keys:
            yield keys

    @staticmethod
    def _tombstone(key: str, catalog_id: int | None) -> dict[str, Any]:
        return {"catalogId": catalog_id, **catalog_tombstone(key)}


def stream_for_scope(
    scope: str, vtex: VtexClient, mapping: MappingConfig, fetch_concurrency: int = 8
) -> Stream:
    """Build the stream a run's scope names."""
    if scope == "orders":
        return OrdersStream(vtex, mapping, fetch_concurrency)
    if scope in ("customers_created", "customers_updated"):
        return CustomersStream(vtex, mapping, fetch_concurrency, by=scope.split("_", 1)[1])
    raise ValueError(f"unknown scope {scope!r}")


def guest_key(profile: dict[str, Any], mapping: MappingConfig) -> str:
    """The ``profiles`` ledger key of a guest profile: ``guest:<customId>``, or for a buyer known
    only by e-mail ``guest:email:<pseudonym>`` (never the address). The prefix keeps it apart
    from the ``CL`` document ids the customers sync uses."""
    if profile.get("customId"):
        return f"guest:{profile['customId']}"
    return f"guest:email:{fingerprint(str(profile['email']).lower(), mapping.salt_namespace, 32)}"


def not_found(key: str) -> SkippableRecordError:
    """The rejection for a record VTEX does not have: listed but gone when fetched, or a
    selected key it does not know."""
    return SkippableRecordError(
        RejectReason.NOT_FOUND, "VTEX has no such record (gone since listed, or an unknown id)", key
    )
