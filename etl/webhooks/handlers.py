"""What each authenticated webhook call becomes: one task for the ``realtime`` queue.

Pure functions of the parsed body (no HTTP, no I/O), so the app stays a thin HTTP layer and the
mapping from requests to tasks is testable on its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from etl.connections import DEFAULT
from etl.sync.queues import TASK_CONSENT, TASK_CUSTOMER, TASK_CUSTOMER_DELETED, TASK_ORDER
from etl.sync.realtime import received_now
from etl.webhooks.payloads import (
    parse_consent,
    parse_customer_change,
    parse_customer_deletion,
    parse_order_notice,
)

__all__ = ["CUSTOMER_METHODS", "Job", "consent_job", "customer_job", "order_job"]

CUSTOMER_METHODS = {"POST": "created", "PATCH": "updated", "DELETE": "deleted"}
"""Master Data trigger method -> what happened to the ``CL`` document."""


@dataclass(frozen=True)
class Job:
    """A task to enqueue: its name and JSON arguments."""

    task: str
    args: list[Any]


def customer_job(method: str, data: Mapping[str, Any], connection: str = DEFAULT) -> Job:
    """A Master Data ``CL`` trigger (created: POST, changed: PATCH, deleted: DELETE) received
    for ``connection``."""
    change = CUSTOMER_METHODS[method]
    if change == "deleted":
        deletion = {**asdict(parse_customer_deletion(data)), "connection": connection}
        return Job(TASK_CUSTOMER_DELETED, [deletion, received_now()])
    return Job(TASK_CUSTOMER, [{**asdict(parse_customer_change(data, change)),
                                "connection": connection}])  # fmt: skip


def order_job(data: Mapping[str, Any], connection: str = DEFAULT) -> Job:
    """A VTEX Orders Hook notification (the ping is answered before this)."""
    return Job(TASK_ORDER, [{**asdict(parse_order_notice(data)), "connection": connection}])


def consent_job(data: Mapping[str, Any], connection: str = DEFAULT) -> Job:
    """A Synerise consent change."""
    return Job(TASK_CONSENT, [{**asdict(parse_consent(data)), "connection": connection}])
