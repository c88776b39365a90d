"""Flower, as the CLI runs it: /metrics asks for the same credentials as every other page."""

from __future__ import annotations

import pytest
import requests

from etl import infra
from tests.serving import cli_service


@pytest.fixture
def flower_url(redis_url, database_url, tmp_path):
    port = infra.free_port()
    env = {
        "REDIS_URL": redis_url,
        "DATABASE_URL": database_url,
        "ETL_STATE_DIR": str(tmp_path / "state"),
        "FLOWER_BASIC_AUTH": "ops:flower-secret-1",
    }
    url = f"http://127.0.0.1:{port}"
    with cli_service(["flower", "--port", str(port)], env, tmp_path, f"{url}/healthcheck"):
        yield url


def test_metrics_need_the_flower_credentials(flower_url):
    assert requests.get(f"{flower_url}/metrics", timeout=10).status_code == 401
    wrong = requests.get(f"{flower_url}/metrics", auth=("ops", "nope"), timeout=10)
    assert wrong.status_code == 401
    right = requests.get(f"{flower_url}/metrics", auth=("ops", "flower-secret-1"), timeout=10)
    assert right.status_code == 200
    assert "flower_events_total" in right.text or "# HELP flower_" in right.text
    assert requests.get(f"{flower_url}/api/workers", timeout=10).status_code == 401


def test_queue_lengths_count_every_priority_list(flower_url, redis_url):
    """The producer's chunk batches wait in kombu's priority lists (``BATCH_PRIORITY``), not in
    the queue's own list; Flower's queue length (its page, its API, the dashboards) counts them."""
    import redis
    from celery import Celery

    import celeryconfig
    from workers.dispatch import BATCH_PRIORITY

    sender = Celery(broker=redis_url)
    sender.config_from_object(celeryconfig)
    for priority in (0, BATCH_PRIORITY, BATCH_PRIORITY):
        sender.send_task("etl.process_chunk", args=[0], queue="backfill", priority=priority)
    batch_list = f"backfill\x06\x16{BATCH_PRIORITY}"  # kombu's list for that priority step
    assert redis.Redis.from_url(redis_url).llen(batch_list) == 2
    auth = ("ops", "flower-secret-1")
    lengths = requests.get(f"{flower_url}/api/queues/length", auth=auth, timeout=10)
    assert lengths.status_code == 200
    by_queue = {queue["name"]: queue["messages"] for queue in lengths.json()["active_queues"]}
    assert by_queue["backfill"] == 3
