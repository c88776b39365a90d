"""What CLI commands share: settings, the state store and the engine, built once per command.

Built lazily so ``--help`` and commands that need no credentials never start servers.
"""

from __future__ import annotations

import functools

from etl.config import Settings
from etl.state.migrate import upgrade
from etl.state.store import StateStore
from etl.sync.engine import Engine
from workers.dispatch import enqueue, enqueue_many, queue_sizes

__all__ = ["engine", "settings", "store"]


@functools.cache
def settings(require: tuple[str, ...] = ()) -> Settings:
    """Settings with resolved (maybe embedded) servers and an up-to-date schema."""
    loaded = Settings.from_env(require=require).with_infra()
    assert loaded.database_url  # with_infra() sets it
    upgrade(loaded.database_url)
    return loaded


@functools.cache
def store() -> StateStore:
    """The state store; no VTEX or Synerise credentials needed."""
    url = settings().database_url
    assert url
    return StateStore(url)


@functools.cache
def engine() -> Engine:
    """The full engine: needs VTEX and Synerise credentials; it sends tasks through Celery."""
    return Engine.from_settings(
        settings(("vtex", "synerise")), enqueue, enqueue_many, queue_sizes
    )
