"""VTEX's Orders Feed v3, emulated: a pull queue of order status changes for one app key.

Contract (VTEX reference notes §4, ``orders-api.json``): ``POST /api/orders/feed/config`` takes
``{"filter": {"type": "FromWorkflow", "status": [...]}, "queue": {"visibilityTimeoutInSeconds",
"MessageRetentionPeriodInSeconds"}}`` (the spec's request schema capitalises the second name, its
GET example does not: both spellings are read); ``GET`` returns it with ``quantity`` and
``approximateAgeOfOldestMessageInSeconds``; ``DELETE`` removes it. ``GET /api/orders/feed?maxlot=N``
(1..10) returns up to N visible events ``{eventId, handle, domain, state, lastState, orderId,
lastChange, currentChange}`` and hides them for the visibility timeout; ``POST /api/orders/feed``
``{"handles": [...]}`` commits (removes) them. No configuration: 404.

Sandbox choices for UNCONFIRMED behaviour: each delivery of an event gets a new handle and only
the newest commits it (an older handle is ignored, counted as ``stale_commits``), as with SQS
receipt handles; ``FromOrders`` (JSONata) filters answer 400 (not emulated), a filter mixing
``status`` with ``expression`` 409; retention must be 345,600..1,209,600 s and the visibility
timeout 1..43,200 s, else 400; an event older than the retention period disappears, and so does
the configuration when no event arrived for that long. ``duplicate_rate`` publishes a share of
events twice (VTEX warns that events can be duplicated).
"""

from __future__ import annotations

import collections
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from etl.sandbox.data import Doc
from etl.sandbox.vtex.protocol import oms_error

__all__ = ["MAX_LOT", "OrdersFeed"]

MAX_LOT = 10
"""Most events one read may ask for (``maxlot``)."""
RETENTION_RANGE = (345_600, 1_209_600)
VISIBILITY_RANGE = (1, 43_200)


@dataclass
class _Event:
    body: Doc
    published_at: float
    visible_at: float = 0.0
    handle: str | None = None
    deliveries: int = 0


@dataclass(frozen=True)
class _Config:
    statuses: frozenset[str] | None
    visibility: int
    retention: int
    body: Doc


