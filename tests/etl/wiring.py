"""One engine per test, shared by the test, the in-process worker's tasks and the CLI."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping

import pytest

from etl.config import Settings
from etl.sync.engine import Engine
from etl.sync.engines import Engines
from workers.dispatch import enqueue, enqueue_many, queue_sizes


@contextlib.contextmanager
def wired_engine(env: Mapping[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    """Build an engine from ``env`` and make the cached process-wide ones return it."""
    from etl.cli import runtime
    from workers.tasks import sync as sync_tasks

    built = Engine.from_settings(
        Settings.from_env(dict(env)), enqueue, enqueue_many, queue_sizes
    )
    registry = Engines.of(built)
    monkeypatch.setattr(sync_tasks, "engines", lambda: registry)
    monkeypatch.setattr(sync_tasks, "engine", lambda name=None: registry.get(name))
    monkeypatch.setattr(runtime, "engines", lambda: registry)
    monkeypatch.setattr(runtime, "engine", lambda name=None: registry.get(name))
    monkeypatch.setattr(runtime, "store", lambda: built.store)
    monkeypatch.setattr(runtime, "settings", lambda require=(): built.settings)
    try:
        yield built
    finally:
        built.close()


@contextlib.contextmanager
def wired_engines(env: Mapping[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[Engines]:
    """Every connection of ``env`` (its ``ETL_CONNECTIONS`` file) as one registry that the
    in-process worker's tasks and the CLI use."""
    from etl import connections
    from etl.cli import runtime
    from workers.tasks import sync as sync_tasks

    registry = Engines.build(connections.load(dict(env)), enqueue, enqueue_many, queue_sizes)
    monkeypatch.setattr(sync_tasks, "engines", lambda: registry)
    monkeypatch.setattr(sync_tasks, "engine", lambda name=None: registry.get(name))
    monkeypatch.setattr(runtime, "engines", lambda: registry)
    monkeypatch.setattr(runtime, "engine", lambda name=None: registry.get(name))
    monkeypatch.setattr(runtime, "store", lambda: registry.get(registry.names()[0]).store)
    try:
        yield registry
    finally:
        registry.close()
