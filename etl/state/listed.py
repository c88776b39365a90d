"""Listed records in Redis: the documents a chunk's listing returned, from producer to worker.

A Master Data search returns whole ``CL`` documents, so a customers chunk carries them instead
of reading each one again. They used to travel in the chunk's PostgreSQL row (``payload``):
written once, read once, cleared, which cost PostgreSQL about as much CPU per customer as the
ledger (docs/benchmarks.md, section 7) and filled its WAL with data nobody queries. Here they
wait in Redis instead, under ``etl:listed:{chunk id}``, while the row keeps only the keys.

They are a copy, never the only one: the chunk's keys are in PostgreSQL, and a chunk whose
documents are missing here (Redis restarted without them, an earlier attempt took them, the
entry expired, or it belongs to a chunk of another database: ``take`` checks the keys) reads
them from Master Data by id, as a replay does. Nothing waits here for long: the producer keeps
at most ``SYNC_REDIS_LISTED_RECORDS`` records of a run listed ahead of its workers here (then the
rows carry them, as before), and a worker takes its chunk's documents out as it claims it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import redis

__all__ = ["ListedRecords"]

log = logging.getLogger(__name__)

TTL = 24 * 3600
"""Seconds an entry outlives a chunk nobody claims (a cancelled run's): then Redis drops it."""


class ListedRecords:
    """The listed documents of planned chunks, by chunk id, in Redis.

    Args:
        limit: records of a run whose documents may wait here, planned and not yet read
            (``SYNC_REDIS_LISTED_RECORDS``); 0: none (the producer leaves them in the rows).
    """

    def __init__(self, client: redis.Redis, limit: int = 0, ttl: int = TTL) -> None:
        self.client = client
        self.limit = limit
        self.ttl = ttl
        self._getdel = True

    @staticmethod
    def key(chunk_id: int) -> str:
        return f"etl:listed:{chunk_id}"

    def put(self, chunks: Iterable[tuple[int, Sequence[dict[str, Any]]]]) -> bool:
        """Keep each chunk's documents (one round trip); False when Redis refused them (its
        workers then read them from VTEX)."""
        pipe = self.client.pipeline(transaction=False)
        for chunk_id, docs in chunks:
            pipe.set(self.key(chunk_id), json.dumps(docs), ex=self.ttl)
        try:
            pipe.execute()
        except redis.RedisError as error:
            log.warning("listed records not kept in Redis (%s): their chunks read them from "
                        "VTEX", type(error).__name__)  # fmt: skip
            return False
        return True

    def take(
        self, chunk_id: int, keys: Sequence[str], key_of: Callable[[dict[str, Any]], str]
    ) -> list[dict[str, Any]] | None:
        """The chunk's documents, removed from Redis; None when they are not there (or are not
        the documents of ``keys``, in order)."""
        try:
            raw = self._take(self.key(chunk_id))
        except redis.RedisError as error:
            log.warning("chunk %s: listed records unreadable in Redis (%s); reading them from "
                        "VTEX", chunk_id, type(error).__name__)  # fmt: skip
            return None
        if raw is None:
            return None
        docs = json.loads(raw)
        if not isinstance(docs, list) or len(docs) != len(keys):
            return None
        try:
            if all(key_of(doc) == key for doc, key in zip(docs, keys, strict=True)):
                return docs
        except (KeyError, TypeError):  # not a listed document
            pass
        return None

    def _take(self, key: str) -> Any:
        """``GETDEL`` (Redis 6.2 and later: one command); before 6.2, ``GET`` and ``DEL`` in one
        ``MULTI``."""
        if self._getdel:
            try:
                return self.client.getdel(key)
            except redis.ResponseError as error:
                if "unknown command" not in str(error).lower():
                    raise
                self._getdel = False
        pipe = self.client.pipeline(transaction=True)
        pipe.get(key)
        pipe.delete(key)
        return pipe.execute()[0]
