"""Synerise auth: JWT login, caching, re-login on expiry (reactive and proactive), Basic."""

from __future__ import annotations

import base64
import json
import logging
import threading

import pytest
import responses

from etl.config import Secret
from etl.errors import AuthenticationError, FatalError, TokenExpiredError
from etl.synerise.auth import LOGIN_PATH, BasicAuth, TokenAuth, jwt_expiry
from etl.synerise.client import SyneriseClient
from tests.etl.httpfakes import instant_policy

BASE = "https://api.synerise.test"
LOGIN = f"{BASE}{LOGIN_PATH}"
API_KEY = "6f1c2d3e-aaaa-bbbb-cccc-0123456789ab"
NOW = 1_800_000_000.0


def jwt(exp=None, marker="x"):
    """An unsigned JWT with the given ``exp`` (Synerise's are HS512; we never verify)."""
    claims = {"sub": marker} if exp is None else {"sub": marker, "exp": exp}

    def segment(data):
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{segment({'alg': 'HS512'})}.{segment(claims)}.signature-{marker}"


class Clock:
    def __init__(self, now=NOW):
        self.now = now

    def __call__(self):
        return self.now


def login_with(*tokens):
    for token in tokens:
        responses.post(LOGIN, json={"token": token})


def client_with(auth, sleeps=None, **kwargs):
    return SyneriseClient(BASE, auth, retry=instant_policy(sleeps), **kwargs)


def bearer(call):
    return call.request.headers.get("Authorization")


@responses.activate
def test_logs_in_once_and_reuses_the_token():
    first = jwt(exp=NOW + 3600, marker="one")
    login_with(first)
    responses.post(f"{BASE}/v4/clients/batch", status=202)
    auth = TokenAuth(BASE, Secret(API_KEY), clock=Clock())
    synerise = client_with(auth)
    synerise.upsert_profiles([{"email": "a@example.com"}])
    synerise.upsert_profiles([{"email": "b@example.com"}])
    login = responses.calls[0].request
    assert json.loads(login.body) == {"apiKey": API_KEY}
    assert login.headers["Api-Version"] == "4.4"
    assert [bearer(c) for c in responses.calls[1:]] == [f"Bearer {first}"] * 2
    assert auth.logins == 1


@responses.activate
def test_token_expired_logs_in_again_once_and_retries_the_call():
    old, new = jwt(marker="old"), jwt(marker="new")
    login_with(old, new)
    responses.post(f"{BASE}/v4/clients/batch", status=401, json={"error": "Token expired."})
    responses.post(f"{BASE}/v4/clients/batch", status=202)
    sleeps = []
    auth = TokenAuth(BASE, API_KEY)
    result = client_with(auth, sleeps).upsert_profiles([{"email": "a@example.com"}])
    assert result.accepted == [0]
    assert [c.request.url.removeprefix(BASE) for c in responses.calls] == [
        LOGIN_PATH, "/v4/clients/batch", LOGIN_PATH, "/v4/clients/batch",
    ]
    assert bearer(responses.calls[1]) == f"Bearer {old}"
    assert bearer(responses.calls[3]) == f"Bearer {new}"
    assert sleeps == []  # the re-login is immediate, not a backoff
    assert auth.logins == 2


@responses.activate
def test_a_token_that_keeps_expiring_is_retried_with_backoff_then_raised():
    login_with(*[jwt(marker=str(i)) for i in range(20)])
    responses.post(f"{BASE}/v4/clients/batch", status=401, json={"error": "Token expired."})
    sleeps = []
    auth = TokenAuth(BASE, API_KEY)
    with pytest.raises(TokenExpiredError):
        client_with(auth, sleeps).upsert_profiles([{"email": "a@example.com"}])
    # 6 attempts of (call, re-login, call); the first attempt also logs in first
    calls = [c.request.url.removeprefix(BASE) for c in responses.calls]
    assert calls.count("/v4/clients/batch") == 12
    assert auth.logins == 7 and len(sleeps) == 5


@responses.activate
def test_a_401_after_a_fresh_login_is_fatal_and_names_the_fix():
    login_with(jwt(marker="a"), jwt(marker="b"))
    responses.post(f"{BASE}/v4/clients/batch", status=401, json={"error": "Unauthorized"})
    with pytest.raises(AuthenticationError) as caught:
        client_with(TokenAuth(BASE, API_KEY)).upsert_profiles([{"email": "a@example.com"}])
    assert "SYNERISE_API_KEY" in str(caught.value)
    assert API_KEY not in str(caught.value)
    assert len(responses.calls) == 4


@responses.activate
def test_a_refused_api_key_at_login_is_fatal():
    responses.post(LOGIN, status=401, json={"error": "Unauthorized", "message": "Bad api key"})
    auth = TokenAuth(BASE, Secret(API_KEY))
    with pytest.raises(AuthenticationError, match="Synerise login answered 401") as caught:
        client_with(auth).upsert_profiles([{"email": "a@example.com"}])
    assert API_KEY not in str(caught.value)
    assert len(responses.calls) == 1


