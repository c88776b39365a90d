"""One engine per connection per process, built on first use.

Tasks carry run and chunk ids only; the run row says which connection it belongs to
(``for_run``, ``for_chunk``), so a worker serves every connection of its configuration with
one set of queues, and a message queued before connections existed still finds its engine.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence

from etl.connections import Connection, select
from etl.errors import FatalError
from etl.state.store import StateStore
from etl.sync.engine import Engine, Enqueue, EnqueueMany, QueueSizes

__all__ = ["Engines", "UnknownConnectionError"]


class UnknownConnectionError(FatalError):
    """A run belongs to a connection (VTEX account and workspace) this process does not have:
    its configuration changed since the run started."""


class Engines:
    """The engines of a set of connections, built lazily; safe to share between threads.

    Args:
        connections: the connections by name (``etl.connections.load()``).
        build: makes the engine of a connection; given the engine already built, if any, so
            engines share its database connections.
    """

    def __init__(
        self,
        connections: Mapping[str, Connection],
        build: Callable[[Connection, Engine | None], Engine],
    ) -> None:
        self.connections = dict(connections)
        self._build = build
        self._built: dict[str, Engine] = {}
        self._lock = threading.RLock()

    @classmethod
    def build(
        cls,
        connections: Mapping[str, Connection],
        enqueue: Enqueue,
        enqueue_many: EnqueueMany | None = None,
        queue_sizes: QueueSizes | None = None,
        store: Callable[[], StateStore] | None = None,
    ) -> Engines:
        """Engines wired like ``Engine.for_connection``, sharing one set of database
        connections: the first engine's, or ``store()``'s (a store whose schema is migrated)."""

        def make(connection: Connection, shared: Engine | None) -> Engine:
            base = shared.store if shared is not None else (store() if store else None)
            return Engine.for_connection(
                connection, enqueue, enqueue_many, queue_sizes, store=base
            )

        return cls(connections, make)

    @classmethod
    def of(cls, *engines: Engine) -> Engines:
        """A registry of engines built already (tests, the demo)."""
        registry = cls(
            {engine.connection.name: engine.connection for engine in engines},
            lambda connection, _: registry._built[connection.name],
        )
        registry._built = {engine.connection.name: engine for engine in engines}
        return registry

    def names(self) -> tuple[str, ...]:
        """The connections' names, in configuration order."""
        return tuple(self.connections)

    def get(self, name: str | None = None) -> Engine:
        """The engine of connection ``name``; without one, of the only connection there is.

        Raises:
            ConfigError: no such connection, or none named and there are several.
        """
        name = select(name, self.connections)
        with self._lock:
            if name not in self._built:
                shared = next(iter(self._built.values()), None)
                self._built[name] = self._build(self.connections[name], shared)
            return self._built[name]

    def __iter__(self) -> Iterator[Engine]:
        """Every connection's engine (building those not built yet)."""
        for name in self.connections:
            yield self.get(name)

    def by_id(self, connection_id: int) -> Engine:
        """The engine of the connection whose state row is ``connection_id``.

        Raises:
            UnknownConnectionError: no configured connection has that identity.
        """
        for engine in self:
            if engine.connection_id == connection_id:
                return engine
        raise UnknownConnectionError(
            f"connection #{connection_id} is not configured in this process (its VTEX account"
            " or Synerise workspace changed); configure it again to finish its runs"
        )

    def for_run(self, run_id: int) -> Engine | None:
        """The engine of a run's connection; ``None`` when there is no such run."""
        connection_id = self._any().store.connections.of_run(run_id)
        return None if connection_id is None else self.by_id(connection_id)

    def for_chunk(self, chunk_id: int) -> Engine | None:
        """The engine of a chunk's run's connection; ``None`` when there is no such chunk."""
        connection_id = self._any().store.connections.of_chunk(chunk_id)
        return None if connection_id is None else self.by_id(connection_id)

    def for_chunks(self, chunk_ids: Sequence[int]) -> dict[int, Engine | UnknownConnectionError]:
        """The engine of each chunk's connection, looked up in one round trip; a chunk that does
        not exist is left out, one whose connection is not configured here maps to the error."""
        connection_of = self._any().store.connections.of_chunks(chunk_ids)
        engines: dict[int, Engine | UnknownConnectionError] = {}
        for connection_id in set(connection_of.values()):
            try:
                engines[connection_id] = self.by_id(connection_id)
            except UnknownConnectionError as error:
                engines[connection_id] = error
        return {chunk: engines[connection] for chunk, connection in connection_of.items()}

    def _any(self) -> Engine:
        with self._lock:
            if self._built:
                return next(iter(self._built.values()))
        return self.get(next(iter(self.connections)))

    def close(self) -> None:
        """Close every engine built."""
        with self._lock:
            built, self._built = list(self._built.values()), {}
        for engine in built:
            engine.close()
