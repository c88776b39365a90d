"""Fixtures for realtime tests (``tests/etl/webhooks/conftest.py`` exposes them, and
``tests/workers/test_realtime.py`` takes them over its folder's own): the sandbox, the engine, a
real Celery worker on the ``realtime`` queue and the webhook app on a real port.

Everything is real: VTEX and Synerise emulators over HTTP on loopback, the test Redis (broker and
guards, flushed around each test), a fresh migrated PostgreSQL database per test, a threads
Celery worker, and the WSGI app served by werkzeug in a thread, which is where the sandbox's
order hook delivers.

Markers: ``@pytest.mark.rt_settings(DELETE_BEHAVIOUR="remove", ...)`` overrides settings.
"""

from __future__ import annotations

import base64
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
import requests
from werkzeug.serving import make_server

from etl.sandbox import Sandbox, start_sandbox
from etl.sandbox.synerise import SANDBOX_WORKSPACE_GUID
from etl.state.runs import Run
from etl.state.store import StateStore
from etl.sync.engine import Engine
from etl.sync.inbox import Inbox
from etl.sync.realtime import Realtime
from etl.webhooks.app import CONSENT_PATH, CUSTOMER_TRIGGER_PATH, ORDER_HOOK_PATH, WebhookApp
from etl.webhooks.auth import HEADER
from tests.etl.wiring import wired_engine
from tests.helpers.sync import wait_until as poll

SECRET = "webhook-test-secret-1"
FAST = {"VTEX_RATE_LIMIT": "5000", "SYNERISE_RATE_LIMIT": "5000", "SYNC_FETCH_CONCURRENCY": "4"}
_CLEARED = ("VTEX_", "SYNERISE_", "SYNC_", "PROFILE_", "ORDER_", "DELETE_", "CONSENT_",
            "REALTIME_", "ECHO_", "WEBHOOK_")  # fmt: skip


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "rt_settings(**variables): realtime settings")


@pytest.fixture
def broker(redis_url: str) -> Iterator[redis.Redis]:
    """The broker database (Celery keeps the first URL it saw), flushed before and after."""
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with start_sandbox(customers=40, orders=60, seed=11, dirty_share=0.0,
                       vtex_options={"hook_retry_delays": (0.2, 0.5, 1.0)}) as started:  # fmt: skip
        yield started


