"""The embedded servers start, are shared through the state file, and stop completely."""

from __future__ import annotations

import psycopg2
import redis

from etl import infra


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
