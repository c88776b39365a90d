"""The ``selftest`` table: one row per ``etl.selftest`` task, the proof that a task went
broker -> worker -> PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterable

from etl.state.db import Connections

__all__ = ["Selftest"]


class Selftest:
    """Write and read selftest rows. Safe to share between threads."""

    def __init__(self, db: Connections) -> None:
        self.db = db

    def record(self, token: str, worker: str) -> None:
        """Write the row that proves the round trip (idempotent)."""
        with self.db.transaction() as cur:
            cur.execute(
                """INSERT INTO selftest (token, worker) VALUES (%s, %s)
                   ON CONFLICT (token) DO UPDATE SET worker = EXCLUDED.worker, at = now()""",
                (token, worker),
            )

    def found(self, tokens: Iterable[str]) -> dict[str, str]:
        """Which of ``tokens`` have a row, mapped to the worker that wrote it."""
        with self.db.transaction() as cur:
            cur.execute("SELECT token, worker FROM selftest WHERE token = ANY(%s)", (list(tokens),))
            return {row["token"]: row["worker"] for row in cur.fetchall()}