@pytest.fixture
def rt_env(
    request: pytest.FixtureRequest,
    sandbox: Sandbox,
    broker: redis.Redis,
    redis_url: str,
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> dict[str, str]:
    for variable in list(os.environ):
        if variable.startswith(_CLEARED):
            monkeypatch.delenv(variable)
    env = {**sandbox.env(), **FAST, "REDIS_URL": redis_url, "DATABASE_URL": database_url,
           "ETL_STATE_DIR": str(tmp_path / "state"), "WEBHOOK_SECRET": SECRET}  # fmt: skip
    marker = request.node.get_closest_marker("rt_settings")
    if marker is not None:
        env.update({k: str(v) for k, v in marker.kwargs.items()})
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    return env


@pytest.fixture
def engine(rt_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    """The engine tests, the in-process CLI and the in-process worker all share."""
    with wired_engine(rt_env, monkeypatch) as built:
        yield built


@pytest.fixture
def store(engine: Engine) -> StateStore:
    return engine.store


@pytest.fixture
def rt(engine: Engine) -> Realtime:
    from workers.tasks.realtime import realtime

    return realtime()


@pytest.fixture
def worker(engine: Engine, rt_env: dict[str, str]) -> Iterator[Any]:
    """A real Celery worker (threads) on the ``realtime`` queue."""
    from celery.contrib.testing.worker import start_worker

    from workers.app import app

    app.conf.broker_url = rt_env["REDIS_URL"]
    with start_worker(app, pool="threads", concurrency=4, perform_ping_check=False,
                      queues=["realtime"], shutdown_timeout=30) as started:  # fmt: skip
        yield started


@dataclass
class Service:
    """The webhook app on a real port."""

    url: str

    def call(self, path: str, body: Any, method: str = "POST", secret: str = SECRET) -> Any:
        response = requests.request(method, self.url + path, json=body,
                                    headers={HEADER: secret}, timeout=10)  # fmt: skip
        assert response.status_code == 200, response.text
        return response.json()

    def trigger(self, method: str, body: dict[str, Any]) -> Any:
        return self.call(CUSTOMER_TRIGGER_PATH, body, method)

    def notify(self, notice: dict[str, Any]) -> Any:
        return self.call(ORDER_HOOK_PATH, notice)

    def consent(self, body: dict[str, Any]) -> Any:
        return self.call(CONSENT_PATH, body)


@pytest.fixture
def webhooks(rt_env: dict[str, str], broker: redis.Redis) -> Iterator[Service]:
    """``WebhookApp`` as in production (customer changes and order notices into the realtime
    inbox, the rest as Celery tasks), served by werkzeug in a thread."""
    from workers.dispatch import enqueue

    app = WebhookApp(SECRET, Inbox(broker, enqueue).enqueue)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="webhooks", daemon=True)
    thread.start()
    try:
        yield Service(f"http://127.0.0.1:{server.server_port}")
    finally:
        server.shutdown()
        thread.join(10)


# -- helpers ------------------------------------------------------------------------------------


class Recorder:
    """A stand-in for Celery's enqueue that records what would be sent."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, list[Any], str]] = []

    def __call__(self, task: str, args: list[Any], queue: str) -> str:
        self.sent.append((task, args, queue))
        return f"task-{len(self.sent)}"


def wait_until(condition: Callable[[], Any], timeout: float = 30, what: str = "") -> Any:
    """Poll ``condition`` until it is truthy and return it; fail after ``timeout`` seconds."""
    return poll(condition, timeout, 0.05, what)


def realtime_runs(store: StateStore) -> list[Run]:
    return [run for run in store.runs.find() if run.kind == "realtime"]


def processed(store: StateStore) -> int:
    """Notifications the realtime tasks finished (each records exactly one read)."""
    return sum(run.read_count for run in realtime_runs(store))


def wait_processed(store: StateStore, count: int, timeout: float = 30) -> None:
    wait_until(lambda: processed(store) >= count, timeout, f"{count} processed notifications")
    time.sleep(0.1)  # let a task that would (wrongly) do more finish its writes
    assert processed(store) == count


def synerise_writes(sandbox: Sandbox) -> dict[str, int]:
    """Requests Synerise received per write route."""
    requests_by_route = sandbox.synerise.stats()["requests"]
    return {name: count for name, count in requests_by_route.items()
            if name not in ("synerise.login", "synerise.login_legacy", "synerise.refresh")}


def vtex_writes(sandbox: Sandbox) -> int:
    """Writes to ``CL`` documents (ours and the test's own admin changes)."""
    changes = sandbox.vtex.stats()["changes"]
    return int(changes["created"] + changes["patched"] + changes["deleted"])


def profile(sandbox: Sandbox, custom_id: str) -> dict[str, Any] | None:
    found = [p for p in sandbox.synerise.stored_profiles() if p.get("customId") == custom_id]
    assert len(found) <= 1
    return found[0] if found else None


def synerise_user_changes_consent(sandbox: Sandbox, custom_id: str, value: bool) -> None:
    """What a customer unsubscribing in a Synerise form does: the profile's agreement changes."""
    auth = base64.b64encode(f"{SANDBOX_WORKSPACE_GUID}:{sandbox.synerise.api_key}".encode())
    response = requests.post(
        sandbox.synerise_url + "/v4/clients/batch",
        json=[{"customId": custom_id, "agreements": {"email": value}}],
        headers={"Authorization": "Basic " + auth.decode(), "Api-Version": "4.4"},
        timeout=10,
    )
    assert response.status_code == 202, response.text


def vtex_admin(sandbox: Sandbox, method: str, path: str, body: Any = None) -> Any:
    response = requests.request(method, sandbox.vtex_url + "/__sandbox__" + path, json=body,
                                timeout=10)  # fmt: skip
    assert response.status_code < 300, response.text
    return response.json() if response.content else None
