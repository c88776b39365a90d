"""Realtime sync: webhook notifications, in batches, with the historical sync's mapping and ledger.

Customer changes and order notifications wait in the realtime inbox (``etl.sync.inbox``) and
drains (``etl.sync.drain``) hand them here in batches (``sync_customers``, ``sync_orders``); a
task of one notification (``workers/tasks/realtime.py``: deletions, consent, and messages queued
as single tasks) is a batch of one. Each notification gets a word saying what happened
(``sent``, ``skipped``, ``duplicate``, ``rejected``, ``failed``...) for logs and tests.

* Customer created/changed: read the ``CL`` document, map it like the historical sync, diff
  against the ``profiles`` ledger (an unchanged payload is not sent) and upsert the profile.
  While a consent value we wrote to that document ourselves is recent (``EchoGuard``), it stands
  for the document's opt-in, so our own write never flows back as a change (``etl.sync.consent``).
* Customer deleted: ``DELETE_BEHAVIOUR`` = ``event`` (a ``client.deleteAccount`` custom event),
  ``remove`` (delete the profile by ``customId``) or ``ignore``.
* Order notification: once per (OrderId, State, LastChange) (``OnceGuard``). An order missing
  from the ``transactions`` ledger is sent; a known one is re-read and re-sent only for
  ``ORDER_UPDATE_STATUSES``, with the same ``eventSalt`` and ``recordedAt`` so Synerise
  overwrites it.

Outcomes go to the day's ``realtime`` run of the scope (``etl.state.realtime``), one transaction
per batch. Errors belong to their notification, never to its batch-mates: a ``RetriableError``,
a paused budget or an outage makes it delivered again (a task of one raises it, so the task
retries); on the last attempt, or for a ``FatalError``, the record is kept as a
``DELIVERY_FAILED`` reject, which ``sync rejects`` lists and ``sync replay`` retries.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from etl.connections import DEFAULT
from etl.errors import FatalError, RetriableError, SkippableRecordError
from etl.redaction import fingerprint, redact_text
from etl.state.chunks import ChunkOutcome, LedgerMovedError
from etl.state.realtime import AlreadyRecorded, RealtimeRuns
from etl.sync.changes import CustomerChange, CustomerDeletion, OrderNotice
from etl.sync.engine import Engine
from etl.sync.guards import EchoGuard, OnceGuard
from etl.sync.inbox import Inbox
from etl.sync.pipeline import map_diff_send
from etl.sync.streams import Fetched, OrdersStream, Stream
from etl.sync.windows import parse_time
from etl.vtex.client import VtexClient
from schemas.reasons import RejectReason
from schemas.rules import is_masked_vtex_email, is_valid_email, unmask_soft_alias

__all__ = [
    "DELIVERY_FAILED",
    "Batch",
    "Item",
    "Realtime",
    "delete_customer",
    "sync_customer",
    "sync_customers",
    "sync_order",
    "sync_orders",
]

log = logging.getLogger(__name__)

DELIVERY_FAILED = "DELIVERY_FAILED"
"""Reject reason of a notification whose retries ran out (replay it with ``sync replay``)."""

DELETE_ACTION = "client.deleteAccount"
DELETE_LABEL = "clientDeleteAccount"


@dataclass
class Realtime:
    """What realtime processing needs besides the engine: runs, the two Redis guards and the
    inbox."""

    engine: Engine
    runs: RealtimeRuns
    once: OnceGuard
    echo: EchoGuard
    inbox: Inbox
    readers: ThreadPoolExecutor
    """VTEX reads of every batch of this process: ``SYNC_FETCH_CONCURRENCY`` per drain alive
    (threads start on demand and last, so a batch does not pay for starting its own)."""

    @classmethod
    def from_engine(cls, engine: Engine) -> Realtime:
        """The services of the engine's connection; its Redis guards are its own (two
        accounts' orders and ``CL`` documents may share ids), ``default``'s keep their keys."""
        settings = engine.settings
        name = engine.connection.name
        namespace = "" if name == DEFAULT else f"{name}:"
        return cls(
            engine=engine,
            runs=RealtimeRuns(engine.store, settings.snapshot()),
            once=OnceGuard(engine.redis, settings.realtime_dedupe_ttl, namespace),
            echo=EchoGuard(engine.redis, settings.echo_guard_ttl, namespace),
            inbox=Inbox(engine.redis, engine.enqueue, settings.realtime_redeliver_after, name),
            readers=ThreadPoolExecutor(
                max_workers=settings.sync_fetch_concurrency * settings.realtime_drains,
                thread_name_prefix="realtime-read",
            ),
        )

    def record(self, scope: str, outcome: ChunkOutcome) -> None:
        """Record a pipeline outcome (ledger, rejects, counters) in today's run of ``scope``."""
        self.runs.record(self.runs.run_id(scope), outcome)

    def reject(
        self, scope: str, stream: str, key: str, reason: str, message: str, read: int = 1
    ) -> str:
        """Record one rejected record; returns ``"rejected"``."""
        outcome = ChunkOutcome(stream=stream, read=read)
        outcome.reject(key, reason, redact_text(message))
        self.record(scope, outcome)
        return "rejected"

    def count(self, scope: str, *, read: int = 0, sent: int = 0, skipped: int = 0) -> None:
        self.runs.count(self.runs.run_id(scope), read=read, sent=sent, skipped=skipped)


