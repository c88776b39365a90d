"""Fault injection for the sandbox emulators: latency, rate limits, 5xx, hangs, partial rejects.

Faults are configured per route *name* (every emulator route has a dotted aiohttp ``name=``, e.g.
``oms.get_order`` or ``synerise.clients_batch``) with `fnmatch` patterns. Several rules may match a
route; they are merged field by field, a more specific pattern (more literal characters) beating a
less specific one and, at equal specificity, the later ``set()`` winning. So
``set("*", latency_ms=5)`` and ``set("oms.*", latency_ms=40)`` give OMS routes 40 ms and the rest
5 ms, whatever the order of the two calls.

Rate limits are token buckets keyed by the *rule* that supplied ``rate_limit``: with
``set("oms.*", rate_limit=200)`` all OMS routes share one 200 req/s budget, as a real per-account
quota would; a rule for a single route gets its own bucket.

Each request to a named route (never ``/__sandbox__/`` ones) goes through, in order:
1. rate limit, decided at arrival: over budget -> 429 with ``Retry-After`` (whole seconds until a
   token is available, at least 1) and a JSON error body;
2. latency: ``latency_ms + uniform(0, jitter_ms)`` via ``asyncio.sleep`` (also delays 429s);
3. hang (``hang_rate``): sleep ``hang_seconds`` then answer 504;
4. error (``error_rate``): answer 500, 502 or 503 (uniformly) without calling the handler;
5. the handler. ``partial_reject_rate`` is not applied here: batch handlers read it through
   `FaultInjector.for_route` and reject items themselves with `FaultInjector.roll`;
6. lost answer (``lost_rate``): the handler has served the request (its effect stands: a batch
   stored, a scroll token moved on) but the client gets a 502 instead of its answer, as from a
   gateway that gave up on a backend that went on. A client that asks again must not be hurt.
"""

from __future__ import annotations

import asyncio
import dataclasses
import fnmatch
import math
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

SANDBOX_PREFIX = "/__sandbox__/"

