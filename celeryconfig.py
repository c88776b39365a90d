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
from pathlib import Path

from celery.schedules import crontab
from kombu import Exchange, Queue

from etl.sync.queues import (
    BACKFILL,
    INCREMENTAL,
    QUEUES,
    REALTIME,
    TASK_INCREMENTAL,
    TASK_ORDERS_FEED,
    TASK_PROCESS_CHUNK,
    TASK_PRODUCE,
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
broker_connection_retry_on_startup = True
# Longer than any task including its retries' countdowns, or Redis re-delivers it while it runs.
broker_transport_options = {"visibility_timeout": 3600}

# Acknowledge after the task ran; a killed worker's task goes back to the queue. Loops are
# bounded by the attempts counter in PostgreSQL, which Redis cannot provide.
task_acks_late = True
task_reject_on_worker_lost = True
worker_prefetch_multiplier = 1
worker_cancel_long_running_tasks_on_connection_loss = True
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
    TASK_SWEEP: {"queue": INCREMENTAL},
    TASK_SELFTEST: {"queue": REALTIME},
    "etl.realtime.*": {"queue": REALTIME},
}


def _per_connection(name: str, entry: dict[str, object]) -> dict[str, dict[str, object]]:
    """``entry`` once per connection (``ETL_CONNECTIONS``), its task given the connection's
    name; a deployment with only the ``default`` connection keeps the entry as it always was."""
    from etl.connections import DEFAULT, names  # the file's table names only: no credentials

    found = names()
    if found == (DEFAULT,):
        return {name: entry}
    return {f"{name}-{connection}": {**entry, "kwargs": {"connection": connection}}
            for connection in found}  # fmt: skip


def _incremental_schedule() -> dict[str, dict[str, object]]:
    """One cron-triggered incremental sync per connection and scope.

    ``SYNC_INCREMENTAL_CRON`` (five cron fields, default every 15 minutes) and
    ``SYNC_INCREMENTAL_SCOPES`` (default ``customers_updated,orders``; empty disables them).
    """
    fields = (os.environ.get("SYNC_INCREMENTAL_CRON") or "*/15 * * * *").split()
    if len(fields) != 5:
        raise ValueError("SYNC_INCREMENTAL_CRON: expected five cron fields, e.g. '*/15 * * * *'")
    minute, hour, day_of_month, month_of_year, day_of_week = fields
    when = crontab(minute, hour, day_of_week, day_of_month, month_of_year)
    scopes = os.environ.get("SYNC_INCREMENTAL_SCOPES", "customers_updated,orders")
    schedule: dict[str, dict[str, object]] = {}
    for scope in (name.strip() for name in scopes.split(",")):
        if scope:
            entry = {"task": TASK_INCREMENTAL, "schedule": when, "args": (scope,)}
            schedule.update(_per_connection(f"incremental-{scope}", entry))
    return schedule


def _orders_feed_schedule() -> dict[str, dict[str, object]]:
    """The Orders Feed consumer (``etl.sync.feed``) of each connection every
    ``ORDERS_FEED_INTERVAL`` seconds (default 60; 0 turns it off)."""
    raw = os.environ.get("ORDERS_FEED_INTERVAL") or "60"
    if not raw.isdigit() or int(raw) > 3600:
        raise ValueError(f"ORDERS_FEED_INTERVAL: expected 0 to 3600 seconds, got {raw!r}")
    if int(raw) == 0:
        return {}
    return _per_connection("orders-feed", {"task": TASK_ORDERS_FEED, "schedule": float(raw)})


beat_schedule = {
    "sweep": {"task": TASK_SWEEP, "schedule": 30.0},
    **_incremental_schedule(),
    **_orders_feed_schedule(),
}
