"""The Synerise emulator over real HTTP: auth, limits, validation, upserts, duplicates, catalogs."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from jsonschema import Draft202012Validator

from etl.sandbox.server import SandboxServer
from etl.sandbox.synerise import (
    SANDBOX_API_KEY,
    SANDBOX_JWT_SECRET,
    SANDBOX_WORKSPACE_GUID,
    SyneriseSandbox,
)
from tests.schemas.references import VENDORED_SCHEMAS

HTTP400_KEYS = {"error", "errors", "message", "path", "status", "timestamp"}


class Api:
    """A tiny client: JSON in, ``requests.Response`` out, Bearer token by default."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.session = requests.Session()
        self.token: str | None = None

    def login(self, path: str = "/uauth/v2/auth/login/profile") -> str:
        response = self.session.post(self.url + path, json={"apiKey": SANDBOX_API_KEY}, timeout=5)
        assert response.status_code == 200, response.text
        self.token = response.json()["token"]
        return self.token

    def headers(self, auth: str | None = None) -> dict[str, str]:
        if auth is None:
            auth = f"Bearer {self.token}" if self.token else ""
        return {"Authorization": auth, "Api-Version": "4.4"} if auth else {"Api-Version": "4.4"}

    def post(self, path: str, body: Any = None, auth: str | None = None, **kw: Any):
        if "data" not in kw:
            kw["json"] = body
        headers = {**self.headers(auth), **kw.pop("headers", {})}
        return self.session.post(self.url + path, headers=headers, timeout=10, **kw)

    def get(self, path: str, auth: str | None = None, **kw: Any):
        return self.session.get(self.url + path, headers=self.headers(auth), timeout=10, **kw)

    def delete(self, path: str, auth: str | None = None):
        return self.session.delete(self.url + path, headers=self.headers(auth), timeout=10)

    def inspect(self, kind: str, **params: Any) -> list[dict]:
        response = self.session.get(
            f"{self.url}/__sandbox__/synerise/{kind}", params=params, timeout=5
        )
        assert response.status_code == 200, response.text
        return response.json()

    def stats(self) -> dict:
        return self.session.get(self.url + "/__sandbox__/stats", timeout=5).json()


@pytest.fixture
def sandbox() -> SyneriseSandbox:
    return SyneriseSandbox(seed=3)


@pytest.fixture
def server(sandbox: SyneriseSandbox) -> Iterator[SandboxServer]:
    with SandboxServer(sandbox.make_app()) as running:
        yield running


@pytest.fixture
def api(server: SandboxServer) -> Api:
    client = Api(server.url)
    client.login()
    return client


def basic(guid: str = SANDBOX_WORKSPACE_GUID, key: str = SANDBOX_API_KEY) -> str:
    return "Basic " + base64.b64encode(f"{guid}:{key}".encode()).decode()


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_json(text: str) -> dict:
    return json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))


def forge_token(claims: dict, secret: str = SANDBOX_JWT_SECRET) -> str:
    head = b64url(b'{"alg":"HS256","typ":"JWT"}')
    body = b64url(json.dumps(claims).encode())
    sig = hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64url(sig)}"


def money(amount: float, currency: str = "BRL") -> dict:
    return {"amount": amount, "currency": currency}


def transaction(**overrides: Any) -> dict:
    body = {
        "client": {"customId": "c1", "email": "ana@example.com"},
        "orderId": "1001-01",
        "eventSalt": "1001-01",
        "recordedAt": "2024-03-01T10:00:00.000Z",
        "revenue": money(30.0),
        "value": money(30.0),
        "products": [
            {"sku": "A", "name": "Alpha", "finalUnitPrice": money(10.0), "quantity": 1},
            {"sku": "B", "name": "Beta", "finalUnitPrice": money(20.0), "quantity": 1},
        ],
        "paymentInfo": {"method": "credit card"},
        "source": "WEB_DESKTOP",
    }
    body.update(overrides)
    return body


def event(**overrides: Any) -> dict:
    body = {
        "action": "client.deleteAccount",
        "label": "clientDeleteAccount",
        "client": {"customId": "c1"},
        "time": "2024-03-01T10:00:00Z",
        "eventSalt": "salt-1",
        "params": {"reason": "test"},
    }
    body.update(overrides)
    return body


# -- auth ------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/uauth/v2/auth/login/profile", "/v4/auth/login/profile"])
def test_login_returns_a_signed_jwt_with_exp(server: SandboxServer, path: str) -> None:
    token = Api(server.url).login(path)
    head, body, sig = token.split(".")
    assert b64url_json(head) == {"alg": "HS256", "typ": "JWT"}
    claims = b64url_json(body)
    assert claims["exp"] - claims["iat"] == 3600
    assert claims["sub"] == SANDBOX_WORKSPACE_GUID
    expected = hmac.new(SANDBOX_JWT_SECRET.encode(), f"{head}.{body}".encode(), hashlib.sha256)
    assert sig == b64url(expected.digest())


def test_token_lifetime_is_configurable() -> None:
    with SandboxServer(SyneriseSandbox(token_lifetime=60).make_app()) as server:
        claims = b64url_json(Api(server.url).login().split(".")[1])
    assert claims["exp"] - claims["iat"] == 60


@pytest.mark.parametrize("body", [{"apiKey": "wrong"}, {}, ["sandbox-api-key"]])
def test_login_with_bad_key_is_401_with_http400_body(server: SandboxServer, body: Any) -> None:
    response = requests.post(server.url + "/uauth/v2/auth/login/profile", json=body, timeout=5)
    assert response.status_code == 401
    assert set(response.json()) == HTTP400_KEYS
    assert response.json()["status"] == 401


def test_login_needs_json_content_type(server: SandboxServer) -> None:
    response = requests.post(
        server.url + "/v4/auth/login/profile", data=f"apiKey={SANDBOX_API_KEY}", timeout=5
    )
    assert response.status_code == 415
    assert set(response.json()) == HTTP400_KEYS


