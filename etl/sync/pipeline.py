"""One chunk: fetch, map, validate, diff against the ledger, post, record. Once.

Every step before the final transaction is repeatable: Synerise profile upserts are upserts and
transactions carry a stable ``eventSalt`` and ``recordedAt``, so a chunk that dies half-way and
runs again has one effect. The outcome (ledger hashes of accepted payloads, rejected records,
counters, the chunk's status, and the run's completion) is written in one PostgreSQL
transaction that only succeeds for the attempt that claimed the chunk, so counts never double.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from etl.errors import SkippableRecordError
from etl.redaction import redact_payload
from etl.state.chunks import Chunk, ChunkOutcome
from etl.state.store import StateStore
from etl.sync.streams import Fetched, Stream, not_found
from etl.synerise.client import SyneriseClient
from schemas.mapping import payload_hash
from schemas.reasons import RejectReason

__all__ = ["Candidate", "process_chunk", "process_records"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Candidate:
    """A mapped record waiting to be diffed and sent."""

    key: str
    payload: dict[str, Any]
    digest: str


def process_chunk(
    chunk: Chunk,
    store: StateStore,
    stream: Stream,
    synerise: SyneriseClient,
    check_alive: Callable[[], None],
) -> str | None:
    """Process a claimed chunk; return the run's final status when this chunk ended the run."""
    run = store.runs.get(chunk.run_id)
    fetched = stream.fetch(chunk.keys, chunk.payload)
    outcome = process_records(
        fetched,
        stream,
        synerise,
        store,
        full_resync=run.full_resync,
        dry_run=run.dry_run,
        check_alive=check_alive,
    )
    check_alive()
    return store.chunks.complete(chunk, outcome)


def process_records(
    fetched: list[Fetched],
    stream: Stream,
    synerise: SyneriseClient,
    store: StateStore,
    *,
    full_resync: bool = False,
    dry_run: bool = False,
    check_alive: Callable[[], None] = lambda: None,
) -> ChunkOutcome:
    """Map, diff and send records; the caller records the outcome (chunk, webhook, replay)."""
    outcome = ChunkOutcome(stream=stream.ledger, read=len(fetched))
    candidates: list[Candidate] = []
    for item in fetched:
        try:
            if item.record is None:
                raise not_found(item.key)
            payload = stream.to_payload(item)
        except SkippableRecordError as error:
            outcome.reject(item.key, str(error.reason), error.message, redact_payload(item.record))
        except (KeyError, TypeError, ValueError, ArithmeticError) as error:
            # A shape we did not expect: keep the record for replay, never lose the batch.
            outcome.reject(
                item.key,
                RejectReason.MAPPING_ERROR,
                f"{type(error).__name__} while mapping",
                redact_payload(item.record),
            )
        else:
            candidates.append(Candidate(item.key, payload, payload_hash(payload)))

    known = (
        {} if not candidates else store.ledger.hashes(stream.ledger, [c.key for c in candidates])
    )
    changed = [c for c in candidates if full_resync or known.get(c.key) != c.digest]
    outcome.skipped = len(candidates) - len(changed)
    if dry_run:
        outcome.would_create = sum(1 for c in changed if c.key not in known)
        outcome.would_update = len(changed) - outcome.would_create
        return outcome
    if not changed:
        return outcome

    check_alive()
    result = stream.send(synerise, [c.payload for c in changed])
    for index in result.accepted:
        outcome.accept(changed[index].key, changed[index].digest)
    for index, message in result.rejected.items():
        candidate = changed[index]
        outcome.reject(
            candidate.key,
            RejectReason.SYNERISE_REJECTED,
            message,
            redact_payload(candidate.payload),
        )
    return outcome
