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
