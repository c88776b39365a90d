"""VTEX API emulator: OMS orders, Master Data ``CL``, the order hook, catalog and prices.

A real aiohttp application over a `etl.sandbox.data.Source` (generated or fixtures) plus a
`etl.sandbox.data.Store` overlay for run-time changes. It honours the contract in the VTEX
reference notes (``shared/reference/vtex-api.md``, § numbers below); choices made where VTEX's
behaviour is UNCONFIRMED are listed here and nowhere else.

Auth: every route outside ``/__sandbox__/`` needs ``X-VTEX-API-AppKey`` and
``X-VTEX-API-AppToken`` (§1): a missing header answers 401, a wrong value 403 (OMS routes with
``{"error": {"code": "1", "message": ..., "exception": null}}``, the others with
``{"Message": ...}``, the shapes of the specs' error examples).

Routes (aiohttp route names, used by `etl.sandbox.faults` patterns):

=========================== ======================================================== =====
name                        path                                                     §
=========================== ======================================================== =====
oms.list_orders             GET /api/oms/pvt/orders                                  2
oms.get_order               GET /api/oms/pvt/orders/{orderId} (also ``seq{n}``)       3
oms.hook_config             GET|POST|DELETE /api/orders/hook/config                  4
md.search                   GET /api/dataentities/CL/search                          5
md.scroll                   GET /api/dataentities/CL/scroll                          5
md.document                 GET|PATCH|DELETE /api/dataentities/CL/documents/{id}     5
md.documents_upsert         PATCH|POST /api/dataentities/CL/documents                5
md.other_entity             any /api/dataentities/{other}/... -> 404 (CL only)
catalog.*, pricing.*        the Catalog and Pricing routes (`etl.sandbox.vtex.catalog`) 6
=========================== ======================================================== =====

Sandbox choices for UNCONFIRMED behaviour:

* List orders: page > 30 answers **400** ``Max page exceed (30)...``; ``per_page`` > 100 400;
  ``orderBy`` defaults to ``creationDate,desc`` and only ``creationDate`` / ``orderId`` are
  emulated; filters the sandbox does not emulate (``q``, ``f_UtmSource``, ...) answer 400
  rather than being silently ignored. ``stats`` describe the returned page only (whole
  ``Mean``/``StdDev`` values are sent as integers: the spec types some so). List rows show the
  current status (no indexing lag).
* Master Data: a missing ``REST-Range`` gives rows 0-15; ranges over 100 documents or ending
  past 10,000 answer 400. ``REST-Content-Range`` is ``resources {x}-{y}/{total}`` (a space, as
  observed in the field; the spec's text shows ``=``). Without ``_fields`` only ``id``,
  ``accountId``, ``accountName`` and ``dataEntityId`` are returned; unknown fields come back
  ``null``. Without ``_sort`` results are in ``createdIn ASC`` order. ``_sort`` on a field other
  than ``createdIn``/``updatedIn`` works up to 50,000 candidates. Date literals compare at
  millisecond precision, except a date without time (``2025-01-01``), which stands for the whole
  day: ``>`` excludes that day, ``<=`` includes it (WoowUp's observation, §5). Search is strongly
  consistent (real search lags writes). A scroll that has served its last (empty) page stops
  counting towards the 10 simultaneous scrolls; its token answers ``[]`` until it expires.
  Unknown document ids answer 404 ``{"Message": "Document not found"}``.
* Hook: ``FromOrders`` (JSONata) filters are not emulated (400); a ``FromWorkflow`` filter without
  ``status`` matches every change. Notifications are retried after each of
  ``hook_retry_delays`` seconds when the endpoint does not answer 200 within ``hook_timeout``.
* Catalog and Pricing: see `etl.sandbox.vtex.catalog`.

Inspection (no auth, no faults): ``GET /__sandbox__/stats``, ``POST /__sandbox__/reset``,
``GET /__sandbox__/vtex/expected`` (ground truth), ``GET /__sandbox__/vtex/hook`` (config and
deliveries), ``POST /__sandbox__/orders/{orderId}/status``, ``POST /__sandbox__/customers``,
``PATCH|DELETE /__sandbox__/customers/{id}``, the catalog changes (``/__sandbox__/catalog/...``,
`etl.sandbox.vtex.catalog`) and ``/__sandbox__/faults``.
"""

