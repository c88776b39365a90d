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
from etl.state.connections import DEFAULT_ID, ConnectionRows
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

    New runs, the ledger and the cursors belong to one ETL connection (``etl_connection`` row
    ``connection_id``; ``for_connection`` gives a store of another over the same database
    connections). Work on a run (its chunks, rejects, warnings, the ledger rows its outcome
    writes) follows the run's own connection, whichever store does it.

    Args:
        dsn: the PostgreSQL DSN (a libpq URI or key/value string).
        connection_id: the ``etl_connection`` row; the ``default`` connection's when omitted.
    """

    def __init__(
        self, dsn: str, connection_id: int = DEFAULT_ID, db: Connections | None = None
    ) -> None:
        self.db = db or Connections(dsn)
        self.dsn = dsn
        self.connection_id = connection_id
        self.connections = ConnectionRows(self.db)
        self.runs = Runs(self.db, connection_id)
        self.chunks = Chunks(self.db)
        self.claims = Claims(self.db)
        self.ledger = Ledger(self.db, connection_id)
        self.rejects = Rejects(self.db)
        self.replays = Replays(self.db, connection_id)
        self.cursors = Cursors(self.db, connection_id)
        self.catalogs = SyneriseCatalogs(self.db)
        self.selftest = Selftest(self.db)
        self.warnings = Warnings(self.db)

    def for_connection(self, connection_id: int) -> StateStore:
        """A store whose new runs, ledger and cursors are another connection's, sharing this
        one's database connections."""
        if connection_id == self.connection_id:
            return self
        return StateStore(self.dsn, connection_id, db=self.db)

    def close(self) -> None:
        """Close the calling thread's connection."""
        self.db.close()