def recorded(
    rt: Realtime,
    scope: str,
    stream: str,
    key: str,
    final_attempt: bool,
    work: Callable[[], str],
) -> str:
    """Run ``work``; turn a skippable record into a reject, and a fatal error or the last
    attempt's failure into a ``DELIVERY_FAILED`` reject. Before the last attempt any other
    error propagates so the task is retried: a PostgreSQL or Redis outage loses nothing."""
    try:
        return work()
    except SkippableRecordError as error:
        return rt.reject(scope, stream, error.key or key, str(error.reason), error.message)
    except FatalError as error:
        log.error("realtime %s %s failed: %s", scope, key, error)
        return _failed(rt, scope, stream, key, error)
    except Exception as error:  # retriable, paused budget, or an outage/bug: retry first
        if not final_attempt:
            raise
        log.error("realtime %s %s failed after retries: %s", scope, key, redact_text(str(error)))
        return _failed(rt, scope, stream, key, error)


def _failed(rt: Realtime, scope: str, stream: str, key: str, error: Exception) -> str:
    rt.reject(scope, stream, key, DELIVERY_FAILED, f"{type(error).__name__}: {error}")
    return "failed"


# -- batches --------------------------------------------------------------------------------

R = TypeVar("R")


@dataclass(frozen=True)
class Item(Generic[R]):
    """One notification of a batch.

    ``token`` names this delivery (the inbox entry id, or the task id): it holds the order's
    "once" claim, the same across retries of the delivery and different for a duplicate.
    ``final``: a failure now is recorded as ``DELIVERY_FAILED``, not retried.
    """

    token: str
    record: R
    final: bool = True


@dataclass
class Batch:
    """What became of a batch: the word of each item whose outcome is recorded, and the error of
    each item to deliver again (nothing of it recorded), both by token."""

    words: dict[str, str] = field(default_factory=dict)
    retry: dict[str, Exception] = field(default_factory=dict)


