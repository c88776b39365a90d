"""The worker's consumer: Celery's own, surviving a broker connection that kombu cannot close.

When Redis goes away while the worker waits on it with tasks in flight (acks late: their messages
are unacknowledged), Celery 5.7 closes the broken connection before it reconnects. kombu's first
close (``collect``) can leave the Redis channel open while it already detached the transport; the
second close then tries to requeue the unacknowledged messages through that channel and fails
with ``AttributeError: 'NoneType' object has no attribute 'hostname'``, which Celery treats as
unrecoverable: the worker exits on a Redis restart. Here that failure is what it is, a dead
connection that could not be closed cleanly: the consumer reconnects as for any connection loss.

Nothing is lost by it: the messages it could not requeue stay in Redis's unacknowledged set,
their tasks keep running and acknowledge when done; one that cannot is delivered again after the
visibility timeout (``broker_transport_options``), and every task is idempotent.
"""

from __future__ import annotations

import logging

from celery.worker.consumer import Consumer as CeleryConsumer

__all__ = ["Consumer"]

log = logging.getLogger(__name__)


class Consumer(CeleryConsumer):
    """``worker_consumer`` in ``celeryconfig``."""

    def on_connection_error_after_connected(self, exc: BaseException) -> None:
        try:
            super().on_connection_error_after_connected(exc)
        except AttributeError as error:
            self.connection = None  # Celery detached it before closing it; reconnect anew
            log.warning(
                "the lost broker connection could not be closed cleanly (%s); reconnecting",
                error,
            )