ErrorBody = Callable[[web.Request, int, str], dict[str, Any]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class RouteFaults:
    """Effective faults for one route (all off by default)."""

    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    rate_limit: float | None = None  # requests/s token bucket; over it -> 429 + Retry-After
    burst: int | None = None  # bucket size (default = max(1, rate_limit))
    error_rate: float = 0.0  # share of requests answered 500/502/503
    hang_rate: float = 0.0  # share of requests that hang hang_seconds, then get 504
    hang_seconds: float = 30.0
    partial_reject_rate: float = 0.0  # batch routes: share of valid items rejected (207)
    lost_rate: float = 0.0  # share of requests served whose answer is replaced by a 502


FIELDS: dict[str, dataclasses.Field[Any]] = {f.name: f for f in dataclasses.fields(RouteFaults)}
_NULLABLE = {"rate_limit", "burst"}
_SHARES = {"error_rate", "hang_rate", "partial_reject_rate", "lost_rate"}
_ERROR_STATUSES = (500, 502, 503)


def coerce_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """Validate RouteFaults field values from Python, JSON or CLI text.

    Raises:
        ValueError: unknown field, wrong type, or value out of range (message names the field).
    """
    out: dict[str, Any] = {}
    for name, raw in fields.items():
        if name not in FIELDS:
            raise ValueError(f"unknown fault field {name!r}; expected one of {', '.join(FIELDS)}")
        value = raw
        if isinstance(value, str):
            text = value.strip()
            if text.lower() in ("", "none", "null", "off"):
                value = None
            else:
                try:
                    value = float(text)
                except ValueError:
                    raise ValueError(f"{name}: expected a number, got {raw!r}") from None
        if value is None:
            if name not in _NULLABLE:
                raise ValueError(f"{name}: cannot be null")
            out[name] = None
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
            raise ValueError(f"{name}: expected a number, got {raw!r}")
        if value < 0:
            raise ValueError(f"{name}: must be >= 0, got {raw!r}")
        if name in _SHARES and value > 1:
            raise ValueError(f"{name}: must be a share between 0 and 1, got {raw!r}")
        if name == "rate_limit" and value == 0:
            raise ValueError("rate_limit: must be > 0 (use null to disable)")
        if name == "burst":
            if value < 1 or value != int(value):
                raise ValueError(f"burst: expected a whole number >= 1, got {raw!r}")
            value = int(value)
        else:
            value = float(value)
        out[name] = value
    return out


def parse_fault_option(text: str) -> tuple[str, dict[str, Any]]:
    """Parse the CLI syntax ``PATTERN:field=value,field=value``.

    Example: ``"oms.get_order:latency_ms=40,jitter_ms=10,rate_limit=200"``. Values ``none``/``null``
    disable ``rate_limit``/``burst``.

    Raises:
        ValueError: malformed text or invalid field (message quotes the offending part).
    """
    pattern, sep, spec = text.rpartition(":")
    pattern = pattern.strip()
    if not sep or not pattern:
        raise ValueError(f"expected PATTERN:field=value[,field=value...], got {text!r}")
    fields: dict[str, str] = {}
    for part in spec.split(","):
        key, eq, value = part.partition("=")
        if not eq or not key.strip():
            raise ValueError(f"expected field=value, got {part!r} in {text!r}")
        fields[key.strip()] = value
    if not fields:
        raise ValueError(f"no fault fields in {text!r}")
    return pattern, coerce_fields(fields)


def _specificity(pattern: str) -> int:
    return sum(1 for ch in pattern if ch not in "*?[]")


@dataclass
class _Rule:
    pattern: str
    fields: dict[str, Any]
    seq: int


class TokenBucket:
    """Classic token bucket on the monotonic clock (single-threaded: the server's loop)."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic):
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self._clock = clock
        self.updated = clock()

    def take(self) -> float:
        """Take one token; return 0.0 on success, else the seconds until one is available."""
        now = self._clock()
        self.tokens = min(float(self.burst), self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


@dataclass
class FaultStats:
    """What the injector did, for ``/__sandbox__/stats`` and tests."""

    requests: Counter[str] = field(default_factory=Counter)
    rate_limited: int = 0
    errors_injected: int = 0
    hangs: int = 0
    answers_lost: int = 0
    rate_limited_by_route: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": dict(self.requests),
            "rate_limited": self.rate_limited,
            "errors_injected": self.errors_injected,
            "hangs": self.hangs,
            "answers_lost": self.answers_lost,
            "rate_limited_by_route": dict(self.rate_limited_by_route),
        }


def default_error_body(request: web.Request, status: int, message: str) -> dict[str, Any]:
    """Synerise ``HTTP400``-shaped body; emulators with another shape pass ``error_body=``."""
    return {
        "error": _reason(status),
        "errors": [],
        "message": message,
        "path": request.path,
        "status": status,
        "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
    }


def _reason(status: int) -> str:
    try:
        from http import HTTPStatus

        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


class FaultInjector:
    """Per-route fault configuration, the aiohttp middleware applying it, and its statistics.

    Args:
        seed: seeds the random decisions (error/hang/partial reject/jitter) for reproducible runs.
        error_body: builds the JSON body of injected 429/5xx/504 answers.
        clock: monotonic clock for the token buckets (tests may pass a fake one).
    """

    def __init__(
        self,
        seed: int | None = None,
        *,
        error_body: ErrorBody = default_error_body,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.random = random.Random(seed)
        self.stats = FaultStats()
        self._error_body = error_body
        self._clock = clock
        self._rules: dict[str, _Rule] = {}
        self._seq = 0
        self._cache: dict[str, tuple[RouteFaults, str | None]] = {}
        self._buckets: dict[str, TokenBucket] = {}
        self._hanging: set[asyncio.Task[Any]] = set()
        self._middleware = self._make_middleware()

    # -- configuration -----------------------------------------------------------------------
    def set(self, pattern: str, **fields: Any) -> None:
        """Add or update the rule for ``pattern`` (fields merge into an existing rule).

        Raises:
            ValueError: empty pattern or invalid field (see `coerce_fields`).
        """
        if not pattern or not isinstance(pattern, str):
            raise ValueError("route pattern must be a non-empty string")
        values = coerce_fields(fields)
        self._seq += 1
        rule = self._rules.pop(pattern, None)
        merged = {**(rule.fields if rule else {}), **values}
        self._rules[pattern] = _Rule(pattern, merged, self._seq)
        self._invalidate()

    def clear(self, pattern: str | None = None) -> None:
        """Remove the rule for ``pattern`` (exact pattern text), or every rule when None."""
        if pattern is None:
            self._rules.clear()
        else:
            self._rules.pop(pattern, None)
        self._invalidate()

    def rules(self) -> list[dict[str, Any]]:
        """Current rules in the order they were set, as ``{"route": pattern, **fields}``."""
        ordered = sorted(self._rules.values(), key=lambda r: r.seq)
        return [{"route": r.pattern, **r.fields} for r in ordered]

    def for_route(self, name: str) -> RouteFaults:
        """Effective faults for route ``name`` (merged over every matching rule)."""
        return self._resolve(name)[0]

    def roll(self, probability: float) -> bool:
        """True with the given probability, from the injector's (seedable) random source."""
        return probability > 0 and self.random.random() < probability

    async def release_hangs(self, app: web.Application | None = None) -> None:
        """Cancel requests stuck in an injected hang (their connections close); an
        ``on_shutdown`` hook so stopping a server does not wait for ``hang_seconds``."""
        for task in list(self._hanging):
            task.cancel()

    def reset_stats(self) -> None:
        self.stats = FaultStats()

    def _invalidate(self) -> None:
        self._cache.clear()
        self._buckets.clear()

    def _resolve(self, name: str) -> tuple[RouteFaults, str | None]:
        cached = self._cache.get(name)
        if cached is not None:
            return cached
        matching = sorted(
            (r for r in self._rules.values() if fnmatch.fnmatchcase(name, r.pattern)),
            key=lambda r: (_specificity(r.pattern), r.seq),
        )
        merged: dict[str, Any] = {}
        bucket_key: str | None = None
        for rule in matching:
            merged.update(rule.fields)
            if "rate_limit" in rule.fields or "burst" in rule.fields:
                bucket_key = rule.pattern
        resolved = (RouteFaults(**merged), bucket_key)
        self._cache[name] = resolved
        return resolved

    # -- middleware --------------------------------------------------------------------------
    @property
    def middleware(self) -> Any:
        """aiohttp middleware; add it to ``web.Application(middlewares=[...])``."""
        return self._middleware

    def _make_middleware(self) -> Any:
        @web.middleware
        async def fault_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
            name = request.match_info.route.name
            if name is None or request.path.startswith(SANDBOX_PREFIX):
                return await handler(request)
            self.stats.requests[name] += 1
            faults, bucket_key = self._resolve(name)
            wait = self._take_token(faults, bucket_key)
            if faults.latency_ms or faults.jitter_ms:
                delay = faults.latency_ms + self.random.uniform(0.0, faults.jitter_ms)
                await asyncio.sleep(delay / 1000.0)
            if wait:
                self.stats.rate_limited += 1
                self.stats.rate_limited_by_route[name] += 1
                retry_after = max(1, math.ceil(wait))
                return self._answer(
                    request,
                    429,
                    f"Rate limit exceeded; retry after {retry_after} s",
                    {"Retry-After": str(retry_after)},
                )
            if self.roll(faults.hang_rate):
                self.stats.hangs += 1
                task = asyncio.current_task()
                if task is not None:
                    self._hanging.add(task)
                try:
                    await asyncio.sleep(faults.hang_seconds)
                finally:
                    self._hanging.discard(task)
                return self._answer(request, 504, "Upstream timed out (sandbox hang)")
            if self.roll(faults.error_rate):
                self.stats.errors_injected += 1
                status = self.random.choice(_ERROR_STATUSES)
                return self._answer(request, status, "Injected sandbox failure")
            response = await handler(request)
            if self.roll(faults.lost_rate):
                self.stats.answers_lost += 1
                return self._answer(request, 502, "Injected sandbox failure after serving")
            return response

        return fault_middleware

    def _take_token(self, faults: RouteFaults, bucket_key: str | None) -> float:
        if faults.rate_limit is None or bucket_key is None:
            return 0.0
        bucket = self._buckets.get(bucket_key)
        if bucket is None or bucket.rate != faults.rate_limit:
            burst = faults.burst if faults.burst is not None else max(1, int(faults.rate_limit))
            bucket = TokenBucket(faults.rate_limit, burst, self._clock)
            self._buckets[bucket_key] = bucket
        return bucket.take()

    def _answer(
        self, request: web.Request, status: int, message: str, headers: dict[str, str] | None = None
    ) -> web.Response:
        return web.json_response(
            self._error_body(request, status, message), status=status, headers=headers
        )


def add_fault_routes(app: web.Application, injector: FaultInjector) -> None:
    """Expose the injector over HTTP (no auth, never fault-injected).

    - ``GET /__sandbox__/faults`` -> ``{"rules": [...], "stats": {...}}``
    - ``POST /__sandbox__/faults`` body ``{"route": pattern, **fields}`` or a list of those ->
      200 with the new rules; 400 ``{"error": ...}`` on bad input (nothing is applied then).
    - ``DELETE /__sandbox__/faults[?route=pattern]`` -> clears one pattern or everything.

    Also registers `FaultInjector.release_hangs` as an ``on_shutdown`` hook.
    """

    def snapshot() -> dict[str, Any]:
        return {"rules": injector.rules(), "stats": injector.stats.as_dict()}

    async def get_faults(request: web.Request) -> web.Response:
        return web.json_response(snapshot())

    async def post_faults(request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            return web.json_response({"error": "body must be JSON"}, status=400)
        items = body if isinstance(body, list) else [body]
        parsed: list[tuple[str, dict[str, Any]]] = []
        for item in items:
            if not isinstance(item, dict) or not isinstance(item.get("route"), str):
                return web.json_response(
                    {"error": 'expected {"route": pattern, field: value, ...}'}, status=400
                )
            fields = {k: v for k, v in item.items() if k != "route"}
            try:
                parsed.append((item["route"], coerce_fields(fields)))
            except ValueError as exc:
                return web.json_response({"error": str(exc)}, status=400)
        for pattern, fields in parsed:
            injector.set(pattern, **fields)
        return web.json_response(snapshot())

    async def delete_faults(request: web.Request) -> web.Response:
        injector.clear(request.query.get("route"))
        return web.json_response(snapshot())

    app.on_shutdown.append(injector.release_hangs)
    app.router.add_get("/__sandbox__/faults", get_faults, name="sandbox.faults_get")
    app.router.add_post("/__sandbox__/faults", post_faults, name="sandbox.faults_set")
    app.router.add_delete("/__sandbox__/faults", delete_faults, name="sandbox.faults_clear")
