"""Webhooks per connection and multistore: a hook notification for an order of another account
is read from that account and reaches the workspace its connection maps it to."""

from __future__ import annotations

import pytest
from werkzeug.test import Client

from etl.sandbox import start_sandbox
from etl.sync.engines import Engines
from etl.sync.inbox import Inbox
from etl.webhooks.app import ORDER_HOOK_PATH, WebhookApp
from etl.webhooks.auth import HEADER
from tests.etl.webhooks.harness import wait_until
from tests.etl.wiring import wired_engines

MAIN_SECRET = "main-connection-secret"


def _table(name: str, values: dict[str, str]) -> str:
    return f"[{name}]\n" + "".join(f'{key} = "{value}"\n' for key, value in values.items())


def _valid_order(sandbox) -> dict:
    data = sandbox.dataset
    for i in range(data.order_count):
        if data.expected_reason("order", i) is None and not data.guest_order(i):
            return data.order(i)
    raise AssertionError("the sub-account has no valid order")


@pytest.mark.parametrize("via", ["task", "inbox"])
@pytest.mark.parametrize("owner", ["sub-account", "own-connection"])
def test_a_sub_accounts_order_hook_reaches_the_right_workspace_with_its_data(
    sandbox, rt_env, worker, monkeypatch, tmp_path, owner, via
):
    """The hook of connection ``main`` names an order of account ``substore``: listed in
    ``main``'s VTEX_SUB_ACCOUNTS, it is read from substore and sent to main's workspace; made
    a connection of its own, it goes to that connection's workspace. As a task of its own, or
    from ``main``'s inbox (``etl:inbox:main:orders``) through a drain of it."""
    with start_sandbox(customers=20, orders=30, seed=12, account="substore") as sub:
        order = _valid_order(sub)
        assert sandbox.vtex.store.order(order["orderId"]) is None  # only substore has it
        main = {**sandbox.env(), "WEBHOOK_SECRET": MAIN_SECRET}
        text = _table("main", main)
        if owner == "sub-account":
            text += f'VTEX_SUB_ACCOUNTS = "substore={sub.vtex_url}"\n'
        else:
            text += _table("substore", sub.env())
        path = tmp_path / "connections.toml"
        path.write_text(text)
        with wired_engines({**rt_env, "ETL_CONNECTIONS": str(path)}, monkeypatch) as engines:
            _notify_main(engines, order, via)
            target = sandbox if owner == "sub-account" else sub
            sent = wait_until(lambda: target.synerise.stored_transactions(), 30,
                              "the sub-account's order in Synerise")  # fmt: skip
            [transaction] = sent
            assert transaction["orderId"] == order["orderId"]
            assert transaction["metadata"]["orderValue"] == order["value"] / 100
            salt = "sandbox" if owner == "sub-account" else "substore"
            assert transaction["eventSalt"] == f"{salt}:order:{order['orderId']}"
            other = sub if owner == "sub-account" else sandbox
            assert other.synerise.stored_transactions() == []
            served = engines.get("main" if owner == "sub-account" else "substore")
            [run] = wait_until(lambda: [r for r in served.store.runs.find()
                                        if r.kind == "realtime" and r.read_count], 30)  # fmt: skip
            assert (run.read_count, run.sent_count, run.rejected_count) == (1, 1, 0)


def _notify_main(engines: Engines, order: dict, via: str) -> None:
    from workers.dispatch import enqueue

    inbox = Inbox(engines.get("main").redis, enqueue)
    app = WebhookApp(None, enqueue if via == "task" else inbox.enqueue,
                     connections={"main": MAIN_SECRET})  # fmt: skip
    notice = {"OrderId": order["orderId"], "State": "payment-approved",
              "LastChange": "2026-03-01T10:00:00Z", "Origin": {"Account": "substore"}}  # fmt: skip
    client = Client(app)
    assert client.post(ORDER_HOOK_PATH, json=notice, headers={HEADER: MAIN_SECRET}).status_code \
        == 404  # no default connection: today's paths serve nobody here
    wrong = client.post("/hooks/main/orders", json=notice, headers={HEADER: "not-it"})
    assert wrong.status_code == 401
    assert client.post("/hooks/other/orders", json=notice).status_code == 404
    accepted = client.post("/hooks/main/orders", json=notice, headers={HEADER: MAIN_SECRET})
    assert accepted.status_code == 200, accepted.text
    assert engines.names()[0] == "main"
    if via == "inbox":  # main's own stream; default's (etl:inbox:orders) never had it
        assert inbox.of("main").key("orders") == "etl:inbox:main:orders"
        last = inbox.client.xinfo_stream("etl:inbox:main:orders")["last-generated-id"]
        assert last.decode() == accepted.json["task"]
        assert not inbox.client.exists("etl:inbox:orders")


def test_setup_help_and_hook_register_name_each_connections_own_paths_and_secret(
    sandbox, rt_env, monkeypatch, tmp_path
):
    import json
    import threading

    from click.testing import CliRunner
    from werkzeug.serving import make_server

    from etl.cli import main
    from workers.dispatch import enqueue

    path = tmp_path / "connections.toml"
    path.write_text(_table("storea", {**sandbox.env(), "WEBHOOK_SECRET": "secret-a"})
                    + _table("storeb", {**sandbox.env(), "VTEX_ACCOUNT": "storeb",
                                        "WEBHOOK_SECRET": "secret-b"}))  # fmt: skip
    monkeypatch.setenv("ETL_CONNECTIONS", str(path))
    runner = CliRunner()

    refused = runner.invoke(main, ["webhooks", "setup-help"])
    assert refused.exit_code == 2
    assert refused.output.strip().startswith("error: --connection: expected one of storea, storeb")
    shown = runner.invoke(main, ["webhooks", "setup-help", "--connection", "storeb", "--json",
                                 "--show-secret", "--url", "https://etl.shop.com"])  # fmt: skip
    assert shown.exit_code == 0, shown.output
    urls = {item["url"] for item in json.loads(shown.output)}
    assert urls == {f"https://etl.shop.com/hooks/storeb/{name}"
                    for name in ("customer", "orders", "consent")}  # fmt: skip
    assert {item["headers"][HEADER] for item in json.loads(shown.output)} == {"secret-b"}

    app = WebhookApp(None, enqueue, connections={"storea": "secret-a", "storeb": "secret-b"})
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_port}"
        done = runner.invoke(main, ["vtex", "hook", "register", "--url", base, "--no-feed",
                                    "--connection", "storeb"])  # fmt: skip
        assert done.exit_code == 0, done.output
        config = sandbox.vtex.hook.body
        assert config["hook"]["url"] == f"{base}/hooks/storeb/orders"
        assert config["hook"]["headers"] == {HEADER: "secret-b"}
    finally:
        server.shutdown()
