"""Replay runs: a run over another run's unresolved rejects, planned whole at creation.

Apart from ``runs`` and ``chunks`` because it writes both in one transaction; which rejects a
replay fixed is ``Rejects.resolve_replayed``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg2.extras import Json

from etl.state.chunks import insert_chunks
from etl.state.db import Connections
from etl.state.runs import Run

__all__ = ["Replays"]


class Replays:
    """Create replay runs. Safe to share between threads."""

    def __init__(self, db: Connections) -> None:
        self.db = db

    def create(
        self, source: Run, keys: Sequence[str], chunk_size: int, config: dict[str, Any]
    ) -> int:
        """A ``replay`` run over ``keys`` (a run's unresolved rejects), fully planned, of the
        source run's connection; its id."""
        with self.db.transaction() as cur:
            cur.execute(
                """INSERT INTO sync_run (kind, scope, window_from, window_to, config, replay_of,
                                         planning_done, connection_id)
                   VALUES ('replay', %s, %s, %s, %s, %s, true, %s) RETURNING id""",
                (
                    source.scope,
                    source.window_from,
                    source.window_to,
                    Json(config),
                    source.id,
                    source.connection_id,
                ),
            )
            run_id = int(cur.fetchone()["id"])
            batches = [keys[i : i + chunk_size] for i in range(0, len(keys), chunk_size)]
            insert_chunks(cur, run_id, batches, None)
            return run_id