def sync_customers(
    rt: Realtime, items: Sequence[Item[CustomerChange]], inbox: str | None = None
) -> Batch:
    """``CL`` documents created or changed (one scope): upsert the profiles whose payload changed.

    Each document is read once, by id (``/documents``, concurrently on ``rt.readers``): not by a
    batched search, which is eventually consistent while a trigger follows its write at once (a
    stale read would put the old payload in the ledger and lose the change). Then one mapping and
    ledger pass and one ``/v4/clients/batch`` for the batch, and one transaction for its outcome
    (with ``inbox``, also the entry ids: ``RealtimeRuns.record_batch``). A document notified
    twice in the batch is sent once; the second notification counts as skipped.
    """
    batch = Batch()
    if not items:
        return batch
    scope = items[0].record.scope
    stream = rt.engine.stream(scope)
    fields = [*rt.engine.mapping.profile_source_fields, "updatedIn"]
    ids = list(dict.fromkeys(item.record.id for item in items))
    documents, errors = _read_each(rt, lambda key: rt.engine.vtex.get_customer(key, fields), ids)
    echoes = rt.echo.recall_many(list(documents))
    fetched = []
    for key, document in documents.items():
        echo = echoes.get(key)
        if document is not None and echo is not None and echo.covers(document):
            # Our own consent write (or an older read): Synerise's value is the newest one.
            document = {**document, "isNewsletterOptIn": echo.value}
        fetched.append(Fetched(key, document))
    diffed: dict[str, str] = {}
    sent = _send(rt, fetched, stream, errors, diffed)
    outcome = ChunkOutcome(stream=stream.ledger)
    _merge(outcome, sent)
    seen: set[str] = set()
    for item in items:
        key = item.record.id
        if key in seen and key not in errors:
            _extra(outcome, batch, item, "skipped")
        else:
            _settle(outcome, batch, item, key, errors.get(key), _word(sent, key))
        seen.add(key)
    _record(rt, batch, {scope: outcome}, inbox, {scope: diffed})
    return batch


def sync_orders(
    rt: Realtime,
    items: Sequence[Item[OrderNotice]],
    inbox: str | None = None,
    vtex: VtexClient | None = None,
) -> Batch:
    """Orders Hook notifications: send or update each order's transaction, once per notification.

    The claims are taken in one round trip; a notice whose claim another delivery holds is a
    ``duplicate``, a known order's notice of a status outside ``ORDER_UPDATE_STATUSES`` is
    skipped unread. OMS has no batched Get order: the rest are read once per order, concurrently
    (``rt.readers``) under the shared budget, their buyers with one
    Master Data search per 50 (as the historical sync), and the newest notice of an order names
    the status reported (the others count as skipped). Guest profiles first, then one
    ``/v4/transactions/batch``, then one transaction for the outcome. A claim whose notice
    failed is given back, so a later delivery is processed. Orders and buyers are read with
    ``vtex`` (a sub-account's client, ``etl.sync.accounts``), the connection's by default.
    """
    claims = [(item.record.dedupe_key, item.token) for item in items]
    held = rt.once.claim_many(claims) if claims else []
    batch = Batch()
    try:
        _orders(rt, items, held, batch, inbox, vtex or rt.engine.vtex)
    except BaseException:
        rt.once.release_many([claim for claim, ok in zip(claims, held, strict=True) if ok])
        raise
    rt.once.release_many([
        claim for claim, item in zip(claims, items, strict=True)
        if item.token in batch.retry or batch.words.get(item.token) == "failed"
    ])  # fmt: skip
    return batch


def _orders(
    rt: Realtime,
    items: Sequence[Item[OrderNotice]],
    held: list[bool],
    batch: Batch,
    inbox: str | None,
    vtex: VtexClient,
) -> None:
    settings = rt.engine.settings
    stream = HookOrders(vtex, rt.engine.mapping, settings.sync_fetch_concurrency)
    outcome = ChunkOutcome(stream=stream.ledger)
    live = []
    for item, ok in zip(items, held, strict=True):
        if ok:
            live.append(item)
        else:
            _extra(outcome, batch, item, "duplicate")
    order_ids = list(dict.fromkeys(item.record.order_id for item in live))
    known = rt.engine.store.ledger.hashes(stream.ledger, order_ids) if order_ids else {}
    groups: dict[str, list[Item[OrderNotice]]] = {}
    for item in live:
        notice = item.record
        if notice.order_id in known and notice.state not in settings.order_update_statuses:
            _extra(outcome, batch, item, "skipped")
        else:
            groups.setdefault(notice.order_id, []).append(item)
    newest = {key: max(reversed(group), key=lambda item: _recency(item.record))
              for key, group in groups.items()}  # fmt: skip
    orders, errors = _read_each(rt, vtex.get_order, list(groups))
    buyers = _buyers(rt, vtex, orders, errors)
    fetched = [
        Fetched(key, order, {"customer": buyers.get(key),
                             "status": reported_status(order, newest[key].record)})
        if order is not None else Fetched(key, None)
        for key, order in orders.items()
    ]  # fmt: skip
    diffed: dict[str, str] = {}
    sent = _send(rt, fetched, stream, errors, diffed)
    _merge(outcome, sent)
    for key, group in groups.items():
        for item in group:
            if item is newest[key] or key in errors:
                _settle(outcome, batch, item, key, errors.get(key), _word(sent, key))
            else:  # an older notice of an order this batch sends as it is now
                _extra(outcome, batch, item, "skipped")
    _record(rt, batch, {"orders": outcome}, inbox, {"orders": diffed})


