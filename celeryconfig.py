"""Celery settings for every worker, beat and Flower (``workers.app`` loads this module).

Reliability choices follow docs/reference "Celery practices": tasks are short and idempotent,
acknowledged only after they finish, and re-delivered if a worker dies; run state lives in
PostgreSQL, so results are not stored and the broker holds nothing but messages.

``broker_url`` is ``REDIS_URL`` (the CLI sets it for every process it starts) or the embedded
Redis recorded in the infra state file. Importing this module never starts a server: when
neither is known, ``workers.app`` resolves (and, if needed, starts) the embedded one lazily.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path

from celery.schedules import crontab
from kombu import Exchange, Queue

from etl.config import Settings
from etl.connections import DEFAULT, Connection
from etl.connections import load as load_connections
from etl.errors import ConfigError
from etl.infra import REDIS_OPTIONS
from etl.sync.queues import (
    BACKFILL,
    INCREMENTAL,
    QUEUES,
    REALTIME,
    TASK_INCREMENTAL,
    TASK_ORDERS_FEED,
    TASK_PROCESS_CHUNK,
    TASK_PRODUCE,
    TASK_PRODUCTS,
    TASK_SELFTEST,
    TASK_SWEEP,
)


def _embedded_redis_url() -> str | None:
    """The embedded Redis URL from ``$ETL_STATE_DIR/infra.json``, without starting anything."""
    state = Path(os.environ.get("ETL_STATE_DIR") or ".state") / "infra.json"
    try:
        url = json.loads(state.read_text()).get("redis_url")
    except (OSError, ValueError, AttributeError):
        return None
    return url or None


broker_url = os.environ.get("REDIS_URL") or _embedded_redis_url()

# A Redis restart or outage is waited out, never fatal: workers and beat reconnect by
# themselves, for as long as it takes, logging each attempt ("Cannot connect to redis://...:
# ... Trying again in N seconds"). The embedded Redis comes back on its recorded port.
broker_connection_retry = True
broker_connection_retry_on_startup = True
broker_connection_max_retries = None
broker_transport_options = {
    # Longer than any task including its retries' countdowns, or Redis re-delivers it while it
    # runs.
    "visibility_timeout": 3600,
    # The same timeouts and keepalives as our own clients (etl.infra.REDIS_OPTIONS): a dead or
    # half-open connection fails a publish within seconds, and kombu's health checks (BRPOP
    # and pub/sub) drop a stale consumer connection within brpop_timeout + 2 x interval.
    # retry_on_timeout stays off: kombu would then give up batched publishes (a timed-out
    # write may have landed), and the publish retry policy below covers restarts.
    **REDIS_OPTIONS,
}
# A publish (sync start, a chunk, a webhook, a task's own retry) rides out a short restart: up
# to 4 retries over about 3 s before the caller sees NetworkError (a webhook answers 503).
task_publish_retry = True
task_publish_retry_policy = {
    "max_retries": 4, "interval_start": 0, "interval_step": 0.5, "interval_max": 1.5,
}  # fmt: skip

# Acknowledge after the task ran; a killed worker's task goes back to the queue. Loops are
# bounded by the attempts counter in PostgreSQL, which Redis cannot provide.
task_acks_late = True
task_reject_on_worker_lost = True
worker_prefetch_multiplier = 1
# A task running when the broker connection drops (a Redis restart) finishes and records its
# outcome in PostgreSQL; cancelling it would leave its chunk claimed with no one working on it.
# Its message, unacknowledged, comes back after the visibility timeout or a worker's restart,
# and then finds the chunk done (the claim in sync_chunk makes a second delivery a no-op).
worker_cancel_long_running_tasks_on_connection_loss = False
# Celery's consumer, except that a lost broker connection kombu cannot close cleanly (a Redis
# restart with tasks in flight) is one more connection loss, not a reason to exit.
worker_consumer = "workers.consumer:Consumer"
worker_soft_shutdown_timeout = 30

# The soft limit raises SoftTimeLimitExceeded so a task can checkpoint; the hard one kills.
task_soft_time_limit = 840
task_time_limit = 900
# Python keeps its high-water mark; recycle children before one big page bloats them for good.
worker_max_tasks_per_child = 200
worker_max_memory_per_child = 400_000  # KiB

task_ignore_result = True
task_serializer = "json"
result_serializer = "json"
event_serializer = "json"
accept_content = ["json"]
enable_utc = True
timezone = "UTC"

# Flower (and its Prometheus metrics) only sees what workers report.
worker_send_task_events = True
task_send_sent_event = True

# One exchange and routing key per queue, so the bindings say what they mean (a bare Queue(name)
# binds all three to the default exchange with the routing key "backfill").
task_queues = tuple(Queue(name, Exchange(name, type="direct"), routing_key=name) for name in QUEUES)
task_default_queue = BACKFILL
task_routes = {
    TASK_PRODUCE: {"queue": BACKFILL},
    TASK_PROCESS_CHUNK: {"queue": BACKFILL},
    TASK_INCREMENTAL: {"queue": INCREMENTAL},
    TASK_PRODUCTS: {"queue": INCREMENTAL},
    TASK_SWEEP: {"queue": INCREMENTAL},
    TASK_SELFTEST: {"queue": REALTIME},
    "etl.realtime.*": {"queue": REALTIME},
}


def _connections() -> Mapping[str, Connection]:
    """Every connection (``ETL_CONNECTIONS``, else ``default``); credentials are not needed to
    schedule."""
    return load_connections(require=())


def _per_connection(
    entries: Callable[[Settings], dict[str, dict[str, object]]],
    found: Mapping[str, Connection] | None = None,
) -> dict[str, dict[str, object]]:
    """``entries`` of each connection (``found``, else loaded) from its own settings, its tasks
    given the connection's name; a deployment with only the ``default`` connection keeps its
    entries as they always were."""
    if found is None:
        found = _connections()
    if list(found) == [DEFAULT]:
        return entries(found[DEFAULT].settings)
    return {
        f"{key}-{name}": {**entry, "kwargs": {"connection": name}}
        for name, connection in found.items()
        for key, entry in entries(connection.settings).items()
    }


def _crontab(variable: str, fields: tuple[str, str, str, str, str]) -> crontab:
    """Celery's schedule for checked cron fields (Celery also refuses a day that never comes)."""
    minute, hour, day_of_month, month_of_year, day_of_week = fields
    try:
        return crontab(minute, hour, day_of_week, day_of_month, month_of_year)
    except ValueError as error:
        reason = f"a schedule that can fire ({error})"
        raise ConfigError(variable, reason, " ".join(fields)) from None


