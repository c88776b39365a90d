"""The webhook service: a small WSGI app (werkzeug) that authenticates, validates and enqueues.

It answers fast and does no sync work itself: each accepted call becomes work on the
``realtime`` queue (``etl.webhooks.handlers``): in production a customer change or an order
notification is an entry in its realtime inbox (``etl.sync.inbox``, drained in batches), a
deletion or a consent change a task of its own. The answer is 200 only once Redis took the
message, so a sender is never told "done" for work that could be lost. Anything that stops the
enqueue (Redis down, a timeout) answers 503 with ``Retry-After``, and VTEX or Synerise retry.

=====================================  ==================  =======================================
path                                   methods             body (``etl.webhooks.payloads``)
=====================================  ==================  =======================================
``/_v/private/synerise/triggers/customer``  POST PATCH DELETE  Master Data ``CL`` trigger
``/_v/private/synerise/hooks/orders``  POST                VTEX Orders Hook (and its ping)
``/_v/private/synerise/consent``       POST                Synerise consent automation
``/hooks/{connection}/customer``       POST PATCH DELETE  the same, for one connection
``/hooks/{connection}/orders``         POST                (``ETL_CONNECTIONS``), checked
``/hooks/{connection}/consent``        POST                against that connection's secret
``/healthz``                           GET                 liveness; ``/readyz`` pings Redis
=====================================  ==================  =======================================

Today's paths serve the ``default`` connection (or a file's only one) with its
``WEBHOOK_SECRET``; ``/hooks/{connection}/...`` serves each connection that has a
``WEBHOOK_SECRET`` with its own, and answers 404 for any other name.

Answers (JSON): 200 accepted; 400 malformed JSON or field, with the reason; 401 missing or wrong
``x-synerise-api-key``; 404; 405 (with ``Allow``); 413 body over ``max_body``; 415 a body that
says it is not JSON (``Content-Type`` other than ``application/json`` or ``application/*+json``;
a request without one is read as JSON); 503 not enqueued.
The order hook's save-time ping ``{"hookConfig": "ping"}`` gets 200 even without the header:
VTEX does not document that the ping carries the configured headers, and a ping does nothing.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound, RequestEntityTooLarge
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from etl.connections import DEFAULT, Connection
from etl.errors import ConfigError
from etl.redaction import redact_text
from etl.sync.inbox import Inbox
from etl.sync.queues import REALTIME
from etl.webhooks.auth import HEADER, SecretCheck
from etl.webhooks.handlers import CUSTOMER_METHODS, Job, consent_job, customer_job, order_job
from etl.webhooks.payloads import PayloadError, is_ping, parse_json

__all__ = [
    "CONSENT_PATH",
    "CUSTOMER_TRIGGER_PATH",
    "MAX_BODY",
    "ORDER_HOOK_PATH",
    "WebhookApp",
    "connection_secrets",
    "create_app",
    "paths_of",
]

log = logging.getLogger(__name__)

CUSTOMER_TRIGGER_PATH = "/_v/private/synerise/triggers/customer"
ORDER_HOOK_PATH = "/_v/private/synerise/hooks/orders"
CONSENT_PATH = "/_v/private/synerise/consent"
MAX_BODY = 64 * 1024
"""Bytes; every body we accept is a few hundred."""
RETRY_AFTER = "5"

Enqueue = Callable[[str, list[Any], str], object]
Environ = dict[str, Any]
StartResponse = Callable[..., Any]

_URLS = Map(
    [
        Rule(CUSTOMER_TRIGGER_PATH, endpoint="customer", methods=list(CUSTOMER_METHODS)),
        Rule(ORDER_HOOK_PATH, endpoint="orders", methods=["POST"]),
        Rule(CONSENT_PATH, endpoint="consent", methods=["POST"]),
        Rule("/hooks/<connection>/customer", endpoint="customer", methods=list(CUSTOMER_METHODS)),
        Rule("/hooks/<connection>/orders", endpoint="orders", methods=["POST"]),
        Rule("/hooks/<connection>/consent", endpoint="consent", methods=["POST"]),
        Rule("/healthz", endpoint="health", methods=["GET"]),
        Rule("/readyz", endpoint="ready", methods=["GET"]),
    ],
    strict_slashes=False,
)


def _json(status: int, body: dict[str, Any], headers: Iterable[tuple[str, str]] = ()) -> Response:
    return Response(json.dumps(body), status, headers=list(headers), mimetype="application/json")


class WebhookApp:
    """The WSGI application.

    Args:
        secret: ``WEBHOOK_SECRET`` of today's paths (``None``: they answer 404).
        enqueue: ``(task, args, queue) -> id``; in production ``Inbox.enqueue`` over
            ``workers.dispatch.enqueue`` (``create_app``).
        ready: a check for ``/readyz`` (e.g. Redis ``ping``); always ready when omitted.
        max_body: the largest body accepted, in bytes.
        connections: each connection's ``WEBHOOK_SECRET`` for ``/hooks/{connection}/...``.
        default: the connection today's paths serve.
    """

    def __init__(
        self,
        secret: str | None,
        enqueue: Enqueue,
        *,
        ready: Callable[[], bool] | None = None,
        max_body: int = MAX_BODY,
        connections: Mapping[str, str] | None = None,
        default: str = DEFAULT,
    ) -> None:
        self.check = SecretCheck(secret) if secret else None
        self.checks = {name: SecretCheck(value) for name, value in (connections or {}).items()}
        self.default = default
        self.enqueue = enqueue
        self.ready = ready
        self.max_body = max_body

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        # One byte over the limit: werkzeug stops a body without Content-Length (chunked) at
        # the limit silently, so a body that reaches limit + 1 is the one that is too large.
        request.max_content_length = self.max_body + 1
        response = self.respond(request)
        return response(environ, start_response)

    def respond(self, request: Request) -> Response:
        """The answer to one request (exceptions become JSON errors)."""
        try:
            endpoint, args = _URLS.bind_to_environ(request.environ).match()
        except MethodNotAllowed as error:
            allowed = ", ".join(sorted(error.valid_methods or ()))
            return _json(405, {"error": f"method not allowed; use {allowed}"}, [("Allow", allowed)])
        except NotFound:
            return _json(404, {"error": "no such endpoint"})
        except HTTPException as error:  # e.g. a redirect werkzeug wants for the path
            return _json(error.code or 400, {"error": error.description or "bad request"})
        if endpoint == "health":
            return _json(200, {"status": "ok"})
        if endpoint == "ready":
            return self._readiness()
        connection = args.get("connection")
        check = self.check if connection is None else self.checks.get(connection)
        if check is None:
            return _json(404, {"error": "no such connection"})
        body = self._body(request)
        if body is None:
            return _json(413, {"error": f"body larger than {self.max_body} bytes"})
        try:
            return self._accept(endpoint, request, body, check, connection or self.default)
        except PayloadError as error:
            return _json(400, {"error": str(error)})

    def _body(self, request: Request) -> bytes | None:
        """The body, or ``None`` when it is over ``max_body`` (with or without Content-Length)."""
        try:
            body = request.get_data(cache=False)
        except RequestEntityTooLarge:  # Content-Length over the limit: nothing was read
            return None
        return None if len(body) > self.max_body else body

    def _accept(
        self, endpoint: str, request: Request, body: bytes, check: SecretCheck, connection: str
    ) -> Response:
        if not check(request.headers.get(HEADER)):
            if endpoint == "orders" and _quiet_ping(body):
                return _json(200, {"hookConfig": "pong"})
            return _json(401, {"error": "missing or wrong x-synerise-api-key"})
        if not _is_json(request.mimetype):
            return _json(415, {"error": f"Content-Type {request.mimetype} is not JSON; send "
                                        "application/json"})  # fmt: skip
        data = parse_json(body)
        job: Job
        if endpoint == "customer":
            job = customer_job(request.method, data, connection)
        elif endpoint == "orders":
            if is_ping(data):
                return _json(200, {"hookConfig": "pong"})
            job = order_job(data, connection)
        else:
            job = consent_job(data, connection)
        try:
            task_id = self.enqueue(job.task, job.args, REALTIME)
        except Exception as error:  # whatever stopped it, the message is not in Redis
            log.error("could not enqueue %s: %s", job.task, redact_text(repr(error)))
            return _json(
                503,
                {"error": "the queue is unavailable; nothing was accepted, retry later"},
                [("Retry-After", RETRY_AFTER)],
            )
        return _json(200, {"status": "accepted", "task": str(task_id)})

    def _readiness(self) -> Response:
        try:
            ok = self.ready() if self.ready is not None else True
        except Exception:  # a readiness probe must answer, not raise
            ok = False
        if ok:
            return _json(200, {"status": "ready"})
        return _json(503, {"status": "queue unavailable"}, [("Retry-After", RETRY_AFTER)])


def _is_json(mimetype: str) -> bool:
    """``application/json``, ``application/*+json``, or no type at all (read as JSON)."""
    return mimetype in ("", "application/json") or (
        mimetype.startswith("application/") and mimetype.endswith("+json")
    )


def _quiet_ping(body: bytes) -> bool:
    try:
        return is_ping(parse_json(body))
    except PayloadError:
        return False


def connection_secrets(found: Mapping[str, Connection]) -> dict[str, str]:
    """Each connection's ``WEBHOOK_SECRET`` (connections without one receive no webhooks).

    Raises:
        ConfigError: no connection has one.
    """
    secrets = {
        name: each.settings.webhook_secret.reveal()
        for name, each in found.items()
        if each.settings.webhook_secret is not None
    }
    if not secrets:
        raise ConfigError("WEBHOOK_SECRET", "a value (it is required for this command)")
    return secrets


def paths_of(connection: str, served_unnamed: bool) -> dict[str, str]:
    """The customer, orders and consent paths of a connection: today's for the connection they
    serve (``served_unnamed``), ``/hooks/{connection}/...`` otherwise."""
    if served_unnamed:
        return {"customer": CUSTOMER_TRIGGER_PATH, "orders": ORDER_HOOK_PATH,
                "consent": CONSENT_PATH}  # fmt: skip
    return {name: f"/hooks/{connection}/{name}" for name in ("customer", "orders", "consent")}


def create_app(
    secret: str | None = None, enqueue: Enqueue | None = None, redis_url: str | None = None
) -> WebhookApp:
    """The production app: each connection's secret from its settings, readiness on Redis,
    and (unless ``enqueue`` is given) customer changes and order notifications put in their
    connection's realtime inbox, anything else sent as a Celery task (with no Redis URL,
    everything is a Celery task).

    Raises:
        ConfigError: no connection has a ``WEBHOOK_SECRET``.
    """
    secrets: dict[str, str] = {}
    default = DEFAULT
    if secret is None:
        from etl import connections

        found = connections.load(require=())
        secrets = connection_secrets(found)
        default = connections.unnamed(found) or DEFAULT
        secret = secrets.get(default)
        redis_url = redis_url or next(iter(found.values())).settings.redis_url
    ready = None
    client = None
    if redis_url:
        from etl.infra import redis_client

        # A readiness probe answers within seconds: no retries, short timeouts.
        client = redis_client(redis_url, retries=1, socket_timeout=2, socket_connect_timeout=2)
        ready = lambda: bool(client.ping())  # noqa: E731
    if enqueue is None:
        from workers.dispatch import enqueue as celery_enqueue

        enqueue = celery_enqueue if client is None else Inbox(client, celery_enqueue).enqueue
    return WebhookApp(secret, enqueue, ready=ready, connections=secrets, default=default)
