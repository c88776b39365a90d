"""The shared attempt loop: budget, error mapping, retries, re-login, and what messages say."""

from __future__ import annotations

import pytest
import requests
import responses

from etl.config import Secret
from etl.errors import (
    AuthenticationError,
    FatalError,
    NetworkError,
    PermissionDeniedError,
    RateLimitedError,
    ServerError,
    TokenExpiredError,
)
from etl.http import HttpClient, decode_body, describe_body, new_session, reveal
from tests.etl.httpfakes import RecordingBudget, instant_policy

BASE = "https://api.example.test"


def client(**kwargs):
    kwargs.setdefault("retry", instant_policy(kwargs.pop("sleeps", None)))
    return HttpClient(BASE, service="Example", **kwargs)


@responses.activate
def test_every_attempt_takes_from_the_budget_and_a_429_penalises_it():
    responses.get(f"{BASE}/x", status=429, headers={"Retry-After": "9"})
    responses.get(f"{BASE}/x", status=503)
    responses.get(f"{BASE}/x", json={"ok": True})
    budget, sleeps = RecordingBudget(), []
    response = client(budget=budget, sleeps=sleeps).request("GET", "/x")
    assert response.json() == {"ok": True}
    assert budget.acquired == 3
    assert budget.penalties == [9.0]
    assert sleeps == [9.0, 0.5]  # Retry-After, then backoff ceiling 1.0 x 0.5


@responses.activate
def test_a_429_without_retry_after_penalises_with_the_backoff_wait():
    responses.get(f"{BASE}/x", status=429)
    responses.get(f"{BASE}/x", status=200)
    budget = RecordingBudget()
    client(budget=budget).request("GET", "/x")
    assert budget.penalties == [0.25]


@responses.activate
def test_retriable_statuses_are_bounded_by_the_policy():
    responses.get(f"{BASE}/x", status=502, body="<html>Bad gateway</html>")
    sleeps = []
    with pytest.raises(ServerError) as caught:
        client(sleeps=sleeps).request("GET", "/x", params={"email": "a@b.com"})
    assert len(responses.calls) == 6 and len(sleeps) == 5
    assert caught.value.status == 502
    assert str(caught.value) == "Example answered 502 to GET /x: <html>Bad gateway</html>"


@responses.activate
def test_network_failures_become_network_errors_without_the_query():
    responses.get(f"{BASE}/x", body=requests.ConnectionError("refused"))
    with pytest.raises(NetworkError) as caught:
        client(retry=instant_policy(max_attempts=2)).request("GET", "/x", params={"q": "secret"})
    assert str(caught.value) == "Example GET /x: ConnectionError"
    assert len(responses.calls) == 2


@responses.activate
def test_timeouts_are_network_errors():
    responses.get(f"{BASE}/x", body=requests.ReadTimeout("slow"))
    responses.get(f"{BASE}/x", json=[1])
    assert client().request("GET", "/x").json() == [1]


@responses.activate
def test_fatal_errors_carry_the_hint_and_are_not_retried():
    responses.get(f"{BASE}/x", status=401, json={"error": "Unauthorized"})
    responses.get(f"{BASE}/y", status=403, json={"message": "no permission"})
    http = client(hints={AuthenticationError: "Check KEY", PermissionDeniedError: "Grant it"})
    with pytest.raises(AuthenticationError, match=r"401 to GET /x: Unauthorized\. Check KEY"):
        http.request("GET", "/x")
    with pytest.raises(PermissionDeniedError, match=r"no permission\. Grant it"):
        http.request("GET", "/y")
    assert len(responses.calls) == 2


@responses.activate
def test_an_unexpected_status_is_fatal_unless_allowed():
    responses.get(f"{BASE}/x", status=404, json={"error": "Not Found"})
    http = client(hints={FatalError: "Check the URL"})
    with pytest.raises(FatalError, match=r"404 to GET /x: Not Found\. Check the URL"):
        http.request("GET", "/x")
    assert http.request("GET", "/x", allow={404}).status_code == 404


@responses.activate
def test_check_runs_inside_the_retried_attempt():
    responses.get(f"{BASE}/x", json=[], headers={})
    responses.get(f"{BASE}/x", json=[], headers={"X-Ready": "1"})

    def ready(response):
        if "X-Ready" not in response.headers:
            raise ServerError(200, "not ready")

    assert client().request("GET", "/x", check=ready).headers["X-Ready"] == "1"
    assert len(responses.calls) == 2