def test_protected_routes_need_auth(api: Api) -> None:
    for response in (
        api.post("/v4/clients/batch", [{"customId": "x"}], auth=""),
        api.post("/v4/transactions", transaction(), auth=""),
        api.get("/catalogs/bags", auth=""),
        api.delete("/v4/clients/by-customid/x", auth=""),
    ):
        assert response.status_code == 401
        assert set(response.json()) == HTTP400_KEYS
        assert response.json()["error"] != "Token expired."
    assert api.stats()["profiles"] == 0
    assert api.stats()["auth_failures"] == 4


@pytest.mark.parametrize(
    "auth",
    [
        "Bearer not-a-jwt",
        "Bearer " + forge_token({"sub": SANDBOX_WORKSPACE_GUID, "exp": 9e9, "jti": "1"}, "other"),
        "Bearer " + forge_token({"sub": "another-workspace", "exp": 9e9, "jti": "1"}),
        "Token abc",
        basic(key="wrong"),
        basic(guid="wrong"),
    ],
)
def test_invalid_credentials_are_401(api: Api, auth: str) -> None:
    response = api.post("/v4/clients/batch", [{"customId": "x"}], auth=auth)
    assert response.status_code == 401
    assert response.json()["error"] == "Unauthorized"


def test_basic_auth(api: Api) -> None:
    assert api.post("/v4/clients/batch", [{"customId": "x"}], auth=basic()).status_code == 202
    assert api.stats()["profiles"] == 1


@pytest.mark.parametrize("auth", ["bearer", "basic"])
def test_permission_check_answers_for_every_asked_permission(api: Api, auth: str) -> None:
    asked = {"permissionsToCheck": ["API_BATCH_CLIENT_CREATE", "ANYTHING_ELSE"]}
    response = api.post("/uauth/api-key/permission-check", asked,
                        auth=basic() if auth == "basic" else None)  # fmt: skip
    assert response.status_code == 200, response.text
    assert response.json() == {
        "businessProfileName": "sandbox",
        "permissions": {"API_BATCH_CLIENT_CREATE": True, "ANYTHING_ELSE": True},
    }


def test_permission_check_follows_the_granted_permissions() -> None:
    sandbox = SyneriseSandbox(permissions=["API_BATCH_CLIENT_CREATE"], business_profile_name="Acme")
    with SandboxServer(sandbox.make_app()) as running:
        api = Api(running.url)
        asked = ["API_BATCH_CLIENT_CREATE", "API_BATCH_TRANSACTION_CREATE"]
        assert api.post("/uauth/api-key/permission-check", {"permissionsToCheck": asked},
                        auth="").status_code == 401  # fmt: skip
        api.login()
        answer = api.post("/uauth/api-key/permission-check", {"permissionsToCheck": asked})
        assert answer.json() == {
            "businessProfileName": "Acme",
            "permissions": {"API_BATCH_CLIENT_CREATE": True, "API_BATCH_TRANSACTION_CREATE": False},
        }
        for bad in ({"permissionsToCheck": "API_X"}, {"permissionsToCheck": [1]}, ["API_X"]):
            refused = api.post("/uauth/api-key/permission-check", bad)
            assert refused.status_code == 400
            assert set(refused.json()) == HTTP400_KEYS


def test_basic_auth_can_be_disabled() -> None:
    with SandboxServer(SyneriseSandbox(basic_auth=False).make_app()) as server:
        response = Api(server.url).post("/v4/clients/batch", [{"customId": "x"}], auth=basic())
    assert response.status_code == 401
    assert "not enabled" in response.json()["message"]


def test_expire_tokens_gives_token_expired_then_relogin_works(
    api: Api, sandbox: SyneriseSandbox
) -> None:
    assert api.post("/v4/clients", {"customId": "x"}).status_code == 202
    sandbox.expire_tokens()
    expired = api.post("/v4/clients", {"customId": "y"})
    assert expired.status_code == 401
    assert expired.json()["error"] == "Token expired."
    assert set(expired.json()) == HTTP400_KEYS
    api.login()
    assert api.post("/v4/clients", {"customId": "y"}).status_code == 202
    assert api.post("/v4/clients", {"customId": "z"}, auth=basic()).status_code == 202
    stats = api.stats()
    assert stats["token_expired_401"] == 1
    assert stats["profiles"] == 3
    assert stats["tokens_issued"] == 2


def test_expire_tokens_over_http(api: Api) -> None:
    assert requests.post(api.url + "/__sandbox__/synerise/expire-tokens", timeout=5).ok
    assert api.get("/catalogs/bags").json()["error"] == "Token expired."


def test_token_past_its_exp_is_expired(api: Api) -> None:
    token = forge_token({"sub": SANDBOX_WORKSPACE_GUID, "exp": int(time.time()) - 1, "jti": "99"})
    response = api.get("/catalogs/bags", auth=f"Bearer {token}")
    assert response.status_code == 401
    assert response.json()["error"] == "Token expired."


def test_chaos_expires_tokens_periodically() -> None:
    sandbox = SyneriseSandbox(token_expiry_interval=0.2)
    with SandboxServer(sandbox.make_app()) as server:
        api = Api(server.url)
        api.login()
        time.sleep(0.3)
        assert api.get("/catalogs/bags").json()["error"] == "Token expired."
        api.login()
        assert api.get("/catalogs/bags").status_code == 200


def test_refresh(api: Api, sandbox: SyneriseSandbox) -> None:
    old = api.token
    response = api.get("/v4/auth/refresh/profile")
    assert response.status_code == 200
    api.token = response.json()["token"]
    assert api.token != old
    assert api.get("/catalogs/bags").status_code == 200
    assert api.get("/v4/auth/refresh/profile", auth=basic()).status_code == 401
    sandbox.expire_tokens()
    assert api.get("/v4/auth/refresh/profile").json()["error"] == "Token expired."


