"""CSRF protection for the console's forms and JSON API.

Browsers resend Basic credentials to any site's request, so another page could submit the
console's forms in the operator's name. Two defences:

* every form carries a token, ``{issued}.{HMAC(key, user|issued)}``, valid for ``TOKEN_TTL``
  and only for the user it was issued to; the key is random per server start and shared by
  its worker processes;
* a request whose ``Sec-Fetch-Site`` or ``Origin`` says it comes from another site is refused,
  token or not. JSON API writes must be ``application/json``, which a cross-site form cannot
  send without a CORS preflight the console never grants.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from urllib.parse import urlsplit

from werkzeug.wrappers import Request

__all__ = ["FIELD", "TOKEN_TTL", "CsrfTokens", "cross_site"]

FIELD = "csrf_token"
TOKEN_TTL = 12 * 3600
"""Seconds a form stays valid (then the page is loaded again)."""


class CsrfTokens:
    """Issues and checks form tokens.

    Args:
        key: the HMAC key (random when omitted); give every worker process the same one.
        clock: epoch seconds (tests pass a fake one).
    """

    def __init__(
        self, key: bytes | None = None, clock: Callable[[], float] = time.time
    ) -> None:
        self._key = key or secrets.token_bytes(32)
        self._clock = clock

    def issue(self, user: str) -> str:
        issued = str(int(self._clock()))
        return f"{issued}.{self._sign(user, issued)}"

    def check(self, user: str, token: str) -> bool:
        issued, _, signature = token.partition(".")
        if not issued.isdigit() or not signature:
            return False
        if not 0 <= self._clock() - int(issued) <= TOKEN_TTL:
            return False
        return hmac.compare_digest(signature, self._sign(user, issued))

    def _sign(self, user: str, issued: str) -> str:
        return hmac.new(self._key, f"{user}|{issued}".encode(), hashlib.sha256).hexdigest()


def cross_site(request: Request) -> bool:
    """True when the browser says the request comes from another site."""
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None and site not in ("same-origin", "none"):
        return True
    origin = request.headers.get("Origin")
    if origin and origin != "null":
        return urlsplit(origin).netloc != request.host
    return origin == "null"
