"""The worker's consumer and task requests: Celery's own, surviving a lost broker connection.

**Reconnecting.** When Redis goes away while the worker waits on it with tasks in flight (acks
late: their messages are unacknowledged), Celery 5.7 closes the broken connection before it
reconnects. kombu's first close (``collect``) can leave the Redis channel open while it already
detached the transport; the second close then tries to requeue the unacknowledged messages
through that channel and fails with ``AttributeError: 'NoneType' object has no attribute
'hostname'``, which Celery treats as unrecoverable: the worker exits on a Redis restart. Here
that failure is what it is, a dead connection that could not be closed cleanly: the consumer
reconnects as for any connection loss.

**Acknowledging.** A task that ends while Redis is away cannot acknowledge its message through
the dead connection: kombu logs ``CRITICAL Couldn't ack`` with a traceback, and the message stays
in Redis's unacknowledged set until the visibility timeout (``broker_transport_options``)
delivers it again, an hour later, to find its work done. ``Request.acknowledge`` instead removes
it from that set on a connection of its own, retried until Redis is back (``ACK_RETRY_FOR``),
and says so in one line. Nothing is lost either way: every task is idempotent.
"""

from __future__ import annotations

import logging
import threading
import time
import warnings

import redis
from celery import Task as CeleryTask
from celery.exceptions import CPendingDeprecationWarning
from celery.worker.consumer import Consumer as CeleryConsumer
from celery.worker.request import Request as CeleryRequest

from etl.infra import redis_client

__all__ = ["ACK_RETRY_FOR", "Consumer", "Request", "Task", "acknowledge_later"]

log = logging.getLogger(__name__)

ACK_RETRY_FOR = 600.0
"""Seconds an acknowledgement that met a lost broker connection is retried (well under the
visibility timeout, after which Redis delivers the message again anyway)."""

ACK_PAUSE = 1.0
"""Seconds between two tries of such an acknowledgement."""


class Consumer(CeleryConsumer):
    """``worker_consumer`` in ``celeryconfig``."""

    def on_connection_error_after_connected(self, exc: BaseException) -> None:
        with warnings.catch_warnings():
            # Celery urges, at every connection loss, to cancel running tasks; celeryconfig
            # keeps them running on purpose (worker_cancel_long_running_tasks_on_connection_loss).
            warnings.simplefilter("ignore", CPendingDeprecationWarning)
            try:
                super().on_connection_error_after_connected(exc)
            except AttributeError as error:
                self.connection = None  # Celery detached it before closing it; reconnect anew
                log.warning(
                    "the lost broker connection could not be closed cleanly (%s); reconnecting",
                    error,
                )


class Request(CeleryRequest):
    """A task's request whose acknowledgement outlives the connection it came by."""

    def acknowledge(self) -> None:
        if self.acknowledged:  # type: ignore[has-type]
            return
        message = self._message
        try:
            message.ack()
        except (*self._connection_errors, AttributeError) as error:
            # AttributeError: the channel was closed and detached by the reconnection.
            channel = message.channel
            keys = (channel.global_keyprefix, channel.unacked_key, channel.unacked_index_key)
            log.warning(
                "task %s ended while the broker was away (%s); its message is acknowledged "
                "when Redis is back",
                self.id,
                type(error).__name__,
            )
            threading.Thread(
                target=acknowledge_later,
                args=(self._app.conf.broker_url, message.delivery_tag, *keys),
                name=f"ack-{message.delivery_tag}",
                daemon=True,
            ).start()
        self.acknowledged = True


class Task(CeleryTask):
    """The tasks' base class (``workers.app``): Celery's, with ``Request``."""

    Request = "workers.consumer:Request"


def acknowledge_later(
    broker_url: str,
    delivery_tag: str,
    prefix: str = "",
    unacked: str = "unacked",
    unacked_index: str = "unacked_index",
    *,
    retry_for: float = ACK_RETRY_FOR,
) -> bool:
    """Remove a delivered message from kombu's unacknowledged set (what an ack does), on a
    connection of its own, retried until Redis answers or ``retry_for`` seconds have passed.
    True once done."""
    client = redis_client(broker_url, retries=1)
    deadline = time.monotonic() + retry_for
    while True:
        try:
            with client.pipeline() as pipe:
                pipe.zrem(prefix + unacked_index, delivery_tag)
                pipe.hdel(prefix + unacked, delivery_tag)
                pipe.execute()
        except redis.RedisError as error:  # still away
            if time.monotonic() >= deadline:
                log.warning(
                    "message %s stays unacknowledged (%s): Redis delivers it again after the "
                    "visibility timeout, and its task, already done, does nothing",
                    delivery_tag,
                    type(error).__name__,
                )
                return False
            time.sleep(ACK_PAUSE)
        else:
            log.info("message %s acknowledged after the broker came back", delivery_tag)
            return True
