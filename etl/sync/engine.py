"""The engine: every service a sync needs for one connection, built once per process
(``etl.sync.engines`` holds one per connection)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import redis

from etl.config import Settings
from etl.connections import DEFAULT, Connection
from etl.infra import redis_client
from etl.lease import SlotLease
from etl.ratelimit import RateAdaptation, RedisTokenBucket
from etl.state.listed import ListedRecords
from etl.state.runs import KINDS
from etl.state.store import StateStore
from etl.sync.heartbeat import WorkerHeartbeat
from etl.sync.queues import BACKFILL, INCREMENTAL, TASK_PROCESS_CHUNK, TASK_PRODUCE, chunk_queue
from etl.sync.streams import ProductsStream, Stream, stream_for_scope
from etl.synerise.client import SyneriseClient
from etl.vtex.client import VtexClient
from schemas.mapping import MappingConfig

__all__ = ["Engine", "Enqueue", "EnqueueMany", "QueueSizes", "run_slots_key", "run_token"]

Enqueue = Callable[[str, list[Any], str], object]
"""``(task name, JSON args, queue) -> task id``: how the engine sends work (``etl.sync.queues``)."""

EnqueueMany = Callable[[str, list[list[Any]], str], object]
"""``(task name, one JSON args list per task, queue)``: several tasks of one name in one go
(``workers.dispatch.enqueue_many``: one Redis round trip). Its tasks are taken after those sent
by ``Enqueue`` to the same queue: a batch of new chunks never holds back work handed on."""

QueueSizes = Callable[[Iterable[str]], dict[str, int]]
"""``(queues) -> {queue: messages waiting}`` (``workers.dispatch.queue_sizes``): lets upkeep tell a
message that is lost (its queue is empty, yet nobody took the work) from one that waits."""


def run_token(run_id: int) -> str:
    """The lease token of a run: any process working on the run may renew it."""
    return f"run:{run_id}"


def run_slots_key(connection_id: int) -> str:
    """The Redis key of a connection's run slots (``SYNC_MAX_ACTIVE_RUNS`` per connection)."""
    return f"etl:lease:runs:{connection_id}"


