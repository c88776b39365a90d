"""The catalog's state in a real PostgreSQL: one Synerise catalog per workspace and name, however
many workers ask at once, recreated once after a 404; and the ledger entries a run did not plan."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import psycopg2
import pytest

from etl.state.chunks import ChunkOutcome
from etl.state.store import StateStore

JAN = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def store(database_url):
    store = StateStore(database_url)
    yield store
    store.close()


def test_the_products_scope_and_catalog_stream_exist(store):
    run_id = store.runs.create("backfill", "products", JAN, JAN)
    assert store.runs.get(run_id).scope == "products"
    with store.db.transaction() as cur:
        cur.execute(
            "INSERT INTO entity_ledger (connection_id, stream, record_key, content_hash)"
            " VALUES (1, %s, %s, %s)",
            ("catalog_items", "1001", "h"),
        )
    with pytest.raises(psycopg2.errors.CheckViolation), store.db.transaction() as cur:
        cur.execute(
            "INSERT INTO entity_ledger (connection_id, stream, record_key, content_hash)"
            " VALUES (1, %s, %s, %s)",
            ("catalogs", "1001", "h"),
        )


def test_one_catalog_however_many_workers_ask_at_once(store, database_url):
    created: list[int] = []

    def find_or_create(stale: int | None) -> int:
        time.sleep(0.05)  # a slow Synerise: the others must wait, not create their own
        created.append(len(created) + 41)
        return created[-1]

    results: list[int] = []

    def worker() -> None:
        own = StateStore(database_url)
        try:
            results.append(own.catalogs.resolve("ws", "vtexacme", find_or_create))
        finally:
            own.close()

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert created == [41] and results == [41] * 6
    assert store.catalogs.get("ws", "vtexacme") == 41
    assert store.catalogs.get("ws", "other") is None
    assert store.catalogs.get("other-ws", "vtexacme") is None


def test_a_stale_catalog_is_replaced_once(store):
    calls: list[int | None] = []

    def find_or_create(stale: int | None) -> int:
        calls.append(stale)
        return 7 if stale is None else 8

    assert store.catalogs.resolve("ws", "c", find_or_create) == 7
    assert store.catalogs.resolve("ws", "c", find_or_create) == 7
    assert store.catalogs.resolve("ws", "c", find_or_create, stale=7) == 8
    # a second worker that saw the same 404 takes the new catalog without making another
    assert store.catalogs.resolve("ws", "c", find_or_create, stale=7) == 8
    assert calls == [None, 7]
    assert store.catalogs.forget("ws", "c") and not store.catalogs.forget("ws", "c")
    assert store.catalogs.get("ws", "c") is None


def test_a_failed_search_remembers_nothing(store):
    def broken(stale: int | None) -> int:
        raise RuntimeError("Synerise is down")

    with pytest.raises(RuntimeError):
        store.catalogs.resolve("ws", "c", broken)
    assert store.catalogs.get("ws", "c") is None


def test_the_ledger_entries_a_run_did_not_plan(store):
    earlier = store.runs.create("backfill", "products", JAN, JAN)
    assert store.runs.transition(earlier, "running", ("queued",))
    [chunk_id] = store.chunks.add(earlier, [[str(k) for k in range(1, 8)]])
    chunk = store.chunks.claim(chunk_id, "test")
    outcome = ChunkOutcome(stream="catalog_items", read=7)
    for key in range(1, 8):
        outcome.accept(str(key), f"hash-{key}")
    store.chunks.complete(chunk, outcome)
    with store.db.transaction() as cur:  # another stream's keys never count
        cur.execute(
            "INSERT INTO entity_ledger (connection_id, stream, record_key, content_hash)"
            " VALUES (1, %s, %s, %s)",
            ("profiles", "9", "h"),
        )
    run_id = store.runs.create("backfill", "products", JAN, JAN)
    store.chunks.add(run_id, [["1", "2"], ["4", "10"], ["6"]])
    assert store.ledger.unplanned("catalog_items", run_id) == [
        ("3", "hash-3"), ("5", "hash-5"), ("7", "hash-7"),
    ]  # fmt: skip
    assert store.ledger.unplanned("catalog_items", run_id, limit=2) == [
        ("3", "hash-3"), ("5", "hash-5"),
    ]  # fmt: skip
    assert store.ledger.unplanned("catalog_items", run_id, after="5") == [("7", "hash-7")]
    store.chunks.add(run_id, [["3", "5", "7"]])
    assert store.ledger.unplanned("catalog_items", run_id) == []
