"""The WSGI app alone: status codes and reasons, what reaches the queue, and nothing else.

The queue is a recording stand-in, except for the 503 test, which sends through a real Celery
app whose broker is a closed port: exactly what happens when Redis is down.
"""

from __future__ import annotations

import hmac
import io
import json
import socket
from typing import Any

import pytest
from werkzeug.test import Client

from etl.sync.queues import REALTIME, TASK_CONSENT, TASK_CUSTOMER, TASK_CUSTOMER_DELETED, TASK_ORDER
from etl.webhooks.app import (
    CONSENT_PATH,
    CUSTOMER_TRIGGER_PATH,
    MAX_BODY,
    ORDER_HOOK_PATH,
    WebhookApp,
)
from etl.webhooks.auth import HEADER
from tests.etl.webhooks.harness import Recorder

SECRET = "s3cret-webhook-value"
AUTH = {HEADER: SECRET}
NOTICE = {
    "Domain": "Marketplace",
    "OrderId": "v40484048naf-01",
    "State": "payment-approved",
    "LastState": "payment-pending",
    "LastChange": "2019-07-29T23:17:30.06Z",
    "CurrentChange": "2019-07-29T23:17:31.5Z",
    "Origin": {"Account": "accountABC", "Key": "vtexappkey-keyEDF"},
}


@pytest.fixture
def queue() -> Recorder:
    return Recorder()


@pytest.fixture
def client(queue: Recorder) -> Client:
    return Client(WebhookApp(SECRET, queue))


def send(client: Client, path: str, body: Any, method: str = "POST", headers=None, raw=None):
    data = raw if raw is not None else json.dumps(body)
    return client.open(path, method=method, data=data, headers=headers if headers is not None
                       else AUTH, content_type="application/json")


# -- accepted --------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "change"), [("POST", "created"), ("PATCH", "updated")])
def test_a_customer_trigger_enqueues_the_document_id(client, queue, method, change):
    response = send(client, CUSTOMER_TRIGGER_PATH, {"id": " cl-1 "}, method)
    assert response.status_code == 200
    assert response.json == {"status": "accepted", "task": "task-1"}
    assert queue.sent == [
        (TASK_CUSTOMER, [{"id": "cl-1", "change": change, "connection": "default"}], REALTIME)
    ]


def test_a_deletion_enqueues_what_names_the_profile_and_the_receive_time(client, queue):
    response = send(client, CUSTOMER_TRIGGER_PATH,
                    {"email": "a@example.com", "userId": "u-1", "id": "cl-1"}, "DELETE")
    assert response.status_code == 200
    [(task, [deletion, received_at], queue_name)] = queue.sent
    assert (task, queue_name) == (TASK_CUSTOMER_DELETED, REALTIME)
    assert deletion == {
        "email": "a@example.com", "user_id": "u-1", "document_id": "cl-1", "connection": "default"
    }
    assert received_at.endswith("Z") and len(received_at) == 24


def test_an_order_notification_is_enqueued_and_answered_200(client, queue):
    response = send(client, ORDER_HOOK_PATH, NOTICE)
    assert response.status_code == 200  # VTEX wants exactly 200
    [(task, [notice], _)] = queue.sent
    assert task == TASK_ORDER
    assert notice == {
        "order_id": "v40484048naf-01", "state": "payment-approved",
        "last_change": "2019-07-29T23:17:30.06Z", "last_state": "payment-pending",
        "current_change": "2019-07-29T23:17:31.5Z", "domain": "Marketplace",
        "origin_account": "accountABC", "connection": "default",
    }  # fmt: skip


def test_the_documented_minimal_notification_is_enough(client, queue):
    minimal = {"OrderId": "o-1", "State": "invoiced", "LastChange": "2019-07-29T23:17:30Z"}
    assert send(client, ORDER_HOOK_PATH, minimal).status_code == 200
    assert queue.sent[0][1][0]["current_change"] is None


@pytest.mark.parametrize("flag", [True, "false", "TRUE", 1, 0])
def test_a_consent_change_is_enqueued(client, queue, flag):
    body = {"customId": "u-1", "email": "a@example.com", "agreements": {"email": flag}}
    assert send(client, CONSENT_PATH, body).status_code == 200
    [(task, [change], _)] = queue.sent
    assert task == TASK_CONSENT
    assert change == {"custom_id": "u-1", "email": "a@example.com",
                      "email_agreement": flag in (True, "TRUE", 1), "connection": "default"}