@dataclass
class Engine:
    """One connection's shared clients and stores; tasks, the CLI and webhooks all go through
    one of these."""

    connection: Connection
    connection_id: int
    """The connection's ``etl_connection`` row: its runs, ledger and cursors."""
    settings: Settings
    store: StateStore
    redis: redis.Redis
    lease: SlotLease
    vtex: VtexClient
    synerise: SyneriseClient
    mapping: MappingConfig
    enqueue: Enqueue
    heartbeat: WorkerHeartbeat
    listed: ListedRecords
    """Listed documents on their way from the producer to a chunk (``etl.state.listed``)."""
    enqueue_many: EnqueueMany | None = None
    queue_sizes: QueueSizes | None = None
    _streams: dict[str, Stream] = field(default_factory=dict)
    _sub_accounts: dict[str, VtexClient] = field(default_factory=dict)

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        enqueue: Enqueue,
        enqueue_many: EnqueueMany | None = None,
        queue_sizes: QueueSizes | None = None,
    ) -> Engine:
        """The engine of the ``default`` connection configured by ``settings``."""
        return cls.for_connection(
            Connection(DEFAULT, settings), enqueue, enqueue_many, queue_sizes
        )

    @classmethod
    def for_connection(
        cls,
        connection: Connection,
        enqueue: Enqueue,
        enqueue_many: EnqueueMany | None = None,
        queue_sizes: QueueSizes | None = None,
        store: StateStore | None = None,
    ) -> Engine:
        """Wire the real clients; ``enqueue`` sends tasks (``workers.dispatch.enqueue`` under
        Celery: the caller injects it, so the engine never imports the Celery layer),
        ``enqueue_many`` sends several at once (one ``enqueue`` each when not given) and
        ``queue_sizes`` counts waiting messages (without it, upkeep cannot tell a lost message
        from a waiting one and leaves that to ``SYNC_STALE_AFTER``). ``store`` shares another
        engine's database connections.

        The connection's identity resolves to its state row here (created on first use). Its
        run slots are its own; its rate budgets are its VTEX account's and its Synerise
        workspace's, shared with every connection naming the same account or workspace.
        """
        settings = connection.settings.with_infra()
        assert settings.redis_url and settings.database_url  # with_infra() sets both
        account, workspace = connection.identity
        client = redis_client(settings.redis_url)  # timeouts, keepalives, retries
        base = store or StateStore(settings.database_url)
        connection_id = base.connections.resolve(connection.name, account, workspace)
        lease = SlotLease(
            client,
            limit=settings.sync_max_active_runs,
            ttl=settings.sync_lease_ttl,
            key=run_slots_key(connection_id),
        )
        adapt = RateAdaptation.from_settings(settings)
        vtex_budget = RedisTokenBucket(
            client, "vtex", settings.vtex_rate_limit, account=account, adapt=adapt,
            burst_seconds=settings.vtex_rate_burst,
        )  # fmt: skip
        synerise_budget = RedisTokenBucket(
            client, "synerise", settings.synerise_rate_limit, account=workspace, adapt=adapt,
            burst_seconds=settings.synerise_rate_burst,
        )  # fmt: skip
        scoped = base.for_connection(connection_id)
        return cls(
            connection=connection,
            connection_id=connection_id,
            settings=settings,
            store=scoped,
            redis=client,
            lease=lease,
            vtex=VtexClient.from_settings(
                settings,
                budget=vtex_budget,
                catalog_budget=RedisTokenBucket(
                    client,
                    "vtex_catalog",
                    settings.vtex_catalog_rate_limit,
                    account=account,
                    adapt=adapt,
                ),
            ),
            synerise=SyneriseClient.from_settings(settings, budget=synerise_budget),
            mapping=MappingConfig.from_settings(settings),
            enqueue=enqueue,
            enqueue_many=enqueue_many,
            queue_sizes=queue_sizes,
            heartbeat=WorkerHeartbeat(scoped, lease, settings.sync_claim_ttl, run_token),
            listed=ListedRecords(client, settings.sync_redis_listed_records),
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

    def sub_account(self, account: str) -> VtexClient:
        """A client of one of the connection's ``VTEX_SUB_ACCOUNTS``, with the connection's
        credentials and the sub-account's own rate budget, built once.

        Raises:
            KeyError: ``account`` is not one of the connection's sub-accounts.
        """
        if account not in self._sub_accounts:
            url = dict(self.settings.vtex_sub_accounts)[account]
            settings = dataclasses.replace(self.settings, vtex_account=account, vtex_base_url=url)
            budget = RedisTokenBucket(
                self.redis, "vtex", settings.vtex_rate_limit, account=account,
                adapt=RateAdaptation.from_settings(settings),
                burst_seconds=settings.vtex_rate_burst,
            )  # fmt: skip
            self._sub_accounts[account] = VtexClient.from_settings(settings, budget=budget)
        return self._sub_accounts[account]

    def chunk_size(self, scope: str) -> int:
        """Records per chunk of a scope: ``SYNC_CHUNK_SIZE``, else the stream's own."""
        return self.settings.sync_chunk_size or self.stream(scope).chunk_size

    def enqueue_chunks(
        self,
        chunk_ids: list[int],
        kind: str = "backfill",
        *,
        ahead: bool = False,
        per_task: int = 1,
    ) -> None:
        """Send chunks to their run's queue, in one go: incremental chunks never wait behind a
        backfill. ``per_task`` chunks (in order) share a task message, each still claimed and
        completed on its own, so Celery's cost per task is paid once for them. ``ahead``: one
        chunk per task, one by one, taken before the batches already waiting (work handed on
        from a worker that died or froze must not wait for the rest of the run)."""
        if not chunk_ids:
            return
        queue = chunk_queue(kind)
        size = 1 if ahead else max(1, per_task)
        messages = [[chunk_ids[first : first + size]] for first in range(0, len(chunk_ids), size)]
        if self.enqueue_many is None or ahead:
            for args in messages:
                self.enqueue(TASK_PROCESS_CHUNK, args, queue)
            return
        self.enqueue_many(TASK_PROCESS_CHUNK, messages, queue)

    def idle_kinds(self) -> tuple[list[str], list[str]] | None:
        """Run kinds whose chunk queue, and whose producer queue, hold no message at all, or
        ``None`` when the queues cannot be counted."""
        if self.queue_sizes is None:
            return None
        sizes = self.queue_sizes([BACKFILL, INCREMENTAL])
        chunks = [kind for kind in KINDS if not sizes.get(chunk_queue(kind))]
        producers = list(KINDS) if not sizes.get(BACKFILL) else []
        return chunks, producers

    def enqueue_producer(self, run_id: int) -> None:
        """Send a run's producer to the backfill queue."""
        self.enqueue(TASK_PRODUCE, [run_id], BACKFILL)

    def close(self) -> None:
        """Stop the heartbeat and close the clients (the calling thread's database connection)."""
        self.heartbeat.stop()
        self.vtex.close()
        for client in self._sub_accounts.values():
            client.close()
        self.synerise.close()
        self.redis.close()
        self.store.close()
