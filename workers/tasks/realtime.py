"""Realtime tasks (queue ``realtime``): thin wrappers over ``etl.sync.realtime`` and
``etl.sync.consent``, fed by the webhooks service (``etl.webhooks``).

Arguments are ``etl.sync.changes`` records as JSON objects (``dataclasses.asdict``). Retries:
whatever the core lets through (retriable errors, an outage of Redis or PostgreSQL) is retried
with short exponential backoff and jitter (realtime work should not wait minutes); the core
records the last attempt's failure as a ``DELIVERY_FAILED`` reject. The task id is the "once"
token: stable across a task's retries, different for a duplicate delivery.
"""

from __future__ import annotations

import random
from typing import Any

from celery import Task

from etl.sync import realtime as core
from etl.sync.changes import ConsentChange, CustomerChange, CustomerDeletion, OrderNotice
from etl.sync.consent import apply_consent
from etl.sync.feed import consume_orders_feed
from etl.sync.queues import (
    TASK_CONSENT,
    TASK_CUSTOMER,
    TASK_CUSTOMER_DELETED,
    TASK_ORDER,
    TASK_ORDERS_FEED,
)
from workers.app import app
from workers.tasks import sync

__all__ = ["consent", "customer", "customer_deleted", "order", "orders_feed", "realtime"]

MAX_RETRIES = 8


_services: core.Realtime | None = None


def realtime() -> core.Realtime:
    """The realtime services over this process's engine, built once (again if it changes)."""
    global _services
    current = sync.engine()  # looked up each time: tests (and a reconfigured worker) replace it
    services = _services
    if services is None or services.engine is not current:
        services = _services = core.Realtime.from_engine(current)
    return services


def _countdown(retries: int) -> float:
    """Full-jitter backoff: up to 1, 2, 4 ... 30 s."""
    return random.uniform(0, min(30.0, 2.0**retries))


def _run(task: Task, work: Any) -> str:
    """Call the core; anything it lets through before the last attempt is retried."""
    final = task.request.retries >= MAX_RETRIES
    try:
        return str(work(final))
    except Exception as error:  # retriable, or Redis/PostgreSQL unreachable for a moment
        if final:
            raise
        raise task.retry(countdown=_countdown(task.request.retries), exc=error) from error


@app.task(name=TASK_CUSTOMER, bind=True, max_retries=MAX_RETRIES)
def customer(self: Task, change: dict[str, Any]) -> str:
    """A ``CL`` document was created or changed: upsert its Synerise profile."""
    record = CustomerChange(**change)
    return _run(self, lambda final: core.sync_customer(realtime(), record, final_attempt=final))


@app.task(name=TASK_CUSTOMER_DELETED, bind=True, max_retries=MAX_RETRIES)
def customer_deleted(self: Task, deletion: dict[str, Any], received_at: str) -> str:
    """A ``CL`` document was deleted: apply ``DELETE_BEHAVIOUR``."""
    record = CustomerDeletion(**deletion)
    token = str(self.request.id)
    return _run(
        self,
        lambda final: core.delete_customer(
            realtime(), record, received_at, token, final_attempt=final
        ),
    )


@app.task(name=TASK_ORDER, bind=True, max_retries=MAX_RETRIES)
def order(self: Task, notice: dict[str, Any]) -> str:
    """A VTEX Orders Hook notification: send or update the order's transaction, once."""
    record = OrderNotice(**notice)
    token = str(self.request.id)
    return _run(
        self, lambda final: core.sync_order(realtime(), record, token, final_attempt=final)
    )


@app.task(name=TASK_CONSENT, bind=True, max_retries=MAX_RETRIES)
def consent(self: Task, change: dict[str, Any]) -> str:
    """A Synerise consent change: write it to the customer's ``CL`` document if it differs."""
    record = ConsentChange(**change)
    return _run(self, lambda final: apply_consent(realtime(), record, final_attempt=final))


@app.task(name=TASK_ORDERS_FEED)
def orders_feed() -> dict[str, Any]:
    """Beat's Orders Feed run: the safety net for order changes the hook missed. Not retried:
    what it could not process stays in the feed for the next run."""
    services = realtime()
    concurrency = services.engine.settings.sync_fetch_concurrency
    return consume_orders_feed(services, concurrency=concurrency).as_dict()
