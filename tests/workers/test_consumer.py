"""A Redis restart with tasks in flight must not end the worker (workers/consumer.py)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kombu
import pytest
from celery.worker.consumer import Consumer as CeleryConsumer

from etl import infra
from workers.app import app
from workers.consumer import Consumer, Request


@pytest.fixture
def lost_connection(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A worker's broker connection holding an unacknowledged message when Redis goes away, in
    the state kombu's first close (``collect``) can leave it: transport detached, channel open."""
    state = infra.up(tmp_path, need_postgres=False)
    conn = app.connection_for_read(state.redis_url)
    queue = kombu.Queue("consumer-test", kombu.Exchange("consumer-test", type="direct"),
                        routing_key="consumer-test")  # fmt: skip
    with conn.Producer() as producer:
        producer.publish({"n": 1}, exchange=queue.exchange, routing_key="consumer-test",
                         declare=[queue])  # fmt: skip
    delivered: list[Any] = []
    consumer = kombu.Consumer(conn.default_channel, [queue], no_ack=False,
                              callbacks=[lambda _, message: delivered.append(message)])  # fmt: skip
    consumer.consume()
    conn.drain_events(timeout=10)
    assert len(delivered) == 1 and not delivered[0].acknowledged  # a task in flight
    infra.down(tmp_path, ("redis",))
    monkeypatch.setattr(conn, "collect", lambda socket_timeout=None: conn._do_close_transport())
    try:
        yield conn
    finally:
        infra.down(tmp_path)


def bare(cls: type[CeleryConsumer], connection: Any) -> Any:
    """A consumer with only what the connection-loss handler reads (no worker around it)."""
    consumer = cls.__new__(cls)
    consumer.app, consumer.connection = app, connection
    return consumer


def test_celerys_own_consumer_dies_there(lost_connection: Any) -> None:
    """The failure the subclass exists for (if kombu stops failing, workers/consumer.py can go)."""
    with pytest.raises(AttributeError, match="hostname"):
        bare(CeleryConsumer, lost_connection).on_connection_error_after_connected(
            ConnectionError("Connection closed by server.")
        )


def test_the_worker_consumer_reconnects_instead(lost_connection: Any) -> None:
    consumer = bare(Consumer, lost_connection)
    consumer.on_connection_error_after_connected(ConnectionError("Connection closed by server."))
    assert consumer.connection is None  # the restart step connects anew


def test_workers_use_it() -> None:
    assert app.conf.worker_consumer == "workers.consumer:Consumer"
    assert app.Task.Request == "workers.consumer:Request"


def test_a_task_that_ends_while_redis_is_away_acknowledges_when_it_is_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """kombu would log ``CRITICAL Couldn't ack`` and leave the message to be delivered again
    after the visibility timeout; ``Request.acknowledge`` removes it once Redis is back."""
    import redis

    from workers.tasks.sync import sweep

    state = infra.up(tmp_path, need_postgres=False)
    monkeypatch.setattr(app.conf, "broker_url", state.redis_url)
    monkeypatch.setattr("workers.consumer.ACK_PAUSE", 0.1)
    broker = redis.Redis.from_url(state.redis_url)
    try:
        conn = app.connection_for_read(state.redis_url)
        app.send_task(sweep.name, queue="consumer-ack", connection=conn)
        delivered: list[Any] = []
        queue = kombu.Queue("consumer-ack", kombu.Exchange("consumer-ack", type="direct"),
                            routing_key="consumer-ack")  # fmt: skip
        listen = kombu.Consumer(conn.default_channel, [queue], no_ack=False)
        listen.register_callback(lambda _, message: delivered.append(message))
        listen.consume()
        conn.drain_events(timeout=10)
        request = Request(delivered[0], app=app, task=sweep,
                          connection_errors=conn.connection_errors)  # fmt: skip
        assert broker.hlen("unacked") == 1
        infra.down(tmp_path, ("redis",))
        request.acknowledge()  # the task ended while Redis is away
        assert request.acknowledged
        infra.up(tmp_path, need_postgres=False)
        deadline = time.monotonic() + 30
        while broker.hlen("unacked") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert broker.hlen("unacked") == 0
        conn.release()  # its channel restores what is still unacknowledged: nothing
        assert broker.llen("consumer-ack") == 0
    finally:
        infra.down(tmp_path)
