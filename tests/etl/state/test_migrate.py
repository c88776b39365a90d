"""Migrations: applied once, in order, atomically per file, safely from concurrent processes."""

from __future__ import annotations

import threading
import uuid

import psycopg2
import pytest

from etl.state import migrate
from etl.state.migrate import Migration, MigrationError, available, upgrade
from tests.helpers.databases import scratch_database


@pytest.fixture
def empty_database(infra):
    """A database with nothing in it (``database_url`` comes migrated already)."""
    with scratch_database(infra.database_url, f"etl_migrate_{uuid.uuid4().hex[:12]}") as dsn:
        yield dsn


def tables(dsn: str) -> set[str]:
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        return {row[0] for row in cur.fetchall()}


def recorded(dsn: str) -> list[tuple[int, str]]:
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT version, name FROM schema_migrations ORDER BY version")
        return list(cur.fetchall())


def test_packaged_migrations_are_numbered_in_order():
    found = available()
    assert found[0].version == 1 and found[0].name == "init"
    assert [m.version for m in found] == sorted({m.version for m in found})


def test_upgrade_creates_the_contract_tables_and_is_idempotent(empty_database):
    applied = upgrade(empty_database)
    assert applied == [m.version for m in available()]
    assert {"sync_run", "sync_chunk", "rejected_record", "record_warning", "sync_cursor",
            "entity_ledger", "selftest", "schema_migrations"} <= tables(empty_database)
    assert [v for v, _ in recorded(empty_database)] == applied
    assert upgrade(empty_database) == []


def test_concurrent_upgrades_apply_each_file_once(empty_database):
    results: list[list[int]] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(upgrade(empty_database))
        except BaseException as error:  # surfaced below
            errors.append(error)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert sorted(len(r) for r in results) == [0, 0, 0, len(available())]


def test_a_failing_file_leaves_no_trace_and_is_retried(empty_database, monkeypatch):
    good = available()
    broken = Migration(9999, "broken", "CREATE TABLE half_done (x int); SELECT no_such_fn();")
    monkeypatch.setattr(migrate, "available", lambda: [*good, broken])
    with pytest.raises(psycopg2.Error):
        upgrade(empty_database)
    assert "half_done" not in tables(empty_database)
    assert [v for v, _ in recorded(empty_database)] == [m.version for m in good]
    fixed = Migration(9999, "fixed", "CREATE TABLE half_done (x int);")
    monkeypatch.setattr(migrate, "available", lambda: [*good, fixed])
    assert upgrade(empty_database) == [9999]
    assert "half_done" in tables(empty_database)


def test_a_database_newer_than_the_code_is_refused(empty_database):
    upgrade(empty_database)
    with psycopg2.connect(empty_database) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO schema_migrations (version, name) VALUES (8888, 'future')")
    with pytest.raises(MigrationError, match=r"\[8888\].*upgrade the code"):
        upgrade(empty_database)


def test_misnamed_files_are_rejected(monkeypatch, tmp_path):
    (tmp_path / "migrations").mkdir()
    (tmp_path / "migrations" / "1_init.sql").write_text("SELECT 1;")
    monkeypatch.setattr(migrate.resources, "files", lambda package: tmp_path)
    with pytest.raises(MigrationError, match=r"NNNN_name\.sql"):
        available()
    (tmp_path / "migrations" / "1_init.sql").rename(tmp_path / "migrations" / "0001_a.sql")
    (tmp_path / "migrations" / "0001_b.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match="two migration files"):
        available()


def test_0008_puts_existing_state_on_the_default_connection(empty_database, monkeypatch):
    """State written before connections existed belongs to `default` afterwards, and the first
    `default` engine (its identity) claims it; another identity starts empty."""
    from etl.state.store import StateStore

    every = available()
    monkeypatch.setattr(migrate, "available", lambda: [m for m in every if m.version < 8])
    upgrade(empty_database)
    with psycopg2.connect(empty_database) as conn, conn.cursor() as cur:
        cur.execute("""INSERT INTO sync_run (kind, scope, window_from, window_to, status)
                       VALUES ('backfill', 'orders', '2026-01-01', '2026-02-01', 'done')""")
        cur.execute("""INSERT INTO entity_ledger (stream, record_key, content_hash, run_id)
                       VALUES ('transactions', 'o-1', 'h1', 1)""")
        cur.execute("INSERT INTO sync_cursor (stream, cursor_value) VALUES ('orders', now())")
    monkeypatch.setattr(migrate, "available", lambda: every)
    assert 8 in upgrade(empty_database)

    store = StateStore(empty_database)
    try:
        assert store.connections.resolve("default", "storea", "ws-1") == 1
        assert store.connections.resolve("default", "storea", "ws-1") == 1  # stable
        kept = store.for_connection(1)
        assert kept.ledger.hashes("transactions", ["o-1"]) == {"o-1": "h1"}
        assert kept.cursors.get("orders") is not None
        assert [run.connection_id for run in kept.runs.find()] == [1]
        moved = store.for_connection(store.connections.resolve("default", "storea", "ws-2"))
        assert moved.connection_id != 1
        assert moved.ledger.hashes("transactions", ["o-1"]) == {}
        assert moved.cursors.get("orders") is None
        assert moved.runs.find() == []
        other = store.connections.resolve("storeb", "storeb", "ws-1")
        assert other not in (1, moved.connection_id)
        assert store.connections.names()[other] == "storeb"
    finally:
        store.close()
