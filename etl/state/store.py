"""The state store: one handle on the sync state in PostgreSQL (schema: ``migrations/``).

Each table has its own module, which owns its SQL: ``runs`` (``sync_run``), ``chunks``
(``sync_chunk``, and the one transaction recording a chunk's outcome), ``claims`` (the
heartbeat extending a worker's claims on chunks and plannings), ``ledger`` (``entity_ledger``),
``rejects`` (``rejected_record``), ``warnings`` (``record_warning``), ``replay`` (replay runs),
``cursors`` (``sync_cursor``), ``catalogs`` (``synerise_catalog``) and ``selftest``; ``realtime``
holds the webhooks' daily runs.
Callers use the aggregates directly (``store.chunks.claim(id)``, ``store.ledger.hashes(...)``), so
a path through the code names the table it touches; this class only shares one set of
connections between them.
"""

from __future__ import annotations

from etl.state.catalogs import SyneriseCatalogs
from etl.state.chunks import Chunks
from etl.state.claims import Claims
from etl.state.cursors import Cursors
from etl.state.db import Connections
from etl.state.ledger import Ledger
from etl.state.rejects import Rejects
from etl.state.replay import Replays
from etl.state.runs import Runs
from etl.state.selftest import Selftest
from etl.state.warnings import Warnings

__all__ = ["StateStore"]


class StateStore:
    """The aggregates over one process's connections (one per thread); share it between threads.

    Args:
        dsn: the PostgreSQL DSN (a libpq URI or key/value string).
    """

    def __init__(self, dsn: str) -> None:
        self.db = Connections(dsn)
        self.runs = Runs(self.db)
        self.chunks = Chunks(self.db)
        self.claims = Claims(self.db)
        self.ledger = Ledger(self.db)
        self.rejects = Rejects(self.db)
        self.replays = Replays(self.db)
        self.cursors = Cursors(self.db)
        self.catalogs = SyneriseCatalogs(self.db)
        self.selftest = Selftest(self.db)
        self.warnings = Warnings(self.db)

    def close(self) -> None:
        """Close the calling thread's connection."""
        self.db.close()