class OrdersFeed:
    """The feed's queue and configuration; the VTEX emulator owns one and publishes to it.

    Args:
        clock: seconds (monotonic is fine): visibility and retention are measured with it.
        random: a uniform [0, 1) draw, for ``duplicate_rate``.
        duplicate_rate: share of published events delivered twice.
    """

    def __init__(
        self,
        clock: Callable[[], float],
        random: Callable[[], float],
        duplicate_rate: float = 0.0,
    ) -> None:
        if not 0.0 <= duplicate_rate <= 1.0:
            raise ValueError("duplicate_rate must be between 0 and 1")
        self._clock, self._random, self.duplicate_rate = clock, random, duplicate_rate
        self.reset()

    def reset(self) -> None:
        """Forget the configuration, the events and the counters."""
        self.config: _Config | None = None
        self._events: collections.OrderedDict[str, _Event] = collections.OrderedDict()
        self._handles: dict[str, str] = {}
        self._last_published = self._clock()
        self.stats: collections.Counter[str] = collections.Counter()

    # -- what the emulator calls --------------------------------------------------------------

    def publish(self, change: Doc) -> bool:
        """Queue a status change (``orderId``, ``state``, ...) if the filter takes it."""
        config = self._current_config()
        if config is None or (
            config.statuses is not None and change["state"] not in config.statuses
        ):
            return False
        now = self._clock()
        copies = 2 if self._random() < self.duplicate_rate else 1
        for _ in range(copies):
            event_id = uuid.uuid4().hex.upper()
            self._events[event_id] = _Event({"eventId": event_id, **change}, now)
        self._last_published = now
        self.stats["published"] += copies
        return True

    def snapshot(self) -> Doc:
        """Counts for the sandbox's stats page."""
        self._expire()
        return {**self.stats, "queued": len(self._events), "configured": self.config is not None}

    # -- routes ---------------------------------------------------------------------------------

    def add_routes(self, router: web.UrlDispatcher) -> None:
        """``/api/orders/feed/config`` (GET, POST, DELETE) and ``/api/orders/feed`` (GET, POST)."""
        config = router.add_resource("/api/orders/feed/config", name="oms.feed_config")
        config.add_route("GET", self.get_config)
        config.add_route("POST", self.set_config)
        config.add_route("DELETE", self.delete_config)
        feed = router.add_resource("/api/orders/feed", name="oms.feed")
        feed.add_route("GET", self.read)
        feed.add_route("POST", self.commit)

    async def get_config(self, request: web.Request) -> web.Response:
        config = self._current_config()
        if config is None:
            return oms_error(404, "Feed configuration not found")
        oldest = next(iter(self._events.values()), None)
        age = self._clock() - oldest.published_at if oldest else 0.0
        return web.json_response(
            {
                **config.body,
                "quantity": len(self._events),
                "approximateAgeOfOldestMessageInSeconds": age,
            }
        )

    async def set_config(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            return oms_error(400, "the body must be JSON")
        parsed = _parse_config(body)
        if isinstance(parsed, tuple):
            return oms_error(*parsed)
        self.config = parsed
        self._last_published = self._clock()
        return web.json_response(parsed.body)

    async def delete_config(self, request: web.Request) -> web.Response:
        if self._current_config() is None:
            return oms_error(404, "Feed configuration not found")
        self.config = None
        self._events.clear()
        self._handles.clear()
        return web.json_response({})

    async def read(self, request: web.Request) -> web.Response:
        raw = request.query.get("maxlot")
        if raw is None or not raw.isdigit() or not 1 <= int(raw) <= MAX_LOT:
            return oms_error(400, f"maxlot must be a whole number from 1 to {MAX_LOT}")
        config = self._current_config()
        if config is None:
            return oms_error(404, "Feed configuration not found")
        now, lot = self._clock(), list[Doc]()
        for event in self._events.values():
            if len(lot) == int(raw):
                break
            if event.visible_at > now:
                continue
            if event.handle is not None:
                self._handles.pop(event.handle, None)
            event.handle = secrets.token_urlsafe(24)
            self._handles[event.handle] = event.body["eventId"]
            event.visible_at = now + config.visibility
            event.deliveries += 1
            self.stats["redelivered" if event.deliveries > 1 else "delivered"] += 1
            lot.append({**event.body, "handle": event.handle})
        return web.json_response(lot)

    async def commit(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            return oms_error(400, "the body must be JSON")
        handles = body.get("handles") if isinstance(body, dict) else None
        if not isinstance(handles, list) or not all(isinstance(h, str) for h in handles):
            return oms_error(400, 'expected {"handles": ["..."]}')
        if self._current_config() is None:
            return oms_error(404, "Feed configuration not found")
        for handle in handles:
            event_id = self._handles.pop(handle, None)
            if event_id is None or self._events.pop(event_id, None) is None:
                self.stats["stale_commits"] += 1
            else:
                self.stats["committed"] += 1
        return web.json_response({})

    # -- internals ------------------------------------------------------------------------------

    def _current_config(self) -> _Config | None:
        self._expire()
        return self.config

    def _expire(self) -> None:
        """Drop events past retention, and the configuration after a silent retention period."""
        config = self.config
        if config is None:
            return
        now = self._clock()
        while self._events:
            event_id, event = next(iter(self._events.items()))
            if now - event.published_at < config.retention:
                break
            del self._events[event_id]
            if event.handle is not None:
                self._handles.pop(event.handle, None)
            self.stats["expired"] += 1
        if now - self._last_published >= config.retention:
            self.config = None
            self.stats["config_expired"] += 1


def _parse_config(body: Any) -> _Config | tuple[int, str]:
    """The configuration, or ``(status, message)`` saying why it is refused."""
    if not isinstance(body, dict):
        return 400, "expected {filter: {...}, queue: {...}}"
    spec, queue = body.get("filter"), body.get("queue")
    if not isinstance(spec, dict) or not isinstance(queue, dict):
        return 400, "expected {filter: {...}, queue: {...}}"
    if "status" in spec and "expression" in spec:
        return (
            409,
            "filter.status (FromWorkflow) and .expression (FromOrders) exclude each other",
        )
    if spec.get("type") == "FromOrders":
        return 400, "FromOrders (JSONata) filters are not emulated by the sandbox; use FromWorkflow"
    if spec.get("type") != "FromWorkflow":
        return 400, "filter.type must be FromWorkflow or FromOrders"
    status = spec.get("status")
    if status is not None and (
        not isinstance(status, list) or not all(isinstance(s, str) for s in status)
    ):
        return 400, "filter.status must be a list of status names"
    visibility = queue.get("visibilityTimeoutInSeconds")
    retention = queue.get(
        "MessageRetentionPeriodInSeconds", queue.get("messageRetentionPeriodInSeconds")
    )
    for name, value, (low, high) in (
        ("visibilityTimeoutInSeconds", visibility, VISIBILITY_RANGE),
        ("MessageRetentionPeriodInSeconds", retention, RETENTION_RANGE),
    ):
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            return 400, f"queue.{name} must be a whole number from {low} to {high}"
    assert isinstance(visibility, int) and isinstance(retention, int)
    saved = {
        "filter": spec,
        "queue": {
            "visibilityTimeoutInSeconds": visibility,
            "messageRetentionPeriodInSeconds": retention,
        },
    }
    return _Config(frozenset(status) if status else None, visibility, retention, saved)
