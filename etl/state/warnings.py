"""Field warnings (``record_warning``): records Synerise accepted without one of their fields.

A warning is not a rejection: the record was sent and is counted as sent; the run's
``warned_count`` says how many of its records carry one. Warnings are written with the
outcome they belong to (``record`` inside ``chunks.write_outcome``), listed by
``sync rejects RUN --warnings``. Messages name the VTEX field, never its value.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg2.extras import execute_values

from etl.state.db import Connections

__all__ = ["RecordWarning", "Warnings", "record"]


@dataclass(frozen=True)
class RecordWarning:
    """One field a sent record went without (a `schemas.reasons.FieldWarning` of a record)."""

    stream: str
    record_key: str
    field: str
    code: str
    message: str
    created_at: datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready view."""
        return {
            "stream": self.stream,
            "key": self.record_key,
            "field": self.field,
            "code": self.code,
            "message": self.message,
            "created_at": self.created_at.isoformat() if self.created_at else None,
        }


class Warnings:
    """List a run's warnings. Safe to share between threads."""

    def __init__(self, db: Connections) -> None:
        self.db = db

    def find(self, run_id: int, code: str | None = None) -> list[RecordWarning]:
        """The run's warnings (optionally of one code), by code, then oldest first."""
        with self.db.transaction() as cur:
            cur.execute(
                """SELECT stream, record_key, field, code, message, created_at
                   FROM record_warning
                   WHERE run_id = %(run)s AND (%(code)s::text IS NULL OR code = %(code)s)
                   ORDER BY code, id""",
                {"run": run_id, "code": code},
            )
            return [RecordWarning(**row) for row in cur.fetchall()]


def record(cur: Any, run_id: int, warnings: Sequence[RecordWarning]) -> int:
    """Insert warnings in the caller's transaction (one already there is left alone); how many
    records of the run carry a warning for the first time."""
    if not warnings:
        return 0
    # The outer query sees the table as it was before the INSERT: records it finds none for
    # are the newly warned ones. (execute_values takes one placeholder: the id is an int.)
    rows = execute_values(
        cur,
        f"""WITH added AS (
               INSERT INTO record_warning (run_id, stream, record_key, field, code, message)
               VALUES %s ON CONFLICT (run_id, stream, record_key, field, code) DO NOTHING
               RETURNING stream, record_key)
           SELECT count(DISTINCT (stream, record_key)) AS n FROM added a
           WHERE NOT EXISTS (SELECT 1 FROM record_warning w
                             WHERE w.run_id = {int(run_id)} AND w.stream = a.stream
                               AND w.record_key = a.record_key)""",
        [(run_id, w.stream, w.record_key, w.field, w.code, w.message) for w in warnings],
        fetch=True,
    )
    return sum(int(row["n"]) for row in rows)
