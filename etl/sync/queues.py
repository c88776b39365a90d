"""Where the engine's work goes: the Celery queues and the names of the tasks it sends.

The engine sends tasks by name through the ``enqueue(task, args, queue)`` callable it is given
(``workers.dispatch.enqueue`` in production), so it never imports Celery or the task modules;
``workers/`` registers its tasks under these names and ``celeryconfig`` routes them. The names
are the wire format of queued messages: renaming one strands the messages already in Redis.
"""

from __future__ import annotations

__all__ = [
    "BACKFILL",
    "INCREMENTAL",
    "QUEUES",
    "REALTIME",
    "TASK_CONSENT",
    "TASK_CUSTOMER",
    "TASK_CUSTOMER_DELETED",
    "TASK_DRAIN",
    "TASK_INCREMENTAL",
    "TASK_ORDER",
    "TASK_ORDERS_FEED",
    "TASK_PROCESS_CHUNK",
    "TASK_PRODUCE",
    "TASK_PRODUCTS",
    "TASK_SELFTEST",
    "TASK_SWEEP",
    "chunk_queue",
]

BACKFILL = "backfill"
"""Historical runs: producers and long chunk work."""
INCREMENTAL = "incremental"
"""Beat-driven runs and upkeep: never stuck behind a backfill."""
REALTIME = "realtime"
"""Webhook work (and the selftest probe): short, never stuck behind a backfill."""
QUEUES = (BACKFILL, INCREMENTAL, REALTIME)


def chunk_queue(kind: str) -> str:
    """The queue of a run's chunks: incremental chunks never wait behind a backfill. (Producers
    all go to ``BACKFILL``.)"""
    return INCREMENTAL if kind == "incremental" else BACKFILL


TASK_PRODUCE = "etl.produce"
TASK_PROCESS_CHUNK = "etl.process_chunk"
TASK_SWEEP = "etl.sweep"
TASK_INCREMENTAL = "etl.incremental"
TASK_PRODUCTS = "etl.products"
TASK_SELFTEST = "etl.selftest"
TASK_CUSTOMER = "etl.realtime.customer"
TASK_CUSTOMER_DELETED = "etl.realtime.customer_deleted"
TASK_ORDER = "etl.realtime.order"
TASK_CONSENT = "etl.realtime.consent"
TASK_ORDERS_FEED = "etl.realtime.orders_feed"
TASK_DRAIN = "etl.realtime.drain"
"""Process the notifications waiting in one realtime inbox (``etl.sync.inbox``), in batches."""