from __future__ import annotations

import asyncio
import collections
import fnmatch
import hmac
import itertools
import math
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import aiohttp
from aiohttp import web

from etl.sandbox.data import (
    Doc,
    Getter,
    NotSortable,
    Predicate,
    Ref,
    Source,
    Store,
    parse_time,
)
from etl.sandbox.faults import SANDBOX_PREFIX, FaultInjector, add_fault_routes
from etl.sandbox.server import call_in_loop
from etl.sandbox.vtex.catalog import CatalogRoutes
from etl.sandbox.vtex.feed import OrdersFeed
from etl.sandbox.vtex.mdql import (
    BoolOp,
    Cmp,
    Node,
    QueryPlan,
    WhereError,
    check_time_literals,
    evaluate,
    parse_where,
    plan_query,
)
from etl.sandbox.vtex.protocol import (
    DEFAULT_APP_KEY,
    DEFAULT_APP_TOKEN,
    MD_DEFAULT_RANGE,
    MD_DEFAULT_SCROLL_SIZE,
    MD_MAX_RANGE,
    MD_MAX_SCROLL_SIZE,
    MD_SEARCH_CAP,
    OMS_DEFAULT_PER_PAGE,
    OMS_MAX_PAGE,
    OMS_MAX_PER_PAGE,
    ORDER_DATE_FILTERS,
    RANGE_FILTER,
    REST_RANGE,
    UNEMULATED_ORDER_FILTERS,
    error_response,
    int_param,
    list_row,
    message_error,
    oms_error,
    page_stats,
    parse_fields,
    project_fields,
    vtex_error_body,
)
from etl.sandbox.vtex.state import LRU, Cursor, Hook, Scroll