def test_the_hook_ping_is_answered_without_enqueuing_even_without_the_header(client, queue):
    for headers in (AUTH, {}):
        response = send(client, ORDER_HOOK_PATH, {"hookConfig": "ping"}, headers=headers)
        assert response.status_code == 200
    assert queue.sent == []


def test_health_and_readiness(queue):
    assert Client(WebhookApp(SECRET, queue)).get("/healthz").status_code == 200
    assert Client(WebhookApp(SECRET, queue, ready=lambda: True)).get("/readyz").status_code == 200
    down = Client(WebhookApp(SECRET, queue, ready=lambda: 1 / 0)).get("/readyz")
    assert down.status_code == 503 and down.headers["Retry-After"]


# -- refused -----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [CUSTOMER_TRIGGER_PATH, ORDER_HOOK_PATH, CONSENT_PATH])
@pytest.mark.parametrize("headers", [{}, {HEADER: "wrong"}, {HEADER: SECRET + "x"},
                                     {"x-other": SECRET}, {HEADER: ""}])
def test_unauthenticated_calls_get_401_and_enqueue_nothing(client, queue, path, headers):
    response = send(client, path, {"id": "cl-1"} if path != ORDER_HOOK_PATH else NOTICE,
                    headers=headers)
    assert response.status_code == 401
    assert "x-synerise-api-key" in response.json["error"]
    assert queue.sent == []


def test_authentication_comes_before_parsing(client):
    assert send(client, CONSENT_PATH, None, headers={}, raw=b"{not json").status_code == 401


def test_the_secret_is_compared_in_constant_time(client, monkeypatch):
    calls = []
    original = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return original(a, b)

    monkeypatch.setattr("etl.webhooks.auth.hmac.compare_digest", spy)
    send(client, CUSTOMER_TRIGGER_PATH, {"id": "cl-1"}, headers={HEADER: "guess"})
    assert calls == [(b"guess", SECRET.encode())]


@pytest.mark.parametrize(
    ("path", "method", "raw", "reason"),
    [
        (CUSTOMER_TRIGGER_PATH, "POST", b"{not json", "body is not valid JSON"),
        (CUSTOMER_TRIGGER_PATH, "POST", b"\xff\xfe", "body is not valid JSON"),
        (CUSTOMER_TRIGGER_PATH, "POST", b"[1, 2]", "body must be a JSON object"),
        (CUSTOMER_TRIGGER_PATH, "POST", b"", "body is not valid JSON"),
        (CUSTOMER_TRIGGER_PATH, "POST", b"{}", "missing field 'id'"),
        (CUSTOMER_TRIGGER_PATH, "PATCH", b'{"id": "  "}', "missing field 'id'"),
        (CUSTOMER_TRIGGER_PATH, "PATCH", b'{"id": 42}', "'id' must be a string"),
        (CUSTOMER_TRIGGER_PATH, "DELETE", b'{"id": "cl-1"}', "needs 'email' or 'userId'"),
        (ORDER_HOOK_PATH, "POST", b'{"State": "x", "LastChange": "2019-07-29T23:17:30Z"}',
         "missing field 'OrderId'"),
        (ORDER_HOOK_PATH, "POST", b'{"OrderId": "o", "LastChange": "2019-07-29T23:17:30Z"}',
         "missing field 'State'"),
        (ORDER_HOOK_PATH, "POST", b'{"OrderId": "o", "State": "x"}',
         "missing field 'LastChange'"),
        (ORDER_HOOK_PATH, "POST", b'{"OrderId": "o", "State": "x", "LastChange": "yesterday"}',
         "'LastChange' is not an ISO 8601 date-time"),
        (ORDER_HOOK_PATH, "POST",
         b'{"OrderId": "o", "State": "x", "LastChange": "2019-07-29T23:17:30Z", "Origin": 3}',
         "'Origin' must be an object"),
        (CONSENT_PATH, "POST", b'{"agreements": {"email": true}}', "needs 'customId' or 'email'"),
        (CONSENT_PATH, "POST", b'{"customId": "u"}', "missing field 'agreements.email'"),
        (CONSENT_PATH, "POST", b'{"customId": "u", "agreements": {"email": "maybe"}}',
         "'agreements.email' must be true or false"),
        (CONSENT_PATH, "POST", b'{"email": "not-an-address", "agreements": {"email": true}}',
         "'email' is not an e-mail address"),
        (CONSENT_PATH, "POST", b'{"email": "a*@example.com", "agreements": {"email": true}}',
         "Master Data search cannot match"),
    ],
)
def test_malformed_bodies_get_400_with_the_reason(client, queue, path, method, raw, reason):
    response = send(client, path, None, method, raw=raw)
    assert response.status_code == 400
    assert reason in response.json["error"]
    assert queue.sent == []


