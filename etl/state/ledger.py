"""The entity ledger (``entity_ledger``): the content hash of the payload Synerise last accepted
for each record, per connection (VTEX account and Synerise workspace) and stream (``profiles``,
``transactions``, ``catalog_items``). The rows a chunk's outcome reads and writes are its run's
connection's.

A record whose new payload hashes the same as its ledger entry is not sent again. Entries are
written with the chunk's outcome (``record_accepted`` inside ``Chunks.complete``), or moved by
compare-and-set (``swap_hash``) where a write must not overwrite a newer one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from etl.state.db import Connections

__all__ = ["Ledger", "hashes_of_chunk", "record_accepted"]


class Ledger:
    """Read and compare-and-set ledger entries. Safe to share between threads."""

    def __init__(self, db: Connections, connection_id: int) -> None:
        self.db = db
        self.connection_id = connection_id

    def hashes(self, stream: str, keys: Sequence[str]) -> dict[str, str]:
        """Content hashes of the payloads Synerise last accepted for these keys."""
        with self.db.transaction() as cur:
            cur.execute(
                _HASHES_OF.format(connection="%s", keys="unnest(%s::text[])"),
                (self.connection_id, stream, list(keys)),
            )
            return _found(cur)

    def unplanned(
        self, stream: str, run_id: int, after: str = "", limit: int = 1000
    ) -> list[tuple[str, str]]:
        """``(key, hash)`` of the stream's ledger entries (of the run's connection) that no chunk
        of ``run_id`` holds, in key order after ``after``: once a run has planned every record
        its source still lists, these are the records gone from the source since they were last
        sent.

        Keyset paging (call again with the last key) keeps memory flat however many there are.
        """
        with self.db.transaction() as cur:
            cur.execute(
                """WITH planned AS (
                       SELECT DISTINCT jsonb_array_elements_text(keys) AS record_key
                       FROM sync_chunk WHERE run_id = %(run)s)
                   SELECT l.record_key, l.content_hash FROM entity_ledger l
                   WHERE l.connection_id = (SELECT connection_id FROM sync_run
                                            WHERE id = %(run)s)
                     AND l.stream = %(stream)s AND l.record_key > %(after)s
                     AND NOT EXISTS (SELECT 1 FROM planned p WHERE p.record_key = l.record_key)
                   ORDER BY l.record_key LIMIT %(limit)s""",
                {"run": run_id, "stream": stream, "after": after, "limit": limit},
            )
            return [(row["record_key"], row["content_hash"]) for row in cur.fetchall()]

    def swap_hash(
        self, stream: str, key: str, expected: str | None, digest: str, run_id: int
    ) -> bool:
        """Set a ledger hash only if the current one is ``expected`` (``None``: no row yet).

        Compare-and-set, so a concurrent sync that recorded a newer payload is never overwritten.
        Returns True when the hash was written.
        """
        with self.db.transaction() as cur:
            if expected is None:
                cur.execute(
                    """INSERT INTO entity_ledger
                           (connection_id, stream, record_key, content_hash, run_id)
                       VALUES (%s, %s, %s, %s, %s)
                       ON CONFLICT (connection_id, stream, record_key) DO NOTHING""",
                    (self.connection_id, stream, key, digest, run_id),
                )
            else:
                cur.execute(
                    """UPDATE entity_ledger SET content_hash = %s, synced_at = now(), run_id = %s
                       WHERE connection_id = %s AND stream = %s AND record_key = %s
                         AND content_hash = %s""",
                    (digest, run_id, self.connection_id, stream, key, expected),
                )
            return bool(cur.rowcount == 1)


def hashes_of_chunk(cur: Any, stream: str, chunk_id: int) -> dict[str, str]:
    """Ledger hashes of a chunk's records (its run's connection's), in the caller's transaction
    (the chunk's claim)."""
    connection = """(SELECT r.connection_id FROM sync_chunk c JOIN sync_run r ON r.id = c.run_id
                     WHERE c.id = %s)"""
    keys = "jsonb_array_elements_text((SELECT keys FROM sync_chunk WHERE id = %s))"
    cur.execute(_HASHES_OF.format(connection=connection, keys=keys), (chunk_id, stream, chunk_id))
    return _found(cur)


_HASHES_OF = """SELECT k.key, (SELECT l.content_hash FROM entity_ledger l
                    WHERE l.connection_id = {connection} AND l.stream = %s
                      AND l.record_key = k.key) AS content_hash
                FROM {keys} AS k(key)"""
"""One primary-key lookup per key, whatever the planner knows: ``record_key = ANY(...)``
was planned as a scan of the whole stream while the table had no statistics yet (a new
ledger filling fast during a first sync), 6x slower per chunk than these lookups."""


def _found(cur: Any) -> dict[str, str]:
    return {row["key"]: row["content_hash"] for row in cur.fetchall() if row["content_hash"]}


def record_accepted(
    cur: Any,
    stream: str,
    accepted: Mapping[str, str],
    run_id: int,
    expected: Mapping[str, str] | None = None,
) -> dict[str, str | None]:
    """Upsert the hashes of accepted payloads (``key -> hash``) for the run's connection, in the
    caller's transaction; the records that moved (see ``expected``), empty when all were written.

    One statement whatever the number of records (two arrays, unnested), in key order, so two
    transactions writing overlapping keys lock them in the same order and never deadlock.

    With ``expected`` (the hashes the caller's diff read; a key it lacks had no row), a row that
    another writer changed since then is left as it is and returned (key -> its hash now): the
    caller rolls back. A row that already holds what this outcome accepted has not moved. The
    check rides in the upsert itself (``ON CONFLICT ... WHERE``); the moved rows' hashes are read
    only when the upsert wrote fewer rows than it was given.
    """
    if not accepted:
        return {}
    keys = sorted(accepted)
    params = {
        "run": run_id,
        "stream": stream,
        "keys": keys,
        "digests": [accepted[k] for k in keys],
        "expected": None if expected is None else json.dumps(expected),
    }
    cur.execute(_UPSERT, params)
    if expected is None or cur.rowcount == len(keys):
        return {}
    connection = "(SELECT connection_id FROM sync_run WHERE id = %s)"
    cur.execute(
        _HASHES_OF.format(connection=connection, keys="unnest(%s::text[])"), (run_id, stream, keys)
    )
    now = {row["key"]: row["content_hash"] for row in cur.fetchall()}
    return {key: now[key] for key in keys
            if now[key] not in (expected.get(key), accepted[key])}  # fmt: skip


_UPSERT = """INSERT INTO entity_ledger (connection_id, stream, record_key, content_hash, run_id)
    SELECT (SELECT connection_id FROM sync_run WHERE id = %(run)s), %(stream)s, key, digest,
           %(run)s
    FROM unnest(%(keys)s::text[], %(digests)s::text[]) AS t(key, digest)
    ON CONFLICT (connection_id, stream, record_key) DO UPDATE SET
        content_hash = EXCLUDED.content_hash, synced_at = now(), run_id = EXCLUDED.run_id
    WHERE %(expected)s::jsonb IS NULL
       OR entity_ledger.content_hash IS NOT DISTINCT FROM
          (%(expected)s::jsonb ->> EXCLUDED.record_key)
       OR entity_ledger.content_hash = EXCLUDED.content_hash"""
"""``expected`` is a JSON object (key -> hash read), looked up per conflicting row: the
``ON CONFLICT`` clause sees only the table's row and ``EXCLUDED``, not the unnested arrays."""
