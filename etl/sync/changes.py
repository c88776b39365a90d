"""The changes realtime work acts on, one per webhook notification: the engine's own records.

The webhook service (``etl.webhooks.payloads``) parses HTTP bodies into these and enqueues them as
JSON (``dataclasses.asdict``); the realtime tasks rebuild them with ``Record(**args)`` and hand them
to ``etl.sync.realtime`` and ``etl.sync.consent``. Fields are plain JSON values, so a message
queued by one version is read by the next: add fields with defaults only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from etl.connections import DEFAULT

__all__ = ["ConsentChange", "CustomerChange", "CustomerDeletion", "OrderNotice"]


@dataclass(frozen=True)
class CustomerChange:
    """A ``CL`` document was created or changed: read it and upsert its profile."""

    id: str
    change: str  # "created" | "updated"
    connection: str = DEFAULT
    """The connection whose webhook received it (``/hooks/{connection}/...``)."""

    @property
    def scope(self) -> str:
        """The realtime run (and inbox) it counts in: created and changed documents apart."""
        return "customers_created" if self.change == "created" else "customers_updated"


@dataclass(frozen=True)
class CustomerDeletion:
    """A ``CL`` document was deleted; what is left to name its profile."""

    email: str | None
    user_id: str | None
    document_id: str | None
    connection: str = DEFAULT


@dataclass(frozen=True)
class OrderNotice:
    """One VTEX Orders Hook notification (the order itself is read again by the task)."""

    order_id: str
    state: str
    last_change: str
    last_state: str | None = None
    current_change: str | None = None
    domain: str | None = None
    origin_account: str | None = None
    """``Origin.Account``: the (sub-)account the order belongs to (``etl.sync.accounts``)."""
    connection: str = DEFAULT

    scope: ClassVar[str] = "orders"
    """The realtime run (and inbox) it counts in."""

    @property
    def dedupe_key(self) -> str:
        """(OrderId, State, LastChange): equal for redeliveries of one status change."""
        return f"hook:{self.order_id}:{self.state}:{self.last_change}"


@dataclass(frozen=True)
class ConsentChange:
    """A marketing-consent change made in Synerise (outgoing webhook of an automation)."""

    custom_id: str | None
    email: str | None
    email_agreement: bool
    connection: str = DEFAULT
