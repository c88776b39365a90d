"""Realtime sync: one webhook notification at a time, with the historical sync's mapping and ledger.

The thin tasks in ``workers/tasks/realtime.py`` call these functions; the webhook service only
enqueues. Each function returns a word saying what happened (``sent``, ``skipped``,
``duplicate``, ``rejected``, ``failed``...) for logs and tests.

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

Outcomes go to the day's ``realtime`` run of the scope (``etl.state.realtime``). Errors: a
``RetriableError``, a paused budget or an outage propagates so the task retries it; on the final
attempt, or for a ``FatalError``, the record is kept as a ``DELIVERY_FAILED`` reject, which
``sync rejects`` lists and ``sync replay`` retries.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from etl.connections import DEFAULT
from etl.errors import FatalError, SkippableRecordError
from etl.redaction import fingerprint, redact_text
from etl.state.chunks import ChunkOutcome
from etl.state.realtime import RealtimeRuns
from etl.sync.changes import CustomerChange, CustomerDeletion, OrderNotice
from etl.sync.engine import Engine
from etl.sync.guards import EchoGuard, OnceGuard
from etl.sync.pipeline import map_diff_send
from etl.sync.streams import Fetched, OrdersStream
from etl.sync.windows import parse_time
from etl.vtex.client import VtexClient
from schemas.reasons import RejectReason
from schemas.rules import is_masked_vtex_email, is_valid_email, unmask_soft_alias

__all__ = [
    "DELIVERY_FAILED",
    "Realtime",
    "delete_customer",
    "sync_customer",
    "sync_order",
]

log = logging.getLogger(__name__)

DELIVERY_FAILED = "DELIVERY_FAILED"
"""Reject reason of a notification whose retries ran out (replay it with ``sync replay``)."""

DELETE_ACTION = "client.deleteAccount"
DELETE_LABEL = "clientDeleteAccount"


@dataclass
class Realtime:
    """What realtime processing needs besides the engine: runs and the two Redis guards."""

    engine: Engine
    runs: RealtimeRuns
    once: OnceGuard
    echo: EchoGuard

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


# -- customers ------------------------------------------------------------------------------


def sync_customer(rt: Realtime, change: CustomerChange, *, final_attempt: bool = True) -> str:
    """A ``CL`` document was created or changed: upsert its profile if the payload changed."""
    scope = "customers_created" if change.change == "created" else "customers_updated"
    stream = rt.engine.stream(scope)

    def work() -> str:
        fields = [*rt.engine.mapping.profile_source_fields, "updatedIn"]
        document = rt.engine.vtex.get_customer(change.id, fields)
        echo = rt.echo.recall(change.id)
        if document is not None and echo is not None and echo.covers(document):
            # Our own consent write (or an older read): Synerise's value is the newest one.
            document = {**document, "isNewsletterOptIn": echo.value}
        outcome = map_diff_send([Fetched(change.id, document)], stream, rt.engine.synerise,
                                rt.engine.store.ledger.hashes)  # fmt: skip
        rt.record(scope, outcome)
        return _word(outcome)

    return recorded(rt, scope, stream.ledger, change.id, final_attempt, work)


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
    """Send or update the order's transaction, once per notification; the order is read with
    ``vtex`` (a sub-account's client, ``etl.sync.accounts``), the connection's by default."""
    scope = "orders"
    if not rt.once.claim(notice.dedupe_key, token):
        rt.count(scope, read=1, skipped=1)
        return "duplicate"
    reader = vtex or rt.engine.vtex
    stream = HookOrders(reader, rt.engine.mapping)

    def work() -> str:
        settings, vtex = rt.engine.settings, reader
        known = rt.engine.store.ledger.hashes(stream.ledger, [notice.order_id])
        if notice.order_id in known and notice.state not in settings.order_update_statuses:
            rt.count(scope, read=1, skipped=1)
            return "skipped"
        order = vtex.get_order(notice.order_id)
        context: dict[str, Any] = {}
        if order is not None:
            user_id = (order.get("clientProfileData") or {}).get("userProfileId")
            if user_id:
                fields = list(rt.engine.mapping.order_customer_fields)
                context["customer"] = vtex.find_customer_by_user_id(user_id, fields)
            context["status"] = reported_status(order, notice)
        outcome = map_diff_send([Fetched(notice.order_id, order, context)], stream,
                                rt.engine.synerise, rt.engine.store.ledger.hashes)  # fmt: skip
        rt.record(scope, outcome)
        return _word(outcome)

    return _releasing(
        rt,
        notice.dedupe_key,
        token,
        lambda: recorded(rt, scope, stream.ledger, notice.order_id, final_attempt, work),
    )


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


def _word(outcome: ChunkOutcome) -> str:
    if outcome.rejections:
        return "rejected"
    if outcome.accepted:
        return "sent"
    return "skipped"


def received_now() -> str:
    """The receive time a webhook stamps on work it enqueues (UTC, milliseconds)."""
    now = datetime.now(UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"
