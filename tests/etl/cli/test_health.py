"""``vtex-synerise health``: the containers' health checks answer 0 when healthy, 1 with why."""

from __future__ import annotations

import os
import threading
import time

import pytest
from click.testing import CliRunner
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from etl.cli import main


def health(*args: str):
    return CliRunner().invoke(main, ["health", *args])


def test_worker_answers_the_ping(worker):
    result = health("worker", "--node", worker.hostname, "--timeout", "5")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"{worker.hostname}: pong"
    missing = health("worker", "--node", "celery@nowhere", "--timeout", "0.5")
    assert missing.exit_code == 1
    assert missing.stderr.strip() == (
        "unhealthy: worker celery@nowhere did not answer a ping within 0.5 s"
    )


def test_beat_must_have_saved_its_schedule_lately(tmp_path, monkeypatch):
    monkeypatch.setenv("ETL_STATE_DIR", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    assert "no beat schedule" in health("beat").stderr
    schedule = tmp_path / "celerybeat-schedule.db"
    schedule.write_bytes(b"")
    assert health("beat").exit_code == 0
    old = time.time() - 600
    os.utime(schedule, (old, old))
    stale = health("beat", "--max-age", "300")
    assert stale.exit_code == 1 and "600 s ago" in stale.stderr


@pytest.fixture
def endpoint():
    def app(environ, start_response):
        request = Request(environ)
        status = 200 if request.path == "/healthz" else 503
        return Response("ok", status=status)(environ, start_response)

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(10)


def test_url_wants_a_2xx(endpoint):
    assert health("url", f"{endpoint}/healthz").exit_code == 0
    down = health("url", f"{endpoint}/other")
    assert down.exit_code == 1 and down.stderr.strip().endswith("answered 503")
    gone = health("url", "http://127.0.0.1:1/healthz", "--timeout", "1")
    assert gone.exit_code == 1 and "ConnectionError" in gone.stderr
