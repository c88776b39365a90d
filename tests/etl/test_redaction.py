"""Redaction of personal data and secrets in payloads, free text and log records."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from etl.redaction import (
    SENSITIVE_KEYS,
    fingerprint,
    install_log_redaction,
    redact_email,
    redact_payload,
    redact_phone,
    redact_text,
    register_secret,
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("john.doe@x.com", "j***@x.com"),
        ("a@shop.com.br", "a***@shop.com.br"),
        ("@x.com", "***@x.com"),
        ("not an e-mail", "***"),
    ],
)
def test_redact_email(value, expected):
    assert redact_email(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [("+55 11 98765-4321", "***21"), ("(11) 3333-4455", "***55"), ("123", "***"), ("", "***")],
)
def test_redact_phone(value, expected):
    assert redact_phone(value) == expected


ORDER: dict[str, Any] = {
    "orderId": "1234-01",
    "value": 15990,
    "clientProfileData": {
        "email": "maria.silva@example.com.br-abc.ct.vtex.com.br",
        "firstName": "Maria",
        "lastName": "Silva",
        "document": "12345678909",
        "documentType": "cpf",
        "phone": "+5511987654321",
        "isCorporate": False,
        "corporateName": None,
    },
    "shippingData": {
        "address": {
            "receiverName": "Maria Silva",
            "street": "Rua Augusta",
            "number": "1500",
            "geoCoordinates": [-46.65, -23.56],
            "country": "BRA",
        }
    },
    "items": [{"id": "42", "name": "Blue shirt", "quantity": 2}],
    "openTextField": {"value": "call me at maria@example.com"},
}


def test_redact_payload_masks_personal_fields_and_keeps_the_shape():
    redacted = redact_payload(ORDER)
    profile = redacted["clientProfileData"]
    assert profile["email"] == "m***@example.com.br-abc.ct.vtex.com.br"
    assert profile["firstName"] == profile["lastName"] == profile["document"] == "***"
    assert profile["phone"] == "***21"
    assert profile["documentType"] == "cpf"
    assert profile["isCorporate"] is False and profile["corporateName"] is None
    address = redacted["shippingData"]["address"]
    assert set(address) == set(ORDER["shippingData"]["address"])
    assert all(value == "***" for key, value in address.items() if key != "geoCoordinates")
    assert address["geoCoordinates"] == ["***", "***"]
    assert redacted["items"] == [{"id": "42", "name": "***", "quantity": 2}]
    assert redacted["openTextField"]["value"] == "call me at m***@example.com"
    assert redacted["orderId"] == "1234-01" and redacted["value"] == 15990


def test_redact_payload_is_a_deep_copy():
    redact_payload(ORDER)
    assert ORDER["clientProfileData"]["firstName"] == "Maria"
    assert ORDER["shippingData"]["address"]["geoCoordinates"] == [-46.65, -23.56]


def test_redact_payload_matches_keys_loosely_and_masks_credentials():
    redacted = redact_payload(
        {
            "E-Mail": "x@y.io",
            "home_phone": "+1 555 0100",
            "X-VTEX-API-AppToken": "TOKENVALUE",
            "headers": {"x-synerise-api-key": "KEYVALUE", "Authorization": "Bearer abc.def"},
            "apiKey": "abc",
            "email": "",
        }
    )
    assert redacted == {
        "E-Mail": "x***@y.io",
        "home_phone": "***00",
        "X-VTEX-API-AppToken": "***",
        "headers": {"x-synerise-api-key": "***", "Authorization": "***"},
        "apiKey": "***",
        "email": "",
    }


def test_redact_payload_accepts_extra_keys():
    record = {"cpfNumber": "123", "nickname": "mari"}
    assert redact_payload(record, keys=SENSITIVE_KEYS | {"cpf_number"}) == {
        "cpfNumber": "***",
        "nickname": "***",
    }
    assert redact_payload(record, keys={"cpfNumber"}) == {"cpfNumber": "***", "nickname": "mari"}


def test_redact_payload_passes_scalars_and_tuples():
    assert redact_payload("mail me: a@b.com") == "mail me: a***@b.com"
    assert redact_payload(7) == 7
    assert redact_payload(({"email": "a@b.com"},)) == ({"email": "a***@b.com"},)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Authorization: Bearer eyJhbGciOi.payload.sig", "Authorization: ***"),
        ("sent with bearer eyJhbGciOi.payload.sig ok", "sent with bearer *** ok"),
        ("{'X-VTEX-API-AppToken': 'ABCDEF', 'X-VTEX-API-AppKey': 'vtexappkey-x'}",
         "{'X-VTEX-API-AppToken': '***', 'X-VTEX-API-AppKey': 'vtexappkey-x'}"),
        ("{'X-VTEX-API-AppToken': b'ABCDEF'}", "{'X-VTEX-API-AppToken': b'***'}"),
        ("GET /v4/items?apiKey=s3cr3t&limit=10", "GET /v4/items?apiKey=***&limit=10"),
        ('{"apiKey": "s3cr3t", "token": "eyJ.x.y"}', '{"apiKey": "***", "token": "***"}'),
        ("x-synerise-api-key: s3cr3t", "x-synerise-api-key: ***"),
        ('{"error": "Token expired."}', '{"error": "Token expired."}'),
        ("profile john@doe.com rejected", "profile j***@doe.com rejected"),
    ],
)  # fmt: skip
def test_redact_text(text, expected):
    assert redact_text(text) == expected


def test_registered_secrets_are_masked_anywhere():
    register_secret("hunter2-secret-value")
    register_secret("")  # ignored
    assert redact_text("login failed for hunter2-secret-value!") == "login failed for ***!"
    assert redact_payload({"note": "hunter2-secret-value"}) == {"note": "***"}


def test_fingerprint_is_stable_seeded_and_short():
    one = fingerprint("john@doe.com", seed="s1")
    assert one == fingerprint("john@doe.com", seed="s1")
    assert one != fingerprint("john@doe.com", seed="s2")
    assert one != fingerprint("jane@doe.com", seed="s1")
    assert len(one) == 16 and int(one, 16) >= 0
    assert len(fingerprint("x", "s", length=8)) == 8
    assert "john" not in one


@pytest.fixture
def redacted_logs(caplog):
    """caplog with the redaction filter installed on the root handlers (caplog's included)."""
    caplog.set_level(logging.INFO)
    log_filter = install_log_redaction()
    yield caplog
    for handler in logging.getLogger().handlers:
        handler.removeFilter(log_filter)


SECRETS = ("maria@example.com", "ABCDEF123", "s3cr3tkey", "eyJhbGciOi", "the-app-token-xyz")


def assert_clean(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text


def test_log_records_carry_no_email_or_token(redacted_logs):
    register_secret("the-app-token-xyz")
    log = logging.getLogger("etl.test")
    log.info("profile %s rejected", "maria@example.com")
    log.info("headers %r", {"X-VTEX-API-AppToken": "ABCDEF123", "Accept": "application/json"})
    log.warning("calling https://api.synerise.com/x?apiKey=s3cr3tkey")
    log.info("auth %(header)s", {"header": "Bearer eyJhbGciOi.p.s"})
    log.error("vtex said: %s", RuntimeError("bad token the-app-token-xyz"))
    assert_clean(redacted_logs.text)
    assert "m***@example.com" in redacted_logs.text
    assert "'Accept': 'application/json'" in redacted_logs.text
    assert "apiKey=***" in redacted_logs.text
    assert len(redacted_logs.records) == 5


def test_tracebacks_are_redacted(redacted_logs):
    try:
        raise ValueError("could not send maria@example.com with apiKey=s3cr3tkey")
    except ValueError:
        logging.getLogger("etl.test").exception("send failed")
    assert "ValueError" in redacted_logs.text
    assert_clean(redacted_logs.text)


def test_a_template_with_placeholders_still_formats(redacted_logs):
    logging.getLogger("etl.test").info("apiKey=%s count=%d", "s3cr3tkey", 3)
    assert "apiKey=*** count=3" in redacted_logs.text


def test_install_is_idempotent(redacted_logs):
    first = install_log_redaction()
    assert install_log_redaction() is first
    handler = redacted_logs.handler
    assert handler.filters.count(first) == 1


def test_celery_task_names_stay_readable_while_personal_data_is_masked(redacted_logs):
    """Celery logs ``Task %(name)s[%(id)s] received``: ``name`` is the task's, not a person's."""
    log = logging.getLogger("celery.worker.strategy")
    log.info("Task %(name)s[%(id)s] received", {"name": "etl.process_chunk", "id": "6f1c"})
    log.info("Task %(name)s[%(id)s] succeeded in %(runtime)ss: %(return_value)s",
             {"name": "etl.realtime.customer", "id": "77aa", "runtime": 0.1,
              "return_value": "sent maria@example.com"})  # fmt: skip
    log.info("customer %(name)s %(phone)s %(email)s",
             {"name": "Maria Silva", "phone": "+55 11 98765-4321", "email": "maria@example.com"})
    log.info("customer %(name)s", {"name": "maria.silva"})
    text = redacted_logs.text
    assert "Task etl.process_chunk[6f1c] received" in text
    assert "Task etl.realtime.customer[77aa] succeeded" in text
    assert_clean(text)
    assert "Maria" not in text and "98765" not in text and "maria.silva" not in text
    assert "customer *** ***21 m***@example.com" in text
