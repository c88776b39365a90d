"""The error taxonomy: what a failure means for the run, whatever raised it.

After the Singer SDK's four-way split. The class says what the run does next, so callers catch
a branch, never a status code::

    EtlError
     ├── FatalError                the run fails; the message names the fix
     │    ├── ConfigError                 a setting is missing or malformed
     │    ├── MissingExtraError(extra)    an optional part of the install is absent
     │    ├── AuthenticationError         401 that re-login cannot cure / bad app key
     │    ├── PermissionDeniedError       403
     │    └── CatalogNotFoundError(id)    404 from a Synerise catalog (deleted): recreate it
     ├── RetriableError            retried with backoff; then the chunk is ``failed`` (resume)
     │    ├── RateLimitedError(retry_after)   429
     │    ├── ServerError(status)             5xx, 408
     │    ├── NetworkError                    connection refused/reset, timeout, Redis down
     │    └── TokenExpiredError               401 {"error": "Token expired."}
     ├── SkippableRecordError(reason, message, key)   one record rejected, its batch goes on
     └── PausedError               the run checkpoints and continues later
          ├── SlotLostError
          ├── ClaimLostError          this worker's claim on a chunk or a planning was taken over
          ├── RunStoppedError         the run was cancelled, paused or ended meanwhile
          └── BudgetExhaustedError

``classify_response`` maps an HTTP answer to one of these classes through a declarative table
(after Airbyte's ``DEFAULT_ERROR_MAPPING``); statuses the table does not name (2xx, 404, 400,
...) are left to the caller, which knows whether to return ``None``, split a batch or reject.

Messages never carry secrets or personal data: a ``ConfigError`` for a secret is built with
``got=None``, and HTTP errors quote the service's error text, never the request.
"""

from __future__ import annotations

import contextlib
from collections.abc import Container, Iterator, Mapping
from dataclasses import dataclass

__all__ = [
    "RESPONSE_RULES",
    "AuthenticationError",
    "BudgetExhaustedError",
    "CatalogNotFoundError",
    "ClaimLostError",
    "ConfigError",
    "EtlError",
    "FatalError",
    "MissingExtraError",
    "NetworkError",
    "PausedError",
    "PermissionDeniedError",
    "RateLimitedError",
    "ResponseRule",
    "RetriableError",
    "RunStoppedError",
    "ServerError",
    "SkippableRecordError",
    "SlotLostError",
    "TokenExpiredError",
    "classify_response",
    "unreachable",
]


class EtlError(Exception):
    """Base of every error this project raises on purpose."""


# -- fatal ------------------------------------------------------------------------------------


class FatalError(EtlError):
    """The run cannot succeed by trying again; a person has to fix something first."""


class ConfigError(FatalError):
    """A setting is missing or malformed.

    Args:
        variable: the environment variable, e.g. ``VTEX_RATE_LIMIT``.
        expected: what a valid value looks like, e.g. ``a positive number``.
        got: the offending value; pass ``None`` for secrets (and for missing values) so the
            message never echoes them.
    """

    def __init__(self, variable: str, expected: str, got: object | None = None) -> None:
        self.variable = variable
        self.expected = expected
        self.got = got
        message = f"{variable}: expected {expected}"
        if got is not None:
            message += f", got {_quote(got)}"
        super().__init__(message)


class MissingExtraError(FatalError):
    """A command needs an optional part of the install (a setup.cfg extra) that is absent.

    Production images leave out what only development needs (the sandbox's aiohttp, for one);
    the message says which extra to install.
    """

    def __init__(self, extra: str, purpose: str) -> None:
        self.extra = extra
        super().__init__(
            f"{purpose} needs the '{extra}' extra: pip install 'vtex-synerise-etl[{extra}]'"
        )


class AuthenticationError(FatalError):
    """The credentials are refused (401 after a fresh login, or a bad app key pair)."""


class PermissionDeniedError(FatalError):
    """The credentials are valid but lack a permission (403)."""


class CatalogNotFoundError(FatalError):
    """Synerise answered 404 for a catalog: it was deleted. Fatal unless the caller recreates
    the catalog and tries once more (what the products stream does, after Synerise's Magento
    module).

    Args:
        catalog_id: the catalog that is gone.
    """

    def __init__(self, catalog_id: int, message: str) -> None:
        self.catalog_id = catalog_id
        super().__init__(message)


# -- retriable --------------------------------------------------------------------------------


class RetriableError(EtlError):
    """Transient: the same call may succeed later (see ``etl.retry.call_with_retry``)."""


class RateLimitedError(RetriableError):
    """The service answered 429.

    Args:
        retry_after: seconds the service asked us to wait (``Retry-After``), if it said.
        message: what was limited; defaults to a generic text.
    """

    def __init__(self, retry_after: float | None, message: str | None = None) -> None:
        self.retry_after = retry_after
        if message is None:
            message = "rate limited"
            if retry_after is not None:
                message += f" (Retry-After {retry_after:g} s)"
        super().__init__(message)


