"""Runs planned whole at creation: a replay (another run's unresolved rejects) and a selection
(the record keys a user named, ``sync start orders --ids ...``).

Apart from ``runs`` and ``chunks`` because each writes both in one transaction; which rejects a
replay fixed is ``Rejects.resolve_replayed``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from psycopg2.extras import Json

from etl.state.chunks import insert_chunks
from etl.state.db import Connections, check_choice
from etl.state.runs import SCOPES, Run

__all__ = ["Replays"]


class Replays:
    """Create replay and selection runs. Safe to share between threads.

    A replay belongs to its source run's connection, a selection to ``connection_id``.
    """

    def __init__(self, db: Connections, connection_id: int) -> None:
        self.db = db
        self.connection_id = connection_id

    def create(
        self, source: Run, keys: Sequence[str], chunk_size: int, config: dict[str, Any]
    ) -> int:
        """A ``replay`` run over ``keys`` (a run's unresolved rejects), fully planned, of the
        source run's connection; its id."""
        return self._create_planned(
            "replay", source.scope, keys, chunk_size, config,
            window=(source.window_from, source.window_to), replay_of=source.id,
            connection_id=source.connection_id,
        )  # fmt: skip

    def create_selection(
        self,
        scope: str,
        keys: Sequence[str],
        chunk_size: int,
        config: dict[str, Any],
        *,
        dry_run: bool = False,
        full_resync: bool = False,
    ) -> int:
        """A ``selection`` run over ``keys`` (the records a user named) of the store's
        connection, fully planned; its id.
        Its window is the moment it was asked for (a selection has no date range).

        Raises:
            ValueError: no key, or an unknown scope.
        """
        check_choice(scope, SCOPES, "scope")
        if not keys:
            raise ValueError("a selection needs at least one key")
        return self._create_planned(
            "selection", scope, keys, chunk_size, config,
            dry_run=dry_run, full_resync=full_resync, connection_id=self.connection_id,
        )  # fmt: skip

    def _create_planned(
        self,
        kind: str,
        scope: str,
        keys: Sequence[str],
        chunk_size: int,
        config: dict[str, Any],
        *,
        window: tuple[datetime, datetime] | None = None,
        replay_of: int | None = None,
        dry_run: bool = False,
        full_resync: bool = False,
        connection_id: int,
    ) -> int:
        with self.db.transaction() as cur:
            cur.execute(
                """INSERT INTO sync_run (kind, scope, window_from, window_to, config, replay_of,
                                         dry_run, full_resync, planning_done, connection_id)
                   VALUES (%s, %s, coalesce(%s, now()), coalesce(%s, now()), %s, %s, %s, %s, true,
                           %s)
                   RETURNING id""",
                (kind, scope, *(window or (None, None)), Json(config), replay_of, dry_run,
                 full_resync, connection_id),
            )  # fmt: skip
            run_id = int(cur.fetchone()["id"])
            batches = [keys[i : i + chunk_size] for i in range(0, len(keys), chunk_size)]
            insert_chunks(cur, run_id, batches, None)
            return run_id
