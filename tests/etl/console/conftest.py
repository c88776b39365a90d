"""The console served in this process (werkzeug, a thread) over the sync tests' fixtures.

Fixtures:
    console      a running console over the ``engine`` fixture's store and Redis; ``.url``,
                 ``.session`` (authenticated), ``.anonymous`` (no credentials)
Helpers: ``csrf_token(html)``, ``finished_customers_run(...)``.
"""

from __future__ import annotations

import re
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import requests
from werkzeug.serving import make_server

from etl.console import Services, build_app
from etl.console.metrics import celery_consumers
from etl.dispatch import QUEUES
from etl.sync.context import Engine
from tests.etl.sync.conftest import (  # noqa: F401  (fixtures and marker registration)
    celery_app,
    engine,
    pytest_configure,
    sandbox,
    store,
    sync_env,
    sync_redis,
    worker,
)

USER, PASSWORD = "ops", "console-secret-7"


@dataclass
class Console:
    url: str
    session: requests.Session
    anonymous: requests.Session

    def get(self, path: str, **kwargs) -> requests.Response:
        return self.session.get(self.url + path, timeout=30, **kwargs)

    def post(self, path: str, **kwargs) -> requests.Response:
        kwargs.setdefault("allow_redirects", False)
        return self.session.post(self.url + path, timeout=30, **kwargs)


def console_app(built: Engine, auth: str | None = f"{USER}:{PASSWORD}"):
    from etl.cli import runtime  # the engine fixture patches these to return its engine

    services = Services(
        store=lambda: runtime.store(), engine=lambda: runtime.engine(), redis=lambda: built.redis
    )
    return build_app(services, auth, secrets.token_bytes(32), QUEUES, celery_consumers)


@pytest.fixture
def console(engine: Engine) -> Iterator[Console]:  # noqa: F811  (the imported fixture)
    server = make_server("127.0.0.1", 0, console_app(engine), threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="console", daemon=True)
    thread.start()
    session = requests.Session()
    session.auth = (USER, PASSWORD)
    try:
        yield Console(f"http://127.0.0.1:{server.server_port}", session, requests.Session())
    finally:
        server.shutdown()
        thread.join(10)
        server.server_close()


def csrf_token(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "the page has no CSRF token"
    return match.group(1)