def _buyers(
    rt: Realtime,
    vtex: VtexClient,
    orders: dict[str, dict[str, Any] | None],
    errors: dict[str, Exception],
) -> dict[str, dict[str, Any] | None]:
    """Each order's buyer ``CL`` document (``None``: a guest), found in one search per 50; if the
    search fails, so do the orders that needed it."""
    owners = {
        key: uid
        for key, order in orders.items()
        if order and (uid := (order.get("clientProfileData") or {}).get("userProfileId"))
    }
    if not owners:
        return {}
    fields = list(rt.engine.mapping.order_customer_fields)
    try:
        found = vtex.find_customers_by_user_ids(sorted(set(owners.values())), fields)
    except Exception as error:  # the batch-mates without a registered buyer go on
        errors.update({key: error for key in owners})
        return {}
    return {key: found.get(uid) for key, uid in owners.items()}


def _recency(notice: OrderNotice) -> datetime:
    """When the notified change happened, for picking an order's newest notice in a batch."""
    try:
        return parse_time(notice.current_change or notice.last_change)
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)


def _read_each(
    rt: Realtime, read: Callable[[str], dict[str, Any] | None], keys: list[str]
) -> tuple[dict[str, dict[str, Any] | None], dict[str, Exception]]:
    """``read`` each key on ``rt.readers`` (the rate budget is shared): the records by key, and
    the error of each read that failed, which fails only its own record."""

    def attempt(key: str) -> tuple[str, Any, Exception | None]:
        try:
            return key, read(key), None
        except Exception as error:
            return key, None, error

    if len(keys) <= 1 or rt.engine.settings.sync_fetch_concurrency <= 1:
        results = [attempt(key) for key in keys]
    else:
        results = list(rt.readers.map(attempt, keys))
    records = {key: record for key, record, error in results if error is None}
    return records, {key: error for key, _, error in results if error is not None}


def _send(
    rt: Realtime,
    fetched: list[Fetched],
    stream: Stream,
    errors: dict[str, Exception],
    diffed: dict[str, str],
) -> ChunkOutcome:
    """``map_diff_send`` the batch; if the call fails, every record in it has that error.
    ``diffed`` receives the ledger hashes the diff read (what the outcome expects to find)."""

    def hashes(ledger_stream: str, keys: Sequence[str]) -> dict[str, str]:
        found = rt.engine.store.ledger.hashes(ledger_stream, keys)
        diffed.update(found)
        return found

    try:
        return map_diff_send(fetched, stream, rt.engine.synerise, hashes)
    except Exception as error:
        errors.update({item.key: error for item in fetched})
        return ChunkOutcome(stream=stream.ledger)


def _merge(outcome: ChunkOutcome, sent: ChunkOutcome) -> None:
    """Take what the send recorded (not its ``read``: the batch counts notifications)."""
    outcome.accepted.update(sent.accepted)
    outcome.rejections.extend(sent.rejections)
    outcome.warnings.extend(sent.warnings)
    outcome.skipped += sent.skipped
    outcome.guests = sent.guests


def _word(sent: ChunkOutcome, key: str) -> str:
    if key in sent.accepted:
        return "sent"
    if any(rejection.record_key == key for rejection in sent.rejections):
        return "rejected"
    return "skipped"


def _extra(outcome: ChunkOutcome, batch: Batch, item: Item[Any], word: str) -> None:
    """An item that had no effect of its own (a duplicate, a skip): read and skipped."""
    outcome.read += 1
    outcome.skipped += 1
    batch.words[item.token] = word


