"""VTEX client: OMS orders, Master Data ``CL`` customers, the order hook and feed, catalog, prices.

One ``requests.Session`` (pooled for the fetch threads), app-key headers, the shared rate budgets
and retries, all through ``etl.http.HttpClient``. Catalog and Pricing calls draw on a budget of
their own (``catalog_budget``): Catalog publishes its own limits (45,000 requests/min per account,
15,000 per endpoint), apart from OMS and Master Data. Methods return plain ``dict``s as VTEX sends
them (mapping is ``schemas``' job) and follow one rule for absent things: a 404 on a single
resource (order, document, SKU, price, hook) returns ``None`` or ``False``, because a record
that vanished between listing and reading is a normal event of a sync, not an error.

Example:
    >>> vtex = VtexClient("https://acme.vtexcommercestable.com.br", "vtexappkey-acme-X", token)
    >>> page = vtex.list_orders(start, end, page=1)
    >>> order = vtex.get_order(page.orders[0]["orderId"])
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

import requests

from etl.errors import (
    AuthenticationError,
    ConfigError,
    EtlError,
    FatalError,
    PermissionDeniedError,
)
from etl.http import HttpClient, Timeout, decode_body, describe_body
from etl.retry import RetryPolicy
from etl.vtex.auth import AppKeyAuth
from etl.vtex.paginators import (
    MD_MAX_PAGE_SIZE,
    MD_SCROLL_MAX_SIZE,
    OMS_MAX_PAGE,
    OMS_MAX_PER_PAGE,
    IncompleteAnswerError,
    OrdersPage,
    ScrollExpiredError,
    ScrollPage,
    order_pages,
    order_windows,
    parse_content_range,
    scroll_pages,
)

if TYPE_CHECKING:
    from etl.config import Secret, Settings
    from etl.ratelimit import RateBudget

__all__ = ["CUSTOMER_ENTITY", "OrdersPage", "VtexClient"]

CUSTOMER_ENTITY = "CL"
"""The Master Data entity holding customers."""

_PLAIN_ID = re.compile(r"[A-Za-z0-9_-]{1,100}")
"""Ids a ``_where`` clause carries unquoted (UUIDs, numbers); others are looked up alone."""

Document = dict[str, Any]

_ONE_MS = timedelta(milliseconds=1)

FEED_MAX_LOT = 10
"""Most events one Orders Feed read returns (``maxlot``)."""
FEED_VISIBILITY_TIMEOUT = 240
"""Seconds a read event stays hidden: longer than processing a lot of 10 takes."""
FEED_RETENTION = 345_600
"""Four days, VTEX's minimum retention (the ERP guide's figure)."""

_HINTS: dict[type[EtlError], str] = {
    AuthenticationError: "Check VTEX_APP_KEY and VTEX_APP_TOKEN (a key pair of this account)",
    PermissionDeniedError: (
        "Give the app key's License Manager role the resource this call needs (OMS 'List "
        "orders' / 'View order', Dynamic Storage 'Read only documents', 'Feed v3 and Hook "
        "Admin', Catalog 'Product management' and 'SKUs', Pricing 'Read prices')"
    ),
    FatalError: "Check VTEX_ACCOUNT / VTEX_BASE_URL; this client does not expect that answer",
}


def format_time(moment: datetime) -> str:
    """ISO 8601 UTC with milliseconds and ``Z``, the form VTEX date filters document."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class VtexClient:
    """Reads (and the few writes) this project needs from one VTEX account.

    Args:
        base_url: ``https://{account}.{environment}.com.br`` or an override (the sandbox).
        app_key: the app key.
        app_token: the app token (``etl.config.Secret`` or ``str``).
        session: a session to use as is; by default a pooled one is created.
        budget: the shared ``vtex`` rate budget (``etl.ratelimit.RateBudget``): OMS, Master
            Data, the hook.
        catalog_budget: the shared ``vtex_catalog`` budget of Catalog and Pricing calls
            (default: ``budget``).
        retry: the retry policy (default ``RetryPolicy()``).
        timeout: ``(connect, read)`` seconds.
        pool_maxsize: connections kept per host (at least the fetch threads).
        pricing_url: base of the Pricing API, ``https://api.vtex.com/{account}``; defaults to
            ``base_url`` (the sandbox serves ``/pricing/prices/{itemId}`` on its own host).
    """

    def __init__(
        self,
        base_url: str,
        app_key: str,
        app_token: Secret | str,
        session: requests.Session | None = None,
        budget: RateBudget | None = None,
        retry: RetryPolicy | None = None,
        timeout: Timeout = (5.0, 30.0),
        *,
        pool_maxsize: int = 16,
        pricing_url: str | None = None,
        catalog_budget: RateBudget | None = None,
    ) -> None:
        self.http = HttpClient(
            base_url,
            service="VTEX",
            session=session,
            auth=AppKeyAuth(app_key, app_token),
            budget=budget,
            retry=retry,
            timeout=timeout,
            pool_maxsize=pool_maxsize,
            headers={"Accept": "application/json", "Content-Type": "application/json"},
            hints=_HINTS,
        )
        self.catalog_http = HttpClient(
            base_url,
            service="VTEX",
            session=self.http.session,
            auth=self.http.auth,
            budget=catalog_budget if catalog_budget is not None else budget,
            retry=self.http.retry,
            timeout=timeout,
            headers=self.http.headers,
            hints=_HINTS,
        )
        self.pricing_url = (pricing_url or base_url).rstrip("/")

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        budget: RateBudget | None = None,
        session: requests.Session | None = None,
        retry: RetryPolicy | None = None,
        catalog_budget: RateBudget | None = None,
    ) -> VtexClient:
        """Build from ``etl.config.Settings``; the pool fits the fetch concurrency.

        Raises:
            ConfigError: the VTEX credentials are not configured.
        """
        if not settings.vtex_base_url:
            raise ConfigError("VTEX_ACCOUNT", "an account name (or VTEX_BASE_URL)")
        if not settings.vtex_app_key:
            raise ConfigError("VTEX_APP_KEY", "an app key")
        if settings.vtex_app_token is None:
            raise ConfigError("VTEX_APP_TOKEN", "an app token")
        account, base_url = settings.vtex_account, settings.vtex_base_url
        default_host = f"https://{account}.{settings.vtex_environment}.com.br"
        pricing_url = f"https://api.vtex.com/{account}" if base_url == default_host else None
        return cls(
            base_url,
            settings.vtex_app_key,
            settings.vtex_app_token,
            session=session,
            budget=budget,
            retry=retry,
            pool_maxsize=max(10, 2 * settings.sync_fetch_concurrency),
            pricing_url=pricing_url,
            catalog_budget=catalog_budget,
        )

    def __repr__(self) -> str:
        return f"VtexClient({self.http.base_url!r})"

    def close(self) -> None:
        """Close the pooled connections (both budgets share them)."""
        self.http.session.close()

    # -- OMS orders ---------------------------------------------------------------------------

    def list_orders(
        self,
        date_from: datetime,
        date_to: datetime,
        page: int,
        per_page: int = OMS_MAX_PER_PAGE,
        order_by: str = "creationDate,asc",
        statuses: Sequence[str] | None = None,
    ) -> OrdersPage:
        """One page of ``GET /api/oms/pvt/orders`` filtered on ``creationDate``.

        Args:
            date_from: first creation instant (inclusive).
            date_to: last creation instant (inclusive, as VTEX's ``[A TO B]``).
            page: 1..30 (OMS serves no page past 30: split the window instead).
            per_page: 1..100.
            order_by: ``{field},{asc|desc}``.
            statuses: ``f_status`` values, comma-joined.

        Raises:
            ValueError: page or per_page out of range.
        """
        if not 1 <= page <= OMS_MAX_PAGE:
            raise ValueError(f"page must be 1..{OMS_MAX_PAGE}, got {page!r}")
        if not 1 <= per_page <= OMS_MAX_PER_PAGE:
            raise ValueError(f"per_page must be 1..{OMS_MAX_PER_PAGE}, got {per_page!r}")
        params: dict[str, Any] = {
            "f_creationDate": f"creationDate:[{format_time(date_from)} TO {format_time(date_to)}]",
            "page": page,
            "per_page": per_page,
            "orderBy": order_by,
        }
        if statuses:
            params["f_status"] = ",".join(statuses)
        data = _object(self.http.request("GET", "/api/oms/pvt/orders", params=params))
        paging, orders = data.get("paging"), data.get("list")
        if not isinstance(paging, Mapping) or not isinstance(orders, list):
            raise FatalError("VTEX list orders answered without 'list' and 'paging'")
        return OrdersPage(orders, int(paging.get("total") or 0), int(paging.get("pages") or 0))

    def iter_orders(
        self,
        date_from: datetime,
        date_to: datetime,
        per_page: int = OMS_MAX_PER_PAGE,
        statuses: Sequence[str] | None = None,
    ) -> Iterator[list[Document]]:
        """Every listed order created in ``[date_from, date_to)``, a page at a time.

        Windows over 3,000 orders are halved until each fits in 30 pages (``order_windows``).
        """

        def count(start: datetime, end: datetime) -> int:
            return self.list_orders(start, end - _ONE_MS, 1, 1, statuses=statuses).total

        def page_of(start: datetime, end: datetime, page: int) -> OrdersPage:
            return self.list_orders(start, end - _ONE_MS, page, per_page, statuses=statuses)

        cap = OMS_MAX_PAGE * per_page
        for start, end, total in order_windows(count, date_from, date_to, cap=cap):
            if total:
                yield from order_pages(functools.partial(page_of, start, end))

    def get_order(self, order_id: str) -> Document | None:
        """``GET /api/oms/pvt/orders/{orderId}``; ``None`` when VTEX answers 404."""
        path = f"/api/oms/pvt/orders/{_segment(order_id)}"
        response = self.http.request("GET", path, allow={404})
        return None if response.status_code == 404 else _object(response)

    # -- Master Data customers ----------------------------------------------------------------

    def search_customers(
        self, where: str, fields: Sequence[str], sort: str, start: int, end: int
    ) -> tuple[list[Document], int]:
        """Documents ``[start, end)`` of a ``CL`` search and the total it matches.

        Args:
            where: the ``_where`` clause.
            fields: ``_fields``.
            sort: ``_sort``, e.g. ``createdIn ASC`` (always sort when paging).
            start: first index (0-based).
            end: index after the last (``REST-Range: resources=start-end``), at most
                ``start + 100``; search reaches no document past the 10,000th.

        Raises:
            ValueError: an empty or too large range.
            IncompleteAnswerError: documents came without ``REST-Content-Range`` (retried first).
        """
        return self._search({"_where": where, "_sort": sort}, fields, start, end)

    def scroll_customers(
        self, where: str, fields: Sequence[str], size: int, sort: str | None = None
    ) -> Iterator[list[Document]]:
        """Every ``CL`` document matching ``where``, by the scroll API (no 10,000 cap).

        A token dead after 20 idle minutes (400 naming the token), or a page that failed (a
        timeout, 5xx, 429: VTEX may have served it and moved the token on, so asking again could
        skip a page), re-opens the scroll and fast-forwards past what was already yielded,
        checked on the ``id`` of the last document
        (so include ``id`` in ``fields`` and pass a ``sort``); when that is not possible
        ``ScrollExpiredError`` (a ``RetriableError``) ends the iteration, and the listing
        restarts. "Maximum simultaneous scrolls" (10 per account) is a ``RateLimitedError``.

        Args:
            where: the ``_where`` clause.
            fields: ``_fields``.
            size: documents per page, 1..1000.
            sort: ``_sort``.
        """
        if not 1 <= size <= MD_SCROLL_MAX_SIZE:
            raise ValueError(f"size must be 1..{MD_SCROLL_MAX_SIZE}, got {size!r}")
        path = f"/api/dataentities/{CUSTOMER_ENTITY}/scroll"
        query = {"_where": where, "_fields": _fields(fields), "_size": size}
        if sort:
            query["_sort"] = sort

        def open_scroll() -> ScrollPage:
            return _scroll_page(self.http.request("GET", path, params=query, check=_has_token))

        def follow(token: str) -> ScrollPage:
            response = self.http.request(
                "GET", path, params={"_token": token}, allow={400}, retried=False
            )
            if response.status_code == 400:
                text = describe_body(decode_body(response))
                if "token" in text.lower():
                    raise ScrollExpiredError(f"Master Data scroll token expired: {text}")
                raise FatalError(f"VTEX answered 400 to GET {path}: {text}")
            return _scroll_page(response)

        return scroll_pages(open_scroll, follow)

    def find_customer_by_user_id(self, user_id: str, fields: Sequence[str]) -> Document | None:
        """The ``CL`` document whose ``userId`` is ``user_id`` (an order's
        ``clientProfileData.userProfileId``); the most recently updated if several; else ``None``.
        """
        return self._find_customer("userId", user_id, fields)

    def find_customer_by_email(self, email: str, fields: Sequence[str]) -> Document | None:
        """The ``CL`` document whose ``email`` is ``email``; the most recently updated if
        several; else ``None``."""
        return self._find_customer("email", email, fields)

    def _find_customer(self, field: str, value: str, fields: Sequence[str]) -> Document | None:
        documents, _ = self._search({field: value, "_sort": "updatedIn DESC"}, fields, 0, 1)
        return documents[0] if documents else None

    def find_customers_by_user_ids(
        self, user_ids: Sequence[str], fields: Sequence[str], batch_size: int = 50
    ) -> dict[str, Document]:
        """The ``CL`` document of each ``userId`` (the most recently updated if several), found
        with one ``_where=userId=a OR userId=b ...`` search per ``batch_size`` ids.

        Performance (bench/orders.py): a search per buyer made Master Data as many calls as Get
        order, and both draw on the one ``vtex`` rate budget, so an orders sync reached only
        half of ``VTEX_RATE_LIMIT`` in orders/s; batched, a chunk of 100 orders costs two
        searches. An id the ``_where`` grammar cannot carry verbatim is looked up on its own.
        Users without a document are absent from the result.
        """
        return self._find_customers_by("userId", user_ids, fields, batch_size)

    def find_customers_by_ids(
        self, document_ids: Sequence[str], fields: Sequence[str], batch_size: int = 50
    ) -> dict[str, Document]:
        """The ``CL`` documents of these document ids, found with one ``_where=id=a OR id=b ...``
        search per ``batch_size`` ids (a selection or a replay of 500 customers is 10
        searches, not 500 reads). Search is served from an index that may lag behind a write
        by seconds: an id absent here is worth a ``get_customer``.
        """
        return self._find_customers_by("id", document_ids, fields, batch_size)

    def _find_customers_by(
        self, field: str, values: Sequence[str], fields: Sequence[str], batch_size: int
    ) -> dict[str, Document]:
        if not 1 <= batch_size <= MD_MAX_PAGE_SIZE:
            raise ValueError(f"batch_size must be 1..{MD_MAX_PAGE_SIZE}, got {batch_size!r}")
        wanted = list(dict.fromkeys(values))
        found: dict[str, Document] = {}
        for value in wanted:
            if not _PLAIN_ID.fullmatch(value):
                document = self._find_customer(field, value, fields)
                if document is not None:
                    found[value] = document
        plain = [value for value in wanted if _PLAIN_ID.fullmatch(value)]
        asked = list(dict.fromkeys([*fields, field]))  # to tell the documents apart
        for first in range(0, len(plain), batch_size):
            values_here = plain[first : first + batch_size]
            batch, where = set(values_here), " OR ".join(f"{field}={v}" for v in values_here)
            start = 0
            while True:  # one page unless a value names several documents
                documents, total = self._search(
                    {"_where": where, "_sort": "updatedIn DESC"},
                    asked,
                    start,
                    start + MD_MAX_PAGE_SIZE,
                )
                for document in documents:  # newest first: keep each value's first
                    owner = str(document.get(field))
                    if owner in batch and owner not in found:
                        found[owner] = (
                            document
                            if field in fields
                            else {k: v for k, v in document.items() if k != field}
                        )
                start += len(documents)
                if not documents or start >= total:
                    break
        return found

    def get_customer(self, document_id: str, fields: Sequence[str]) -> Document | None:
        """``GET /api/dataentities/CL/documents/{id}`` (strongly consistent); ``None`` on 404."""
        response = self.http.request(
            "GET",
            f"/api/dataentities/{CUSTOMER_ENTITY}/documents/{_segment(document_id)}",
            params={"_fields": _fields(fields)},
            allow={404},
        )
        if response.status_code == 404 or not response.content:
            return None
        return _object(response)

    def patch_customer(self, document_id: str, body: Mapping[str, Any]) -> bool:
        """Partially update a ``CL`` document (e.g. ``{"isNewsletterOptIn": false}``).

        Writing ``CL`` fires the account's ``CL`` triggers: guard against sync loops.

        Returns:
            ``False`` when the document does not exist (404).
        """
        response = self.http.request(
            "PATCH",
            f"/api/dataentities/{CUSTOMER_ENTITY}/documents/{_segment(document_id)}",
            json=dict(body),
            allow={404},
        )
        return response.status_code != 404

    def upsert_customer(self, body: Mapping[str, Any]) -> Document:
        """Create or partially update a ``CL`` document (``id`` in ``body`` selects it).

        Returns:
            VTEX's answer (``Id``, ``Href``, ``DocumentId``); ``{}`` when unchanged (304).
        """
        response = self.http.request(
            "PATCH", f"/api/dataentities/{CUSTOMER_ENTITY}/documents", json=dict(body)
        )
        return _object(response) if response.content else {}

    # -- order hook ---------------------------------------------------------------------------

    def get_hook_config(self) -> Document | None:
        """The app key's order hook configuration, or ``None`` when there is none."""
        response = self.http.request("GET", "/api/orders/hook/config", allow={404})
        if response.status_code == 404 or not response.content:
            return None
        return _object(response)

    def set_hook_config(
        self, url: str, statuses: Sequence[str], headers: Mapping[str, str] | None = None
    ) -> Document:
        """Point the app key's order hook at ``url`` for status changes to ``statuses``.

        Uses a ``FromWorkflow`` filter (``FromOrders`` can skip events). VTEX pings the URL on
        save and refuses the configuration (400) unless it answers 200.

        Args:
            url: the receiving endpoint (``https``).
            statuses: the workflow statuses to notify.
            headers: sent with every notification (the shared secret); never logged.

        Raises:
            FatalError: VTEX refused the configuration; the message names the host it pinged.
        """
        body = {
            "filter": {"type": "FromWorkflow", "status": list(statuses)},
            "hook": {"url": url, "headers": dict(headers or {})},
        }
        response = self.http.request("POST", "/api/orders/hook/config", json=body, allow={400})
        if response.status_code == 400:
            raise FatalError(
                f"VTEX refused the hook configuration: {describe_body(decode_body(response))}. "
                f"VTEX pings the URL on save and needs a 200 within 5 s: check that "
                f"{urlsplit(url).netloc or url!r} is reachable from the internet"
            )
        return _object(response) if response.content else {}

    def delete_hook_config(self) -> bool:
        """Remove the app key's order hook; ``False`` when there was none."""
        response = self.http.request("DELETE", "/api/orders/hook/config", allow={404})
        return response.status_code != 404

    # -- orders feed v3 -----------------------------------------------------------------------

    def get_feed_config(self) -> Document | None:
        """The app key's Orders Feed configuration (with ``quantity``), or ``None`` if none."""
        response = self.http.request("GET", "/api/orders/feed/config", allow={404})
        if response.status_code == 404 or not response.content:
            return None
        return _object(response)

    def set_feed_config(
        self,
        statuses: Sequence[str],
        visibility_timeout: int = FEED_VISIBILITY_TIMEOUT,
        retention: int = FEED_RETENTION,
    ) -> Document:
        """Give the app key an Orders Feed of status changes to ``statuses``.

        ``FromWorkflow``, like the hook (``FromOrders`` can skip events). Events stay until
        committed, for ``retention`` seconds at most (4 to 14 days); a read hides them for
        ``visibility_timeout`` seconds. One feed per app key: users of the key share its queue.

        Raises:
            FatalError: VTEX refused the configuration (the message quotes VTEX's reason).
        """
        body = {
            "filter": {"type": "FromWorkflow", "status": list(statuses)},
            # The spec's request schema spells the second field with a capital M.
            "queue": {
                "visibilityTimeoutInSeconds": visibility_timeout,
                "MessageRetentionPeriodInSeconds": retention,
            },
        }
        response = self.http.request(
            "POST", "/api/orders/feed/config", json=body, allow={400, 409}
        )
        if response.status_code in (400, 409):
            raise FatalError(
                f"VTEX refused the feed configuration: {describe_body(decode_body(response))}"
            )
        return _object(response) if response.content else {}

    def delete_feed_config(self) -> bool:
        """Remove the app key's Orders Feed; ``False`` when there was none."""
        response = self.http.request("DELETE", "/api/orders/feed/config", allow={404})
        return response.status_code != 404

    def read_feed(self, max_lot: int = FEED_MAX_LOT) -> list[Document] | None:
        """Up to ``max_lot`` (1-10) feed events, hidden from other readers for the visibility
        timeout; ``None`` when the app key has no feed (VTEX deletes an idle one)."""
        if not 1 <= max_lot <= FEED_MAX_LOT:
            raise ValueError(f"max_lot must be 1..{FEED_MAX_LOT}")
        response = self.http.request(
            "GET", "/api/orders/feed", params={"maxlot": max_lot}, allow={404}
        )
        if response.status_code == 404:
            return None
        return _list(response)

    def commit_feed(self, handles: Sequence[str]) -> None:
        """Remove events from the feed by the handles of their last read."""
        if handles:
            self.http.request("POST", "/api/orders/feed", json={"handles": list(handles)})

    # -- catalog and prices -------------------------------------------------------------------

    def product_and_sku_ids(
        self, start: int, end: int, category_id: int | None = None
    ) -> tuple[dict[str, list[int]], int]:
        """Products ``start..end`` (1-based, inclusive, at most 250) with their SKU ids.

        Returns:
            ``{productId: [skuId, ...]}`` and the total number of products.
        """
        if not 1 <= start <= end or end - start >= 250:
            raise ValueError(f"need 1 <= start <= end and at most 250 products, got {start}-{end}")
        params: dict[str, Any] = {"_from": start, "_to": end}
        if category_id is not None:
            params["categoryId"] = category_id
        data = _object(
            self.catalog_http.request(
                "GET", "/api/catalog_system/pvt/products/GetProductAndSkuIds", params=params
            )
        )
        products, span = data.get("data") or {}, data.get("range") or {}
        if not isinstance(products, Mapping) or not isinstance(span, Mapping):
            raise FatalError("VTEX GetProductAndSkuIds answered without 'data' and 'range'")
        return {str(k): list(v or ()) for k, v in products.items()}, int(span.get("total") or 0)

    def get_sku(self, sku_id: int | str) -> Document | None:
        """The SKU context (``stockkeepingunitbyid``); ``None`` on 404."""
        return self._catalog_get(
            f"/api/catalog_system/pvt/sku/stockkeepingunitbyid/{_segment(str(sku_id))}"
        )

    def get_price(self, item_id: int | str) -> Document | None:
        """The Pricing v2 price of an SKU (``/pricing/prices/{itemId}``); ``None`` on 404."""
        return self._catalog_get(f"{self.pricing_url}/pricing/prices/{_segment(str(item_id))}")

    def get_sales_channel(self, channel_id: int | str) -> Document | None:
        """A trade policy (``/api/catalog_system/pub/saleschannel/{id}``: name, currency...);
        ``None`` on 404."""
        return self._catalog_get(
            f"/api/catalog_system/pub/saleschannel/{_segment(str(channel_id))}"
        )

    def _catalog_get(self, path: str) -> Document | None:
        response = self.catalog_http.request("GET", path, allow={404})
        return None if response.status_code == 404 else _object(response)

    # -- helpers ------------------------------------------------------------------------------

    def _search(
        self, params: Mapping[str, Any], fields: Sequence[str], start: int, end: int
    ) -> tuple[list[Document], int]:
        if not 0 <= start < end or end - start > MD_MAX_PAGE_SIZE:
            raise ValueError(
                f"need 0 <= start < end <= start + {MD_MAX_PAGE_SIZE}, got {start}-{end}"
            )
        response = self.http.request(
            "GET",
            f"/api/dataentities/{CUSTOMER_ENTITY}/search",
            params={**params, "_fields": _fields(fields)},
            headers={"REST-Range": f"resources={start}-{end}"},
            check=_has_content_range,
        )
        documents = _list(response)
        content_range = parse_content_range(response.headers.get("REST-Content-Range"))
        total = content_range.total if content_range else start + len(documents)
        return documents, total


