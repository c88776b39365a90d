"""Redis and PostgreSQL restart under a running sync and a running webhook service: the run
finishes by itself (no ``sync resume``, no worker restart) and the service accepts again.

Each test has embedded servers of its own (a fresh state folder), restarted the way an operator
would: ``infra down`` of one server, then ``infra up``, which brings it back on the same
address. The worker and the webhook service are real ``vtex-synerise`` child processes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
import requests

from etl import infra
from etl.state.store import StateStore
from tests.helpers.sync import (
    FAST_SETTINGS,
    RANGE_ARGS,
    cli_argv,
    cli_json,
    expected,
    listing,
    order_truth,
    process_env,
    run_cli,
    set_faults,
    stats,
    wait_for_run,
    wait_until,
)
from tests.serving import cli_service


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Path]:
    """Embedded Redis and PostgreSQL of this test only (their state folder)."""
    folder = tmp_path / "state"
    infra.up(folder)
    yield folder
    infra.down(folder)


def restart(folder: Path, server: str, pause: float = 1.0) -> None:
    """``vtex-synerise infra down --only SERVER``, a pause, ``infra up``: same address."""
    before = infra.up(folder)
    assert infra.down(folder, (server,)) == [server]
    time.sleep(pause)
    after = infra.up(folder)
    assert (after.redis_url, after.database_url) == (before.redis_url, before.database_url)


@pytest.fixture
def env(sandbox, servers: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    state = infra.up(servers)
    values = {
        **sandbox.env(),
        **FAST_SETTINGS,
        "SYNC_CHUNK_SIZE": "10",
        "SYNC_FETCH_CONCURRENCY": "2",
        "REDIS_URL": state.redis_url,
        "DATABASE_URL": state.database_url,
        "ETL_STATE_DIR": str(servers),
    }
    for variable in list(os.environ):
        if variable.startswith(("VTEX_", "SYNERISE_", "SYNC_")):
            monkeypatch.delenv(variable)
    monkeypatch.chdir(tmp_path)
    return values


@pytest.fixture
def spawn_worker(env: dict[str, str], tmp_path: Path) -> Iterator[Callable[[], None]]:
    started: list[subprocess.Popen[bytes]] = []

    def spawn(pool: str = "prefork") -> None:
        log = (tmp_path / "worker.log").open("ab")
        started.append(subprocess.Popen(
            cli_argv("worker", "-P", pool, "-c", "3", "-n", "restarts@%h"),
            env=process_env(env), cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        ))  # fmt: skip

    yield spawn
    for proc in started:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def assert_orders_arrived_once(sandbox, run) -> None:
    truth = expected(sandbox)
    assert run.status == "done", run.error
    assert (run.read_count, run.sent_count, run.rejected_count, run.failed_count) == (
        truth["orders"]["total"], truth["orders"]["sent"], truth["orders"]["rejected"], 0,
    )  # fmt: skip
    arrived = Counter(txn["orderId"] for txn in listing(sandbox, "transactions"))
    assert set(arrived) == {key for key, reason in order_truth(sandbox).items() if reason is None}
    assert set(arrived.values()) == {1}
    assert stats(sandbox)["duplicate_transactions"] == 0


@pytest.mark.sandbox(customers=10, orders=240)
@pytest.mark.parametrize("server", ["redis", "postgres"])
def test_a_run_survives_a_server_restart_with_no_manual_step(
    sandbox, env, servers, spawn_worker, tmp_path, server
):
    # Slow enough that the restart lands mid-run: every Synerise batch takes 300 ms.
    set_faults(sandbox, {"route": "synerise.*_batch", "latency_ms": 300})
    spawn_worker()
    started = cli_json(run_cli(env, "sync", "start", "orders", *RANGE_ARGS, "--json"))
    store = StateStore(env["DATABASE_URL"])

    def progressed() -> bool:
        return store.runs.get(started["id"]).chunks_done >= 3

    wait_until(progressed, 120, what=f"chunks done before the restart (log: {tmp_path})")
    restart(servers, server)
    assert store.runs.get(started["id"]).status == "running", "the run ended before the restart"
    set_faults(sandbox, {"route": "synerise.*_batch", "latency_ms": 0})

    run = wait_for_run(store, started["id"], timeout=240)
    assert_orders_arrived_once(sandbox, run)
    log = (tmp_path / "worker.log").read_text(errors="replace")
    assert "Traceback" not in log or "InterfaceError" not in log, log[-3000:]



@pytest.mark.sandbox(customers=10, orders=120)
def test_tasks_that_end_while_redis_is_away_acknowledge_when_it_is_back(
    sandbox, env, servers, spawn_worker, tmp_path
):
    # Each chunk's transactions batch takes 3 s: the chunks in flight end while Redis is down.
    # Only that last call is slow: a chunk caught before it would need Redis for its rate budget
    # and could not end until Redis is back. In a thread pool they acknowledge as they end
    # (prefork's pool waits for the reconnection).
    set_faults(sandbox, {"route": "synerise.transactions_batch", "latency_ms": 3000})
    spawn_worker("threads")
    started = cli_json(run_cli(env, "sync", "start", "orders", *RANGE_ARGS, "--json"))
    store = StateStore(env["DATABASE_URL"])
    broker = redis.Redis.from_url(env["REDIS_URL"])
    wait_until(lambda: broker.hlen("unacked") >= 3, 60, what="three chunks in flight")
    done = store.runs.get(started["id"]).chunks_done
    assert infra.down(servers, ("redis",)) == ["redis"]
    ended = lambda: store.runs.get(started["id"]).chunks_done > done  # noqa: E731
    wait_until(ended, 60, what="a chunk in flight to end while Redis is down")
    set_faults(sandbox, {"route": "synerise.transactions_batch", "latency_ms": 0})
    infra.up(servers)

    run = wait_for_run(store, started["id"], timeout=240)
    assert_orders_arrived_once(sandbox, run)
    # Their messages left Redis's unacknowledged set (an ack, late), instead of waiting there
    # for the visibility timeout to deliver them again.
    wait_until(lambda: broker.hlen("unacked") == 0, 30, what="no message left unacknowledged")
    log = (tmp_path / "worker.log").read_text(errors="replace")
    assert "Couldn't ack" not in log, log[-3000:]
    assert "its message is acknowledged when Redis is back" in log
    assert "CPendingDeprecationWarning" not in log  # Celery's plea to cancel them, filtered
    assert "Traceback" not in log  # the outage is said in one line per failed attempt

def test_the_webhook_service_accepts_again_after_a_redis_restart(servers, tmp_path):
    state = infra.up(servers)
    port = infra.free_port()
    env = {"REDIS_URL": state.redis_url, "DATABASE_URL": state.database_url,
           "ETL_STATE_DIR": str(servers), "WEBHOOK_SECRET": "restart-secret"}  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    notice = {"Domain": "Marketplace", "OrderId": "1400000000001-01", "State": "invoiced",
              "LastState": "ready-for-handling", "LastChange": "2026-01-05T10:00:00Z",
              "CurrentChange": "2026-01-05T10:00:01Z", "Origin": {"Account": "demo"}}  # fmt: skip
    headers = {"x-synerise-api-key": "restart-secret"}

    def post() -> int:
        try:
            answer = requests.post(f"{base}/_v/private/synerise/hooks/orders", json=notice,
                                   headers=headers, timeout=30)  # fmt: skip
        except requests.ConnectionError:
            return 0
        return answer.status_code

    queue = redis.Redis.from_url(state.redis_url)
    with cli_service(["webhooks", "serve", "--bind", f"127.0.0.1:{port}"], env, tmp_path,
                     f"{base}/healthz"):  # fmt: skip
        assert post() == 200
        restart(servers, "redis")
        wait_until(lambda: post() == 200, 30, 0.5, "the service to accept after the restart")
        assert requests.get(f"{base}/readyz", timeout=10).status_code == 200
        # AOF kept the notification accepted before the restart (an inbox entry, and the drain
        # task it sent); the one after is there too.
        assert queue.xlen("etl:inbox:orders") >= 2
        assert queue.llen("realtime") >= 1


def test_the_console_is_ready_again_after_both_servers_restart(servers, tmp_path):
    state = infra.up(servers)
    port = infra.free_port()
    env = {"REDIS_URL": state.redis_url, "DATABASE_URL": state.database_url,
           "ETL_STATE_DIR": str(servers)}  # fmt: skip
    ready = f"http://127.0.0.1:{port}/readyz"

    def is_ready() -> bool:
        try:
            return requests.get(ready, timeout=30).status_code == 200
        except requests.ConnectionError:
            return False

    with cli_service(["console", "--no-auth", "--bind", f"127.0.0.1:{port}"], env, tmp_path,
                     f"http://127.0.0.1:{port}/healthz"):  # fmt: skip
        assert is_ready()
        restart(servers, "redis")
        restart(servers, "postgres")
        wait_until(is_ready, 30, 0.5, "the console to be ready after the restarts")
