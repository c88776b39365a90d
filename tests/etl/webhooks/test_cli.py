"""``webhooks serve | setup-help`` and ``vtex hook register | show | delete``."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner

from etl.cli import main
from etl.sandbox import Sandbox
from etl.webhooks.app import CONSENT_PATH, CUSTOMER_TRIGGER_PATH, ORDER_HOOK_PATH
from etl.webhooks.auth import HEADER
from tests.etl.webhooks.harness import SECRET, Service

REPO = Path(__file__).resolve().parents[3]


def cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


# -- setup-help ------------------------------------------------------------------------------


def test_setup_help_prints_every_trigger_with_url_method_header_and_body():
    code, out = cli("webhooks", "setup-help", "--url", "https://etl.shop.com/")
    assert code == 0, out
    url = "https://etl.shop.com" + CUSTOMER_TRIGGER_PATH
    for rule, method in (("A record is created", "POST"), ("A record is changed", "PATCH"),
                         ("A record is deleted", "DELETE")):
        block = out.split(f"rule:    {rule}")[1].split("==")[0]
        assert f"url:     {url}" in block and f"method:  {method}" in block
        assert f"{HEADER}: <WEBHOOK_SECRET>" in block
    assert '{"id": "{!id}"}' in out and '"userId": "{!userId}"' in out
    assert "https://etl.shop.com" + ORDER_HOOK_PATH in out
    assert "https://etl.shop.com" + CONSENT_PATH in out


def test_setup_help_shows_the_secret_only_when_asked(monkeypatch):
    monkeypatch.setenv("WEBHOOK_SECRET", "shown-on-request")
    assert "shown-on-request" not in cli("webhooks", "setup-help")[1]
    code, out = cli("webhooks", "setup-help", "--show-secret", "--json")
    assert code == 0
    settings = json.loads(out)
    assert {item["headers"][HEADER] for item in settings} == {"shown-on-request"}
    assert [item["method"] for item in settings] == ["POST", "PATCH", "DELETE", "POST", "POST"]


def test_setup_help_refuses_a_url_that_is_not_http():
    code, out = cli("webhooks", "setup-help", "--url", "etl.shop.com")
    assert code == 2 and "expected an http(s) URL" in out


def test_serve_needs_the_secret(monkeypatch):
    monkeypatch.delenv("WEBHOOK_SECRET", raising=False)
    monkeypatch.chdir(REPO / "tests")  # no .env here
    code, out = cli("webhooks", "serve", "--bind", "127.0.0.1:1")
    assert code == 2 and "WEBHOOK_SECRET" in out


def test_serve_refuses_a_bad_bind():
    code, out = cli("webhooks", "serve", "--bind", "localhost")
    assert code == 2 and "expected HOST:PORT" in out


# -- vtex hook -------------------------------------------------------------------------------


def test_hook_register_show_delete_against_the_sandbox(
    sandbox: Sandbox, webhooks: Service, rt_env
):
    code, out = cli("vtex", "hook", "register", "--url", webhooks.url)
    assert code == 0, out
    assert f"hook registered: {webhooks.url}{ORDER_HOOK_PATH}" in out
    config = sandbox.vtex.hook.body
    assert config["filter"] == {"type": "FromWorkflow",
                                "status": ["payment-approved", "invoiced", "canceled"]}
    assert config["hook"]["headers"] == {HEADER: SECRET}
    assert "feed registered on payment-approved, invoiced, canceled" in out
    assert sandbox.vtex.feed.config is not None
    assert sandbox.vtex.feed.config.body["filter"] == config["filter"]

    code, out = cli("vtex", "hook", "show")
    assert code == 0 and SECRET not in out
    assert f"{HEADER}: ***" in out and "FromWorkflow payment-approved, invoiced, canceled" in out
    shown = json.loads(cli("vtex", "hook", "show", "--json")[1])
    assert shown["hook"]["headers"] == {HEADER: "***"}

    assert cli("vtex", "hook", "delete") == (0, "hook deleted\n")
    assert cli("vtex", "hook", "show")[0] == 1
    assert cli("vtex", "hook", "delete")[0] == 1


def test_hook_register_without_the_feed(sandbox: Sandbox, webhooks: Service, rt_env):
    code, out = cli("vtex", "hook", "register", "--url", webhooks.url, "--no-feed")
    assert code == 0 and "feed" not in out
    assert sandbox.vtex.feed.config is None


def test_feed_register_show_drain_delete_against_the_sandbox(sandbox: Sandbox, rt_env):
    assert cli("vtex", "feed", "show")[0] == 1
    code, out = cli("vtex", "feed", "drain")
    assert code == 1 and "no feed configured: run `vtex-synerise vtex feed register`" in out
    code, out = cli("vtex", "feed", "register", "--statuses", "invoiced,canceled",
                    "--visibility-timeout", "30")
    assert (code, out) == (0, "feed registered on invoiced, canceled\n")
    order_id = sandbox.dataset.order(4)["orderId"]
    sandbox.vtex.set_order_status(order_id, "invoiced")
    code, out = cli("vtex", "feed", "show")
    assert code == 0 and "FromWorkflow invoiced, canceled" in out and "waiting:  1 events" in out
    assert json.loads(cli("vtex", "feed", "show", "--json")[1])["quantity"] == 1
    code, out = cli("vtex", "feed", "drain")
    assert (code, out) == (0, "read 1, committed 1 (1 sent), left for later 0\n")
    assert [t["orderId"] for t in sandbox.synerise.stored_transactions()] == [order_id]
    assert json.loads(cli("vtex", "feed", "drain", "--json")[1])["read"] == 0
    assert cli("vtex", "feed", "delete") == (0, "feed deleted\n")
    assert cli("vtex", "feed", "delete")[0] == 1
    code, out = cli("vtex", "feed", "register", "--retention", "60")
    assert code == 2 and "--retention" in out


def test_hook_register_warns_about_statuses_that_cannot_work(
    sandbox: Sandbox, webhooks: Service, rt_env
):
    code, out = cli("vtex", "hook", "register", "--url", webhooks.url + ORDER_HOOK_PATH,
                    "--statuses", "payment-approved,invoicd")
    assert code == 0
    assert "not OMS status names, VTEX will never match them: invoicd" in out
    assert "ORDER_UPDATE_STATUSES invoiced, canceled will not notify" in out


def test_hook_register_fails_clearly_when_the_service_does_not_answer(sandbox: Sandbox, rt_env):
    code, out = cli("vtex", "hook", "register", "--url", f"http://127.0.0.1:{free_port()}")
    assert code == 1
    assert "error: VTEX refused the hook configuration" in out
    assert sandbox.vtex.hook is None


# -- serve, for real -------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("mode", [[], ["--gunicorn", "--workers", "2", "--threads", "4"]],
                         ids=["dev", "gunicorn"])
def test_serve_answers_and_enqueues(mode, redis_url, database_url, broker, tmp_path):
    port = free_port()
    env = {**os.environ, "REDIS_URL": redis_url, "DATABASE_URL": database_url,
           "WEBHOOK_SECRET": SECRET, "ETL_STATE_DIR": str(tmp_path),
           # celeryconfig is a top-level module the editable install does not map
           "PYTHONPATH": str(REPO)}  # fmt: skip
    process = subprocess.Popen(
        [sys.executable, "-m", "etl.cli", "webhooks", "serve", "--bind", f"127.0.0.1:{port}",
         *mode],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert process.poll() is None and time.monotonic() < deadline, "server did not start"
            time.sleep(0.1)
        assert requests.get(base + "/readyz", timeout=5).status_code == 200
        events = broker.pubsub(ignore_subscribe_messages=True)
        events.psubscribe("*celeryev*")  # Celery's event exchange (a Redis fanout)
        session = requests.Session()  # keep-alive, several requests on one connection
        for i in range(5):
            answer = session.post(base + CUSTOMER_TRIGGER_PATH, json={"id": f"cl-{i}"},
                                  headers={HEADER: SECRET}, timeout=5)  # fmt: skip
            assert answer.status_code == 200, answer.text
        assert session.post(base + CUSTOMER_TRIGGER_PATH, json={"id": "x"},
                            timeout=5).status_code == 401  # fmt: skip
        # Five entries in the created-customers inbox, and one drain task to process them.
        assert broker.xlen("etl:inbox:customers_created") == 5
        assert broker.llen("realtime") == 1
        # The service sends without task-sent events (workers.dispatch.prepare_sender).
        published = [events.get_message(timeout=0.2) for _ in range(5)]
        assert [m for m in published if m] == []
        events.close()
    finally:
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=30)[0]
    assert SECRET not in output
    assert "could not enqueue" not in output, output
    assert "Control socket" not in output  # no socket shared with other gunicorns of the user