class VtexSandbox:
    """The VTEX account served by `make_app`.

    Args:
        dataset: the data (`etl.sandbox.data.Dataset` or `FixtureDataset`).
        app_key, app_token: the only accepted credentials.
        account: the account name (notification ``Origin.Account``).
        faults: a `FaultInjector`; one answering with VTEX error bodies is created otherwise.
        scroll_ttl: seconds a scroll token survives without use (VTEX: 20 minutes).
        max_scrolls: simultaneous open scrolls (VTEX: 10).
        hook_timeout: seconds a hook endpoint has to answer 200 (VTEX: 5).
        hook_retry_delays: waits before each notification retry.
        hook_miss_rate: share of status changes the hook never notifies (a lost delivery: the
            Orders Feed still has them).
        feed_duplicate_rate: share of Orders Feed events delivered twice.
        seed: seeds the draws of the two rates above.
        clock: monotonic seconds (scroll expiry); tests pass a fake one.
        wall_clock: epoch seconds for ``updatedIn``/``lastChange`` written at run time.
        denied_routes: route-name patterns (``fnmatch``, e.g. ``catalog.*``) the app key's role
            lacks: valid credentials get 403 there, as a License Manager role without that
            resource does.
    """

    def __init__(
        self,
        dataset: Source,
        app_key: str = DEFAULT_APP_KEY,
        app_token: str = DEFAULT_APP_TOKEN,
        account: str = "sandbox",
        faults: FaultInjector | None = None,
        *,
        scroll_ttl: float = 1200.0,
        max_scrolls: int = 10,
        hook_timeout: float = 5.0,
        hook_retry_delays: tuple[float, ...] = (1.0, 2.0, 4.0),
        hook_miss_rate: float = 0.0,
        feed_duplicate_rate: float = 0.0,
        seed: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        denied_routes: tuple[str, ...] = (),
    ) -> None:
        self.source = dataset
        self.denied_routes = denied_routes
        self.store = Store(dataset, wall_clock=wall_clock)
        self.catalog = CatalogRoutes(dataset)
        self.app_key, self.app_token, self.account = app_key, app_token, account
        self.faults = faults if faults is not None else FaultInjector(error_body=vtex_error_body)
        self.scroll_ttl, self.max_scrolls = scroll_ttl, max_scrolls
        self.hook_timeout, self.hook_retry_delays = hook_timeout, hook_retry_delays
        self._clock = clock
        if not 0.0 <= hook_miss_rate <= 1.0:
            raise ValueError("hook_miss_rate must be between 0 and 1")
        self.hook_miss_rate = hook_miss_rate
        self._random = random.Random(seed).random
        self.feed = OrdersFeed(clock, self._random, feed_duplicate_rate)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._reset_state()

    def _reset_state(self) -> None:
        self.requests: collections.Counter[str] = collections.Counter()
        self.responses: collections.Counter[str] = collections.Counter()
        self.hook: Hook | None = None
        self.feed.reset()
        self.hook_stats: collections.Counter[str] = collections.Counter()
        self.deliveries: collections.deque[Doc] = collections.deque(maxlen=1000)
        self._scrolls: dict[str, Scroll] = {}
        self.scroll_stats: collections.Counter[str] = collections.Counter()
        self._searches = LRU(64)
        self._order_counts = LRU(256)

    # -- Python API (thread-safe: hops into the serving loop) ------------------------------------

    def reset(self) -> None:
        """Forget run-time changes, scrolls, the hook and counters (fault rules stay)."""

        def do() -> None:
            self.store.reset()
            self.catalog.reset()
            self._reset_state()
            self.faults.reset_stats()

        call_in_loop(self._loop, do)

    def set_order_status(
        self, order_id: str, status: str, remove_items: list[str] | None = None
    ) -> Doc | None:
        """Change an order's status like the admin route (fires the hook); None if unknown."""

        def do() -> Doc | None:
            return self._change_status(order_id, status, remove_items or [])

        return call_in_loop(self._loop, do)

    def stats(self) -> Doc:
        return call_in_loop(self._loop, self._stats)

    # -- application ----------------------------------------------------------------------------

    def make_app(self) -> web.Application:
        """A new aiohttp Application serving this account (state is shared between apps)."""
        app = web.Application(
            middlewares=[self._count_middleware(), self.faults.middleware, self._auth_middleware()]
        )

        async def startup(app: web.Application) -> None:
            self._loop = asyncio.get_running_loop()

        async def cleanup(app: web.Application) -> None:
            for task in list(self._tasks):
                task.cancel()
            if self._session is not None:
                await self._session.close()
                self._session = None

        app.on_startup.append(startup)
        app.on_cleanup.append(cleanup)
        r = app.router
        r.add_get("/api/oms/pvt/orders", self.list_orders, name="oms.list_orders")
        r.add_get("/api/oms/pvt/orders/{orderId}", self.get_order, name="oms.get_order")
        hook = r.add_resource("/api/orders/hook/config", name="oms.hook_config")
        hook.add_route("GET", self.hook_get)
        hook.add_route("POST", self.hook_post)
        hook.add_route("DELETE", self.hook_delete)
        self.feed.add_routes(r)
        r.add_get("/api/dataentities/CL/search", self.md_search, name="md.search")
        r.add_get("/api/dataentities/CL/scroll", self.md_scroll, name="md.scroll")
        document = r.add_resource("/api/dataentities/CL/documents/{id}", name="md.document")
        document.add_route("GET", self.md_get)
        document.add_route("PATCH", self.md_patch)
        document.add_route("DELETE", self.md_delete)
        upsert = r.add_resource("/api/dataentities/CL/documents", name="md.documents_upsert")
        upsert.add_route("PATCH", self.md_upsert)
        upsert.add_route("POST", self.md_create)
        r.add_route(
            "*", "/api/dataentities/{acronym}/{rest:.*}", self.md_other, name="md.other_entity"
        )
        self.catalog.add_routes(r)
        r.add_post(
            "/__sandbox__/orders/{orderId}/status", self.admin_status, name="sandbox.order_status"
        )
        r.add_post("/__sandbox__/customers", self.admin_create, name="sandbox.customer_create")
        admin_customer = r.add_resource("/__sandbox__/customers/{id}", name="sandbox.customer")
        admin_customer.add_route("PATCH", self.admin_patch)
        admin_customer.add_route("DELETE", self.admin_delete)
        r.add_post("/__sandbox__/reset", self.admin_reset, name="sandbox.reset")
        r.add_get("/__sandbox__/stats", self.admin_stats, name="sandbox.stats")
        r.add_get("/__sandbox__/vtex/expected", self.admin_expected, name="sandbox.vtex_expected")
        r.add_get("/__sandbox__/vtex/hook", self.admin_hook, name="sandbox.vtex_hook")
        add_fault_routes(app, self.faults)
        return app

    def _count_middleware(self) -> Any:
        @web.middleware
        async def count(
            request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
        ) -> web.StreamResponse:
            name = request.match_info.route.name
            if name is not None and not request.path.startswith(SANDBOX_PREFIX):
                self.requests[name] += 1
            try:
                response = await handler(request)
            except web.HTTPException as exc:
                if exc.status < 400:
                    raise
                self.responses[str(exc.status)] += 1
                return error_response(request, exc.status, exc.reason)
            self.responses[str(response.status)] += 1
            return response

        return count

    def _auth_middleware(self) -> Any:
        key, token = self.app_key.encode(), self.app_token.encode()

        @web.middleware
        async def auth(
            request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
        ) -> web.StreamResponse:
            if request.path.startswith(SANDBOX_PREFIX):
                return await handler(request)
            given_key = request.headers.get("X-VTEX-API-AppKey")
            given_token = request.headers.get("X-VTEX-API-AppToken")
            if not given_key or not given_token:
                return error_response(request, 401, "Unauthorized access")
            key_ok = hmac.compare_digest(given_key.encode(), key)
            token_ok = hmac.compare_digest(given_token.encode(), token)
            if not (key_ok and token_ok):
                return error_response(request, 403, "Forbidden: invalid app key or app token")
            route = request.match_info.route.name or ""
            if any(fnmatch.fnmatchcase(route, denied) for denied in self.denied_routes):
                return error_response(request, 403, f"Forbidden: the app key's role lacks {route}")
            return await handler(request)

        return auth

    # -- OMS ------------------------------------------------------------------------------------

    async def list_orders(self, request: web.Request) -> web.Response:
        query = request.query
        unemulated = sorted(UNEMULATED_ORDER_FILTERS & set(query))
        if unemulated:
            return oms_error(400, f"the sandbox does not emulate {', '.join(unemulated)}")
        try:
            page = int_param(query, "page", 1)
            per_page = int_param(query, "per_page", OMS_DEFAULT_PER_PAGE)
        except ValueError as exc:
            return oms_error(400, str(exc))
        if page < 1:
            return oms_error(400, f"page must be >= 1, got {page}")
        if page > OMS_MAX_PAGE:
            return oms_error(
                400, f"Max page exceed ({OMS_MAX_PAGE}), refine your filter to get more orders"
            )
        if not 1 <= per_page <= OMS_MAX_PER_PAGE:
            return oms_error(400, f"per_page must be between 1 and {OMS_MAX_PER_PAGE}")
        bounds: dict[str, tuple[int | None, int | None]] = {}
        for param, name in ORDER_DATE_FILTERS.items():
            raw = query.get(param)
            if raw is None:
                continue
            match = RANGE_FILTER.fullmatch(raw)
            if match is None or match.group(1) != name:
                return oms_error(400, f"{param} must look like {name}:[FROM TO TO], got {raw!r}")
            try:
                low = None if match.group(2) == "*" else parse_time(match.group(2))
                high = None if match.group(3) == "*" else parse_time(match.group(3))
            except ValueError as exc:
                return oms_error(400, f"{param}: {exc}")
            bounds[name] = (low, high)
        raw_status = query.get("f_status")
        statuses = None
        if raw_status:
            statuses = frozenset(s.strip() for s in raw_status.split(",") if s.strip())
        sort_field, _, direction = query.get("orderBy", "creationDate,desc").partition(",")
        direction = direction.strip().lower() or "asc"
        if sort_field.strip() not in ("creationDate", "orderId") or direction not in (
            "asc",
            "desc",
        ):
            return oms_error(
                400, "orderBy: the sandbox emulates creationDate,asc|desc and orderId,asc|desc"
            )
        key = (self.store.version, tuple(sorted(bounds.items())), statuses)
        total = self._order_counts.recall(key)
        if total is None:
            total = self._order_counts.remember(key, self.store.count_orders(bounds, statuses))
        matches = self.store.query_orders(bounds, statuses, desc=direction == "desc")
        chosen = itertools.islice(matches, (page - 1) * per_page, page * per_page)
        rows = [list_row(self.store.order_at(i)) for i in chosen]
        body = {
            "list": rows,
            "facets": [],
            "paging": {
                "total": total,
                "pages": math.ceil(total / per_page),
                "currentPage": page,
                "perPage": per_page,
            },
            "stats": {
                "stats": {
                    "totalValue": page_stats(rows, "totalValue"),
                    "totalItems": page_stats(rows, "totalItems"),
                }
            },
        }
        return web.json_response(body)

    async def get_order(self, request: web.Request) -> web.Response:
        order = self.store.order(request.match_info["orderId"])
        if order is None:
            return oms_error(404, "Order not found", code="OMS004")
        return web.json_response(order)

    # -- hook -----------------------------------------------------------------------------------

    async def hook_get(self, request: web.Request) -> web.Response:
        if self.hook is None:
            return oms_error(404, "Hook configuration not found")
        return web.json_response(self.hook.body)

    async def hook_delete(self, request: web.Request) -> web.Response:
        if self.hook is None:
            return oms_error(404, "Hook configuration not found")
        self.hook = None
        return web.json_response({})

    async def hook_post(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            return oms_error(400, "the body must be JSON")
        parsed = self._parse_hook(body)
        if isinstance(parsed, str):
            return oms_error(400, parsed)
        self.hook_stats["pings"] += 1
        status, detail = await self._post(parsed.url, parsed.headers, {"hookConfig": "ping"})
        if status != 200:
            self.hook_stats["ping_failures"] += 1
            return oms_error(
                400, f"the hook URL did not answer the ping with 200 ({detail}); nothing was saved"
            )
        self.hook = parsed
        return web.json_response(parsed.body)

    @staticmethod
    def _parse_hook(body: Any) -> Hook | str:
        if not isinstance(body, dict):
            return "expected {filter: {...}, hook: {url, headers}}"
        spec, hook = body.get("filter"), body.get("hook")
        if not isinstance(spec, dict) or not isinstance(hook, dict):
            return "expected {filter: {...}, hook: {url, headers}}"
        if spec.get("type") == "FromOrders":
            return "FromOrders (JSONata) filters are not emulated by the sandbox; use FromWorkflow"
        if spec.get("type") != "FromWorkflow":
            return "filter.type must be FromWorkflow or FromOrders"
        status = spec.get("status")
        if status is not None and (
            not isinstance(status, list) or not all(isinstance(s, str) for s in status)
        ):
            return "filter.status must be a list of status names"
        url, headers = hook.get("url"), hook.get("headers") or {}
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            return "hook.url must be an http(s) URL"
        if not isinstance(headers, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
        ):
            return "hook.headers must map names to string values"
        statuses = frozenset(status) if status else None
        saved = {"filter": spec, "hook": {"url": url, "headers": headers}}
        return Hook(statuses, url, dict(headers), saved)

    async def _post(self, url: str, headers: Mapping[str, str], payload: Doc) -> tuple[int, str]:
        """POST JSON; ``(status, description)`` with status 0 on a network error or timeout."""
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.hook_timeout)
            )
        try:
            async with self._session.post(url, json=payload, headers=dict(headers)) as response:
                await response.read()
                return response.status, f"HTTP {response.status}"
        except (TimeoutError, aiohttp.ClientError) as exc:
            return 0, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__

    def _change_status(self, order_id: str, status: str, remove_items: list[str]) -> Doc | None:
        changed = self.store.set_order_status(order_id, status, remove_items)
        if changed is None:
            return None
        order, previous, last_change = changed
        self.feed.publish(
            {"domain": "Marketplace", "state": status, "lastState": previous, "orderId": order_id,
             "lastChange": last_change, "currentChange": order["lastChange"]}
        )  # fmt: skip
        hook = self.hook
        notified = hook is not None and (hook.statuses is None or status in hook.statuses)
        if notified and self._random() < self.hook_miss_rate:
            self.hook_stats["missed"] += 1  # a delivery VTEX lost: only the feed has it
        elif hook is not None and notified:
            payload = {
                "Domain": "Marketplace",
                "OrderId": order_id,
                "State": status,
                "LastState": previous,
                "LastChange": last_change,
                "CurrentChange": order["lastChange"],
                "Origin": {"Account": self.account, "Key": self.app_key},
            }
            self.hook_stats["notifications"] += 1
            try:
                task = asyncio.get_running_loop().create_task(self._deliver(hook, payload))
            except RuntimeError:  # not being served: nobody to deliver from
                self.hook_stats["failed"] += 1
            else:
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        return {
            "orderId": order_id,
            "status": status,
            "lastState": previous,
            "lastChange": order["lastChange"],
            "hookNotified": notified,
        }

    async def _deliver(self, hook: Hook, payload: Doc) -> None:
        record = {"OrderId": payload["OrderId"], "State": payload["State"], "attempts": 0}
        self.deliveries.append(record)
        for delay in (0.0, *self.hook_retry_delays):
            if delay:
                await asyncio.sleep(delay)
            record["attempts"] += 1
            self.hook_stats["attempts"] += 1
            status, detail = await self._post(hook.url, hook.headers, payload)
            record["last"] = detail
            if status == 200:
                record["delivered"] = True
                self.hook_stats["delivered"] += 1
                return
        record["delivered"] = False
        self.hook_stats["failed"] += 1

    # -- Master Data ----------------------------------------------------------------------------

    def _compile(self, query: Mapping[str, str]) -> tuple[Any, QueryPlan, Predicate | None] | str:
        """The cache key, plan and residual predicate of a search/scroll query, or an error."""
        clauses: list[Node] = []
        where = query.get("_where")
        try:
            if where:
                clauses.append(parse_where(where))
            for name, value in query.items():
                if not name.startswith("_") and name != "an":
                    clauses.append(Cmp(name, "=", value))
            node = clauses[0] if len(clauses) == 1 else BoolOp("and", tuple(clauses))
            if clauses:
                check_time_literals(node)
            plan = plan_query(node, self.store) if clauses else QueryPlan()
        except WhereError as exc:
            return str(exc)
        except ValueError as exc:
            return f"_where: {exc}"
        predicate = None
        if not plan.exact:

            def predicate(get: Getter) -> bool:
                return evaluate(node, get)

        filters = tuple(sorted((k, v) for k, v in query.items() if not k.startswith("_")))
        key = (self.store.version, where, filters)
        return key, plan, predicate

    @staticmethod
    def _parse_sort(raw: str | None) -> tuple[str, bool] | str:
        if raw is None or not raw.strip():
            return "createdIn", False
        parts = raw.split()
        if len(parts) > 2 or (len(parts) == 2 and parts[1].upper() not in ("ASC", "DESC")):
            return f"_sort must be 'field ASC' or 'field DESC', got {raw!r}"
        return parts[0], len(parts) == 2 and parts[1].upper() == "DESC"

    def _query(self, plan: QueryPlan, predicate: Predicate | None, sort: str, desc: bool) -> Any:
        return self.store.query_customers(
            created=plan.created,
            updated=plan.updated,
            points=plan.points,
            predicate=predicate,
            sort=sort,
            desc=desc,
        )

    def _docs(self, refs: list[Ref], fields: list[str] | None) -> list[Doc]:
        out = []
        for ref in refs:
            doc = self.store.customer(ref)
            if doc is not None:
                out.append(project_fields(doc, fields))
        return out

    async def md_search(self, request: web.Request) -> web.Response:
        raw_range = request.headers.get("REST-Range")
        if raw_range is None:
            start, end = MD_DEFAULT_RANGE
        else:
            match = REST_RANGE.fullmatch(raw_range)
            if match is None:
                return message_error(400, f"REST-Range must be resources=x-y, got {raw_range!r}")
            start, end = int(match.group(1)), int(match.group(2))
            if end < start:
                return message_error(400, f"REST-Range end before start: {raw_range!r}")
            if end - start > MD_MAX_RANGE:
                return message_error(
                    400, f"The maximum number of documents per request is {MD_MAX_RANGE}"
                )
            if end > MD_SEARCH_CAP:
                return message_error(
                    400,
                    f"Search can reach only the first {MD_SEARCH_CAP} documents (asked for"
                    f" resources={start}-{end}); use the scroll endpoint beyond that",
                )
        compiled = self._compile(request.query)
        sort = self._parse_sort(request.query.get("_sort"))
        if isinstance(compiled, str) or isinstance(sort, str):
            return message_error(400, compiled if isinstance(compiled, str) else str(sort))
        key, plan, predicate = compiled
        cache_key = (key, sort)
        cursor: Cursor | None = self._searches.recall(cache_key)
        try:
            if cursor is None:
                result = self._query(plan, predicate, *sort)
                cursor = self._searches.remember(cache_key, Cursor(result.count(), iter(result)))
            refs = cursor.upto(end)[start:end]
        except NotSortable as exc:
            return message_error(400, str(exc))
        docs = self._docs(refs, parse_fields(request.query.get("_fields")))
        headers = {"REST-Content-Range": f"resources {start}-{start + len(docs)}/{cursor.total}"}
        return web.json_response(docs, headers=headers)

    async def md_scroll(self, request: web.Request) -> web.Response:
        now = self._clock()
        self._expire_scrolls(now)
        token = request.query.get("_token")
        if token is not None:
            scroll = self._scrolls.get(token)
            if scroll is None:
                return message_error(400, "Operation not found for this token")
        else:
            active = sum(1 for s in self._scrolls.values() if not s.exhausted)
            if active >= self.max_scrolls:
                return message_error(
                    400, f"Maximum simultaneous scrolls rate exceeded ({self.max_scrolls})"
                )
            try:
                size = int_param(request.query, "_size", MD_DEFAULT_SCROLL_SIZE)
            except ValueError as exc:
                return message_error(400, str(exc))
            if not 1 <= size <= MD_MAX_SCROLL_SIZE:
                return message_error(400, f"_size must be between 1 and {MD_MAX_SCROLL_SIZE}")
            compiled = self._compile(request.query)
            sort = self._parse_sort(request.query.get("_sort"))
            if isinstance(compiled, str) or isinstance(sort, str):
                return message_error(400, compiled if isinstance(compiled, str) else str(sort))
            _, plan, predicate = compiled
            try:
                result = self._query(plan, predicate, *sort)
            except NotSortable as exc:
                return message_error(400, str(exc))
            token = uuid.uuid4().hex
            fields = parse_fields(request.query.get("_fields"))
            scroll = Scroll(iter(result), fields, size, result.count(), now)
            self._scrolls[token] = scroll
            self.scroll_stats["opened"] += 1
        scroll.last_used = now
        try:
            refs = list(itertools.islice(scroll.iterator, scroll.size))
        except NotSortable as exc:
            return message_error(400, str(exc))
        if not refs and not scroll.exhausted:
            scroll.exhausted = True
            self.scroll_stats["finished"] += 1
        headers = {"X-VTEX-MD-TOKEN": token, "REST-Content-Total": str(scroll.total)}
        return web.json_response(self._docs(refs, scroll.fields), headers=headers)

    def _expire_scrolls(self, now: float) -> None:
        dead = [t for t, s in self._scrolls.items() if now - s.last_used > self.scroll_ttl]
        for token in dead:
            del self._scrolls[token]
            self.scroll_stats["expired"] += 1

    async def md_other(self, request: web.Request) -> web.Response:
        return message_error(404, f"Data entity {request.match_info['acronym']} not found")

    async def md_get(self, request: web.Request) -> web.Response:
        doc = self.store.customer_by_id(request.match_info["id"])
        if doc is None:
            return message_error(404, "Document not found")
        return web.json_response(project_fields(doc, parse_fields(request.query.get("_fields"))))

    async def _json_object(self, request: web.Request) -> Doc | web.Response:
        try:
            body = await request.json()
        except ValueError:
            return message_error(400, "The request body must be a JSON object")
        if not isinstance(body, dict):
            return message_error(400, "The request body must be a JSON object")
        return body

    async def md_patch(self, request: web.Request) -> web.Response:
        body = await self._json_object(request)
        if isinstance(body, web.Response):
            return body
        if self.store.patch_customer(request.match_info["id"], body) is None:
            return message_error(404, "Document not found")
        return web.Response(status=204)

    async def md_delete(self, request: web.Request) -> web.Response:
        if not self.store.delete_customer(request.match_info["id"]):
            return message_error(404, "Document not found")
        return web.Response(status=204)

    def _created_answer(self, request: web.Request, doc_id: str) -> web.Response:
        href = f"{request.scheme}://{request.host}/api/dataentities/CL/documents/{doc_id}"
        body = {"id": f"CL-{doc_id}", "href": href, "documentId": doc_id}
        return web.json_response(body, status=201)

    async def md_upsert(self, request: web.Request) -> web.Response:
        body = await self._json_object(request)
        if isinstance(body, web.Response):
            return body
        doc_id = body.get("id")
        if doc_id is not None and not isinstance(doc_id, str):
            return message_error(400, "id must be a string")
        existing = self.store.customer_by_id(doc_id) if doc_id else None
        if existing is None:
            doc = self.store.create_customer(body, doc_id=doc_id or None)
            return self._created_answer(request, doc["id"])
        changes = {k: v for k, v in body.items() if k != "id" and existing.get(k) != v}
        if not changes:
            return web.Response(status=304)
        self.store.patch_customer(existing["id"], changes)
        return self._created_answer(request, existing["id"])

    async def _create(self, request: web.Request) -> Doc | web.Response:
        """Create a customer from the request body (an ``id`` must name no document yet)."""
        body = await self._json_object(request)
        if isinstance(body, web.Response):
            return body
        doc_id = body.get("id")
        if doc_id is not None and (
            not isinstance(doc_id, str) or self.store.customer_by_id(doc_id)
        ):
            return message_error(400, "id must be a string naming no existing document")
        return self.store.create_customer(body, doc_id=doc_id)

    async def md_create(self, request: web.Request) -> web.Response:
        doc = await self._create(request)
        return doc if isinstance(doc, web.Response) else self._created_answer(request, doc["id"])

    # -- admin ----------------------------------------------------------------------------------

    async def admin_status(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("status"), str):
            return web.json_response(
                {"error": 'expected {"status": "...", "removeItems": [sku, ...]}'}, status=400
            )
        remove = body.get("removeItems") or []
        if not isinstance(remove, list) or not all(isinstance(s, str | int) for s in remove):
            return web.json_response({"error": "removeItems must be a list of SKU ids"}, status=400)
        try:
            answer = self._change_status(
                request.match_info["orderId"], body["status"], [str(s) for s in remove]
            )
        except ValueError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        if answer is None:
            return web.json_response({"error": "order not found"}, status=404)
        return web.json_response(answer)

    async def admin_create(self, request: web.Request) -> web.Response:
        doc = await self._create(request)
        return doc if isinstance(doc, web.Response) else web.json_response(doc, status=201)

    async def admin_patch(self, request: web.Request) -> web.Response:
        body = await self._json_object(request)
        if isinstance(body, web.Response):
            return body
        doc = self.store.patch_customer(request.match_info["id"], body)
        if doc is None:
            return web.json_response({"error": "customer not found"}, status=404)
        return web.json_response(doc)

    async def admin_delete(self, request: web.Request) -> web.Response:
        if not self.store.delete_customer(request.match_info["id"]):
            return web.json_response({"error": "customer not found"}, status=404)
        return web.Response(status=204)

    async def admin_reset(self, request: web.Request) -> web.Response:
        self.reset()
        return web.json_response({"reset": True})

    async def admin_stats(self, request: web.Request) -> web.Response:
        return web.json_response(self._stats())

    def _stats(self) -> Doc:
        now = self._clock()
        return {
            "requests": dict(self.requests),
            "responses": dict(self.responses),
            "rate_limited": self.faults.stats.rate_limited,
            "faults": self.faults.stats.as_dict(),
            "hook": {"configured": self.hook is not None, **self.hook_stats},
            "feed": self.feed.snapshot(),
            "scrolls": {
                "open": sum(
                    1
                    for s in self._scrolls.values()
                    if not s.exhausted and now - s.last_used <= self.scroll_ttl
                ),
                **self.scroll_stats,
            },
            "changes": dict(self.store.counters),
            "catalog_changes": dict(self.catalog.changes),
            "data": {
                "customers": self.source.customer_count,
                "orders": self.source.order_count,
                "products": self.catalog.product_count(),
            },
        }

    async def admin_expected(self, request: web.Request) -> web.Response:
        loop = asyncio.get_running_loop()
        expected = await loop.run_in_executor(None, self.source.expected)
        return web.json_response(expected)

    async def admin_hook(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "config": self.hook.body if self.hook else None,
                "stats": dict(self.hook_stats),
                "deliveries": list(self.deliveries),
            }
        )
