"""The 0001 schema enforces the contract's vocabularies, so a bug cannot store nonsense."""

from __future__ import annotations

import psycopg2
import pytest
from psycopg2 import errors


def execute(dsn: str, sql: str, params: tuple = ()) -> None:
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute(sql, params)


RUN = ("INSERT INTO sync_run (kind, scope, window_from, window_to, status, connection_id) "
       "VALUES (%s, %s, '2026-01-01', '2026-02-01', %s, 1)")


@pytest.mark.parametrize(
    ("kind", "scope", "status"),
    [("sideways", "orders", "queued"), ("backfill", "catalog", "queued"),
     ("backfill", "orders", "exploded")],
)
def test_run_vocabularies_are_checked(database_url, kind, scope, status):
    with pytest.raises(errors.CheckViolation):
        execute(database_url, RUN, (kind, scope, status))


def test_chunk_status_and_keys_are_checked(database_url):
    execute(database_url, RUN, ("backfill", "orders", "queued"))
    with pytest.raises(errors.CheckViolation):
        execute(database_url, "INSERT INTO sync_chunk (run_id, seq, keys, status) "
                "VALUES (1, 1, '[]', 'lost')")
    with pytest.raises(errors.CheckViolation):
        execute(database_url, "INSERT INTO sync_chunk (run_id, seq, keys) VALUES (1, 1, '{}')")


def test_updated_at_moves_on_update(database_url):
    execute(database_url, RUN, ("backfill", "orders", "queued"))
    with psycopg2.connect(database_url) as conn, conn.cursor() as cur:
        cur.execute("UPDATE sync_run SET updated_at = '2000-01-01' WHERE id = 1")
        cur.execute("SELECT updated_at > '2020-01-01' FROM sync_run WHERE id = 1")
        assert cur.fetchone() == (True,)


def test_chunk_payloads_are_stored_uncompressed(database_url):
    """0009: a payload is written once, read once and cleared; compressing it cost more CPU
    than it saved."""
    execute(database_url, RUN, ("backfill", "orders", "queued"))
    payload = "[" + ",".join(['{"email": "someone@example.com", "firstName": "Ann"}'] * 400) + "]"
    execute(database_url, "INSERT INTO sync_chunk (run_id, seq, keys, payload) "
            "VALUES (1, 1, '[\"a\"]', %s)", (payload,))  # fmt: skip
    with psycopg2.connect(database_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT pg_column_compression(payload), pg_column_size(payload) >= %s"
                    " FROM sync_chunk", (len(payload),))  # fmt: skip
        assert cur.fetchone() == (None, True)