def _settle(
    outcome: ChunkOutcome,
    batch: Batch,
    item: Item[Any],
    key: str,
    error: Exception | None,
    word: str,
) -> None:
    """Count an item whose record went through the send (``word``) or failed (``error``): a
    skippable record is rejected, a fatal error or a last attempt is kept as a
    ``DELIVERY_FAILED`` reject, anything else is delivered again."""
    if error is None:
        outcome.read += 1
        batch.words[item.token] = word
        return
    if not isinstance(error, SkippableRecordError | FatalError) and not item.final:
        batch.retry[item.token] = error
        return
    if any(rejection.record_key == key for rejection in outcome.rejections):
        _extra(outcome, batch, item, "skipped")  # the batch rejected this record already
        return
    outcome.read += 1
    if isinstance(error, SkippableRecordError):
        outcome.reject(error.key or key, str(error.reason), redact_text(error.message))
        batch.words[item.token] = "rejected"
        return
    when = "" if isinstance(error, FatalError) else " after retries"
    log.error("realtime %s %s failed%s: %s", outcome.stream, key, when, redact_text(str(error)))
    outcome.reject(key, DELIVERY_FAILED, redact_text(f"{type(error).__name__}: {error}"))
    batch.words[item.token] = "failed"


def _record(
    rt: Realtime,
    batch: Batch,
    outcomes: dict[str, ChunkOutcome],
    inbox: str | None,
    diffed: dict[str, dict[str, str]],
) -> None:
    """One transaction for the batch. If another drain recorded some of its entries first (it
    took them over while this one stalled), those are done and the rest is delivered again.

    If a historical chunk recorded one of the batch's records after the diff read its ledger row
    (it read the record before this change and may have sent it after this batch did), nothing
    is recorded and the whole batch is delivered again: read again, it is sent as it is now.
    """
    tokens = list(batch.words)
    try:
        rt.runs.record_batch(outcomes, inbox, tokens if inbox else (), expected=diffed)
    except LedgerMovedError as moved:
        again = RetriableError(
            f"a historical sync recorded {len(moved.moved)} of these records meanwhile;"
            " they are read again"
        )
        batch.retry.update({token: again for token in tokens})
        batch.words = {}
    except AlreadyRecorded as overtaken:
        again = RetriableError("another drain recorded part of this batch first")
        batch.retry.update({token: again for token in tokens if token not in overtaken.entries})
        batch.words = {token: "redone" for token in tokens if token in overtaken.entries}


def _single(batch: Batch) -> str:
    """The word of a batch of one, or its error to retry."""
    for error in batch.retry.values():
        raise error
    [word] = batch.words.values()
    return word


# -- one notification (a task each) -----------------------------------------------------------


def sync_customer(rt: Realtime, change: CustomerChange, *, final_attempt: bool = True) -> str:
    """A ``CL`` document was created or changed: upsert its profile if the payload changed.
    Before the last attempt a failure is raised, so the task retries it."""
    return _single(sync_customers(rt, [Item("", change, final_attempt)]))


