"""Incremental cursors (``sync_cursor``): where the last successful incremental sync of a stream
ended, per connection. A cursor moves only forward, and only when its run is done."""

from __future__ import annotations

from datetime import datetime

from etl.state.db import Connections

__all__ = ["Cursors"]


class Cursors:
    """Read and advance stream cursors. Safe to share between threads."""

    def __init__(self, db: Connections, connection_id: int) -> None:
        self.db = db
        self.connection_id = connection_id

    def get(self, stream: str) -> datetime | None:
        """Where the connection's last successful incremental sync of a stream ended."""
        row = self.db.fetch_one(
            "SELECT cursor_value FROM sync_cursor WHERE connection_id = %s AND stream = %s",
            (self.connection_id, stream),
        )
        return row["cursor_value"] if row else None

    def advance(self, stream: str, value: datetime) -> None:
        """Advance the connection's cursor of a stream (never backwards)."""
        with self.db.transaction() as cur:
            cur.execute(
                """INSERT INTO sync_cursor (connection_id, stream, cursor_value) VALUES (%s, %s, %s)
                   ON CONFLICT (connection_id, stream) DO UPDATE SET
                       cursor_value = greatest(sync_cursor.cursor_value, EXCLUDED.cursor_value)""",
                (self.connection_id, stream, value),
            )