class ServerError(RetriableError):
    """The service failed (5xx) or gave up waiting for our request (408).

    Args:
        status: the HTTP status.
        message: what failed; defaults to ``server error <status>``.
    """

    def __init__(self, status: int, message: str | None = None) -> None:
        self.status = status
        super().__init__(message or f"server error {status}")


class NetworkError(RetriableError):
    """No usable HTTP answer: connection refused or reset, DNS failure, timeout."""


@contextlib.contextmanager
def unreachable(service: str, *errors: type[BaseException]) -> Iterator[None]:
    """Turn a client library's connection errors (``errors``) into ``NetworkError``.

    Found by bench/chaos.py: while Redis restarted, the rate budget, the lease and Celery's
    publish raised ``redis``/``kombu`` connection errors that no layer treated as passing, so
    chunks and the producer failed and runs needed ``sync resume``. As ``NetworkError`` they
    are retried like any other outage.
    """
    try:
        yield
    except errors as error:
        raise NetworkError(f"{service} unreachable: {type(error).__name__}: {error}") from error


class TokenExpiredError(RetriableError):
    """A bearer token expired (Synerise: 401 ``{"error": "Token expired."}``); log in again."""


# -- skippable --------------------------------------------------------------------------------


class SkippableRecordError(EtlError):
    """One record is rejected; the rest of its chunk goes on.

    Args:
        reason: a ``schemas.reasons.RejectReason`` code (a ``str``), stored with the record.
        message: why, for the operator; no personal data.
        key: the record's key (VTEX order id, ``CL`` document id).
    """

    def __init__(self, reason: str, message: str, key: str) -> None:
        self.reason = reason
        self.message = message
        self.key = key
        super().__init__(f"{key}: {reason}: {message}")


# -- paused -----------------------------------------------------------------------------------


class PausedError(EtlError):
    """Not a failure: the run stops here, keeps its checkpoint and continues later."""


class SlotLostError(PausedError):
    """The run's lease slot expired or was taken; stop before the next write."""


class ClaimLostError(PausedError):
    """This worker's claim on a chunk (or on a run's planning) expired and was handed to another
    worker: stop, write nothing; the new holder does the work."""


class RunStoppedError(PausedError):
    """The run was cancelled, paused or finished while a task of it was working: stop quietly."""


class BudgetExhaustedError(PausedError):
    """The shared rate budget will not grant a request soon enough to hold a worker for it."""


# -- HTTP answer → error class -----------------------------------------------------------------

Body = Mapping[str, object] | list[object] | str | None
"""A decoded response body: a JSON object or array, the raw text, or nothing."""


@dataclass(frozen=True, slots=True)
class ResponseRule:
    """One row of the response table: a status (set) and optional body text → an error class.

    Attributes:
        statuses: the HTTP statuses the row applies to.
        error: the class ``classify_response`` returns.
        says: when set, the row applies only if the body says this (see ``_body_says``).
    """

    statuses: Container[int]
    error: type[EtlError]
    says: str | None = None

    def matches(self, status: int, body: Body) -> bool:
        """Whether this row applies to the answer."""
        return status in self.statuses and (self.says is None or _body_says(body, self.says))


RESPONSE_RULES: tuple[ResponseRule, ...] = (
    ResponseRule({401}, TokenExpiredError, says="Token expired."),
    ResponseRule({401}, AuthenticationError),
    ResponseRule({403}, PermissionDeniedError),
    ResponseRule({408}, ServerError),
    ResponseRule({429}, RateLimitedError),
    # VTEX Master Data allows 10 open scrolls per account and says so with a 400.
    ResponseRule({400}, RateLimitedError, says="Maximum simultaneous scrolls"),
    ResponseRule(range(500, 600), ServerError),
)
"""First matching row wins; order from specific to general."""


def classify_response(
    status: int,
    body: Body,
    headers: Mapping[str, str] | None = None,
) -> type[EtlError] | None:
    """The error class an HTTP answer stands for, or ``None`` when the caller decides.

    Args:
        status: the HTTP status.
        body: the decoded JSON (object or array), the text, or ``None``.
        headers: the response headers (unused by the current rules; part of the signature so a
            rule may look at them without changing callers).

    Returns:
        An ``EtlError`` subclass; ``None`` for 1xx-3xx and for 4xx the table does not name
        (404, 400, 413, ...), which the caller turns into ``None``, a batch split or a rejection.
    """
    del headers  # reserved for rules on headers
    for rule in RESPONSE_RULES:
        if rule.matches(status, body):
            return rule.error
    return None


_MESSAGE_KEYS = ("error", "message", "Message")


def _body_says(body: Body, text: str) -> bool:
    """Whether the error text of a body contains ``text`` (VTEX and Synerise keys)."""
    if isinstance(body, str):
        return text in body
    if isinstance(body, Mapping):
        values = (body.get(key) for key in _MESSAGE_KEYS)
        return any(isinstance(value, str) and text in value for value in values)
    return False


def _quote(value: object, limit: int = 80) -> str:
    """``repr`` of a value, shortened so a pasted blob cannot flood a one-line message."""
    text = repr(value if isinstance(value, str) else str(value))
    return text if len(text) <= limit else text[: limit - 4] + "...'"
