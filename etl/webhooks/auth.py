"""Who may call the webhooks: the holder of ``WEBHOOK_SECRET``, sent in one header.

Master Data triggers, the VTEX Orders Hook (``vtex hook register`` configures the header) and the
Synerise automation all send ``x-synerise-api-key: <WEBHOOK_SECRET>``. The comparison takes the
same time whatever the mismatch (``hmac.compare_digest``), so the secret cannot be guessed byte
by byte from response times.
"""

from __future__ import annotations

import hmac

__all__ = ["HEADER", "SecretCheck"]

HEADER = "x-synerise-api-key"


class SecretCheck:
    """Compares a request's header with the shared secret in constant time."""

    __slots__ = ("_secret",)

    def __init__(self, secret: str) -> None:
        if not secret:
            raise ValueError("the webhook secret must not be empty")
        self._secret = secret.encode()

    def __repr__(self) -> str:
        return "SecretCheck('***')"

    def __call__(self, given: str | None) -> bool:
        """True when ``given`` (the header's value, if any) is the secret."""
        if not given:
            return False
        return hmac.compare_digest(given.encode(), self._secret)