@responses.activate
def test_a_failing_login_is_retried_by_the_call():
    responses.post(LOGIN, status=503)
    login_with(jwt())
    responses.post(f"{BASE}/v4/clients/batch", status=202)
    sleeps = []
    assert client_with(TokenAuth(BASE, API_KEY), sleeps).upsert_profiles([{"a": 1}]).accepted == [0]
    assert len(sleeps) == 1


@responses.activate
def test_a_login_answer_without_token_is_fatal():
    responses.post(LOGIN, json={"tok": "x"})
    with pytest.raises(FatalError, match="without a token"):
        TokenAuth(BASE, API_KEY).token()


@responses.activate
def test_proactive_refresh_before_exp():
    clock = Clock()
    login_with(jwt(exp=NOW + 3600, marker="a"), jwt(exp=NOW + 7200, marker="b"))
    auth = TokenAuth(BASE, API_KEY, clock=clock)
    first = auth.token()
    clock.now = NOW + 3600 - 61
    assert auth.token() == first
    clock.now = NOW + 3600 - 59
    assert auth.token() != first
    assert auth.logins == 2


@responses.activate
def test_short_lived_tokens_refresh_at_half_life_not_every_call():
    clock = Clock()
    login_with(jwt(exp=NOW + 40, marker="a"), jwt(exp=NOW + 80, marker="b"))
    auth = TokenAuth(BASE, API_KEY, clock=clock)
    first = auth.token()
    clock.now = NOW + 19
    assert auth.token() == first
    clock.now = NOW + 20
    assert auth.token() != first


@responses.activate
def test_without_exp_the_token_is_kept_until_a_401():
    clock = Clock()
    login_with(jwt(marker="a"))
    auth = TokenAuth(BASE, API_KEY, clock=clock)
    first = auth.token()
    clock.now = NOW + 10 * 365 * 86400
    assert auth.token() == first and auth.logins == 1


@responses.activate
def test_concurrent_threads_share_one_login():
    login_with(jwt(marker="only"))
    auth = TokenAuth(BASE, API_KEY)
    barrier = threading.Barrier(8)
    tokens = []

    def work():
        barrier.wait()
        tokens.append(auth.token())

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(tokens)) == 1 and auth.logins == 1
    assert len(responses.calls) == 1


@responses.activate
def test_invalidate_keeps_a_newer_token():
    login_with(jwt(marker="a"), jwt(marker="b"))
    auth = TokenAuth(BASE, API_KEY)
    stale = auth.token()

    class Sent:
        headers = {"Authorization": f"Bearer {stale}"}

    auth.invalidate(Sent)
    fresh = auth.token()
    auth.invalidate(Sent)  # another thread's late report about the old token
    assert auth.token() == fresh and auth.logins == 2


def test_jwt_expiry():
    assert jwt_expiry(jwt(exp=NOW)) == NOW
    assert jwt_expiry(jwt()) is None
    assert jwt_expiry("not-a-jwt") is None
    assert jwt_expiry("a.!!!.c") is None
    assert jwt_expiry(jwt(exp="tomorrow")) is None
    assert jwt_expiry(jwt(exp=True)) is None


@responses.activate
def test_basic_auth_sends_guid_and_key_without_login():
    responses.post(f"{BASE}/v4/clients/batch", status=202)
    guid = "0f0e0d0c-1111-2222-3333-444455556666"
    client_with(BasicAuth(guid, Secret(API_KEY))).upsert_profiles([{"email": "a@example.com"}])
    expected = base64.b64encode(f"{guid}:{API_KEY}".encode()).decode()
    assert bearer(responses.calls[0]) == f"Basic {expected}"
    assert len(responses.calls) == 1


@responses.activate
def test_basic_auth_401_is_fatal_without_retry():
    responses.post(f"{BASE}/v4/clients/batch", status=401, json={"error": "Unauthorized"})
    with pytest.raises(AuthenticationError, match="SYNERISE_WORKSPACE_GUID"):
        client_with(BasicAuth("g", API_KEY)).upsert_profiles([{"email": "a@example.com"}])
    assert len(responses.calls) == 1


@responses.activate
def test_secrets_never_appear_in_reprs_or_logs(caplog):
    token = jwt(marker="tok")
    login_with(token)
    responses.post(f"{BASE}/v4/clients/batch", status=202)
    auth = TokenAuth(BASE, Secret(API_KEY))
    synerise = client_with(auth)
    with caplog.at_level(logging.DEBUG):
        synerise.upsert_profiles([{"email": "a@example.com"}])
    shown = " ".join([repr(auth), repr(synerise), repr(BasicAuth("g", API_KEY)), caplog.text])
    assert API_KEY not in shown and token not in shown
    assert repr(auth) == f"TokenAuth(base_url={BASE!r}, api_key='***')"
    assert repr(BasicAuth("g", API_KEY)) == "BasicAuth(guid='g', api_key='***')"
