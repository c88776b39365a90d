"""Synerise API emulator: real HTTP contract, in-memory workspace, fault injection.

Honours the facts in ``/work/shared/reference/synerise-api.md``; where the reference marks something
UNCONFIRMED the sandbox picks a documented rule (below) and, when it matters for the ETL, makes it
configurable.

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
  ``true`` (or 207 as above).

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
import base64
import binascii
import copy
import hashlib
import hmac
import itertools
import json
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from etl.sandbox import synerise_rules as rules
from etl.sandbox.faults import FaultInjector, add_fault_routes
from etl.sandbox.server import call_in_loop
from etl.sandbox.synerise_rules import FieldError

SANDBOX_API_KEY = "sandbox-api-key"
SANDBOX_WORKSPACE_GUID = "00000000-5a4d-4b0c-8000-000000000001"
SANDBOX_JWT_SECRET = "vtex-synerise-etl sandbox jwt secret"
DEFAULT_TOKEN_LIFETIME = 3600
MAX_BATCH_ITEMS = 1000
# "1 MB" (§7) read strictly as 10**6 bytes, so a client over the decimal limit fails in tests.
MAX_BATCH_BYTES = 1_000_000
MAX_SINGLE_BYTES = 1_000_000
CLIENT_MAX_SIZE = 64 * 1024 * 1024  # beyond this aiohttp itself refuses (still answered as 413)
TOKEN_EXPIRED = "Token expired."
PRODUCT_EVENT_NAMESPACE = uuid.UUID("6f1c3b1e-7d2a-4a0e-9a51-0b8b5c3f5e11")

Doc = dict[str, Any]
_Check = Callable[[Any, str], tuple[list[FieldError], Any]]
"""Validates one item at a path: ``(errors, what to store)``."""


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _now_iso() -> str:
    return rules.format_time(datetime.now(UTC))


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


class _Profiles:
    """Profiles plus unique-identifier indexes (email index is case-insensitive)."""

    INDEXED = ("customId", "email", "uuid", "phone")

    def __init__(self) -> None:
        self.docs: dict[int, Doc] = {}
        self.index: dict[str, dict[str, int]] = {name: {} for name in self.INDEXED}
        self._ids = itertools.count(1)

    @staticmethod
    def key(name: str, value: str) -> str:
        return value.lower() if name == "email" else value

    def find(self, name: str, value: Any) -> int | None:
        if not isinstance(value, str):
            return None
        return self.index[name].get(self.key(name, value))

    def resolve(self, item: Doc) -> int | None:
        """Profile an item or transaction client designates (sandbox precedence rule)."""
        for name in ("customId", "email", "uuid"):
            found = self.find(name, item.get(name))
            if found is not None:
                return found
        if item.get("phone") and not any(item.get(n) for n in ("customId", "email", "uuid")):
            found = self.find("phone", item.get("phone"))
            if found is not None:
                return found
        client_id = item.get("clientId", item.get("id"))
        if isinstance(client_id, int) and client_id in self.docs:
            return client_id
        return None

    def new_id(self) -> int:
        return next(self._ids)

    def reindex(self, client_id: int, name: str, old: Any, new: Any) -> bool:
        """Point index ``name`` at the profile; returns True if another profile lost the value."""
        index = self.index[name]
        if isinstance(old, str) and index.get(self.key(name, old)) == client_id:
            del index[self.key(name, old)]
        if not isinstance(new, str):
            return False
        key = self.key(name, new)
        previous = index.get(key)
        index[key] = client_id
        if previous is None or previous == client_id or previous not in self.docs:
            return False
        if name == "phone":  # phones are shared (households): no takeover, newest profile wins
            return False
        self.docs[previous].pop(name, None)
        return True

    def delete(self, client_id: int) -> None:
        doc = self.docs.pop(client_id)
        for name in self.INDEXED:
            value = doc.get(name)
            if isinstance(value, str) and self.index[name].get(self.key(name, value)) == client_id:
                del self.index[name][self.key(name, value)]


class SyneriseSandbox:
    """In-memory Synerise workspace served by `make_app`.

    Args:
        api_key: the workspace API key accepted by login and Basic auth.
        workspace_guid: the Basic-auth login (``GUID:apiKey``) and the JWT ``sub``.
        basic_auth: whether Basic auth is enabled for the key (it is opt-in on real workspaces).
        token_lifetime: JWT lifetime in seconds (real default UNCONFIRMED: 1 h or 1 week).
        token_expiry_interval: chaos option; every N seconds all issued tokens expire.
        max_batch_bytes: body limit of ``/v4/clients/batch`` and ``/v4/events/batch``.
        transactions_batch_max_items / transactions_batch_max_bytes: UNCONFIRMED limits.
        catalog_batch_max_items / catalog_batch_max_bytes: UNCONFIRMED limits.
        faults: a shared `FaultInjector` (one is created from ``seed`` otherwise).
        jwt_secret: HMAC key signing the sandbox JWTs.
        permissions: what ``POST /uauth/api-key/permission-check`` says the key holds (``None``:
            every permission); the other routes do not check them.
        business_profile_name: the workspace name that route answers with.
    """

    def __init__(
        self,
        *,
        api_key: str = SANDBOX_API_KEY,
        workspace_guid: str = SANDBOX_WORKSPACE_GUID,
        basic_auth: bool = True,
        token_lifetime: int = DEFAULT_TOKEN_LIFETIME,
        token_expiry_interval: float | None = None,
        max_batch_bytes: int = MAX_BATCH_BYTES,
        transactions_batch_max_items: int = MAX_BATCH_ITEMS,
        transactions_batch_max_bytes: int = MAX_BATCH_BYTES,
        catalog_batch_max_items: int = MAX_BATCH_ITEMS,
        catalog_batch_max_bytes: int = MAX_BATCH_BYTES,
        faults: FaultInjector | None = None,
        seed: int | None = None,
        jwt_secret: str = SANDBOX_JWT_SECRET,
        permissions: Iterable[str] | None = None,
        business_profile_name: str = "sandbox",
    ) -> None:
        if token_lifetime <= 0:
            raise ValueError("token_lifetime must be positive")
        if token_expiry_interval is not None and token_expiry_interval <= 0:
            raise ValueError("token_expiry_interval must be positive or None")
        self.api_key = api_key
        self.workspace_guid = workspace_guid
        self.basic_auth = basic_auth
        self.token_lifetime = int(token_lifetime)
        self.token_expiry_interval = token_expiry_interval
        self.max_batch_bytes = max_batch_bytes
        self.transactions_batch_max_items = transactions_batch_max_items
        self.transactions_batch_max_bytes = transactions_batch_max_bytes
        self.catalog_batch_max_items = catalog_batch_max_items
        self.catalog_batch_max_bytes = catalog_batch_max_bytes
        self.faults = faults if faults is not None else FaultInjector(seed)
        self.permissions = None if permissions is None else frozenset(permissions)
        self.business_profile_name = business_profile_name
        self._secret = jwt_secret.encode()
        self._basic = "Basic " + base64.b64encode(f"{workspace_guid}:{api_key}".encode()).decode()
        self._token_seq = itertools.count(1)
        self._valid_from_seq = 0  # tokens with jti below this are expired (expire_tokens)
        self._token_cache: dict[str, tuple[int, int]] = {}  # token -> (exp, jti)
        self._next_chaos = time.monotonic() + (token_expiry_interval or 0)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._reset_state()

    # -- state -----------------------------------------------------------------------------
    def _reset_state(self) -> None:
        self.profiles = _Profiles()
        self.transactions: dict[int, Doc] = {}
        self._txn_ids = itertools.count(1)
        self._txn_by_salt: dict[str, list[int]] = {}
        self._orders: Counter[str] = Counter()
        self.events: dict[str, Doc] = {}
        self._events_by_salt: dict[tuple[str, str], list[str]] = {}
        self._events_by_action: Counter[str] = Counter()
        self.bags: dict[int, Doc] = {}
        self._bag_ids = itertools.count(1)
        self.items: dict[int, dict[str, Doc]] = {}
        self._item_ids = itertools.count(1)
        self.counters: Counter[str] = Counter()
        self.api_versions: Counter[str] = Counter()

    def reset(self, *, faults: bool = False) -> None:
        """Forget all stored data and counters (tokens stay valid); ``faults`` also clears rules."""

        def do() -> None:
            self._reset_state()
            self.faults.reset_stats()
            if faults:
                self.faults.clear()

        call_in_loop(self._loop, do)

    def expire_tokens(self) -> None:
        """Make every token issued so far expired (the next use gets 401 "Token expired.")."""

        def do() -> None:
            self._valid_from_seq = next(self._token_seq)

        call_in_loop(self._loop, do)

    def stats(self) -> Doc:
        return call_in_loop(self._loop, self._stats)

    def _snapshot(self, docs: Callable[[], Iterable[Doc]]) -> list[Doc]:
        """A deep copy of ``docs()``, taken in the serving loop."""
        return call_in_loop(self._loop, lambda: copy.deepcopy(list(docs())))

    def stored_profiles(self) -> list[Doc]:
        return self._snapshot(lambda: self.profiles.docs.values())

    def stored_transactions(self) -> list[Doc]:
        return self._snapshot(lambda: self.transactions.values())

    def stored_events(self) -> list[Doc]:
        return self._snapshot(lambda: self.events.values())

    def stored_catalog_items(self) -> list[Doc]:
        return self._snapshot(self._all_items)

    def _stats(self) -> Doc:
        fault_stats = self.faults.stats
        return {
            "profiles": len(self.profiles.docs),
            "transactions": len(self.transactions),
            "duplicate_transactions": self.counters["duplicate_transactions"],
            "transactions_overwritten": self.counters["transactions_overwritten"],
            "events": len(self.events),
            "events_overwritten": self.counters["events_overwritten"],
            "events_by_action": dict(self._events_by_action),
            "catalog_bags": len(self.bags),
            "catalog_items": sum(len(items) for items in self.items.values()),
            "rejected_items": self.counters["rejected_items"],
            "fault_rejected_items": self.counters["fault_rejected_items"],
            "ignored_items": self.counters["ignored_items"],
            "identity_conflicts": self.counters["identity_conflicts"],
            "tokens_issued": self.counters["tokens_issued"],
            "token_expired_401": self.counters["token_expired_401"],
            "auth_failures": self.counters["auth_failures"],
            "rate_limited": fault_stats.rate_limited,
            "errors_injected": fault_stats.errors_injected,
            "hangs": fault_stats.hangs,
            "requests": dict(fault_stats.requests),
            "api_versions": dict(self.api_versions),
        }

    # -- HTTP plumbing ---------------------------------------------------------------------
    @staticmethod
    def error(
        request: web.Request,
        status: int,
        error: str,
        message: str,
        errors: list[Doc] | None = None,
        headers: dict[str, str] | None = None,
    ) -> web.Response:
        """An ``HTTP400``-schema error response (§1.5)."""
        body = {
            "error": error,
            "errors": errors or [],
            "message": message,
            "path": request.path,
            "status": status,
            "timestamp": _now_iso(),
        }
        return web.json_response(body, status=status, headers=headers)

    def _unauthorized(self, request: web.Request, message: str) -> web.Response:
        self.counters["auth_failures"] += 1
        return self.error(request, 401, "Unauthorized", message)

    def _issue_token(self) -> str:
        now = int(time.time())
        seq = next(self._token_seq)
        header = _b64url(b'{"alg":"HS256","typ":"JWT"}')
        claims = {
            "iss": "synerise-sandbox",
            "sub": self.workspace_guid,
            "aud": "API",
            "iat": now,
            "exp": now + self.token_lifetime,
            "jti": str(seq),
            "tkn": "WORKSPACE",
        }
        payload = _b64url(json.dumps(claims, separators=(",", ":")).encode())
        signing_input = f"{header}.{payload}"
        signature = _b64url(hmac.new(self._secret, signing_input.encode(), hashlib.sha256).digest())
        self.counters["tokens_issued"] += 1
        return f"{signing_input}.{signature}"

    def _token_claims(self, token: str) -> tuple[int, int] | None:
        """``(exp, jti)`` of a token signed by this sandbox, else None."""
        cached = self._token_cache.get(token)
        if cached is not None:
            return cached
        parts = token.split(".")
        if len(parts) != 3:
            return None
        expected = hmac.new(self._secret, f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256)
        try:
            signature = _b64url_decode(parts[2])
            claims = json.loads(_b64url_decode(parts[1]))
            exp, jti = int(claims["exp"]), int(claims["jti"])
            subject = claims["sub"]
        except (ValueError, KeyError, TypeError, binascii.Error):
            return None
        if not hmac.compare_digest(signature, expected.digest()) or subject != self.workspace_guid:
            return None
        if len(self._token_cache) > 10_000:
            self._token_cache.clear()
        self._token_cache[token] = (exp, jti)
        return exp, jti

    def _check_bearer(self, request: web.Request, token: str) -> web.Response | None:
        claims = self._token_claims(token)
        if claims is None:
            return self._unauthorized(request, "Invalid token")
        exp, jti = claims
        if self.token_expiry_interval is not None:
            now = time.monotonic()
            if now >= self._next_chaos:
                self._valid_from_seq = next(self._token_seq)
                self._next_chaos = now + self.token_expiry_interval
        if jti < self._valid_from_seq or time.time() >= exp:
            self.counters["token_expired_401"] += 1
            return self.error(request, 401, TOKEN_EXPIRED, TOKEN_EXPIRED)
        return None

    def _authenticate(self, request: web.Request) -> web.Response | None:
        version = request.headers.get("Api-Version")
        if version is not None:
            self.api_versions[version] += 1
        header = request.headers.get("Authorization", "")
        scheme, _, credentials = header.partition(" ")
        scheme = scheme.lower()
        if scheme == "bearer" and credentials.strip():
            return self._check_bearer(request, credentials.strip())
        if scheme == "basic" and credentials.strip():
            if not self.basic_auth:
                return self._unauthorized(request, "Basic authentication is not enabled")
            if not hmac.compare_digest(header.encode(), self._basic.encode()):
                return self._unauthorized(request, "Invalid workspace GUID or API key")
            return None
        return self._unauthorized(
            request, "Full authentication is required to access this resource"
        )

    def _require_json(self, request: web.Request) -> web.Response | None:
        if request.content_type != "application/json":
            return self.error(
                request,
                415,
                "Unsupported Media Type",
                f"Content type '{request.content_type}' not supported; use application/json",
            )
        return None

    async def _body(
        self, request: web.Request, max_bytes: int, *, auth: bool = True
    ) -> tuple[Any, web.Response | None]:
        """Auth, content type, size and JSON checks shared by every POST route."""
        problem = (self._authenticate(request) if auth else None) or self._require_json(request)
        if problem is not None:
            return None, problem
        raw = await request.read()
        if len(raw) > max_bytes:
            return None, self.error(
                request,
                413,
                "Payload Too Large",
                f"Request body is {len(raw)} bytes; the limit is {max_bytes}",
            )
        try:
            return json.loads(raw, parse_constant=_reject_constant), None
        except (ValueError, UnicodeDecodeError) as exc:
            return None, self.error(request, 400, "Bad Request", f"Malformed JSON: {exc}")

    def _rejected(self, request: web.Request, errors: list[FieldError]) -> web.Response:
        self.counters["rejected_items"] += 1
        return self.error(
            request, 400, "Bad Request", "Validation failed", [e.as_json() for e in errors]
        )

    async def _single(
        self, request: web.Request, max_bytes: int, check: _Check, apply: Callable[[Any], None]
    ) -> web.Response:
        """One item of a batch route's kind: stored and 202, or 400 with its errors."""
        body, problem = await self._body(request, max_bytes)
        if problem is not None:
            return problem
        errors, prepared = check(body, "")
        if errors:
            return self._rejected(request, errors)
        apply(prepared)
        return web.Response(status=202)

    async def _batch(
        self,
        request: web.Request,
        route: str,
        max_items: int,
        max_bytes: int,
        check: _Check,
        apply: Callable[[Any], None],
        accepted: Callable[[], web.Response] = lambda: web.Response(status=202),
        *,
        auth: bool = True,
    ) -> web.Response:
        """Validate items, store the valid ones, answer 202 (all stored) or 207 (errors)."""
        body, problem = await self._body(request, max_bytes, auth=auth)
        if problem is not None:
            return problem
        if not isinstance(body, list):
            return self.error(request, 400, "Bad Request", "Request body must be a JSON array")
        if not body or len(body) > max_items:
            return self.error(
                request,
                400,
                "Bad Request",
                f"A batch must contain 1 to {max_items} items; got {len(body)}",
            )
        reject_rate = self.faults.for_route(route).partial_reject_rate
        out: list[Doc] = []
        for index, item in enumerate(body):
            errors, prepared = check(item, f"[{index}]")
            if not errors and self.faults.roll(reject_rate):
                self.counters["fault_rejected_items"] += 1
                errors = [
                    FieldError(
                        f"[{index}]",
                        "Item temporarily rejected (sandbox fault injection)",
                        "",
                        rules.CODE_FAULT,
                    )
                ]
            if errors:
                self.counters["rejected_items"] += 1
                out.extend(error.as_json(index) for error in errors)
            else:
                apply(prepared)
        if out:
            return web.json_response(out, status=207)
        return accepted()

    # -- auth routes -----------------------------------------------------------------------
    async def login(self, request: web.Request) -> web.Response:
        body, problem = await self._body(request, 64 * 1024, auth=False)
        if problem is not None:
            return problem
        key = body.get("apiKey") if isinstance(body, dict) else None
        if not isinstance(key, str) or not hmac.compare_digest(key.encode(), self.api_key.encode()):
            return self._unauthorized(request, "Invalid API key")
        return web.json_response({"token": self._issue_token()})

    async def refresh(self, request: web.Request) -> web.Response:
        header = request.headers.get("Authorization", "")
        if not header.lower().startswith("bearer "):
            return self._unauthorized(request, "Refreshing needs a Bearer token")
        problem = self._authenticate(request)
        if problem is not None:
            return problem
        return web.json_response({"token": self._issue_token()})

    async def permission_check(self, request: web.Request) -> web.Response:
        """Which of ``permissionsToCheck`` the authenticated key holds (§1.4)."""
        body, problem = await self._body(request, 64 * 1024)
        if problem is not None:
            return problem
        asked = body.get("permissionsToCheck") if isinstance(body, dict) else None
        if not isinstance(asked, list) or not all(isinstance(name, str) for name in asked):
            return self.error(
                request, 400, "Bad Request", "permissionsToCheck must be an array of strings"
            )
        granted = self.permissions
        return web.json_response({
            "businessProfileName": self.business_profile_name,
            "permissions": {name: granted is None or name in granted for name in asked},
        })  # fmt: skip

    # -- profiles --------------------------------------------------------------------------
    def _check_profile(self, item: Any, path: str) -> tuple[list[FieldError], Any]:
        return rules.validate_profile(item, path), item

    def _upsert_profile(self, item: Doc) -> None:
        profiles = self.profiles
        client_id = profiles.resolve(item)
        now = _now_iso()
        if client_id is None:
            if not any(isinstance(item.get(n), str) for n in rules.PROFILE_IDENTIFIERS):
                self.counters["ignored_items"] += 1  # clientId-only update of an unknown profile
                return
            client_id = profiles.new_id()
            profiles.docs[client_id] = {"clientId": client_id, "created": now}
        doc = profiles.docs[client_id]
        for name in (*rules.PROFILE_IDENTIFIERS, *rules.PROFILE_TEXT_FIELDS, "birthDate", "sex"):
            if name not in item:
                continue
            old, new = doc.get(name), item[name]
            if new is None:
                doc.pop(name, None)
            else:
                doc[name] = new
            if (
                name in profiles.INDEXED
                and old != new
                and profiles.reindex(client_id, name, old, new)
            ):
                self.counters["identity_conflicts"] += 1
        if "tags" in item:
            if item["tags"] is None:
                doc.pop("tags", None)
            else:
                doc["tags"] = list(item["tags"])
        if "agreements" in item:
            agreements = doc.setdefault("agreements", {})
            if item["agreements"] is None:
                agreements.clear()
            else:
                for key, flag in item["agreements"].items():
                    value = rules.agreement_value(flag)
                    if value is None:
                        agreements.pop(key, None)
                    else:
                        agreements[key] = value
        if "attributes" in item:
            attributes = doc.setdefault("attributes", {})
            if item["attributes"] is None:
                attributes.clear()
            else:
                for name, value in item["attributes"].items():
                    if name in rules.RESERVED_ATTRIBUTES:
                        continue
                    if value is None:
                        attributes.pop(name, None)
                    else:
                        attributes[name] = value
        doc["updated"] = now

    async def clients_batch(self, request: web.Request) -> web.Response:
        return await self._batch(
            request,
            "synerise.clients_batch",
            MAX_BATCH_ITEMS,
            self.max_batch_bytes,
            self._check_profile,
            self._upsert_profile,
        )

    async def clients_create(self, request: web.Request) -> web.Response:
        return await self._single(
            request, MAX_SINGLE_BYTES, self._check_profile, self._upsert_profile
        )

    async def client_delete(self, request: web.Request) -> web.Response:
        problem = self._authenticate(request)
        if problem is not None:
            return problem
        custom_id = request.match_info["customId"]
        client_id = self.profiles.find("customId", custom_id)
        if client_id is None:
            return self.error(request, 404, "Not Found", "Profile not found")
        self.profiles.delete(client_id)
        return web.Response(status=200)

    # -- transactions ----------------------------------------------------------------------
    def _same_client(self, a: Doc, b: Doc) -> bool:
        found_a, found_b = self.profiles.resolve(a), self.profiles.resolve(b)
        if found_a is not None and found_b is not None:
            return found_a == found_b
        for name in ("customId", "email", "uuid", "id"):
            value_a, value_b = a.get(name), b.get(name)
            if value_a is None or value_b is None:
                continue
            if name == "email" and isinstance(value_a, str) and isinstance(value_b, str):
                return value_a.lower() == value_b.lower()
            return bool(value_a == value_b)
        return False

    def _check_transaction(self, item: Any, path: str) -> tuple[list[FieldError], Any]:
        errors, moment = rules.validate_transaction(item, path, datetime.now(UTC))
        return errors, (item, moment)

    def _store_transaction(self, prepared: tuple[Doc, datetime]) -> None:
        item, moment = prepared
        when = rules.time_key(moment)
        salt = item.get("eventSalt")
        previous: Doc | None = None
        if salt is not None:
            for txn_id in self._txn_by_salt.get(salt, ()):
                candidate = self.transactions[txn_id]
                meta = candidate["_sandbox"]
                if meta["recordedAtMs"] == when and self._same_client(
                    candidate["client"], item["client"]
                ):
                    previous = candidate
                    break
        doc = dict(item)
        doc["recordedAt"] = rules.format_time(moment)
        received = _now_iso()
        if previous is not None:
            old = previous["_sandbox"]
            meta = {**old, "updatedAt": received, "overwrites": old["overwrites"] + 1}
            self.counters["transactions_overwritten"] += 1
        else:
            txn_id = next(self._txn_ids)
            meta = {
                "id": txn_id,
                "eventUUID": str(uuid.uuid4()),
                "receivedAt": received,
                "updatedAt": received,
                "recordedAtMs": when,
                "overwrites": 0,
            }
            if self._orders[item["orderId"]]:
                self.counters["duplicate_transactions"] += 1
            self._orders[item["orderId"]] += 1
            if salt is not None:
                self._txn_by_salt.setdefault(salt, []).append(txn_id)
        meta["clientId"] = self.profiles.resolve(item["client"])
        doc["_sandbox"] = meta
        self.transactions[meta["id"]] = doc
        self._transaction_events(doc)

    def _transaction_events(self, txn: Doc) -> None:
        """``transaction.charge`` + one ``product.buy`` per line; UUIDs by position (§3.3)."""
        meta = txn["_sandbox"]
        charge_uuid = meta["eventUUID"]
        line_uuids = [
            str(uuid.uuid5(PRODUCT_EVENT_NAMESPACE, f"{charge_uuid}:{i}"))
            for i in range(len(txn["products"]))
        ]
        source = {"transactionId": meta["id"], "eventSalt": txn.get("eventSalt")}
        revenue = txn["revenue"]
        self._put_event(
            charge_uuid,
            {
                "action": "transaction.charge",
                "label": "transaction.charge",
                "client": txn["client"],
                "time": txn["recordedAt"],
                "params": {
                    "$orderId": txn["orderId"],
                    "$revenue": revenue["amount"],
                    "$totalAmount": txn["value"]["amount"],
                    "$currency": revenue["currency"],
                    "$paymentType": (txn.get("paymentInfo") or {}).get("method"),
                    "productEventsUUIDs": line_uuids,
                },
                "_sandbox": source,
            },
        )
        for line_uuid, product in zip(line_uuids, txn["products"], strict=True):
            self._put_event(
                line_uuid,
                {
                    "action": "product.buy",
                    "label": "product.buy",
                    "client": txn["client"],
                    "time": txn["recordedAt"],
                    "params": {
                        "$orderId": txn["orderId"],
                        "sku": product["sku"],
                        "name": product["name"],
                        "$finalUnitPrice": product["finalUnitPrice"],
                        "$quantity": product.get("quantity", 1),
                    },
                    "_sandbox": source,
                },
            )

    def _put_event(self, event_uuid: str, doc: Doc) -> None:
        doc["eventUUID"] = event_uuid
        if event_uuid in self.events:
            self.counters["events_overwritten"] += 1
        else:
            self._events_by_action[doc["action"]] += 1
        self.events[event_uuid] = doc

    async def transactions_single(self, request: web.Request) -> web.Response:
        return await self._single(
            request,
            self.transactions_batch_max_bytes,
            self._check_transaction,
            self._store_transaction,
        )

    async def transactions_batch(self, request: web.Request) -> web.Response:
        return await self._batch(
            request,
            "synerise.transactions_batch",
            self.transactions_batch_max_items,
            self.transactions_batch_max_bytes,
            self._check_transaction,
            self._store_transaction,
        )

    # -- events ----------------------------------------------------------------------------
    def _check_event(self, item: Any, path: str) -> tuple[list[FieldError], Any]:
        errors, moment = rules.validate_event(item, path, datetime.now(UTC))
        return errors, (item, moment)

    def _store_event(self, prepared: tuple[Doc, datetime]) -> None:
        item, moment = prepared
        when = rules.time_key(moment)
        salt, action = item.get("eventSalt"), item["action"]
        event_uuid: str | None = None
        if salt is not None:
            for candidate_uuid in self._events_by_salt.get((salt, action), ()):
                candidate = self.events[candidate_uuid]
                if candidate["_sandbox"]["timeMs"] == when and self._same_client(
                    candidate["client"], item["client"]
                ):
                    event_uuid = candidate_uuid
                    break
        if event_uuid is None:
            event_uuid = str(uuid.uuid4())
            if salt is not None:
                self._events_by_salt.setdefault((salt, action), []).append(event_uuid)
        doc = {
            "action": action,
            "label": item["label"],
            "client": item["client"],
            "time": rules.format_time(moment),
            "params": item.get("params") or {},
            "eventSalt": salt,
            "_sandbox": {
                "source": "event",
                "timeMs": when,
                "clientId": self.profiles.resolve(item["client"]),
                "receivedAt": _now_iso(),
            },
        }
        self._put_event(event_uuid, doc)

    async def events_batch(self, request: web.Request) -> web.Response:
        return await self._batch(
            request,
            "synerise.events_batch",
            MAX_BATCH_ITEMS,
            self.max_batch_bytes,
            self._check_event,
            self._store_event,
        )

    async def events_custom(self, request: web.Request) -> web.Response:
        return await self._single(request, MAX_SINGLE_BYTES, self._check_event, self._store_event)

    # -- catalogs --------------------------------------------------------------------------
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
        name = body.get("name") if isinstance(body, dict) else None
        if not isinstance(name, str) or not name.strip():
            error = FieldError("name", "name is required", name)
            return self._rejected(request, [error])
        now = _now_iso()
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

    async def catalog_items_batch(self, request: web.Request) -> web.Response:
        bag_id = self._bag(request)
        if isinstance(bag_id, web.Response):
            return bag_id
        items = self.items[bag_id]

        def check(item: Any, path: str) -> tuple[list[FieldError], Any]:
            return rules.validate_catalog_item(item, path), item

        def apply(item: Doc) -> None:
            now = _now_iso()
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

    # -- inspection ------------------------------------------------------------------------
    def _all_items(self) -> Iterable[Doc]:
        for items in self.items.values():
            yield from items.values()

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

    # -- application -----------------------------------------------------------------------
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
