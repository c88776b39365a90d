"""The ``console`` fixture: a running console over the ``engine`` fixture's store and Redis;
``.url``, ``.session`` (authenticated), ``.anonymous`` (no credentials)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
import requests
from werkzeug.serving import make_server

from etl.sync.engine import Engine
from tests.helpers.console import PASSWORD, USER, Console, console_app


@pytest.fixture
def console(engine: Engine) -> Iterator[Console]:
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
