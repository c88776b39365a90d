"""The Celery app: reliability settings, routes, and a real worker doing a selftest round trip."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg2
import pytest
import redis

import celeryconfig
from etl.errors import ConfigError
from etl.sync.queues import QUEUES
from workers.dispatch import enqueue, enqueue_many, queue_sizes

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def app(redis_url, database_url, monkeypatch):
    """``workers.app`` pointed at the test Redis; its tasks write to the test database."""
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("DATABASE_URL", database_url)  # read by etl.selftest on each call
    from workers.app import app

    app.conf.broker_url = redis_url
    return app


def rows(dsn: str, tokens: list[str]) -> dict[str, str]:
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT token, worker FROM selftest WHERE token = ANY(%s)", (tokens,))
        return dict(cur.fetchall())


def test_reliability_settings(app):
    conf = app.conf
    assert conf.task_acks_late and conf.task_reject_on_worker_lost
    assert conf.worker_prefetch_multiplier == 1
    assert conf.task_soft_time_limit < conf.task_time_limit
    assert conf.broker_transport_options["visibility_timeout"] > conf.task_time_limit
    assert conf.worker_send_task_events and conf.task_send_sent_event
    assert conf.task_ignore_result
    assert conf.accept_content == ["json"] and conf.task_serializer == "json"
    assert conf.broker_connection_retry_on_startup
    # A Redis restart must not kill tasks: they finish and record; a redelivery is a no-op.
    assert not conf.worker_cancel_long_running_tasks_on_connection_loss
    assert conf.broker_connection_retry and conf.broker_connection_max_retries is None
    options = conf.broker_transport_options
    assert options["socket_timeout"] and options["socket_connect_timeout"]
    assert options["socket_keepalive"] and options["health_check_interval"]
    assert {queue.name for queue in conf.task_queues} == set(QUEUES)


@pytest.mark.parametrize(
    ("task", "queue"),
    [
        ("etl.produce", "backfill"),
        ("etl.process_chunk", "backfill"),
        ("etl.incremental", "incremental"),
        ("etl.products", "incremental"),
        ("etl.sweep", "incremental"),
        ("etl.realtime.order_status", "realtime"),
        ("etl.selftest", "realtime"),
    ],
)
def test_routes(app, task, queue):
    assert app.amqp.router.route({}, task)["queue"].name == queue


def test_a_message_lands_in_its_queue_only(app, redis_url):
    broker = redis.Redis.from_url(redis_url)
    broker.delete(*QUEUES)
    with app.connection_for_write() as conn:  # bind every queue, as a worker does
        for queue in app.amqp.queues.values():
            queue.bind(conn).declare()
    try:
        enqueue("etl.selftest", ["lands-once"], "realtime")
        enqueue("etl.process_chunk", [1], "backfill")
        assert [broker.llen(queue) for queue in QUEUES] == [1, 0, 1]
    finally:
        broker.delete(*QUEUES)


def test_a_single_send_is_taken_before_the_batches_waiting(app, sync_redis):
    """Chunks handed on from a dead or frozen worker (``enqueue``) must not wait for a run's
    backlog of new chunks (``enqueue_many``): a worker takes them first."""
    with app.connection_for_write() as conn:
        for queue in app.amqp.queues.values():
            queue.bind(conn).declare()
    enqueue_many("etl.process_chunk", [[1], [2], [3]], "backfill")
    enqueue("etl.process_chunk", [99], "backfill")
    assert queue_sizes(["backfill"]) == {"backfill": 4}
    taken = []
    with app.connection_for_read() as conn:
        channel = conn.default_channel
        while (message := channel.basic_get("backfill", no_ack=True)) is not None:
            taken.append(json.loads(message.body)[0][0])
    assert taken == [99, 1, 2, 3]


def test_beat_runs_the_orders_feed_every_orders_feed_interval(monkeypatch):
    import celeryconfig

    assert celeryconfig.beat_schedule["orders-feed"] == {
        "task": "etl.realtime.orders_feed", "schedule": 60.0,
    }  # fmt: skip
    monkeypatch.setenv("ORDERS_FEED_INTERVAL", "15")
    assert celeryconfig._orders_feed_schedule()["orders-feed"]["schedule"] == 15.0
    monkeypatch.setenv("ORDERS_FEED_INTERVAL", "0")
    assert celeryconfig._orders_feed_schedule() == {}
    monkeypatch.setenv("ORDERS_FEED_INTERVAL", "soon")
    with pytest.raises(ConfigError, match="ORDERS_FEED_INTERVAL"):
        celeryconfig._orders_feed_schedule()


def test_beat_schedules_the_sweep(app):
    assert app.conf.beat_schedule["sweep"] == {"task": "etl.sweep", "schedule": 30.0}


def test_beat_runs_the_catalog_pass_nightly_by_default(app):
    entry = app.conf.beat_schedule["products"]
    assert entry["task"] == "etl.products"
    assert (entry["schedule"].hour, entry["schedule"].minute) == ({3}, {0})


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("30 1 * * 0", ({1}, {30}, {0})),
        ("", ({3}, {0}, set(range(7)))),
        ("off", None),
        ("OFF", None),
    ],
)
def test_sync_products_cron(monkeypatch, value, expected):
    monkeypatch.setenv("SYNC_PRODUCTS_CRON", value)
    entry = celeryconfig._products_schedule().get("products")
    found = entry and (entry["schedule"].hour, entry["schedule"].minute,
                       entry["schedule"].day_of_week)  # fmt: skip
    assert found == expected


@pytest.mark.parametrize("value", ["0 3 * *", "61 3 * * *", "nightly", "0 0 31 feb *"])
def test_a_bad_sync_products_cron_is_refused_with_its_name(monkeypatch, value):
    monkeypatch.setenv("SYNC_PRODUCTS_CRON", value)
    with pytest.raises(ConfigError, match="SYNC_PRODUCTS_CRON"):
        celeryconfig._products_schedule()


def test_enqueue_refuses_unknown_queues():
    with pytest.raises(ValueError, match="queue must be one of"):
        enqueue("etl.selftest", ["x"], "celery")


def test_real_worker_runs_selftest_through_redis_into_postgres(app, database_url):
    from celery.contrib.testing.worker import start_worker

    tokens = [f"t-{uuid.uuid4().hex[:8]}-{i}" for i in range(20)]
    # No ping check: it reads a result, and results are not stored (state lives in PostgreSQL).
    with start_worker(app, pool="threads", concurrency=4, perform_ping_check=False) as worker:
        for token in tokens:
            enqueue("etl.selftest", [token], "realtime")
        deadline = time.monotonic() + 30
        while len(rows(database_url, tokens)) < len(tokens) and time.monotonic() < deadline:
            time.sleep(0.1)
    found = rows(database_url, tokens)
    assert sorted(found) == sorted(tokens)
    # The embedded test worker reports the host part only; a real worker its full node name.
    assert set(found.values()) <= {worker.hostname, worker.hostname.partition("@")[2]}


def test_importing_the_app_starts_no_server(tmp_path):
    """Only using Celery may start embedded servers; importing the app or its config must not."""
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
    env["ETL_STATE_DIR"] = str(tmp_path)
    code = "import celeryconfig, workers.app, workers.tasks.sync; print(celeryconfig.broker_url)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == "None"
    assert not (tmp_path / "infra.json").exists()


def test_a_worker_connects_its_upkeep_when_it_loads_its_tasks(tmp_path):
    """The worker_ready handler lives in workers.tasks.sync (workers.app never imports its task
    modules): loading the included modules, as a worker does before it is ready, connects it."""
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    # A broker URL nobody listens on: loading the app must not start (or reach) any server.
    env.update(ETL_STATE_DIR=str(tmp_path), REDIS_URL="redis://127.0.0.1:1/0")
    code = (
        "import weakref; from celery import signals; from workers.app import app\n"
        "live = lambda r: r() if isinstance(r, weakref.ReferenceType) else r\n"
        "names = lambda: [live(r).__qualname__ for _, r in signals.worker_ready.receivers]\n"
        "before = names(); app.loader.import_default_modules(); print(before, names())"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True,
                         text=True, check=True)
    assert out.stdout.split() == ["[]", "['_start_upkeep']"]
    assert not (tmp_path / "infra.json").exists()


def test_broker_falls_back_to_the_infra_state_file(tmp_path):
    (tmp_path / "infra.json").write_text(json.dumps({"redis_url": "redis://127.0.0.1:1/0"}))
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env["ETL_STATE_DIR"] = str(tmp_path)
    code = "import celeryconfig; print(celeryconfig.broker_url)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == "redis://127.0.0.1:1/0"
    assert celeryconfig.QUEUES == QUEUES


def test_beat_schedules_each_connection(monkeypatch, tmp_path):
    import celeryconfig

    path = tmp_path / "connections.toml"
    path.write_text('[storea]\nVTEX_ACCOUNT = "storea"\n[storeb]\nVTEX_ACCOUNT = "storeb"\n')
    monkeypatch.setenv("ETL_CONNECTIONS", str(path))
    monkeypatch.setenv("SYNC_INCREMENTAL_SCOPES", "orders")
    monkeypatch.delenv("ORDERS_FEED_INTERVAL", raising=False)
    incremental = celeryconfig._incremental_schedule()
    assert sorted(incremental) == ["incremental-orders-storea", "incremental-orders-storeb"]
    assert incremental["incremental-orders-storeb"]["kwargs"] == {"connection": "storeb"}
    assert incremental["incremental-orders-storeb"]["args"] == ("orders",)
    feed = celeryconfig._orders_feed_schedule()
    assert feed["orders-feed-storea"] == {
        "task": "etl.realtime.orders_feed", "schedule": 60.0, "kwargs": {"connection": "storea"},
    }  # fmt: skip