def test_json_content_type_required_after_auth(api: Api) -> None:
    response = api.post("/v4/clients/batch", data='[{"customId": "x"}]')
    assert response.status_code == 415
    assert set(response.json()) == HTTP400_KEYS
    assert api.post("/v4/clients/batch", data="[]", auth="").status_code == 401


def test_api_version_header_is_accepted_and_counted(api: Api) -> None:
    api.post("/v4/clients", {"customId": "x"})
    assert api.stats()["api_versions"] == {"4.4": 1}


# -- limits ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "path", ["/v4/clients/batch", "/v4/transactions/batch", "/v4/events/batch"]
)
def test_batch_item_count_limits(api: Api, path: str) -> None:
    for body in ([], [{"customId": str(i)} for i in range(1001)], {"customId": "x"}):
        response = api.post(path, body)
        assert response.status_code == 400
        assert set(response.json()) == HTTP400_KEYS
    assert api.stats()["profiles"] == 0


def test_thousand_profiles_are_accepted(api: Api) -> None:
    assert (
        api.post("/v4/clients/batch", [{"customId": str(i)} for i in range(1000)]).status_code
        == 202
    )
    assert api.stats()["profiles"] == 1000


@pytest.mark.parametrize(
    "path", ["/v4/clients/batch", "/v4/transactions/batch", "/v4/events/batch"]
)
def test_batch_over_one_megabyte_is_413(api: Api, path: str) -> None:
    body = [{"customId": str(i), "attributes": {"blob": "x" * 300_000}} for i in range(4)]
    response = api.post(path, body)
    assert response.status_code == 413
    assert set(response.json()) == HTTP400_KEYS
    assert api.stats()["profiles"] == 0


