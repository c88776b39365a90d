"""Synerise API emulator: real HTTP contract, in-memory workspace, fault injection.

Honours the facts in the Synerise reference notes (``shared/reference/synerise-api.md``); where
the reference marks something UNCONFIRMED the sandbox picks a documented rule (below) and, when
it matters for the ETL, makes it configurable.

Auth (§1): ``POST /uauth/v2/auth/login/profile`` and legacy ``POST /v4/auth/login/profile`` take
``{"apiKey"}`` and return ``{"token": JWT}`` (HS256, claims ``iss``, ``sub`` = workspace GUID,
``iat``, ``exp``, ``jti``). ``GET /v4/auth/refresh/profile`` swaps a valid Bearer token for a new
one. Every ``/v4`` and ``/catalogs`` route needs ``Authorization: Bearer <jwt>`` or, when
``basic_auth`` is on, ``Basic base64(GUID:apiKey)``; an expired token gets 401 with
``"error": "Token expired."``. ``expire_tokens()`` expires every token issued so far;
``token_expiry_interval`` does that periodically (chaos). POST bodies must be
``application/json`` (else 415, checked after auth). ``Api-Version`` is accepted and counted.
``POST /uauth/api-key/permission-check`` (§1.4, either auth) answers which of
``permissionsToCheck`` the key holds: all of them unless ``permissions`` names the granted ones.

Validation, in three layers (`models`, `rules`): every item is checked against Synerise's
request model (the JSON Schemas vendored in ``etl/sandbox/synerise_schemas``: required fields,
types, enums, patterns), against the rules the API enforces (identifiers, birth dates, money,
one currency, ``discountAmount`` > 0, real times) and, once both pass, against documented rules
the API leaves unchecked (``revenue`` = Σ ``finalUnitPrice.amount`` x ``quantity``; a reserved
attribute name, which Synerise would silently drop). ``strict`` (the default, and what tests,
the demo and the benchmarks use) refuses a breach of any layer; ``strict=False`` (``sandbox
serve --relaxed``) refuses only what the API enforces and counts the rest. ``stats()`` has
``refused`` (refusals per route name) and ``violations`` (items per layer, in both modes). A
``null`` profile field is a reset (§2.1), not a value: the model does not see it.

Sandbox rules for UNCONFIRMED behaviour:

* Profile identity: an item updates the profile found by ``customId``, else ``email``
  (case-insensitive), else ``uuid``, else ``phone`` (only when phone is the item's sole
  identifier), else ``clientId``; otherwise a profile is created. If a lower-precedence identifier
  of the item belongs to *another* profile, the item's profile takes it over and the other profile
  loses it (counted in ``identity_conflicts``). A ``clientId``-only item for an unknown profile is
  accepted and ignored (§2.3; counted in ``ignored_items``).
* Partial rejection: the batch answers 207 with a JSON array of ``Error`` objects whenever at least
  one item is rejected (even all of them), otherwise 202 without a body. Each Error carries
  ``field`` prefixed with the item position (``"[3].email"``, ``"[3]"`` for the whole item) *and*
  an ``index`` member (3). ``code`` is 400 for a rule violation and 503 for a fault-injected
  rejection (``partial_reject_rate``); rejected items are not stored. Single-object endpoints answer
  400 with an ``HTTP400`` body whose ``errors`` lists the same objects without index.
* Limits: "1 MB" is enforced as 1,000,000 bytes (``max_batch_bytes``; the stricter reading).
  ``/v4/transactions/batch`` limits default to 1000 items / 1 MB
  (``transactions_batch_max_items``/``_bytes``); catalog item batches to 1000 / 1 MB. Times
  without an offset are UTC. A transaction overwrites an earlier one only with the same
  ``eventSalt``, the same ``recordedAt`` instant (millisecond precision) and the same client; two
  clients are the same when both resolve to one stored profile or, failing that, when their
  highest-precedence common identifier (customId, email, uuid, id) is equal. Any other re-send of an
  ``orderId`` is stored again and counted in ``duplicate_transactions``. Transactions never create
  profiles.
* ``DELETE /v4/clients/by-customid/{customId}`` (and ``by-custom-id``) answers 200 without a body.
* Catalogs: duplicate catalog names are allowed (as far as is known the API does not forbid them);
  ``searchBy`` is a case-insensitive substring match on the name; the item batch answers 200
  ``true`` (or 207 as above). Every column of an item's ``value`` must be a string: Synerise's
  generated client types ``value`` as ``map<string, string>`` (``catalogs_items_batch.json``),
  so a number, boolean, list or ``null`` is refused item by item. ``DELETE /catalogs/bags/{id}``
  deletes a catalog and its items (204); later calls on it answer 404.

Inspection (no auth, no faults): ``GET /__sandbox__/stats``,
``GET /__sandbox__/synerise/{profiles,transactions,events,catalog-items}`` (JSON arrays;
``limit``, ``offset`` and filters, total in ``X-Total-Count``), ``POST /__sandbox__/reset``
(state and counters; ``?faults=true`` also clears fault rules), ``POST
/__sandbox__/synerise/expire-tokens`` and ``/__sandbox__/faults`` (`etl.sandbox.faults`).

Handlers run in the server's event loop thread and are the only writers of the state, so there are
no locks; the public Python methods hop into that loop when the app is being served.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any

from aiohttp import web

from etl.sandbox.faults import add_fault_routes
from etl.sandbox.synerise import rules
from etl.sandbox.synerise.records import SyneriseRecords
from etl.sandbox.synerise.rules import FieldError
from etl.sandbox.synerise.workspace import CLIENT_MAX_SIZE, Doc, now_iso


class SyneriseSandbox(SyneriseRecords):
    """In-memory Synerise workspace served by `make_app` (arguments: `SyneriseWorkspace`)."""

    async def catalog_bags_list(self, request: web.Request) -> web.Response:
        problem = self._authenticate(request)
        if problem is not None:
            return problem
        try:
            limit, offset = _paging(request, default_limit=100)
        except ValueError as exc:
            return self.error(request, 400, "Bad Request", str(exc))
        search = request.query.get("searchBy", "").lower()
        found = [bag for bag in self.bags.values() if search in bag["name"].lower()]
        page = found[offset : offset + limit if limit is not None else None]
        meta = {"totalCount": len(found), "limit": limit, "offset": offset, "count": len(page)}
        return web.json_response({"data": page, "metaData": meta})

    async def catalog_bags_create(self, request: web.Request) -> web.Response:
        body, problem = await self._body(request, 64 * 1024)
        if problem is not None:
            return problem
        errors, name = self._judge("synerise.catalog_bags", body, "", _bag_name)
        if errors:
            return self._rejected(request, errors)
        now = now_iso()
        bag_id = next(self._bag_ids)
        bag = {"id": bag_id, "name": name, "created": now, "updated": now}
        self.bags[bag_id] = bag
        self.items[bag_id] = {}
        return web.json_response({"data": bag})

    def _bag(self, request: web.Request) -> int | web.Response:
        """The ``catalogId`` of an authenticated request, else the 401 or 404 answer."""
        problem = self._authenticate(request)
        if problem is not None:
            return problem
        try:
            bag_id = int(request.match_info["catalogId"])
        except ValueError:
            bag_id = None
        if bag_id is None or bag_id not in self.bags:
            return self.error(request, 404, "Not Found", "Catalog not found")
        return bag_id

    async def catalog_bag_get(self, request: web.Request) -> web.Response:
        bag_id = self._bag(request)
        if isinstance(bag_id, web.Response):
            return bag_id
        return web.json_response({"data": self.bags[bag_id]})

    async def catalog_bag_delete(self, request: web.Request) -> web.Response:
        bag_id = self._bag(request)
        if isinstance(bag_id, web.Response):
            return bag_id
        del self.bags[bag_id], self.items[bag_id]
        return web.Response(status=204)

    async def catalog_items_batch(self, request: web.Request) -> web.Response:
        bag_id = self._bag(request)
        if isinstance(bag_id, web.Response):
            return bag_id
        items = self.items[bag_id]

        def check(item: Any, path: str) -> tuple[list[FieldError], Any]:
            return rules.validate_catalog_item(item, path), item

        def apply(item: Doc) -> None:
            now = now_iso()
            key = item["itemKey"]
            current = items.get(key)
            if current is None:
                items[key] = {
                    "id": next(self._item_ids),
                    "catalogId": bag_id,
                    "itemKey": key,
                    "value": item["value"],
                    "created": now,
                    "updated": now,
                }
            else:
                current["value"] = item["value"]
                current["updated"] = now
            self.bags[bag_id]["updated"] = now

        return await self._batch(
            request,
            "synerise.catalog_items_batch",
            self.catalog_batch_max_items,
            self.catalog_batch_max_bytes,
            check,
            apply,
            lambda: web.json_response(True),
            auth=False,  # already authenticated above, before the 404 check
        )

    async def catalog_item(self, request: web.Request) -> web.Response:
        bag_id = self._bag(request)
        if isinstance(bag_id, web.Response):
            return bag_id
        item = self.items[bag_id].get(request.match_info["itemKey"])
        if item is None:
            return self.error(request, 404, "Not Found", "Item not found")
        return web.json_response({"data": item})

    def _listing(
        self,
        request: web.Request,
        docs: Iterable[Doc],
        filters: dict[str, Callable[[Doc, str], bool]],
    ) -> web.Response:
        try:
            limit, offset = _paging(request)
        except ValueError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        active = [(filters[k], v) for k, v in request.query.items() if k in filters]
        selected = [doc for doc in docs if all(match(doc, v) for match, v in active)]
        page = selected[offset : offset + limit if limit is not None else None]
        return web.json_response(page, headers={"X-Total-Count": str(len(selected))})

    async def inspect_stats(self, request: web.Request) -> web.Response:
        return web.json_response(self._stats())

    async def inspect_profiles(self, request: web.Request) -> web.Response:
        return self._listing(
            request,
            self.profiles.docs.values(),
            {
                "customId": _field_equals("customId"),
                "email": _email_equals("email"),
                "clientId": lambda doc, v: str(doc["clientId"]) == v,
            },
        )

    async def inspect_transactions(self, request: web.Request) -> web.Response:
        return self._listing(
            request,
            self.transactions.values(),
            {
                "orderId": _field_equals("orderId"),
                "eventSalt": _field_equals("eventSalt"),
                "customId": lambda doc, v: doc["client"].get("customId") == v,
                "email": lambda doc, v: _email_equals("email")(doc["client"], v),
            },
        )

    async def inspect_events(self, request: web.Request) -> web.Response:
        return self._listing(
            request,
            self.events.values(),
            {
                "action": _field_equals("action"),
                "orderId": lambda doc, v: doc["params"].get("$orderId") == v,
                "customId": lambda doc, v: doc["client"].get("customId") == v,
                "email": lambda doc, v: _email_equals("email")(doc["client"], v),
            },
        )

    async def inspect_catalog_items(self, request: web.Request) -> web.Response:
        return self._listing(
            request,
            self._all_items(),
            {
                "bagId": lambda doc, v: str(doc["catalogId"]) == v,
                "itemKey": _field_equals("itemKey"),
            },
        )

    async def inspect_reset(self, request: web.Request) -> web.Response:
        self.reset(faults=request.query.get("faults", "").lower() in ("1", "true", "yes"))
        return web.json_response(self._stats())

    async def inspect_expire_tokens(self, request: web.Request) -> web.Response:
        self.expire_tokens()
        return web.json_response({"expired": True})

    def make_app(self) -> web.Application:
        """A new aiohttp Application serving this workspace (state is shared between apps)."""
        app = web.Application(
            middlewares=[self._error_middleware(), self.faults.middleware],
            client_max_size=CLIENT_MAX_SIZE,
        )

        async def bind_loop(app: web.Application) -> None:
            self._loop = asyncio.get_running_loop()

        app.on_startup.append(bind_loop)
        route = app.router
        route.add_post("/uauth/v2/auth/login/profile", self.login, name="synerise.login")
        route.add_post("/v4/auth/login/profile", self.login, name="synerise.login_legacy")
        route.add_get("/v4/auth/refresh/profile", self.refresh, name="synerise.refresh")
        route.add_post(
            "/uauth/api-key/permission-check", self.permission_check, name="synerise.permissions"
        )
        route.add_post("/v4/clients/batch", self.clients_batch, name="synerise.clients_batch")
        route.add_post("/v4/clients", self.clients_create, name="synerise.clients_create")
        route.add_delete(
            r"/v4/clients/{by:by-customid|by-custom-id}/{customId}",
            self.client_delete,
            name="synerise.client_delete",
        )
        route.add_post("/v4/transactions", self.transactions_single, name="synerise.transactions")
        route.add_post(
            "/v4/transactions/batch", self.transactions_batch, name="synerise.transactions_batch"
        )
        route.add_post("/v4/events/batch", self.events_batch, name="synerise.events_batch")
        route.add_post("/v4/events/custom", self.events_custom, name="synerise.events_custom")
        bags = route.add_resource("/catalogs/bags", name="synerise.catalog_bags")
        bags.add_route("GET", self.catalog_bags_list)
        bags.add_route("POST", self.catalog_bags_create)
        bag = route.add_resource("/catalogs/bags/{catalogId}", name="synerise.catalog_bag")
        bag.add_route("GET", self.catalog_bag_get)
        bag.add_route("DELETE", self.catalog_bag_delete)
        route.add_post(
            "/catalogs/bags/{catalogId}/items/batch",
            self.catalog_items_batch,
            name="synerise.catalog_items_batch",
        )
        route.add_get(
            "/catalogs/bags/{catalogId}/items/itemKey/{itemKey}",
            self.catalog_item,
            name="synerise.catalog_item",
        )
        route.add_get("/__sandbox__/stats", self.inspect_stats, name="sandbox.stats")
        route.add_post("/__sandbox__/reset", self.inspect_reset, name="sandbox.reset")
        route.add_post(
            "/__sandbox__/synerise/expire-tokens",
            self.inspect_expire_tokens,
            name="sandbox.synerise_expire_tokens",
        )
        for kind, handler in (
            ("profiles", self.inspect_profiles),
            ("transactions", self.inspect_transactions),
            ("events", self.inspect_events),
            ("catalog-items", self.inspect_catalog_items),
        ):
            route.add_get(f"/__sandbox__/synerise/{kind}", handler, name=f"sandbox.synerise_{kind}")
        add_fault_routes(app, self.faults)
        return app

    def _error_middleware(self) -> Any:
        """Answer aiohttp's own errors (404, 405, 413 over the hard cap) with an HTTP400 body."""

        @web.middleware
        async def error_middleware(
            request: web.Request, handler: Callable[[web.Request], Any]
        ) -> web.StreamResponse:
            try:
                response: web.StreamResponse = await handler(request)
            except web.HTTPException as exc:
                if exc.status < 400:
                    raise
                headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
                return self.error(request, exc.status, exc.reason, exc.reason, headers=headers)
            return response

        return error_middleware


def _bag_name(body: Any, path: str) -> tuple[list[FieldError], Any]:
    name = body.get("name") if isinstance(body, dict) else None
    if not isinstance(name, str) or not name.strip():
        return [FieldError("name", "name is required", name)], name
    return [], name


def _paging(request: web.Request, default_limit: int | None = None) -> tuple[int | None, int]:
    def number(name: str, default: int | None) -> int | None:
        text = request.query.get(name)
        if text is None or text == "":
            return default
        if not text.isdigit():
            raise ValueError(f"{name} must be a non-negative integer, got {text!r}")
        return int(text)

    return number("limit", default_limit), number("offset", 0) or 0


def _field_equals(name: str) -> Callable[[Doc, str], bool]:
    return lambda doc, value: doc.get(name) == value


def _email_equals(name: str) -> Callable[[Doc, str], bool]:
    def match(doc: Doc, value: str) -> bool:
        email = doc.get(name)
        return isinstance(email, str) and email.lower() == value.lower()

    return match
