"""Synerise workspace authentication: a JWT from the API key, or Basic ``GUID:key``.

``TokenAuth`` logs in at ``POST /uauth/v2/auth/login/profile`` and caches the token for every
thread of the process. It logs in again before the JWT's ``exp`` (when the token has one; the
lifetime is 1 hour or 1 week depending on the source and workspace) and, through
``etl.http.HttpClient``, once after a 401 (``Token expired.``), as Synerise's own plugins do.
``BasicAuth`` needs no round trip but must be enabled on the API key.

Neither ever shows its key or token: ``repr`` masks them and errors quote only the service.
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import requests
from requests.auth import AuthBase

from etl.errors import (
    AuthenticationError,
    EtlError,
    FatalError,
    PermissionDeniedError,
)
from etl.http import HttpClient, Timeout, decode_body, reveal
from etl.retry import RetryPolicy

if TYPE_CHECKING:
    from etl.config import Secret

__all__ = ["API_HEADERS", "HINTS", "LOGIN_PATH", "BasicAuth", "TokenAuth", "jwt_expiry"]

LOGIN_PATH = "/uauth/v2/auth/login/profile"
"""Workspace ("profile") login; the legacy ``/v4/auth/login/profile`` is deprecated."""

API_HEADERS = {
    "Content-Type": "application/json",
    "Accept": "application/json",
    "Api-Version": "4.4",
}
"""Sent with every Synerise call, as the official SDK and plugins do."""

HINTS: dict[type[EtlError], str] = {
    AuthenticationError: (
        "Check SYNERISE_API_KEY (a workspace API key), SYNERISE_API_HOST (the workspace's "
        "region) and, for Basic auth, SYNERISE_WORKSPACE_GUID (Basic must be enabled on the key)"
    ),
    PermissionDeniedError: (
        "Grant the API key the permission this call needs (API_BATCH_CLIENT_CREATE, "
        "API_BATCH_TRANSACTION_CREATE, API_CUSTOM_EVENTS_CREATE, CATALOGS_*)"
    ),
    FatalError: "Check SYNERISE_API_HOST; this client does not expect that answer",
}
"""How to fix each fatal answer of Synerise, appended to its message."""


def jwt_expiry(token: str) -> float | None:
    """The ``exp`` claim (epoch seconds) of a JWT, read without verifying it; ``None`` if absent."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, binascii.Error):
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    if isinstance(exp, bool) or not isinstance(exp, int | float):
        return None
    return float(exp)


class TokenAuth(AuthBase):
    """Bearer JWT from a workspace API key; thread-safe, one login at a time.

    Args:
        base_url: the Synerise API host (``https://api.synerise.com`` ...).
        api_key: the workspace API key (``etl.config.Secret`` or ``str``).
        session: the session to log in with (share the client's pool).
        timeout: ``(connect, read)`` seconds of the login call.
        refresh_margin: log in again when the token expires within this many seconds.
        clock: epoch seconds; tests inject a fake.
    """

    def __init__(
        self,
        base_url: str,
        api_key: Secret | str,
        session: requests.Session | None = None,
        *,
        timeout: Timeout = (5.0, 30.0),
        refresh_margin: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        # One attempt: the request that needed the token retries as a whole.
        self._http = HttpClient(
            base_url,
            service="Synerise login",
            session=session,
            retry=RetryPolicy(max_attempts=1),
            timeout=timeout,
            headers=API_HEADERS,
            hints=HINTS,
        )
        self._api_key = api_key
        self._refresh_margin = refresh_margin
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._refresh_at: float | None = None
        self.logins = 0
        """How many times this auth logged in (for logs and tests)."""

    def __repr__(self) -> str:
        return f"TokenAuth(base_url={self._http.base_url!r}, api_key='***')"

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self.token()}"
        return request

    def token(self) -> str:
        """The cached token, after logging in when there is none or it is about to expire.

        Raises:
            AuthenticationError: Synerise refused the API key.
            RetriableError: the login failed transiently (the caller's retry covers it).
        """
        with self._lock:
            token, refresh_at = self._token, self._refresh_at
            if token is None or (refresh_at is not None and self._clock() >= refresh_at):
                token = self._log_in()
            return token

    def invalidate(self, request: requests.PreparedRequest) -> None:
        """Forget the token ``request`` carried (a 401); a newer one is kept."""
        used = request.headers.get("Authorization")
        with self._lock:
            if self._token is not None and used == f"Bearer {self._token}":
                self._token = None

    def _log_in(self) -> str:
        self._token = None
        response = self._http.request("POST", LOGIN_PATH, json={"apiKey": reveal(self._api_key)})
        body = decode_body(response)
        token = body.get("token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise FatalError(f"Synerise login answered {response.status_code} without a token")
        self.logins += 1
        self._token = token
        expiry, now = jwt_expiry(token), self._clock()
        # A token shorter-lived than twice the margin is refreshed at half its life instead.
        self._refresh_at = (
            None if expiry is None else expiry - min(self._refresh_margin, (expiry - now) / 2)
        )
        return token


class BasicAuth(AuthBase):
    """``Authorization: Basic base64(GUID:API key)``; no expiry, no login call.

    Args:
        guid: the workspace GUID (an identifier, shown in reprs).
        api_key: the workspace API key (``etl.config.Secret`` or ``str``); never shown.
    """

    def __init__(self, guid: str, api_key: Secret | str) -> None:
        if not guid:
            raise ValueError("guid must not be empty")
        self.guid = guid
        self._api_key = api_key

    def __repr__(self) -> str:
        return f"BasicAuth(guid={self.guid!r}, api_key='***')"

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        pair = f"{self.guid}:{reveal(self._api_key)}".encode()
        request.headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
        return request
