"""The emulated workspace's state and plumbing: auth (JWT and Basic), body parsing, the single and
batch answer shapes (202, 207 with per-item errors, 400), and what tests read back.

The module docstring of `etl.sandbox.synerise` lists the contract and the sandbox's choices."""

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
from typing import Any, ClassVar

from aiohttp import web

from etl.sandbox.faults import FaultInjector
from etl.sandbox.server import call_in_loop
from etl.sandbox.synerise import models, rules
from etl.sandbox.synerise.rules import FieldError

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
"""Checks one item at a path against the API's rules: ``(errors, what to store)``."""
_Prose = Callable[[Any, str], list[FieldError]]
VIOLATION_KINDS = ("schema", "rule", "prose")


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def now_iso() -> str:
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


class SyneriseWorkspace:
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
        strict: refuse every body that breaks Synerise's request models (the vendored JSON
            Schemas) or a documented rule the API leaves unchecked (revenue = Σ lines, reserved
            attribute names); the default. ``False`` refuses only what the API itself enforces
            and counts the rest in ``stats()["violations"]``, for experiments.
    """

    PROSE_RULES: ClassVar[dict[str, _Prose]] = {}
    """Route name -> the documented rules the API leaves unchecked, for a well-formed item."""

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
        strict: bool = True,
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
        self.strict = strict
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
        self.refusals: Counter[str] = Counter()
        self.violations: Counter[str] = Counter({kind: 0 for kind in VIOLATION_KINDS})

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
            "answers_lost": fault_stats.answers_lost,
            "requests": dict(fault_stats.requests),
            "api_versions": dict(self.api_versions),
            "strict": self.strict,
            "refused": dict(self.refusals),
            "violations": dict(self.violations),
        }

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
            "timestamp": now_iso(),
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

    def _refuse(
        self,
        request: web.Request,
        status: int,
        error: str,
        message: str,
        errors: list[Doc] | None = None,
    ) -> web.Response:
        """A refused body (malformed, too big, breaking the rules): counted per route."""
        self.refusals[_route(request)] += 1
        return self.error(request, status, error, message, errors)

    def _require_json(self, request: web.Request) -> web.Response | None:
        if request.content_type != "application/json":
            return self._refuse(
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
            return None, self._refuse(
                request,
                413,
                "Payload Too Large",
                f"Request body is {len(raw)} bytes; the limit is {max_bytes}",
            )
        try:
            return json.loads(raw, parse_constant=_reject_constant), None
        except (ValueError, UnicodeDecodeError) as exc:
            return None, self._refuse(request, 400, "Bad Request", f"Malformed JSON: {exc}")

    def _rejected(self, request: web.Request, errors: list[FieldError]) -> web.Response:
        self.counters["rejected_items"] += 1
        return self._refuse(
            request, 400, "Bad Request", "Validation failed", [e.as_json() for e in errors]
        )

    def _judge(
        self, route: str, item: Any, path: str, check: _Check
    ) -> tuple[list[FieldError], Any]:
        """Check an item against the route's model, the API's rules and, for an item both
        accept, the prose rules; count what it breaks. Returns what refuses it in this mode (the
        API's rules only, when relaxed) and what to store."""
        rule_errors, prepared = check(item, path)
        schema_errors = models.model(route).errors(_without_reset_nulls(route, item), path)
        errors = schema_errors + [
            error
            for error in rule_errors
            if not any(_related(error.field, other.field) for other in schema_errors)
        ]
        prose = self.PROSE_RULES.get(route)
        if not errors and prose is not None:
            errors = prose(item, path)
        for kind in {error.kind for error in (*errors, *rule_errors)}:
            self.violations[kind] += 1
        return (errors if self.strict else rule_errors), prepared

    async def _single(
        self, request: web.Request, max_bytes: int, check: _Check, apply: Callable[[Any], None]
    ) -> web.Response:
        """One item of a batch route's kind: stored and 202, or 400 with its errors."""
        body, problem = await self._body(request, max_bytes)
        if problem is not None:
            return problem
        errors, prepared = self._judge(_route(request), body, "", check)
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
            return self._refuse(request, 400, "Bad Request", "Request body must be a JSON array")
        if not body or len(body) > max_items:
            return self._refuse(
                request,
                400,
                "Bad Request",
                f"A batch must contain 1 to {max_items} items; got {len(body)}",
            )
        reject_rate = self.faults.for_route(route).partial_reject_rate
        out: list[Doc] = []
        for index, item in enumerate(body):
            errors, prepared = self._judge(route, item, f"[{index}]", check)
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
                if errors[0].code != rules.CODE_FAULT:
                    self.refusals[route] += 1
                out.extend(error.as_json(index) for error in errors)
            else:
                apply(prepared)
        if out:
            return web.json_response(out, status=207)
        return accepted()

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

    def _all_items(self) -> Iterable[Doc]:
        for items in self.items.values():
            yield from items.values()


def _route(request: web.Request) -> str:
    """The name a request's route was registered with (``synerise.clients_batch``...)."""
    return request.match_info.route.name or request.path


def _related(one: str, two: str) -> bool:
    """Whether two error fields name the same value or one holds the other (``tags``,
    ``tags[0]``): the model already said what is wrong there."""
    short, long = sorted((one, two), key=len)
    return long == short or long.startswith((f"{short}.", f"{short}["))


def _without_reset_nulls(route: str, item: Any) -> Any:
    """A profile as its model sees it: ``null`` resets a field (§2.1), it is not a value."""
    if not route.startswith("synerise.clients") or not isinstance(item, dict):
        return item
    kept = {name: value for name, value in item.items() if value is not None}
    agreements = kept.get("agreements")
    if isinstance(agreements, dict):
        kept["agreements"] = {k: v for k, v in agreements.items() if v is not None}
    return kept