def delete_customer(
    rt: Realtime,
    deletion: CustomerDeletion,
    received_at: str,
    token: str,
    *,
    final_attempt: bool = True,
) -> str:
    """A ``CL`` document was deleted: apply ``DELETE_BEHAVIOUR`` to its Synerise profile."""
    scope, stream = "customers_updated", "profiles"
    behaviour = rt.engine.settings.delete_behaviour
    email = usable_email(deletion.email)
    identity = deletion.user_id or (email.lower() if email else None)
    namespace = rt.engine.mapping.salt_namespace
    key = deletion.document_id or deletion.user_id or _email_key(deletion.email, namespace)
    # The CL id tells a re-created customer's deletion from a redelivery of the first one.
    subject = fingerprint(f"{identity}|{deletion.document_id or ''}", namespace, 32)
    if behaviour == "ignore":
        rt.count(scope, read=1, skipped=1)
        return "ignored"
    if identity is None:
        return rt.reject(
            scope, stream, key, RejectReason.MISSING_IDENTIFIER,
            "the deletion names no userId and no usable e-mail",
        )  # fmt: skip
    if behaviour == "remove" and deletion.user_id is None:
        return rt.reject(
            scope, stream, key, RejectReason.MISSING_IDENTIFIER,
            "DELETE_BEHAVIOUR=remove needs the userId (Synerise deletes by customId only)",
        )  # fmt: skip
    once_key = f"delete:{subject}"
    if not rt.once.claim(once_key, token):
        rt.count(scope, read=1, skipped=1)
        return "duplicate"

    def work() -> str:
        if behaviour == "remove":
            assert deletion.user_id is not None
            existed = rt.engine.synerise.delete_profile_by_custom_id(deletion.user_id)
            rt.count(scope, read=1, sent=int(existed), skipped=int(not existed))
            return "removed" if existed else "absent"
        client: dict[str, Any] = {}
        if deletion.user_id:
            client["customId"] = deletion.user_id
        if email:
            client["email"] = email
        rt.engine.synerise.send_custom_event(
            {
                "action": DELETE_ACTION,
                "label": DELETE_LABEL,
                "client": client,
                "time": received_at,
                "eventSalt": f"{namespace}:{DELETE_ACTION}:{subject}",
                "params": {"source": "vtex-masterdata"},
            }
        )
        rt.count(scope, read=1, sent=1)
        return "event"

    return _releasing(
        rt, once_key, token, lambda: recorded(rt, scope, stream, key, final_attempt, work)
    )


def usable_email(value: str | None) -> str | None:
    """An address Synerise may be given: the real one inside a soft VTEX alias, never a hard one."""
    if value is None:
        return None
    if is_masked_vtex_email(value):
        value = unmask_soft_alias(value)
    return value if value is not None and is_valid_email(value) else None


def _email_key(email: str | None, namespace: str) -> str:
    """A reject key for a record known only by e-mail: a pseudonym, never the address."""
    return f"email:{fingerprint((email or '').lower(), namespace)}"


# -- orders ---------------------------------------------------------------------------------


class HookOrders(OrdersStream):
    """Orders as the hook sees them: ``context`` carries the buyer and the status to report."""

    def buyer(self, fetched: Fetched) -> dict[str, Any] | None:
        return (fetched.context or {}).get("customer")

    def status(self, fetched: Fetched) -> str | None:
        return (fetched.context or {}).get("status")


def sync_order(
    rt: Realtime,
    notice: OrderNotice,
    token: str,
    *,
    final_attempt: bool = True,
    vtex: VtexClient | None = None,
) -> str:
    """Send or update the order's transaction, once per notification (``token`` holds the
    claim); the order is read with ``vtex`` (a sub-account's client, ``etl.sync.accounts``), the
    connection's by default. Before the last attempt a failure is raised, so the task retries."""
    return _single(sync_orders(rt, [Item(token, notice, final_attempt)], vtex=vtex))


def reported_status(order: dict[str, Any], notice: OrderNotice) -> str | None:
    """The status the transaction reports: the notification's, unless the order moved on.

    The notification names the status that triggered it, which the order body may not show yet.
    But notifications can arrive late or out of order (VTEX retries): when the body is newer
    than the notification (``lastChange`` after ``CurrentChange``), or the notification has no
    ``CurrentChange`` to tell, the body's own status wins, so a late ``invoiced`` never
    un-cancels a canceled order. ``None`` means "the body's status".
    """
    if order.get("status") == notice.state or not notice.current_change:
        return None
    body_change = order.get("lastChange")
    try:
        if isinstance(body_change, str) and parse_time(body_change) > parse_time(
            notice.current_change
        ):
            return None
    except ValueError:
        return None
    return notice.state


# -- helpers --------------------------------------------------------------------------------


def _releasing(rt: Realtime, key: str, token: str, work: Callable[[], str]) -> str:
    """Run ``work`` under a claim: a failure gives the claim up so a later delivery may work."""
    try:
        result = work()
    except BaseException:
        rt.once.release(key, token)
        raise
    if result == "failed":
        rt.once.release(key, token)
    return result


def received_now() -> str:
    """The receive time a webhook stamps on work it enqueues (UTC, milliseconds)."""
    now = datetime.now(UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"
