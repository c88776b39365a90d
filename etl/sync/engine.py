"""The engine: every service a sync needs, built once per process from the settings."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis

from etl.config import Settings
from etl.lease import SlotLease
from etl.ratelimit import RedisTokenBucket
from etl.state.store import StateStore
from etl.sync.queues import BACKFILL, INCREMENTAL, TASK_PROCESS_CHUNK, TASK_PRODUCE
from etl.sync.streams import ProductsStream, Stream, stream_for_scope
from etl.synerise.client import SyneriseClient
from etl.vtex.client import VtexClient
from schemas.mapping import MappingConfig

__all__ = ["Engine", "Enqueue"]

Enqueue = Callable[[str, list[Any], str], object]
"""``(task name, JSON args, queue) -> task id``: how the engine sends work (``etl.sync.queues``)."""


@dataclass
class Engine:
    """Shared clients and stores; tasks, the CLI and webhooks all go through one of these."""

    settings: Settings
    store: StateStore
    redis: redis.Redis
    lease: SlotLease
    vtex: VtexClient
    synerise: SyneriseClient
    mapping: MappingConfig
    enqueue: Enqueue
    _streams: dict[str, Stream] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: Settings, enqueue: Enqueue) -> Engine:
        """Wire the real clients; ``enqueue`` sends tasks (``workers.dispatch.enqueue`` under
        Celery: the caller injects it, so the engine never imports the Celery layer)."""
        settings = settings.with_infra()
        assert settings.redis_url and settings.database_url  # with_infra() sets both
        client = redis.Redis.from_url(settings.redis_url)
        return cls(
            settings=settings,
            store=StateStore(settings.database_url),
            redis=client,
            lease=SlotLease(
                client, limit=settings.sync_max_active_runs, ttl=settings.sync_lease_ttl
            ),
            vtex=VtexClient.from_settings(
                settings,
                budget=RedisTokenBucket(client, "vtex", settings.vtex_rate_limit),
                catalog_budget=RedisTokenBucket(
                    client, "vtex_catalog", settings.vtex_catalog_rate_limit
                ),
            ),
            synerise=SyneriseClient.from_settings(
                settings,
                budget=RedisTokenBucket(client, "synerise", settings.synerise_rate_limit),
            ),
            mapping=MappingConfig.from_settings(settings),
            enqueue=enqueue,
        )

    def stream(self, scope: str) -> Stream:
        """The stream for a scope, built once (its HTTP pools are reused)."""
        if scope not in self._streams:
            if scope == ProductsStream.scope:  # it also needs Synerise and the state store
                built: Stream = ProductsStream.from_settings(
                    self.settings, self.vtex, self.synerise, self.store
                )
            else:
                built = stream_for_scope(
                    scope, self.vtex, self.mapping, self.settings.sync_fetch_concurrency
                )
            self._streams[scope] = built
        return self._streams[scope]

    def enqueue_chunk(self, chunk_id: int, kind: str = "backfill") -> None:
        """Send a chunk to its run's queue: incremental chunks never wait behind a backfill."""
        queue = INCREMENTAL if kind == "incremental" else BACKFILL
        self.enqueue(TASK_PROCESS_CHUNK, [chunk_id], queue)

    def enqueue_producer(self, run_id: int) -> None:
        """Send a run's producer to the backfill queue."""
        self.enqueue(TASK_PRODUCE, [run_id], BACKFILL)
