"""The one HTTP seam the VTEX and Synerise clients share: budget, send, classify, retry.

Every request goes through ``HttpClient.request``, which, per attempt:

1. takes a token from the shared rate budget (``etl.ratelimit.RateBudget``), if any;
2. sends with a connect/read timeout; transport failures become ``NetworkError``;
3. maps the answer with ``etl.errors.classify_response``; with a refreshable auth (Synerise
   JWT) a 401 drops the token and the request is sent once more with a fresh login;
4. raises the mapped error, so ``etl.retry.call_with_retry`` retries the retriable ones
   (penalising the budget after a 429, so every process backs off) and lets the rest through.

Statuses the table leaves to the caller come back as the response when the caller listed them
in ``allow`` (404 → ``None``, 400 → split a batch ...); any other one is a ``FatalError``: the
client and the service disagree about the API, and retrying cannot fix that.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable, Collection, Mapping
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from requests.auth import AuthBase
from requests.sessions import merge_setting
from requests.utils import get_environ_proxies

from etl.errors import (
    AuthenticationError,
    Body,
    EtlError,
    FatalError,
    NetworkError,
    RateLimitedError,
    RetriableError,
    ServerError,
    TokenExpiredError,
    classify_response,
)
from etl.redaction import redact_text
from etl.retry import RetryPolicy, call_with_retry, parse_retry_after

if TYPE_CHECKING:
    from etl.apiusage import FamilyUsage
    from etl.config import Secret
    from etl.ratelimit import RateBudget

__all__ = [
    "HttpClient",
    "RefreshableAuth",
    "Timeout",
    "decode_body",
    "describe_body",
    "new_session",
    "reveal",
]

log = logging.getLogger(__name__)

Timeout = tuple[float, float]
"""``(connect, read)`` seconds, as ``requests`` takes them."""

_TEXT_LIMIT = 300


def reveal(value: Secret | str) -> str:
    """The plain text of a secret, whether an ``etl.config.Secret`` or a ``str``."""
    return value if isinstance(value, str) else value.reveal()


@runtime_checkable
class RefreshableAuth(Protocol):
    """An auth whose credential can go stale (a JWT) and be obtained again."""

    def invalidate(self, request: requests.PreparedRequest) -> None:
        """Forget the credential ``request`` carried, so the next request logs in again."""


class _Session(requests.Session):
    """A ``requests.Session`` that reads the environment's proxy settings once per host.

    Performance (bench/orders.py, docs/benchmarks.md): with ``trust_env`` a plain session scans
    every environment variable on each request to find proxies (``get_environ_proxies``), which
    cost about 6% of a worker's CPU in an orders sync. The answer depends only on the target
    host and the environment, so it is kept per ``(scheme, host, no_proxy)``; ``HTTP(S)_PROXY``,
    ``NO_PROXY`` and ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE`` work as before, read when the
    session first talks to a host (change them, then start a new process).
    """

    def __init__(self) -> None:
        super().__init__()
        self._env_proxies: dict[tuple[str, str, str | None], dict[str, str]] = {}
        self._env_ca_bundle: str | None = None
        self._env_read = False

    def merge_environment_settings(  # type: ignore[override]  # the same dict, typed loosely
        self, url: Any, proxies: Any, stream: Any, verify: Any, cert: Any
    ) -> dict[str, Any]:
        if self.trust_env:
            parts = urlsplit(str(url))
            no_proxy = proxies.get("no_proxy") if proxies is not None else None
            key = (parts.scheme, parts.netloc, no_proxy)
            found = self._env_proxies.get(key)
            if found is None:
                found = self._env_proxies[key] = get_environ_proxies(str(url), no_proxy)
            proxies = dict(proxies or {})
            for scheme, proxy in found.items():
                proxies.setdefault(scheme, proxy)
            if not self._env_read:
                bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
                self._env_ca_bundle, self._env_read = bundle, True
            if verify is True or verify is None:
                verify = self._env_ca_bundle or verify
        return {
            "proxies": merge_setting(proxies, self.proxies),
            "stream": merge_setting(stream, self.stream),
            "verify": merge_setting(verify, self.verify),
            "cert": merge_setting(cert, self.cert),
        }


def new_session(pool_maxsize: int = 16) -> requests.Session:
    """A session whose pool keeps ``pool_maxsize`` connections per host (one per thread).

    ``requests`` retries nothing itself (``max_retries=0``): retries are ``etl.retry``'s job.
    """
    if pool_maxsize < 1:
        raise ValueError(f"pool_maxsize must be at least 1, got {pool_maxsize!r}")
    session = _Session()
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_maxsize, max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


def decode_body(response: requests.Response) -> Body:
    """The JSON (object or array) of a response, else its text, else ``None``."""
    if not response.content:
        return None
    try:
        data = response.json()
    except ValueError:
        return response.text
    return data if isinstance(data, dict | list) else response.text


def describe_body(body: Body) -> str:
    """A one-line summary of an error body: its error texts, never the values we sent.

    Synerise's ``errors[]`` carry ``rejectedValue`` (an e-mail, a phone): only ``field`` and
    ``message`` are kept, and the text goes through ``etl.redaction.redact_text`` in case a
    message quotes an address or a credential.
    """
    if isinstance(body, str):
        text = " ".join(body.split())
    elif isinstance(body, Mapping):
        parts = [
            str(body[key]) for key in ("error", "message", "Message") if body.get(key)
        ]
        errors = body.get("errors")
        if isinstance(errors, list):
            parts += [_describe_item_error(item) for item in errors if item]
        text = "; ".join(dict.fromkeys(parts))
    elif isinstance(body, list):
        text = "; ".join(_describe_item_error(item) for item in body if item)
    else:
        text = ""
    text = redact_text(text) or "no error text"
    return text if len(text) <= _TEXT_LIMIT else text[: _TEXT_LIMIT - 3] + "..."


def _describe_item_error(item: object) -> str:
    """``field: message`` of one Synerise ``Error`` object (any other value as text)."""
    if not isinstance(item, Mapping):
        return str(item)
    field, message = item.get("field"), item.get("message") or item.get("error") or "rejected"
    return f"{field}: {message}" if field else str(message)


class HttpClient:
    """A base URL, a session, and the attempt loop every request of one service goes through.

    Args:
        base_url: scheme and host (and prefix) that relative paths are appended to.
        service: the name used in error messages (``VTEX``, ``Synerise``).
        session: a ``requests.Session`` to use as is; default ``new_session(pool_maxsize)``.
        auth: a ``requests`` auth applied to every request; a ``RefreshableAuth`` is asked to
            log in again once when a request gets a 401.
        budget: the shared rate budget; ``acquire()`` before every request (retries and the
            post-login resend included), ``penalize()`` after a 429.
        retry: the retry policy (default ``RetryPolicy()``).
        timeout: ``(connect, read)`` seconds.
        pool_maxsize: connections kept per host when the session is created here.
        headers: sent with every request (per-request headers win).
        hints: text appended to a fatal error's message per error class, naming the fix
            (``FatalError`` is the hint for unexpected statuses).

    Every answer (or network failure) is counted per API family in ``etl.apiusage`` through
    the budget's ``usage`` counters when the budget has them (``RedisTokenBucket`` does).
    """

    def __init__(
        self,
        base_url: str,
        *,
        service: str,
        session: requests.Session | None = None,
        auth: AuthBase | None = None,
        budget: RateBudget | None = None,
        retry: RetryPolicy | None = None,
        timeout: Timeout = (5.0, 30.0),
        pool_maxsize: int = 16,
        headers: Mapping[str, str] | None = None,
        hints: Mapping[type[EtlError], str] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.service = service
        self.session = session if session is not None else new_session(pool_maxsize)
        self.auth = auth
        self.budget = budget
        self.retry = retry or RetryPolicy()
        self.timeout = timeout
        self.headers = dict(headers or {})
        self.hints = dict(hints or {})
        self.usage: FamilyUsage | None = getattr(budget, "usage", None)

    def __repr__(self) -> str:
        return f"HttpClient({self.service}, {self.base_url!r})"

    def url(self, path: str) -> str:
        """``path`` under the base URL; an absolute URL is used as is."""
        return path if "://" in path else f"{self.base_url}{path}"

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        data: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        allow: Collection[int] = (),
        check: Callable[[requests.Response], None] | None = None,
        retried: bool = True,
    ) -> requests.Response:
        """Send a request with the budget, error mapping and retries.

        Args:
            method: the HTTP method.
            path: a path under the base URL (or an absolute URL).
            params: query parameters.
            json: a body to encode as JSON.
            data: a body already encoded (batches measure their bytes first).
            headers: extra headers for this request.
            allow: 4xx statuses the caller handles itself; the response is returned.
            check: runs on every successful answer inside the retried attempt; it may raise a
                ``RetriableError`` for a 200 that is not usable yet (a missing scroll token).
            retried: ``False`` for a call that must not be repeated as it is, because a failed
                one may have been served and moved a cursor on (a scroll page): one attempt,
                and its ``RetriableError`` is the caller's to handle.

        Returns:
            The response: any status below 400, or one listed in ``allow``.

        Raises:
            RetriableError: still failing after the policy's attempts.
            FatalError: credentials, permissions, or a status nobody expected.
            PausedError: the rate budget will not grant a request soon enough.
        """

        def attempt() -> requests.Response:
            def send() -> requests.Response:
                return self._send(method, path, params, json, data, headers)

            response = send()
            error = self._error(method, path, response, allow)
            if isinstance(error, TokenExpiredError | AuthenticationError) and isinstance(
                self.auth, RefreshableAuth
            ):
                self.auth.invalidate(response.request)
                response = send()
                error = self._error(method, path, response, allow)
            if error is not None:
                raise error
            if check is not None:
                check(response)
            return response

        policy = self.retry if retried else dataclasses.replace(self.retry, max_attempts=1)
        try:
            return call_with_retry(attempt, policy, self._on_retry)
        except RateLimitedError as error:  # the last attempt's 429 still slows everyone down
            self._on_retry(error, policy.max_attempts, policy.sleep_for(
                policy.max_attempts, error.retry_after))  # fmt: skip
            raise

    def _send(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None,
        json: Any,
        data: bytes | None,
        headers: Mapping[str, str] | None,
    ) -> requests.Response:
        if self.budget is not None:
            self.budget.acquire()
        try:
            response = self.session.request(
                method,
                self.url(path),
                params=params,
                json=json,
                data=data,
                headers={**self.headers, **(headers or {})},
                auth=self.auth,
                timeout=self.timeout,
            )
        except (requests.ConnectionError, requests.Timeout) as error:
            if self.usage is not None:
                self.usage.response(None)
            # The cause stays chained for debugging; the message names no query or header.
            raise NetworkError(
                f"{self.service} {method} {path}: {type(error).__name__}"
            ) from error
        if self.usage is not None:
            self.usage.response(response.status_code)
        log.debug("%s %s %s -> %s", self.service, method, path, response.status_code)
        return response

    def _error(
        self, method: str, path: str, response: requests.Response, allow: Collection[int]
    ) -> EtlError | None:
        """The error an answer stands for, or ``None`` when the caller gets the response."""
        status = response.status_code
        body = decode_body(response) if status >= 400 else None
        kind = classify_response(status, body, response.headers)
        if kind is None and (status < 400 or status in allow):
            return None
        text = f"{self.service} answered {status} to {method} {path}: {describe_body(body)}"
        if kind is RateLimitedError:
            return RateLimitedError(parse_retry_after(response.headers.get("Retry-After")), text)
        if kind is ServerError:
            return ServerError(status, text)
        kind = kind or FatalError
        hint = self.hints.get(kind)
        return kind(f"{text}. {hint}" if hint else text)

    def _on_retry(self, error: RetriableError, attempt: int, delay: float) -> None:
        """After a 429 hold every process back for the service's wait (or ours)."""
        if self.budget is not None and isinstance(error, RateLimitedError):
            self.budget.penalize(error.retry_after if error.retry_after is not None else delay)
