"""The taxonomy matches docs/architecture.md and the response table maps statuses as documented."""

from __future__ import annotations

import inspect

import pytest

from etl import errors
from etl.errors import (
    AuthenticationError,
    BudgetExhaustedError,
    CatalogNotFoundError,
    ClaimLostError,
    ConfigError,
    EtlError,
    FatalError,
    MissingExtraError,
    NetworkError,
    PausedError,
    PermissionDeniedError,
    RateLimitedError,
    RetriableError,
    RunStoppedError,
    ServerError,
    SkippableRecordError,
    SlotLostError,
    TokenExpiredError,
    classify_response,
)
from schemas.reasons import RejectReason

TREE = {
    FatalError: EtlError,
    ConfigError: FatalError,
    MissingExtraError: FatalError,
    AuthenticationError: FatalError,
    PermissionDeniedError: FatalError,
    CatalogNotFoundError: FatalError,
    RetriableError: EtlError,
    RateLimitedError: RetriableError,
    ServerError: RetriableError,
    NetworkError: RetriableError,
    TokenExpiredError: RetriableError,
    SkippableRecordError: EtlError,
    PausedError: EtlError,
    SlotLostError: PausedError,
    ClaimLostError: PausedError,
    RunStoppedError: PausedError,
    BudgetExhaustedError: PausedError,
}


@pytest.mark.parametrize(("cls", "parent"), TREE.items(), ids=lambda c: c.__name__)
def test_each_class_sits_where_the_architecture_draws_it(cls, parent):
    assert cls.__bases__ == (parent,)


def test_the_docstring_draws_every_error_class():
    drawn = errors.__doc__ or ""
    classes = [obj for _, obj in inspect.getmembers(errors, inspect.isclass)
               if issubclass(obj, EtlError)]
    assert {c for c in classes} == set(TREE) | {EtlError}
    for cls in classes:
        assert cls.__name__ in drawn


def test_all_lists_exactly_the_public_names():
    public = {name for name in vars(errors) if not name.startswith("_")}
    assert set(errors.__all__) <= public
    assert {c.__name__ for c in TREE} <= set(errors.__all__)


def test_config_error_message_quotes_the_value():
    error = ConfigError("VTEX_RATE_LIMIT", "a positive number", "abc")
    assert str(error) == "VTEX_RATE_LIMIT: expected a positive number, got 'abc'"
    assert (error.variable, error.expected, error.got) == (
        "VTEX_RATE_LIMIT", "a positive number", "abc"
    )


def test_config_error_without_got_never_echoes_a_value():
    assert str(ConfigError("SYNERISE_API_KEY", "a workspace API key")) == (
        "SYNERISE_API_KEY: expected a workspace API key"
    )


def test_config_error_shortens_a_huge_value():
    message = str(ConfigError("X", "a number", "9" * 500))
    assert len(message) < 120 and message.endswith("...'")


def test_retriable_errors_carry_their_details():
    limited = RateLimitedError(7.5)
    assert limited.retry_after == 7.5 and "7.5" in str(limited)
    assert RateLimitedError(None).retry_after is None
    assert RateLimitedError(1, "VTEX answered 429").args == ("VTEX answered 429",)
    server = ServerError(503)
    assert server.status == 503 and str(server) == "server error 503"


def test_skippable_record_error_keeps_reason_message_and_key():
    error = SkippableRecordError(RejectReason.INVALID_EMAIL, "no @ in the address", "CL-1")
    assert error.reason == "INVALID_EMAIL"
    assert (error.message, error.key) == ("no @ in the address", "CL-1")
    assert str(error) == "CL-1: INVALID_EMAIL: no @ in the address"


def test_paused_errors_take_a_message():
    assert str(SlotLostError("run 3 lost its slot")) == "run 3 lost its slot"
    assert isinstance(BudgetExhaustedError("wait too long"), PausedError)


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (401, {"error": "Token expired.", "status": 401}, TokenExpiredError),
        (401, "Token expired.", TokenExpiredError),
        (401, {"error": "Unauthorized", "message": "Bad credentials"}, AuthenticationError),
        (401, None, AuthenticationError),
        (403, {"error": "Forbidden"}, PermissionDeniedError),
        (408, None, ServerError),
        (429, None, RateLimitedError),
        (400, {"Message": "Maximum simultaneous scrolls rate exceeded (10)"}, RateLimitedError),
        (500, "boom", ServerError),
        (502, None, ServerError),
        (503, {"error": "Service Unavailable"}, ServerError),
        (599, None, ServerError),
        (400, {"error": "Bad Request"}, None),
        (404, None, None),
        (409, None, None),
        (413, None, None),
        (415, None, None),
        (422, None, None),
        (200, None, None),
        (202, None, None),
        (207, [{"field": "[0].email"}], None),
        (304, None, None),
    ],
)
def test_classify_response_table(status, body, expected):
    assert classify_response(status, body, {}) is expected


def test_token_expired_needs_the_401():
    assert classify_response(400, {"error": "Token expired."}, {}) is None


def test_missing_extra_names_the_pip_command():
    error = MissingExtraError("sandbox", "the sandbox")
    assert str(error) == (
        "the sandbox needs the 'sandbox' extra: pip install 'vtex-synerise-etl[sandbox]'"
    )
    assert error.extra == "sandbox"