class Refreshable(requests.auth.AuthBase):
    def __init__(self):
        self.version = 1
        self.invalidated = []

    def __call__(self, request):
        request.headers["Authorization"] = f"Bearer t{self.version}"
        return request

    def invalidate(self, request):
        self.invalidated.append(request.headers["Authorization"])
        self.version += 1


@responses.activate
def test_a_refreshable_auth_gets_one_fresh_try_after_a_401():
    responses.get(f"{BASE}/x", status=401, json={"error": "Token expired."})
    responses.get(f"{BASE}/x", json={"ok": 1})
    auth, budget = Refreshable(), RecordingBudget()
    assert client(auth=auth, budget=budget).request("GET", "/x").json() == {"ok": 1}
    assert auth.invalidated == ["Bearer t1"]
    assert responses.calls[1].request.headers["Authorization"] == "Bearer t2"
    assert budget.acquired == 2


@responses.activate
def test_a_401_that_survives_the_fresh_login_is_fatal():
    responses.get(f"{BASE}/x", status=401, json={"error": "Unauthorized"})
    auth = Refreshable()
    with pytest.raises(AuthenticationError):
        client(auth=auth).request("GET", "/x")
    assert len(responses.calls) == 2 and len(auth.invalidated) == 1


@responses.activate
def test_an_expired_token_after_the_fresh_login_is_retried_with_backoff():
    responses.get(f"{BASE}/x", status=401, json={"error": "Token expired."})
    with pytest.raises(TokenExpiredError):
        client(auth=Refreshable(), retry=instant_policy(max_attempts=2)).request("GET", "/x")
    assert len(responses.calls) == 4  # two attempts, each with one re-login


@responses.activate
def test_rate_limited_message_and_retry_after_http_date():
    responses.get(
        f"{BASE}/x", status=429, headers={"Retry-After": "Thu, 01 Jan 1970 00:00:00 GMT"}
    )
    with pytest.raises(RateLimitedError) as caught:
        client(retry=instant_policy(max_attempts=1)).request("GET", "/x")
    assert caught.value.retry_after == 0.0


def test_describe_body_keeps_error_texts_but_not_rejected_values():
    body = {
        "error": "Bad Request",
        "message": "Validation failed",
        "errors": [{"field": "email", "message": "invalid", "rejectedValue": "jane@example.com"}],
    }
    assert describe_body(body) == "Bad Request; Validation failed; email: invalid"
    assert describe_body("Email jane@example.com is invalid") == "Email j***@example.com is invalid"
    assert describe_body(None) == "no error text"
    assert len(describe_body("x" * 5000)) == 300


@responses.activate
def test_decode_body_prefers_json_then_text():
    responses.get(f"{BASE}/j", json={"a": 1})
    responses.get(f"{BASE}/t", body="plain")
    responses.get(f"{BASE}/e", body="")
    responses.get(f"{BASE}/n", json=3)
    session = requests.Session()
    assert decode_body(session.get(f"{BASE}/j")) == {"a": 1}
    assert decode_body(session.get(f"{BASE}/t")) == "plain"
    assert decode_body(session.get(f"{BASE}/e")) is None
    assert decode_body(session.get(f"{BASE}/n")) == "3"


def test_new_session_sizes_its_pool_and_leaves_retries_to_us():
    adapter = new_session(24).get_adapter("https://x.test")
    assert adapter._pool_maxsize == 24
    assert adapter.max_retries.total == 0
    with pytest.raises(ValueError):
        new_session(0)


def test_reveal_accepts_secrets_and_plain_strings():
    assert reveal(Secret("s3cr3t")) == "s3cr3t"
    assert reveal("plain") == "plain"


def test_absolute_urls_bypass_the_base():
    http = client()
    assert http.url("/a") == f"{BASE}/a"
    assert http.url("https://other.test/b") == "https://other.test/b"


@responses.activate
def test_a_429_on_the_last_attempt_penalises_the_budget_too():
    responses.get(f"{BASE}/x", status=429, headers={"Retry-After": "3"})
    budget = RecordingBudget()
    with pytest.raises(RateLimitedError):
        client(budget=budget).request("GET", "/x")
    assert len(responses.calls) == 6
    assert budget.penalties == [3.0] * 6  # every 429, the one nobody retries included