def _segment(value: str) -> str:
    """A path segment, percent-encoded (``/`` included)."""
    if not value:
        raise ValueError("an empty id cannot name a resource")
    return quote(value, safe="")


def _fields(fields: Sequence[str]) -> str:
    if not fields or isinstance(fields, str):
        raise ValueError("fields must be a non-empty list of field names")
    return ",".join(fields)


def _object(response: requests.Response) -> Document:
    body = decode_body(response)
    if isinstance(body, dict):
        return body
    raise _unexpected(response, "a JSON object")


def _list(response: requests.Response) -> list[Document]:
    body = decode_body(response)
    if body is None:
        return []
    if isinstance(body, list):
        return body  # type: ignore[return-value]  # documents are JSON objects
    raise _unexpected(response, "a JSON array")


def _unexpected(response: requests.Response, expected: str) -> FatalError:
    """An answer whose body has the wrong shape: the API changed or the URL is wrong."""
    request = response.request
    return FatalError(
        f"VTEX answered {response.status_code} to {request.method} "
        f"{urlsplit(request.url or '').path} with a body that is not {expected}"
    )


def _has_content_range(response: requests.Response) -> None:
    """A search page with documents must say the total (VTEX sometimes omits it: ask again)."""
    if "REST-Content-Range" not in response.headers and _list(response):
        raise IncompleteAnswerError("Master Data search answered without REST-Content-Range")


def _has_token(response: requests.Response) -> None:
    """A first scroll page with documents must carry its token (sometimes omitted: ask again)."""
    if "X-VTEX-MD-TOKEN" not in response.headers and _list(response):
        raise IncompleteAnswerError("Master Data scroll answered without X-VTEX-MD-TOKEN")


def _scroll_page(response: requests.Response) -> ScrollPage:
    return ScrollPage(_list(response), response.headers.get("X-VTEX-MD-TOKEN"))
