"""Incremental cursors (``sync_cursor``): where the last successful incremental sync of a stream
ended. A cursor moves only forward, and only when its run is done."""

from __future__ import annotations

from datetime import datetime

from etl.state.db import Connections

__all__ = ["Cursors"]


class Cursors:
    """Read and advance stream cursors. Safe to share between threads."""

    def __init__(self, db: Connections) -> None:
        self.db = db

    def get(self, stream: str) -> datetime | None:
        """Where the last successful incremental sync of a stream ended."""
        row = self.db.fetch_one("SELECT cursor_value FROM sync_cursor WHERE stream = %s", (stream,))
        return row["cursor_value"] if row else None

    def advance(self, stream: str, value: datetime) -> None:
        """Advance a stream's cursor (never backwards)."""
        with self.db.transaction() as cur:
            cur.execute(
                """INSERT INTO sync_cursor (stream, cursor_value) VALUES (%s, %s)
                   ON CONFLICT (stream) DO UPDATE SET
                       cursor_value = greatest(sync_cursor.cursor_value, EXCLUDED.cursor_value)""",
                (stream, value),
            )
