"""How the rest of the project sends Celery tasks: by name, through ``workers.app``.

The engine is given ``enqueue`` (``Engine.from_settings(settings, enqueue)``) and never imports
Celery; the doors (CLI, webhooks, demo) take it from here. Sending by name means no task module
is imported either, and ``workers.app`` is imported on first use only, so importing this module
configures no Celery app and starts no server (the CLI's ``--help`` stays fast). Tests and the
sandbox pass their own ``enqueue`` callable instead.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from etl.errors import unreachable
from etl.sync.queues import QUEUES

__all__ = ["BATCH_PRIORITY", "enqueue", "enqueue_many", "prepare_sender", "queue_sizes"]

BATCH_PRIORITY = 6
"""The message priority of ``enqueue_many``'s tasks. kombu's Redis transport keeps one list per
priority step (0, 3, 6, 9; 0 first) and a worker takes from the first non-empty one, so a task
sent by ``enqueue`` (priority 0: a producer, chunks handed on from a dead or frozen worker, a
webhook's task) is taken before the batches of new chunks already waiting."""


def enqueue(task_name: str, args: list[Any], queue: str) -> str:
    """Send ``task_name(*args)`` to ``queue``; return the task id.

    Args:
        task_name: a registered name such as ``etl.process_chunk`` (``etl.sync.queues``).
        args: JSON-serialisable positional arguments (ids, not objects).
        queue: one of ``etl.sync.queues.QUEUES``.

    Raises:
        ValueError: an unknown queue (its messages would wait forever: no worker reads it).
        NetworkError: the broker could not be reached.
    """
    if queue not in QUEUES:
        raise ValueError(f"queue must be one of {', '.join(QUEUES)}; got {queue!r}")
    from kombu.exceptions import OperationalError
    from redis import ConnectionError as RedisConnectionError

    from workers.app import app  # lazy: importing this module must not configure Celery

    # Kombu retries a publish a few times; a broker down longer is a passing outage
    # (NetworkError: the task retries, resume or the upkeep re-enqueues), not a failed run.
    with unreachable("the broker", OperationalError, RedisConnectionError):
        return str(app.send_task(task_name, args=args, queue=queue).id)


def enqueue_many(task_name: str, args_list: list[list[Any]], queue: str) -> list[str]:
    """Send ``task_name(*args)`` for each of ``args_list`` to ``queue`` in one Redis round trip,
    behind what ``enqueue`` sends (``BATCH_PRIORITY``); the task ids.

    One producer from Celery's pool and one kombu publish batch (a Redis pipeline): kombu builds
    a Redis client object per publish otherwise, and each publish is a round trip of its own
    (the producer enqueues its chunks this way). The task-sent events ride in the same batch.

    Raises:
        ValueError: an unknown queue.
        NetworkError: the broker could not be reached (none of the batch may have been sent).
    """
    if queue not in QUEUES:
        raise ValueError(f"queue must be one of {', '.join(QUEUES)}; got {queue!r}")
    from kombu.exceptions import OperationalError
    from redis import ConnectionError as RedisConnectionError

    from workers.app import app

    with (
        unreachable("the broker", OperationalError, RedisConnectionError),
        app.producer_or_acquire() as producer,
        producer.batch(),
    ):
        return [
            str(app.send_task(task_name, args=args, queue=queue, producer=producer,
                              priority=BATCH_PRIORITY).id)
            for args in args_list
        ]


def queue_sizes(queues: Iterable[str]) -> dict[str, int]:
    """Messages waiting in each queue (not those a worker has taken already).

    Raises:
        NetworkError: the broker could not be reached.
    """
    from kombu.exceptions import OperationalError
    from redis import ConnectionError as RedisConnectionError

    from workers.app import app

    with (
        unreachable("the broker", OperationalError, RedisConnectionError),
        app.connection_or_acquire() as connection,
    ):
        channel = connection.default_channel
        return {queue: int(channel.queue_declare(queue=queue).message_count) for queue in queues}


def prepare_sender() -> None:
    """Make this process a lean sender of many small tasks (the webhook service).

    Celery's ``task-sent`` event is a second Redis write for every task, about a third of a
    send's CPU (profiled); Flower still follows each task through the worker's
    received/started/succeeded events. And what the first send would import lazily is imported
    now, so the caller can freeze it out of the garbage collector's reach (``gc.freeze``).
    Nothing connects to Redis here: the service must start, and answer 503, while it is down.
    """
    from workers.app import app

    app.conf.task_send_sent_event = False
    app.loader.import_default_modules()
    app.finalize(auto=True)
    app.connection_for_write().transport  # noqa: B018 (imports the transport, no connection)
