"""Realtime tasks (queue ``realtime``): thin wrappers over ``etl.sync.realtime``,
``etl.sync.drain`` and ``etl.sync.consent``, fed by the webhooks service (``etl.webhooks``).

The webhook service leaves customer changes and order notifications in the realtime inbox and
``drain(scope)`` processes them in batches; deletions and consent are a task each, and so is any
customer or order message sent as a task (queued before the inbox, or by hand).

Arguments are ``etl.sync.changes`` records as JSON objects (``dataclasses.asdict``). Retries:
whatever the core lets through (retriable errors, an outage of Redis or PostgreSQL) is retried
with short exponential backoff and jitter (realtime work should not wait minutes); the core
records the last attempt's failure as a ``DELIVERY_FAILED`` reject. The task id is the "once"
token: stable across a task's retries, different for a duplicate delivery.
"""

from __future__ import annotations

import dataclasses
import random
from typing import Any

from celery import Task

from etl.connections import DEFAULT, unnamed
from etl.sync import realtime as core
from etl.sync.accounts import route_order
from etl.sync.changes import ConsentChange, CustomerChange, CustomerDeletion, OrderNotice
from etl.sync.consent import apply_consent
from etl.sync.drain import Route
from etl.sync.drain import drain as drain_inbox
from etl.sync.feed import consume_orders_feed
from etl.sync.queues import (
    TASK_CONSENT,
    TASK_CUSTOMER,
    TASK_CUSTOMER_DELETED,
    TASK_DRAIN,
    TASK_ORDER,
    TASK_ORDERS_FEED,
)
from etl.vtex.client import VtexClient
from workers.app import app
from workers.tasks import sync

__all__ = [
    "consent",
    "customer",
    "customer_deleted",
    "drain",
    "order",
    "orders_feed",
    "realtime",
]

MAX_RETRIES = 8


_services: dict[str, core.Realtime] = {}


def realtime(connection: str | None = None) -> core.Realtime:
    """The realtime services over a connection's engine in this process, built once (again if
    it changes). Work from today's paths names ``default``: in a file whose one connection has
    another name, that connection serves it."""
    if connection == DEFAULT:  # looked up each time: tests (and a reconfigured worker) swap it
        connection = unnamed(sync.engines().names())
    return _services_of(sync.engine(connection))


def _services_of(engine: Any) -> core.Realtime:
    services = _services.get(engine.connection.name)
    if services is None or services.engine is not engine:
        services = _services[engine.connection.name] = core.Realtime.from_engine(engine)
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
    return _run(
        self,
        lambda final: core.sync_customer(realtime(record.connection), record, final_attempt=final),
    )


@app.task(name=TASK_CUSTOMER_DELETED, bind=True, max_retries=MAX_RETRIES)
def customer_deleted(self: Task, deletion: dict[str, Any], received_at: str) -> str:
    """A ``CL`` document was deleted: apply ``DELETE_BEHAVIOUR``."""
    record = CustomerDeletion(**deletion)
    token = str(self.request.id)
    return _run(
        self,
        lambda final: core.delete_customer(
            realtime(record.connection), record, received_at, token, final_attempt=final
        ),
    )


@app.task(name=TASK_ORDER, bind=True, max_retries=MAX_RETRIES)
def order(self: Task, notice: dict[str, Any]) -> str:
    """A VTEX Orders Hook notification: send or update the order's transaction, once, through
    the connection its account belongs to (``etl.sync.accounts``)."""
    record = OrderNotice(**notice)
    token = str(self.request.id)

    def work(final: bool) -> str:
        receiving = realtime(record.connection).engine
        engine, vtex = route_order(sync.engines(), receiving, record.origin_account)
        return core.sync_order(_services_of(engine), record, token, final_attempt=final, vtex=vtex)

    return _run(self, work)


def _router(receiving: Any) -> Route:
    """Where a drain of ``receiving``'s inbox processes an order of an ``Origin.Account``."""

    def route(account: str | None) -> tuple[core.Realtime, VtexClient]:
        engine, vtex = route_order(sync.engines(), receiving, account)
        return _services_of(engine), vtex

    return route


@app.task(name=TASK_CONSENT, bind=True, max_retries=MAX_RETRIES)
def consent(self: Task, change: dict[str, Any]) -> str:
    """A Synerise consent change: write it to the customer's ``CL`` document if it differs."""
    record = ConsentChange(**change)
    return _run(
        self, lambda final: apply_consent(realtime(record.connection), record, final_attempt=final)
    )


@app.task(name=TASK_DRAIN, bind=True, max_retries=MAX_RETRIES)
def drain(self: Task, scope: str, connection: str = DEFAULT) -> dict[str, Any]:
    """Process the notifications waiting in a connection's inbox of ``scope``, in batches, for
    up to 30 s; an order of another connection's account or of a sub-account is processed with
    that connection's services (``etl.sync.accounts``).

    A batch's failures stay with its notifications (delivered again later); what reaches here
    is Redis or PostgreSQL failing under a batch, whose entries wait, pending, for the next
    drain: this one is retried with backoff, and upkeep schedules drains anyway."""
    try:
        services = realtime(connection)
        if services.inbox.connection != connection:  # default's streams, a file's one connection
            services = dataclasses.replace(services, inbox=services.inbox.of(connection))
        return drain_inbox(services, scope, route=_router(services.engine)).as_dict()
    except Exception as error:
        raise self.retry(countdown=_countdown(self.request.retries), exc=error) from error


@app.task(name=TASK_ORDERS_FEED)
def orders_feed(connection: str | None = None) -> dict[str, Any]:
    """Beat's Orders Feed run of a connection (the only one when not named): the safety net
    for order changes the hook missed. Not retried: what it could not process stays in the
    feed for the next run."""
    services = realtime(connection)
    concurrency = services.engine.settings.sync_fetch_concurrency
    return consume_orders_feed(services, concurrency=concurrency).as_dict()
