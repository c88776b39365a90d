"""Two small Redis guards for realtime work: "at most once" claims and the consent echo guard.

``OnceGuard``: VTEX may deliver a hook notification twice (and a webhook may be retried), so
each notification's key is claimed with ``SET NX`` and a TTL. The claim holds a token (the
Celery task id, stable across the task's retries): the same task may claim again, any other
delivery is a duplicate. A task that fails releases its claim, so a later delivery still works.

``EchoGuard``: when a Synerise consent change is written to a ``CL`` document, VTEX fires the
document's trigger back at us. The guard remembers, per ``CL`` id and for a short TTL, the
opt-in value we wrote and the ``updatedIn`` our write produced: a trigger whose document is not
newer than that carries our own value, and Synerise, where the change came from, stays right.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis

from etl.sync.windows import parse_time

__all__ = ["Echo", "EchoGuard", "OnceGuard"]

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class OnceGuard:
    """Claims that make a notification take effect once.

    Args:
        client: the Redis client.
        ttl: seconds a claim lives (longer than VTEX's redelivery horizon).
        namespace: keeps one connection's claims apart from another's (two accounts' orders
            may share an id); empty for the ``default`` connection (the keys it always had).
    """

    def __init__(self, client: redis.Redis, ttl: int, namespace: str = "") -> None:
        self.client = client
        self.ttl = ttl
        self.prefix = f"etl:once:{namespace}"
        self._release = client.register_script(_RELEASE)

    def claim(self, key: str, token: str) -> bool:
        """True when ``token`` holds (or now takes) the claim on ``key``."""
        return self.claim_many([(key, token)])[0]

    def claim_many(self, claims: Sequence[tuple[str, str]]) -> list[bool]:
        """``claim`` for each ``(key, token)`` in order, in two round trips at most. A key
        claimed twice in one call goes to its first token."""
        pipe = self.client.pipeline(transaction=False)
        for key, token in claims:
            pipe.set(self.prefix + key, token, nx=True, ex=self.ttl)
        taken = pipe.execute()
        lost = [index for index, ok in enumerate(taken) if not ok]
        for index in lost:
            pipe.get(self.prefix + claims[index][0])
        for index, held in zip(lost, pipe.execute() if lost else [], strict=True):
            if isinstance(held, bytes):
                held = held.decode()
            taken[index] = held == claims[index][1]
        return [bool(ok) for ok in taken]

    def release(self, key: str, token: str) -> None:
        """Give up ``token``'s claim (after a failure), leaving anyone else's alone."""
        self.release_many([(key, token)])

    def release_many(self, claims: Sequence[tuple[str, str]]) -> None:
        """``release`` each ``(key, token)``, in one round trip."""
        if not claims:
            return
        pipe = self.client.pipeline(transaction=False)
        for key, token in claims:
            self._release(keys=[self.prefix + key], args=[token], client=pipe)
        pipe.execute()


@dataclass(frozen=True)
class Echo:
    """The opt-in value we wrote to a ``CL`` document, and when (``None``: write in flight)."""

    value: bool
    updated_in: str | None

    def covers(self, document: dict[str, Any]) -> bool:
        """True when ``document`` is not newer than our write, so its opt-in is ours or older."""
        if self.updated_in is None:
            return True
        seen = document.get("updatedIn")
        if not isinstance(seen, str):
            return True
        try:
            return parse_time(seen) <= parse_time(self.updated_in)
        except ValueError:
            return True


class EchoGuard:
    """Remembers our own consent writes to ``CL`` for ``ttl`` seconds.

    Args:
        client: the Redis client.
        ttl: seconds to remember a write (longer than VTEX's trigger delay).
        namespace: as ``OnceGuard``'s (``CL`` ids are per account).
    """

    def __init__(self, client: redis.Redis, ttl: int, namespace: str = "") -> None:
        self.client = client
        self.ttl = ttl
        self.prefix = f"etl:echo:cl:{namespace}"

    def remember(self, document_id: str, value: bool, updated_in: str | None = None) -> None:
        """Record that we write (``updated_in`` unknown) or wrote ``value`` to the document."""
        body = json.dumps({"value": value, "updatedIn": updated_in})
        self.client.set(self.prefix + document_id, body, ex=self.ttl)

    def recall(self, document_id: str) -> Echo | None:
        """Our last write to the document, if it is recent."""
        return self.recall_many([document_id]).get(document_id)

    def recall_many(self, document_ids: Sequence[str]) -> dict[str, Echo]:
        """Our recent writes to these documents (one ``MGET``), by document id."""
        if not document_ids:
            return {}
        found = self.client.mget([self.prefix + document_id for document_id in document_ids])
        echoes = {}
        for document_id, raw in zip(document_ids, found, strict=True):
            if raw is not None:
                data = json.loads(raw)
                echoes[document_id] = Echo(bool(data["value"]), data.get("updatedIn"))
        return echoes
