"""Flower, as the CLI runs it: /metrics asks for the same credentials as every other page."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from etl import infra

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def flower_url(redis_url, database_url, tmp_path):
    port = infra.free_port()
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "DATABASE_URL": database_url,
        "ETL_STATE_DIR": str(tmp_path / "state"),
        "FLOWER_BASIC_AUTH": "ops:flower-secret-1",
        "PYTHONPATH": str(REPO),
    }
    log = (tmp_path / "flower.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "etl.cli", "--log-level", "WARNING", "flower", "--port", str(port)],
        env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(f"{url}/healthcheck", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"Flower did not start: {(tmp_path / 'flower.log').read_text()}")
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def test_metrics_need_the_flower_credentials(flower_url):
    assert requests.get(f"{flower_url}/metrics", timeout=10).status_code == 401
    wrong = requests.get(f"{flower_url}/metrics", auth=("ops", "nope"), timeout=10)
    assert wrong.status_code == 401
    right = requests.get(f"{flower_url}/metrics", auth=("ops", "flower-secret-1"), timeout=10)
    assert right.status_code == 200
    assert "flower_events_total" in right.text or "# HELP flower_" in right.text
    assert requests.get(f"{flower_url}/api/workers", timeout=10).status_code == 401
