"""Connection rows (``etl_connection``): the identity every run, ledger row and cursor belongs to.

A connection's identity is its VTEX account and Synerise workspace; a row is created the first
time an identity is used and never changes identity afterwards, so a workspace switch makes a
new row (an empty ledger: everything is sent to the new workspace). Row 1, ``default``, holds
the state from before connections existed; the first ``default`` connection to resolve claims
it (migration 0008).
"""

from __future__ import annotations

from collections.abc import Sequence

from etl.state.db import Connections

__all__ = ["DEFAULT_ID", "ConnectionRows"]

DEFAULT_ID = 1
"""The ``default`` connection's row from the upgrade (migration 0008)."""


class ConnectionRows:
    """Resolve identities to row ids and row ids to names. Safe to share between threads."""

    def __init__(self, db: Connections) -> None:
        self.db = db

    def resolve(self, name: str, vtex_account: str, workspace: str) -> int:
        """The row id of this identity, created on first use (renamed to ``name`` if the file
        calls it something else now). The ``default`` connection first claims row 1 while that
        row has no identity yet: the state from before connections is its state."""
        with self.db.transaction() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(hashtext('etl_connection'))")
            cur.execute(
                """UPDATE etl_connection SET name = %s
                   WHERE vtex_account = %s AND workspace = %s RETURNING id""",
                (name, vtex_account, workspace),
            )
            row = cur.fetchone()
            if row is None and name == "default":
                cur.execute(
                    """UPDATE etl_connection SET vtex_account = %s, workspace = %s
                       WHERE id = %s AND vtex_account IS NULL RETURNING id""",
                    (vtex_account, workspace, DEFAULT_ID),
                )
                row = cur.fetchone()
            if row is None:
                cur.execute(
                    """INSERT INTO etl_connection (name, vtex_account, workspace)
                       VALUES (%s, %s, %s) RETURNING id""",
                    (name, vtex_account, workspace),
                )
                row = cur.fetchone()
            return int(row["id"])

    def names(self) -> dict[int, str]:
        """Every row's name by id (for listings)."""
        with self.db.transaction() as cur:
            cur.execute("SELECT id, name FROM etl_connection")
            return {int(row["id"]): str(row["name"]) for row in cur.fetchall()}

    def of_run(self, run_id: int) -> int | None:
        """The connection a run belongs to; ``None`` when there is no such run."""
        row = self.db.fetch_one("SELECT connection_id FROM sync_run WHERE id = %s", (run_id,))
        return int(row["connection_id"]) if row else None

    def of_chunk(self, chunk_id: int) -> int | None:
        """The connection a chunk's run belongs to; ``None`` when there is no such chunk."""
        row = self.db.fetch_one(
            """SELECT r.connection_id FROM sync_chunk c JOIN sync_run r ON r.id = c.run_id
               WHERE c.id = %s""",
            (chunk_id,),
        )
        return int(row["connection_id"]) if row else None

    def of_chunks(self, chunk_ids: Sequence[int]) -> dict[int, int]:
        """The connection each chunk's run belongs to (a chunk that does not exist is left
        out), in one round trip."""
        rows = self.db.statement(
            """SELECT c.id, r.connection_id FROM sync_chunk c JOIN sync_run r ON r.id = c.run_id
               WHERE c.id = ANY(%s)""",
            (list(chunk_ids),),
        )
        return {int(row["id"]): int(row["connection_id"]) for row in rows}
