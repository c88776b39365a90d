"""Sync tasks (queues ``backfill`` and ``incremental``): thin wrappers over ``etl``.

For now only ``etl.selftest``: a round trip broker -> worker -> PostgreSQL that the demo and the
tests use to prove the plumbing before any VTEX or Synerise call.
"""

from __future__ import annotations

import functools

from celery import Task

from etl.config import Settings
from etl.state.store import StateStore
from workers.app import app

__all__ = ["selftest"]


@functools.lru_cache(maxsize=8)
def _store(dsn: str) -> StateStore:
    """One store per database per process (each keeps a connection per thread)."""
    return StateStore(dsn)


def _database_url() -> str:
    url = Settings.from_env(require=()).with_infra().database_url
    assert url is not None  # with_infra() always sets it
    return url


@app.task(name="etl.selftest", bind=True)
def selftest(self: Task, token: str) -> str:
    """Record ``token`` with this worker's name in the ``selftest`` table; return the name."""
    worker = self.request.hostname or "unknown"
    _store(_database_url()).record_selftest(token, worker)
    return worker