@pytest.mark.parametrize(("size", "status"), [(1_000_000, 202), (1_000_001, 413)])
def test_one_megabyte_is_read_as_a_million_bytes(api: Api, size: int, status: int) -> None:
    skeleton = json.dumps([{"customId": "c1", "attributes": {"pad": ""}}]).encode()
    body = skeleton.replace(b'""', b'"' + b"x" * (size - len(skeleton)) + b'"')
    assert len(body) == size
    response = api.post(
        "/v4/clients/batch", data=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == status


def test_body_over_the_hard_cap_is_still_an_http400_body(api: Api) -> None:
    response = api.post(
        "/v4/clients/batch",
        data=b"[" + b" " * (65 * 1024 * 1024) + b"]",
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 413


def test_transaction_batch_limits_are_configurable() -> None:
    three = [transaction(orderId=str(i)) for i in range(3)]
    one_size = len(json.dumps(three[:1]).encode())
    sandbox = SyneriseSandbox(
        transactions_batch_max_items=2, transactions_batch_max_bytes=one_size + 10
    )
    with SandboxServer(sandbox.make_app()) as server:
        api = Api(server.url)
        api.login()
        assert api.post("/v4/transactions/batch", three).status_code == 413
        assert api.post("/v4/transactions/batch", three[:2]).status_code == 413
        assert api.post("/v4/transactions/batch", three[:1]).status_code == 202
    sandbox = SyneriseSandbox(transactions_batch_max_items=2)
    with SandboxServer(sandbox.make_app()) as server:
        api = Api(server.url)
        api.login()
        assert api.post("/v4/transactions/batch", three).status_code == 400
        assert api.post("/v4/transactions/batch", three[:2]).status_code == 202


def test_malformed_json_is_400(api: Api) -> None:
    response = api.post(
        "/v4/clients/batch", data="[{", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["message"].startswith("Malformed JSON")
    nan = api.post(
        "/v4/clients/batch",
        data='[{"customId": NaN}]',
        headers={"Content-Type": "application/json"},
    )
    assert nan.status_code == 400


def test_unknown_path_and_method_have_http400_bodies(api: Api) -> None:
    missing = api.get("/v4/nothing-here")
    assert missing.status_code == 404 and set(missing.json()) == HTTP400_KEYS
    wrong = api.get("/v4/clients/batch")
    assert wrong.status_code == 405 and set(wrong.json()) == HTTP400_KEYS
    assert "POST" in wrong.headers["Allow"]


# -- profile validation ----------------------------------------------------------------------
TODAY = datetime.now(UTC).date()


@pytest.mark.parametrize(
    ("item", "field"),
    [
        ({"email": "not-an-email"}, "email"),
        ({"email": "ana@example"}, "email"),
        ({"email": "ana@exämple.com"}, "email"),
        ({"email": "a b@example.com"}, "email"),
        ({"customId": "x", "email": ""}, "email"),
        ({"phone": "12345"}, "phone"),
        ({"phone": "+55 (11) 98765-4321 ramal 2"}, "phone"),
        ({"phone": "+1234567890123456789012"}, "phone"),
        ({"phone": 5511987654321}, "phone"),
        ({"customId": "line\nbreak"}, "customId"),
        ({"customId": "emoji\U0001f600"}, "customId"),
        ({"customId": "soft\u00adhyphen"}, "customId"),
        ({"uuid": "nul\u0000"}, "uuid"),
        ({"customId": "x", "email": "ana\ufe0f@example.com"}, "email"),
        ({"customId": "x", "birthDate": "1990-1-5"}, "birthDate"),
        ({"customId": "x", "birthDate": "05/01/1990"}, "birthDate"),
        ({"customId": "x", "birthDate": "1899-12-31"}, "birthDate"),
        ({"customId": "x", "birthDate": "1990-02-30"}, "birthDate"),
        ({"customId": "x", "birthDate": (TODAY + timedelta(days=1)).isoformat()}, "birthDate"),
        ({"customId": "x", "sex": "F"}, "sex"),
        ({"customId": "x", "agreements": {"email": "yes"}}, "agreements.email"),
        ({"customId": "x", "agreements": {"sms": 2}}, "agreements.sms"),
        ({"customId": "x", "agreements": {"fax": True}}, "agreements.fax"),
        ({"customId": "x", "agreements": True}, "agreements"),
        ({"customId": "x", "attributes": {"bad\nname": 1}}, "attributes.bad\nname"),
        ({"customId": "x", "attributes": ["a"]}, "attributes"),
        ({"customId": "x", "firstName": "Ana\u0000"}, "firstName"),
        ({"customId": "x", "firstName": "\ufe0f\ufe0e"}, "firstName"),
        ({"customId": "x", "city": 12}, "city"),
        ({"customId": "x", "tags": "vip"}, "tags"),
        ({"customId": "x", "clientId": "12"}, "clientId"),
    ],
)
def test_invalid_profile_items_are_rejected_with_207(api: Api, item: dict, field: str) -> None:
    response = api.post("/v4/clients/batch", [{"customId": "ok"}, item])
    assert response.status_code == 207
    errors = response.json()
    assert [error["field"] for error in errors] == [f"[1].{field}"]
    assert errors[0]["index"] == 1
    assert errors[0]["code"] == 400
    assert isinstance(errors[0]["rejectedValue"], str)
    assert errors[0]["message"]
    assert [p["customId"] for p in api.inspect("profiles")] == ["ok"]
    assert api.stats()["rejected_items"] == 1


@pytest.mark.parametrize(
    "item", [{}, {"firstName": "Ana"}, {"email": None, "customId": None}, "text", 5, None]
)
def test_items_without_identifier_are_rejected(api: Api, item: Any) -> None:
    response = api.post("/v4/clients/batch", [item])
    assert response.status_code == 207
    assert response.json()[0]["field"] == "[0]"
    assert api.stats()["profiles"] == 0


@pytest.mark.parametrize(
    "item",
    [
        {"phone": "+5511987654321"},
        {"phone": "(11) 98765-4321"},
        {"email": "ana.maria+tag@sub.example.com.br"},
        {"email": "ana@[10.0.0.1]"},
        {"email": '"quoted name"@example.com'},
        {"uuid": "0b5e1c2a-5a4d-4b0c-9e11-5a4db0c5a4d0"},
        {"customId": "x", "birthDate": "1900-01-01"},
        {"customId": "x", "birthDate": TODAY.isoformat()},
        {"customId": "x", "sex": "NOT_SPECIFIED"},
        {"customId": "x", "agreements": {"email": "True", "sms": 0, "push": 1, "wifi": False}},
        {"customId": "x", "unknownTopLevel": 1},
    ],
)
def test_valid_profile_items_are_accepted(api: Api, item: dict) -> None:
    assert api.post("/v4/clients/batch", [item]).status_code == 202
    assert api.stats()["profiles"] == 1


def test_single_profile_create(api: Api) -> None:
    assert api.post("/v4/clients", {"customId": "c1", "email": "a@example.com"}).status_code == 202
    bad = api.post("/v4/clients", {"customId": "c2", "email": "bad"})
    assert bad.status_code == 400
    assert set(bad.json()) == HTTP400_KEYS
    assert bad.json()["errors"][0]["field"] == "email"
    assert "index" not in bad.json()["errors"][0]
    assert [p["customId"] for p in api.inspect("profiles")] == ["c1"]


# -- upsert ----------------------------------------------------------------------------------
def test_upsert_merges_attributes_and_null_clears(api: Api) -> None:
    first = {
        "customId": "c1",
        "email": "Ana@Example.com",
        "firstName": "Ana",
        "city": "Recife",
        "agreements": {"email": "true", "sms": 1},
        "attributes": {"tier": "gold", "score": 5},
        "tags": ["a"],
    }
    assert api.post("/v4/clients/batch", [first]).status_code == 202
    update = {
        "customId": "c1",
        "firstName": None,
        "lastName": "Silva",
        "agreements": {"sms": "False"},
        "attributes": {"score": None, "segment": "b2b"},
    }
    assert api.post("/v4/clients/batch", [update]).status_code == 202
    [profile] = api.inspect("profiles")
    assert profile["email"] == "Ana@Example.com"
    assert "firstName" not in profile
    assert profile["lastName"] == "Silva"
    assert profile["city"] == "Recife"
    assert profile["agreements"] == {"email": True, "sms": False}
    assert profile["attributes"] == {"tier": "gold", "segment": "b2b"}
    assert profile["tags"] == ["a"]
    assert isinstance(profile["clientId"], int)


def test_email_matches_when_no_custom_id_match(api: Api) -> None:
    api.post("/v4/clients/batch", [{"email": "ana@example.com", "firstName": "Ana"}])
    api.post("/v4/clients/batch", [{"email": "ANA@example.com", "customId": "c1"}])
    [profile] = api.inspect("profiles")
    assert profile["customId"] == "c1"
    assert profile["firstName"] == "Ana"
    assert api.inspect("profiles", customId="c1") == [profile]
    assert api.inspect("profiles", email="ana@EXAMPLE.com") == [profile]


def test_custom_id_wins_over_email_and_takes_the_email_over(api: Api) -> None:
    api.post(
        "/v4/clients/batch",
        [
            {"customId": "c1", "email": "one@example.com"},
            {"customId": "c2", "email": "two@example.com"},
        ],
    )
    api.post("/v4/clients/batch", [{"customId": "c1", "email": "two@example.com"}])
    by_custom = {p["customId"]: p for p in api.inspect("profiles")}
    assert by_custom["c1"]["email"] == "two@example.com"
    assert "email" not in by_custom["c2"]
    assert api.stats()["identity_conflicts"] == 1
    api.post("/v4/clients/batch", [{"email": "two@example.com", "firstName": "X"}])
    assert api.inspect("profiles", customId="c1")[0]["firstName"] == "X"


def test_client_id_only_item_for_unknown_profile_is_ignored(api: Api) -> None:
    assert (
        api.post("/v4/clients/batch", [{"clientId": 999, "firstName": "Ghost"}]).status_code == 202
    )
    stats = api.stats()
    assert (stats["profiles"], stats["ignored_items"]) == (0, 1)
    api.post("/v4/clients/batch", [{"customId": "c1"}])
    client_id = api.inspect("profiles")[0]["clientId"]
    api.post("/v4/clients/batch", [{"clientId": client_id, "firstName": "Known"}])
    assert api.inspect("profiles")[0]["firstName"] == "Known"


@pytest.mark.parametrize("segment", ["by-customid", "by-custom-id"])
def test_delete_by_custom_id(api: Api, segment: str) -> None:
    api.post("/v4/clients/batch", [{"customId": "c/1", "email": "a@example.com"}])
    assert api.delete(f"/v4/clients/{segment}/c%2F1").status_code == 200
    assert api.stats()["profiles"] == 0
    missing = api.delete(f"/v4/clients/{segment}/c%2F1")
    assert missing.status_code == 404
    assert set(missing.json()) == HTTP400_KEYS
    api.post("/v4/clients/batch", [{"email": "a@example.com"}])
    assert "customId" not in api.inspect("profiles")[0]  # the email index was freed


def test_partial_reject_fault(api: Api, sandbox: SyneriseSandbox) -> None:
    sandbox.faults.set("synerise.clients_batch", partial_reject_rate=1.0)
    response = api.post("/v4/clients/batch", [{"customId": "a"}, {"customId": "b"}])
    assert response.status_code == 207
    assert [(e["field"], e["index"], e["code"]) for e in response.json()] == [
        ("[0]", 0, 503),
        ("[1]", 1, 503),
    ]
    assert api.stats()["profiles"] == 0
    sandbox.faults.set("synerise.clients_batch", partial_reject_rate=0.5)
    items = [{"customId": str(i)} for i in range(200)]
    response = api.post("/v4/clients/batch", items)
    assert response.status_code == 207
    rejected = {e["index"] for e in response.json()}
    assert 0 < len(rejected) < 200
    stored = {p["customId"] for p in api.inspect("profiles")}
    assert stored == {str(i) for i in range(200) if i not in rejected}
    stats = api.stats()
    assert stats["fault_rejected_items"] == stats["rejected_items"] == 2 + len(rejected)


def test_partial_reject_applies_to_its_route_only(api: Api, sandbox: SyneriseSandbox) -> None:
    sandbox.faults.set("synerise.clients_batch", partial_reject_rate=1.0)
    assert api.post("/v4/transactions/batch", [transaction()]).status_code == 202


# -- transactions ----------------------------------------------------------------------------
def test_transaction_creates_charge_and_product_buy_events(api: Api) -> None:
    assert api.post("/v4/transactions/batch", [transaction()]).status_code == 202
    [stored] = api.inspect("transactions")
    assert stored["orderId"] == "1001-01"
    assert stored["recordedAt"] == "2024-03-01T10:00:00.000Z"
    stats = api.stats()
    assert stats["transactions"] == 1
    assert stats["events_by_action"] == {"transaction.charge": 1, "product.buy": 2}
    charge = api.inspect("events", action="transaction.charge")[0]
    assert charge["params"]["$orderId"] == "1001-01"
    assert len(charge["params"]["productEventsUUIDs"]) == 2
    buys = api.inspect("events", action="product.buy")
    assert [b["params"]["sku"] for b in buys] == ["A", "B"]
    assert {b["eventUUID"] for b in buys} == set(charge["params"]["productEventsUUIDs"])


def test_single_transaction_endpoint(api: Api) -> None:
    assert api.post("/v4/transactions", transaction()).status_code == 202
    bad = api.post("/v4/transactions", transaction(orderId=None))
    assert bad.status_code == 400
    assert bad.json()["errors"][0]["field"] == "orderId"
    assert api.stats()["transactions"] == 1


def _without(key: str) -> dict:
    body = transaction()
    del body[key]
    return body


def _product(**changes: Any) -> dict:
    product = {"sku": "A", "name": "Alpha", "finalUnitPrice": money(10.0), "quantity": 1}
    product.update(changes)
    return transaction(products=[product], revenue=money(10.0), value=money(10.0))


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (transaction(client={}), "client"),
        (transaction(client={"phone": "+5511987654321"}), "client"),
        (transaction(client={"email": "bad"}), "client.email"),
        (transaction(client="c1"), "client"),
        (_without("client"), "client"),
        (transaction(orderId=""), "orderId"),
        (_without("orderId"), "orderId"),
        (_without("revenue"), "revenue"),
        (transaction(value={"amount": 1}), "value.currency"),
        (transaction(revenue=money(-1)), "revenue.amount"),
        (transaction(revenue=money("10")), "revenue.amount"),  # type: ignore[arg-type]
        (transaction(revenue=money(30, "BR")), "revenue.currency"),
        (transaction(discountAmount=money(0)), "discountAmount.amount"),
        (transaction(products=[]), "products"),
        (_without("products"), "products"),
        (_product(sku=""), "products[0].sku"),
        (_product(name=None), "products[0].name"),
        (_product(finalUnitPrice=None), "products[0].finalUnitPrice"),
        (_product(quantity=-1), "products[0].quantity"),
        (_product(regularPrice=money(-2)), "products[0].regularPrice.amount"),
        (transaction(recordedAt="2024-03-01 10:00:00"), "recordedAt"),
        (transaction(recordedAt="2024-03-01T10:00Z"), "recordedAt"),
        (transaction(recordedAt="2024-02-30T10:00:00Z"), "recordedAt"),
        (transaction(recordedAt=1709287200), "recordedAt"),
        (transaction(source="SHOP"), "source"),
        (transaction(eventSalt=""), "eventSalt"),
        (transaction(metadata=[1]), "metadata"),
    ],
)
def test_invalid_transactions_are_rejected_with_207(api: Api, body: dict, field: str) -> None:
    response = api.post("/v4/transactions/batch", [transaction(orderId="ok"), body])
    assert response.status_code == 207
    fields = [error["field"] for error in response.json()]
    assert fields == [f"[1].{field}"]
    assert [t["orderId"] for t in api.inspect("transactions")] == ["ok"]


def test_mixed_currencies_are_rejected(api: Api) -> None:
    body = transaction(value=money(30.0, "USD"))
    response = api.post("/v4/transactions/batch", [body])
    assert response.status_code == 207
    assert [e["field"] for e in response.json()] == ["[0].currency"]
    lower = transaction(revenue=money(30.0, "brl"))  # same currency, other case: fine
    assert api.post("/v4/transactions/batch", [lower]).status_code == 202


@pytest.mark.parametrize(
    "recorded",
    [
        "2024-03-01T10:00:00Z",
        "2024-03-01T10:00:00",
        "2024-03-01T10:00:00.123456+03:00",
        "2024-03-01T10:00:00.5-05:30",
    ],
)
def test_recorded_at_formats(api: Api, recorded: str) -> None:
    assert api.post("/v4/transactions/batch", [transaction(recordedAt=recorded)]).status_code == 202


def test_future_or_missing_recorded_at_becomes_receive_time(api: Api) -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    future = (datetime.now(UTC) + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    api.post("/v4/transactions/batch", [transaction(recordedAt=future)])
    api.post("/v4/transactions/batch", [_without("recordedAt") | {"orderId": "2"}])
    after = datetime.now(UTC) + timedelta(seconds=1)
    for stored in api.inspect("transactions"):
        moment = datetime.fromisoformat(stored["recordedAt"].replace("Z", "+00:00"))
        assert before <= moment <= after


def test_future_recorded_at_can_never_be_overwritten(api: Api) -> None:
    future = (datetime.now(UTC) + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    api.post("/v4/transactions/batch", [transaction(recordedAt=future)])
    time.sleep(0.01)
    api.post("/v4/transactions/batch", [transaction(recordedAt=future)])
    stats = api.stats()
    assert (stats["transactions"], stats["duplicate_transactions"]) == (2, 1)


def test_same_salt_time_and_client_overwrites(api: Api) -> None:
    api.post("/v4/transactions/batch", [transaction()])
    updated = transaction(
        recordedAt="2024-03-01T13:00:00+03:00",  # the same instant, written differently
        revenue=money(10.0),
        value=money(10.0),
        products=[
            {"sku": "A", "name": "Alpha", "finalUnitPrice": money(10.0), "quantity": 1},
            {"sku": "B", "name": "Beta", "finalUnitPrice": money(20.0), "quantity": 0},
        ],
        metadata={"orderStatus": "canceled"},
    )
    assert api.post("/v4/transactions/batch", [updated]).status_code == 202
    [stored] = api.inspect("transactions")
    assert stored["revenue"]["amount"] == 10.0
    assert stored["metadata"] == {"orderStatus": "canceled"}
    assert stored["_sandbox"]["overwrites"] == 1
    stats = api.stats()
    assert stats["transactions"] == 1
    assert stats["duplicate_transactions"] == 0
    assert stats["transactions_overwritten"] == 1
    assert stats["events_by_action"] == {"transaction.charge": 1, "product.buy": 2}


@pytest.mark.parametrize(
    "resend",
    [
        transaction(eventSalt="another-salt"),
        _without("eventSalt"),
        transaction(recordedAt="2024-03-01T10:00:00.001Z"),
        transaction(client={"customId": "c2"}),
        transaction(client={"email": "other@example.com"}),
    ],
    ids=["other-salt", "no-salt", "other-time", "other-customId", "other-email"],
)
def test_other_resends_are_duplicates(api: Api, resend: dict) -> None:
    api.post("/v4/transactions/batch", [transaction()])
    assert api.post("/v4/transactions/batch", [resend]).status_code == 202
    stats = api.stats()
    assert stats["transactions"] == 2
    assert stats["duplicate_transactions"] == 1
    assert stats["transactions_overwritten"] == 0
    assert len(api.inspect("transactions", orderId="1001-01")) == 2


def test_without_salt_even_identical_resends_duplicate(api: Api) -> None:
    body = _without("eventSalt")
    api.post("/v4/transactions/batch", [body, body])
    api.post("/v4/transactions", body)
    assert api.stats()["duplicate_transactions"] == 2


def test_same_client_through_profile_resolution(api: Api) -> None:
    api.post("/v4/clients/batch", [{"customId": "c1", "email": "ana@example.com"}])
    api.post("/v4/transactions/batch", [transaction(client={"email": "ANA@example.com"})])
    api.post("/v4/transactions/batch", [transaction(client={"customId": "c1"})])
    stats = api.stats()
    assert (stats["transactions"], stats["transactions_overwritten"]) == (1, 1)
    assert (
        api.inspect("transactions")[0]["_sandbox"]["clientId"]
        == api.inspect("profiles")[0]["clientId"]
    )


def test_same_client_by_common_identifier_without_profile(api: Api) -> None:
    api.post("/v4/transactions/batch", [transaction(client={"email": "ana@example.com"})])
    api.post(
        "/v4/transactions/batch",
        [transaction(client={"customId": "c9", "email": "ana@example.com"})],
    )
    assert api.stats()["transactions_overwritten"] == 1
    # customId is compared first: different customIds mean different clients
    api.post(
        "/v4/transactions/batch",
        [transaction(client={"customId": "c8", "email": "ana@example.com"})],
    )
    assert api.stats()["transactions"] == 2


def test_overwrite_keeps_product_events_by_position(api: Api) -> None:
    api.post("/v4/transactions/batch", [transaction()])
    fewer = transaction(
        products=[{"sku": "B", "name": "Beta", "finalUnitPrice": money(20.0), "quantity": 1}],
        revenue=money(20.0),
        value=money(20.0),
    )
    api.post("/v4/transactions/batch", [fewer])
    buys = api.inspect("events", action="product.buy")
    assert [b["params"]["sku"] for b in buys] == ["B", "B"]  # line 0 overwritten, line 1 stays
    assert api.stats()["events"] == 3


def test_transactions_listing_filters(api: Api) -> None:
    api.post(
        "/v4/transactions/batch",
        [transaction(), transaction(orderId="2", eventSalt="2", client={"customId": "c2"})],
    )
    assert [t["orderId"] for t in api.inspect("transactions", customId="c2")] == ["2"]
    assert [t["orderId"] for t in api.inspect("transactions", email="ANA@example.com")] == [
        "1001-01"
    ]
    assert len(api.inspect("events", orderId="2")) == 3


# -- events ----------------------------------------------------------------------------------
def test_custom_event(api: Api) -> None:
    assert api.post("/v4/events/custom", event()).status_code == 202
    [stored] = api.inspect("events")
    assert stored["action"] == "client.deleteAccount"
    assert stored["params"] == {"reason": "test"}
    assert stored["time"] == "2024-03-01T10:00:00.000Z"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (event(action="has space"), "action"),
        (event(action="a" * 33), "action"),
        (event(action=""), "action"),
        (event(label=None), "label"),
        (event(client={}), "client"),
        (event(client={"uuid": "x\ny"}), "client.uuid"),
        (event(time="yesterday"), "time"),
        (event(params="x"), "params"),
    ],
)
def test_invalid_custom_events_are_400(api: Api, body: dict, field: str) -> None:
    response = api.post("/v4/events/custom", body)
    assert response.status_code == 400
    assert [e["field"] for e in response.json()["errors"]] == [field]
    assert api.stats()["events"] == 0


def test_action_of_32_chars_is_fine(api: Api) -> None:
    assert api.post("/v4/events/custom", event(action="a.b-c_" + "x" * 26)).status_code == 202


def test_event_batch_and_salt_overwrite(api: Api) -> None:
    batch = [event(), event(eventSalt="salt-2"), event(action="bad action")]
    response = api.post("/v4/events/batch", batch)
    assert response.status_code == 207
    assert [e["field"] for e in response.json()] == ["[2].action"]
    assert api.stats()["events"] == 2
    api.post("/v4/events/batch", [event(params={"reason": "second"})])  # same salt/action/time
    assert api.stats()["events"] == 2
    assert api.stats()["events_overwritten"] == 1
    api.post("/v4/events/batch", [event(time="2024-03-01T10:00:01Z")])  # other time: new event
    api.post("/v4/events/batch", [event(action="other.action")])  # other action: new event
    api.post("/v4/events/batch", [event(client={"customId": "c2"})])  # other client: new event
    assert api.stats()["events"] == 5
    first = [e for e in api.inspect("events") if e["eventSalt"] == "salt-1"]
    assert first[0]["params"] == {"reason": "second"}


def test_events_batch_does_not_derive_product_buy(api: Api) -> None:
    api.post("/v4/events/batch", [event(action="transaction.charge")])
    assert api.stats()["events_by_action"] == {"transaction.charge": 1}


# -- catalogs --------------------------------------------------------------------------------
def test_catalogs(api: Api) -> None:
    created = api.post("/catalogs/bags", {"name": "store-1"})
    assert created.status_code == 200
    bag = created.json()["data"]
    api.post("/catalogs/bags", {"name": "store-2"})
    api.post("/catalogs/bags", {"name": "other"})
    listing = api.get("/catalogs/bags", params={"searchBy": "STORE", "limit": 1, "offset": 1})
    assert [b["name"] for b in listing.json()["data"]] == ["store-2"]
    assert listing.json()["metaData"]["totalCount"] == 2
    assert len(api.get("/catalogs/bags").json()["data"]) == 3

    items = f"/catalogs/bags/{bag['id']}/items/batch"
    first = [
        {"itemKey": "SKU1", "value": {"price": "1"}},
        {"itemKey": "SKU2", "value": {"price": "2"}},
    ]
    response = api.post(items, first)
    assert response.status_code == 200 and response.json() is True
    assert api.post(items, [{"itemKey": "SKU1", "value": {"price": "9"}}]).status_code == 200
    item = api.get(f"/catalogs/bags/{bag['id']}/items/itemKey/SKU1")
    assert item.json()["data"]["value"] == {"price": "9"}
    assert api.stats()["catalog_items"] == 2
    assert [i["itemKey"] for i in api.inspect("catalog-items", bagId=bag["id"])] == ["SKU1", "SKU2"]

    bad = api.post(
        items,
        [
            {"itemKey": "", "value": {}},
            {"itemKey": "SKU3", "value": 5},
            {"itemKey": "SKU4", "value": {"price": 4, "deleted": "0", "tags": ["a"]}},
        ],
    )
    assert bad.status_code == 207
    assert [e["field"] for e in bad.json()] == [
        "[0].itemKey",
        "[1].value",
        "[2].value.price",
        "[2].value.tags",
    ]
    assert api.get(f"/catalogs/bags/{bag['id']}/items/itemKey/SKU3").status_code == 404
    assert api.post("/catalogs/bags/999/items/batch", first).status_code == 404
    assert api.get(f"/catalogs/bags/{bag['id']}").json()["data"]["name"] == "store-1"
    gone = api.post("/catalogs/bags", {"name": "gone"}).json()["data"]["id"]
    api.post(f"/catalogs/bags/{gone}/items/batch", first)
    assert api.delete(f"/catalogs/bags/{gone}").status_code == 204
    assert api.post(f"/catalogs/bags/{gone}/items/batch", first).status_code == 404
    assert api.get(f"/catalogs/bags/{gone}").status_code == 404
    assert api.delete(f"/catalogs/bags/{gone}").status_code == 404
    assert api.get("/catalogs/bags/abc/items/itemKey/SKU1").status_code == 404
    assert api.post("/catalogs/bags", {"name": ""}).status_code == 400
    assert api.post(items, first, auth="").status_code == 401
    assert api.get("/catalogs/bags", params={"limit": "x"}).status_code == 400


def test_the_catalog_batch_is_as_strict_as_the_vendored_schema(api: Api) -> None:
    """Whatever the emulator takes, Synerise's own model (``catalogs_items_batch.json``) takes."""
    schema = Draft202012Validator(json.loads(
        (VENDORED_SCHEMAS / "catalogs_items_batch.json").read_text(encoding="utf-8")
    ))  # fmt: skip
    bag = api.post("/catalogs/bags", {"name": "strict"}).json()["data"]["id"]
    candidates: list[Any] = [
        {"itemKey": "1", "value": {"itemId": "1", "deleted": "0"}},
        {"itemKey": "2", "value": {}},
        {"itemKey": "3", "value": {"price": 10.5}},
        {"itemKey": "4", "value": {"deleted": 1}},
        {"itemKey": "5", "value": {"deleted": None}},
        {"itemKey": "6", "value": {"nested": {"a": "b"}}},
        {"itemKey": 7, "value": {}},
        {"itemKey": "8", "value": "text"},
        {"itemKey": "9", "value": {"ok": True}},
        "not an object",
    ]
    for candidate in candidates:
        accepted = api.post(f"/catalogs/bags/{bag}/items/batch", [candidate]).status_code == 200
        if accepted:
            assert schema.is_valid([candidate]), candidate


# -- inspection, faults and stats ------------------------------------------------------------
def test_stats_and_listing(api: Api) -> None:
    api.post("/v4/clients/batch", [{"customId": str(i)} for i in range(5)])
    stats = api.stats()
    for key in (
        "profiles",
        "transactions",
        "duplicate_transactions",
        "events",
        "catalog_items",
        "rate_limited",
        "requests",
        "rejected_items",
        "token_expired_401",
    ):
        assert key in stats
    assert stats["requests"] == {"synerise.login": 1, "synerise.clients_batch": 1}
    page = requests.get(
        api.url + "/__sandbox__/synerise/profiles", params={"limit": 2, "offset": 1}, timeout=5
    )
    assert [p["customId"] for p in page.json()] == ["1", "2"]
    assert page.headers["X-Total-Count"] == "5"
    bad = requests.get(api.url + "/__sandbox__/synerise/profiles", params={"limit": -1}, timeout=5)
    assert bad.status_code == 400


def test_python_accessors_are_thread_safe_copies(api: Api, sandbox: SyneriseSandbox) -> None:
    api.post("/v4/clients/batch", [{"customId": "c1", "attributes": {"a": 1}}])
    profiles = sandbox.stored_profiles()
    profiles[0]["attributes"]["a"] = 2
    assert sandbox.stored_profiles()[0]["attributes"] == {"a": 1}
    assert sandbox.stats()["profiles"] == 1
    assert sandbox.stored_transactions() == sandbox.stored_events() == []
    assert sandbox.stored_catalog_items() == []


def test_reset(api: Api, sandbox: SyneriseSandbox) -> None:
    api.post("/v4/clients/batch", [{"customId": "c1"}])
    api.post("/v4/transactions/batch", [transaction()])
    sandbox.faults.set("synerise.events_*", latency_ms=1)
    after = requests.post(api.url + "/__sandbox__/reset", timeout=5).json()
    assert (after["profiles"], after["transactions"], after["events"], after["requests"]) == (
        0,
        0,
        0,
        {},
    )
    assert sandbox.faults.rules() != []
    assert api.post("/v4/clients/batch", [{"customId": "c1"}]).status_code == 202  # token kept
    requests.post(api.url + "/__sandbox__/reset", params={"faults": "true"}, timeout=5)
    assert sandbox.faults.rules() == []


def test_rate_limit_on_synerise_routes(api: Api, sandbox: SyneriseSandbox) -> None:
    requests.post(
        api.url + "/__sandbox__/faults",
        json={"route": "synerise.clients_*", "rate_limit": 0.01, "burst": 1},
        timeout=5,
    )
    assert api.post("/v4/clients/batch", [{"customId": "a"}]).status_code == 202
    limited = api.post("/v4/clients", {"customId": "b"})
    assert limited.status_code == 429
    assert int(limited.headers["Retry-After"]) >= 1
    assert set(limited.json()) == HTTP400_KEYS
    assert api.post("/v4/transactions/batch", [transaction()]).status_code == 202
    stats = api.stats()
    assert stats["rate_limited"] == 1
    assert stats["profiles"] == 1


def test_inspection_is_never_faulted_or_authenticated(api: Api, sandbox: SyneriseSandbox) -> None:
    sandbox.faults.set("*", error_rate=1.0)
    assert api.post("/v4/clients/batch", [{"customId": "a"}]).status_code in (500, 502, 503)
    for path in (
        "stats",
        "synerise/profiles",
        "synerise/transactions",
        "synerise/events",
        "synerise/catalog-items",
        "faults",
    ):
        assert requests.get(f"{api.url}/__sandbox__/{path}", timeout=5).status_code == 200
    assert api.stats()["errors_injected"] == 1
