"""What CLI commands share: settings, the state store and the engines, built once per command.

Built lazily so ``--help`` and commands that need no credentials never start servers.
"""

from __future__ import annotations

import functools

from etl import connections
from etl.config import Settings
from etl.state.migrate import upgrade
from etl.state.store import StateStore
from etl.sync.engine import Engine
from etl.sync.engines import Engines
from workers.dispatch import enqueue, enqueue_many, queue_sizes

__all__ = ["engine", "engine_of_run", "engines", "settings", "store"]


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
def engines() -> Engines:
    """Every connection's engine, built when first asked for (on the store: servers resolved
    and the schema migrated first)."""
    return Engines.build(connections.load(), enqueue, enqueue_many, queue_sizes, store=store)


def engine(name: str | None = None) -> Engine:
    """The full engine of a connection (the only one when not named): needs its VTEX and
    Synerise credentials; it sends tasks through Celery."""
    return engines().get(name)


def engine_of_run(run_id: int) -> Engine:
    """The engine of the connection a run belongs to.

    Raises:
        RunNotFoundError: no such run.
        UnknownConnectionError: its connection is not configured any more.
    """
    from etl.state.runs import RunNotFoundError

    found = engines().for_run(run_id)
    if found is None:
        raise RunNotFoundError(run_id)
    return found
