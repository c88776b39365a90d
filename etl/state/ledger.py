"""The entity ledger (``entity_ledger``): the content hash of the payload Synerise last accepted
for each record, per stream (``profiles``, ``transactions``).

A record whose new payload hashes the same as its ledger entry is not sent again. Entries are
written with the chunk's outcome (``record_accepted`` inside ``Chunks.complete``), or moved by
compare-and-set (``swap_hash``) where a write must not overwrite a newer one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from psycopg2.extras import execute_values

from etl.state.db import Connections

__all__ = ["Ledger", "record_accepted"]


class Ledger:
    """Read and compare-and-set ledger entries. Safe to share between threads."""

    def __init__(self, db: Connections) -> None:
        self.db = db

    def hashes(self, stream: str, keys: Sequence[str]) -> dict[str, str]:
        """Content hashes of the payloads Synerise last accepted for these keys."""
        with self.db.transaction() as cur:
            cur.execute(
                """SELECT record_key, content_hash FROM entity_ledger
                   WHERE stream = %s AND record_key = ANY(%s)""",
                (stream, list(keys)),
            )
            return {row["record_key"]: row["content_hash"] for row in cur.fetchall()}

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
                    """INSERT INTO entity_ledger (stream, record_key, content_hash, run_id)
                       VALUES (%s, %s, %s, %s) ON CONFLICT (stream, record_key) DO NOTHING""",
                    (stream, key, digest, run_id),
                )
            else:
                cur.execute(
                    """UPDATE entity_ledger SET content_hash = %s, synced_at = now(), run_id = %s
                       WHERE stream = %s AND record_key = %s AND content_hash = %s""",
                    (digest, run_id, stream, key, expected),
                )
            return bool(cur.rowcount == 1)


def record_accepted(cur: Any, stream: str, accepted: Mapping[str, str], run_id: int) -> None:
    """Upsert the hashes of accepted payloads (``key -> hash``), in the caller's transaction."""
    if not accepted:
        return
    execute_values(
        cur,
        """INSERT INTO entity_ledger (stream, record_key, content_hash, run_id)
           VALUES %s ON CONFLICT (stream, record_key) DO UPDATE SET
               content_hash = EXCLUDED.content_hash, synced_at = now(),
               run_id = EXCLUDED.run_id""",
        [(stream, key, digest, run_id) for key, digest in accepted.items()],
    )
