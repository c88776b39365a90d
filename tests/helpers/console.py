"""The operations console served in this process (werkzeug, a thread), for the console tests."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

import requests

from etl.console import Services, build_app
from etl.console.metrics import celery_consumers
from etl.sync.engine import Engine
from etl.sync.queues import QUEUES

__all__ = ["PASSWORD", "USER", "Console", "console_app", "csrf_token"]

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
        store=lambda: runtime.store(),
        engine=lambda name=None: runtime.engine(name),
        redis=lambda: built.redis,
        engine_of_run=lambda run_id: runtime.engine_of_run(run_id),
    )
    return build_app(services, auth, secrets.token_bytes(32), QUEUES, celery_consumers)



def csrf_token(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "the page has no CSRF token"
    return match.group(1)