def _incremental_schedule(
    found: Mapping[str, Connection] | None = None,
) -> dict[str, dict[str, object]]:
    """One cron-triggered incremental sync per connection and scope.

    ``SYNC_INCREMENTAL_CRON`` (five cron fields, default every 15 minutes) and
    ``SYNC_INCREMENTAL_SCOPES`` (default ``customers_updated,orders``; empty disables them),
    each connection's own.
    """

    def entries(settings: Settings) -> dict[str, dict[str, object]]:
        when = _crontab("SYNC_INCREMENTAL_CRON", settings.sync_incremental_cron)
        return {
            f"incremental-{scope}": {"task": TASK_INCREMENTAL, "schedule": when, "args": (scope,)}
            for scope in settings.sync_incremental_scopes
        }

    return _per_connection(entries, found)


def _products_schedule(
    found: Mapping[str, Connection] | None = None,
) -> dict[str, dict[str, object]]:
    """The nightly catalog pass of each connection: ``SYNC_PRODUCTS_CRON`` (five cron fields,
    UTC; default ``0 3 * * *``, 03:00 every day; ``off`` disables it)."""

    def entries(settings: Settings) -> dict[str, dict[str, object]]:
        fields = settings.sync_products_cron
        if fields is None:
            return {}
        when = _crontab("SYNC_PRODUCTS_CRON", fields)
        return {"products": {"task": TASK_PRODUCTS, "schedule": when}}

    return _per_connection(entries, found)


def _orders_feed_schedule(
    found: Mapping[str, Connection] | None = None,
) -> dict[str, dict[str, object]]:
    """The Orders Feed consumer (``etl.sync.feed``) of each connection every
    ``ORDERS_FEED_INTERVAL`` seconds (default 60; 0 turns it off)."""

    def entries(settings: Settings) -> dict[str, dict[str, object]]:
        interval = settings.orders_feed_interval
        if interval == 0:
            return {}
        return {"orders-feed": {"task": TASK_ORDERS_FEED, "schedule": float(interval)}}

    return _per_connection(entries, found)


def schedule() -> dict[str, dict[str, object]]:
    """Beat's schedule from the current settings (``ConfigError`` names a bad variable); the
    connections are read once for all its entries."""
    found = _connections()
    return {
        "sweep": {"task": TASK_SWEEP, "schedule": 30.0},
        **_incremental_schedule(found),
        **_products_schedule(found),
        **_orders_feed_schedule(found),
    }


beat_schedule = schedule()
