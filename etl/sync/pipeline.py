"""The middle of a chunk's path: map each fetched record, diff it against the ledger, send.

``etl.sync.runs.run_chunk`` fetches a claimed chunk's records (``Stream.fetch``, the VTEX
client), passes them through ``map_diff_send`` and records the outcome with
``Chunks.complete``; the realtime work does the same for one record at a time. Every step here
is repeatable: Synerise profile upserts are upserts and transactions carry a stable
``eventSalt`` and ``recordedAt``, so a chunk that dies half-way and runs again has one effect.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from etl.errors import SkippableRecordError
from etl.redaction import redact_payload
from etl.state.chunks import ChunkOutcome
from etl.state.ledger import Ledger
from etl.sync.streams import Fetched, Stream, not_found
from etl.synerise.client import SyneriseClient
from schemas.mapping import FieldWarning, payload_hash
from schemas.reasons import RejectReason

__all__ = ["Candidate", "map_diff_send"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Candidate:
    """A mapped record waiting to be diffed and sent, with the fields it goes without."""

    key: str
    payload: dict[str, Any]
    digest: str
    warnings: tuple[FieldWarning, ...] = ()


def map_diff_send(
    fetched: list[Fetched],
    stream: Stream,
    synerise: SyneriseClient,
    ledger: Ledger,
    *,
    full_resync: bool = False,
    dry_run: bool = False,
    check_alive: Callable[[], None] = lambda: None,
) -> ChunkOutcome:
    """Map records to Synerise payloads (``schemas/``), skip those the ledger already holds,
    send the rest; return the outcome for the caller to record (chunk, webhook, replay).

    A record that cannot be mapped is rejected with its reason and kept for replay; its
    batch-mates go through. A record Synerise accepts without some of its fields carries their
    warnings (``dry_run``: a record that would be sent). ``dry_run`` counts what would be
    created or updated, sending nothing.
    """
    outcome = ChunkOutcome(stream=stream.ledger, read=len(fetched))
    candidates = [c for item in fetched if (c := _mapped(item, stream, outcome)) is not None]
    known = {} if not candidates else ledger.hashes(stream.ledger, [c.key for c in candidates])
    changed = [c for c in candidates if full_resync or known.get(c.key) != c.digest]
    outcome.skipped = len(candidates) - len(changed)
    if dry_run:
        outcome.would_create = sum(1 for c in changed if c.key not in known)
        outcome.would_update = len(changed) - outcome.would_create
        for candidate in changed:
            outcome.warn(candidate.key, candidate.warnings)
        return outcome
    if not changed:
        return outcome

    check_alive()
    result = stream.send(synerise, [c.payload for c in changed])
    for index in result.accepted:
        outcome.accept(changed[index].key, changed[index].digest)
        outcome.warn(changed[index].key, changed[index].warnings)
    for index, message in result.rejected.items():
        candidate = changed[index]
        outcome.reject(
            candidate.key,
            RejectReason.SYNERISE_REJECTED,
            message,
            redact_payload(candidate.payload),
        )
    return outcome


def _mapped(item: Fetched, stream: Stream, outcome: ChunkOutcome) -> Candidate | None:
    """The record mapped, or None when it is rejected (recorded in ``outcome``)."""
    warnings: list[FieldWarning] = []
    try:
        if item.record is None:
            raise not_found(item.key)
        payload = stream.to_payload(item, warnings)
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
        return Candidate(item.key, payload, payload_hash(payload), tuple(warnings))
    return None
