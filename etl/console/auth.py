"""HTTP Basic authentication for the console: ``CONSOLE_BASIC_AUTH=user:password[,user:password]``.

Every page, the JSON API and ``/metrics`` ask for it; only ``/healthz`` and ``/readyz`` (which
say nothing but "ok") answer without it, for container health checks. Passwords are compared in
constant time and never logged.
"""

from __future__ import annotations

import base64
import binascii
import hmac

from werkzeug.wrappers import Request, Response

__all__ = ["REALM", "BasicAuth", "challenge"]

REALM = "vtex-synerise console"


class BasicAuth:
    """The accepted ``user:password`` pairs.

    Args:
        pairs: ``user:password`` pairs, comma-separated (``etl.config`` has checked the form).
    """

    def __init__(self, pairs: str) -> None:
        self._users: dict[str, bytes] = {}
        for pair in pairs.split(","):
            user, _, password = pair.partition(":")
            self._users[user] = password.encode()

    def __repr__(self) -> str:
        return f"BasicAuth(users={sorted(self._users)!r})"

    def user(self, request: Request) -> str | None:
        """The authenticated user of ``request``, or ``None``."""
        scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        user, _, password = decoded.partition(":")
        expected = self._users.get(user)
        # Compare even for an unknown user, so timing does not tell users apart.
        match = hmac.compare_digest(password.encode(), expected or b"\0" * 32)
        return user if expected is not None and match else None


def challenge() -> Response:
    """401 asking the browser for the credentials."""
    return Response(
        "authentication required\n",
        status=401,
        headers={"WWW-Authenticate": f'Basic realm="{REALM}", charset="UTF-8"'},
        mimetype="text/plain",
    )