def test_a_reason_never_echoes_personal_data(client):
    response = send(client, CONSENT_PATH, {"email": "jane.doe@", "agreements": {"email": 1}})
    assert response.status_code == 400 and "jane" not in response.text


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "text/json"]
)
def test_a_body_that_is_not_json_by_its_content_type_gets_415(client, queue, content_type):
    body = json.dumps({"id": "cl-1"})
    response = client.post(CUSTOMER_TRIGGER_PATH, data=body, headers=AUTH,
                           content_type=content_type)  # fmt: skip
    assert response.status_code == 415
    assert content_type in response.json["error"] and "application/json" in response.json["error"]
    assert queue.sent == []


@pytest.mark.parametrize(
    "content_type", [None, "application/json; charset=utf-8", "application/vnd.vtex+json"]
)
def test_json_content_types_and_none_are_read_as_json(client, queue, content_type):
    headers = {**AUTH, **({"Content-Type": content_type} if content_type else {})}
    response = client.post(CUSTOMER_TRIGGER_PATH, data=json.dumps({"id": "cl-1"}), headers=headers)
    assert response.status_code == 200, response.json
    assert len(queue.sent) == 1


def test_oversized_bodies_get_413(client, queue):
    body = {"id": "cl-1", "padding": "x" * MAX_BODY}
    response = send(client, CUSTOMER_TRIGGER_PATH, body)
    assert response.status_code == 413
    assert queue.sent == []


def test_oversized_chunked_bodies_get_413(client, queue):
    """No Content-Length (chunked): the limit applies while reading."""
    from werkzeug.test import EnvironBuilder

    builder = EnvironBuilder(path=CUSTOMER_TRIGGER_PATH, method="POST", headers=AUTH)
    environ = builder.get_environ()
    environ.pop("CONTENT_LENGTH", None)
    environ["wsgi.input"] = io.BytesIO(b'{"id": "' + b"x" * MAX_BODY + b'"}')
    environ["wsgi.input_terminated"] = True  # what servers set for chunked bodies
    response = client.run_wsgi_app(environ, buffered=True)
    assert response[1].split()[0] == "413" and queue.sent == []


@pytest.mark.parametrize(
    ("path", "method", "allowed"),
    [
        (CUSTOMER_TRIGGER_PATH, "GET", "DELETE, PATCH, POST"),
        (CUSTOMER_TRIGGER_PATH, "PUT", "DELETE, PATCH, POST"),
        (ORDER_HOOK_PATH, "PATCH", "POST"),
        (CONSENT_PATH, "DELETE", "POST"),
        ("/healthz", "POST", "GET"),
    ],
)
def test_wrong_methods_get_405_with_allow(client, path, method, allowed):
    response = send(client, path, {"id": "x"}, method)
    assert response.status_code == 405
    assert set(response.headers["Allow"].split(", ")) >= set(allowed.split(", "))


def test_unknown_paths_get_404(client):
    assert send(client, "/_v/private/synerise/other", {}).status_code == 404


# -- the queue is down -------------------------------------------------------------------------


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed again when the block ends


def test_redis_down_means_503_and_the_sender_retries():
    from celery import Celery

    broken = Celery("webhooks-test", broker=f"redis://127.0.0.1:{closed_port()}/0")
    broken.conf.broker_connection_timeout = 1
    broken.conf.broker_connection_max_retries = 0
    broken.conf.task_publish_retry_policy = {"max_retries": 1, "interval_start": 0,
                                             "interval_step": 0.1, "interval_max": 0.1}

    def enqueue(task: str, args: list[Any], queue: str) -> str:
        return str(broken.send_task(task, args=args, queue=queue).id)

    client = Client(WebhookApp(SECRET, enqueue))
    for path, body in ((CUSTOMER_TRIGGER_PATH, {"id": "cl-1"}), (ORDER_HOOK_PATH, NOTICE),
                       (CONSENT_PATH, {"customId": "u", "agreements": {"email": True}})):
        response = send(client, path, body)
        assert response.status_code == 503, response.text
        assert response.headers["Retry-After"] == "5"
        assert "nothing was accepted" in response.json["error"]
