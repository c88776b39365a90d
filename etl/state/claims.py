"""Claims (``sync_chunk.claimed_by``/``claim_expires_at``, ``sync_run.planning_claimed_by``/
``planning_claim_expires_at``): the heartbeat's one transaction.

A worker process holds claims on the chunks it works on and on the runs it plans; every few
seconds its heartbeat extends all of them at once and learns, in the same round trip, which ones
are still its own and what status their runs are in. Taking a claim is ``Chunks.claim`` /
``Runs.claim_planning``; handing an expired one on is ``Chunks.recover_expired`` /
``Runs.recover_planning``.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from etl.state.db import Connections

__all__ = ["Claims", "Extended"]


@dataclass(frozen=True)
class Extended:
    """What one heartbeat found."""

    chunks: frozenset[int]
    """Chunks still claimed by the holder (now extended); the others were handed on."""
    plannings: frozenset[int]
    """Runs whose planning the holder still claims (now extended)."""
    run_status: dict[int, str]
    """Status of every run asked about."""


class Claims:
    """Extend a holder's claims. Safe to share between threads."""

    def __init__(self, db: Connections) -> None:
        self.db = db

    def extend(
        self,
        holder: str,
        chunk_ids: Collection[int],
        planning_run_ids: Collection[int],
        run_ids: Collection[int],
        ttl: float,
    ) -> Extended:
        """Extend ``holder``'s claims on these chunks and plannings by ``ttl`` seconds from now,
        in one transaction, and read the status of ``run_ids``.

        A claim is extended while it is still the holder's, expired or not: until upkeep has
        handed it on, nobody else works on it.
        """
        with self.db.transaction() as cur:
            cur.execute(
                """WITH chunk AS (
                       UPDATE sync_chunk
                       SET claim_expires_at = now() + make_interval(secs => %(ttl)s)
                       WHERE id = ANY(%(chunks)s) AND claimed_by = %(holder)s
                         AND status = 'running'
                       RETURNING id),
                   planning AS (
                       UPDATE sync_run
                       SET planning_claim_expires_at = now() + make_interval(secs => %(ttl)s)
                       WHERE id = ANY(%(plannings)s) AND planning_claimed_by = %(holder)s
                         AND NOT planning_done
                       RETURNING id)
                   SELECT 'chunk' AS what, id, NULL AS status FROM chunk
                   UNION ALL SELECT 'planning', id, NULL FROM planning
                   UNION ALL SELECT 'run', id, status FROM sync_run WHERE id = ANY(%(runs)s)""",
                {
                    "ttl": ttl,
                    "holder": holder,
                    "chunks": list(chunk_ids),
                    "plannings": list(planning_run_ids),
                    "runs": list(run_ids),
                },
            )
            rows = cur.fetchall()
        return Extended(
            chunks=frozenset(row["id"] for row in rows if row["what"] == "chunk"),
            plannings=frozenset(row["id"] for row in rows if row["what"] == "planning"),
            run_status={row["id"]: row["status"] for row in rows if row["what"] == "run"},
        )
