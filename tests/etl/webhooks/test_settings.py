"""The realtime settings: defaults, parsing, one clear error per bad value."""

from __future__ import annotations

import pytest

from etl.config import Settings
from etl.errors import ConfigError


def load(**env: str) -> Settings:
    return Settings.from_env(env, require=())


def test_defaults():
    settings = load()
    assert settings.delete_behaviour == "event"
    assert settings.order_update_statuses == ("invoiced", "canceled")
    assert settings.consent_create_missing_cl is False
    assert (settings.realtime_dedupe_ttl, settings.echo_guard_ttl) == (172_800, 600)


def test_values_are_parsed():
    settings = load(DELETE_BEHAVIOUR="remove", ORDER_UPDATE_STATUSES="canceled, handling",
                    CONSENT_CREATE_MISSING_CL="Yes", REALTIME_DEDUPE_TTL="3600",
                    ECHO_GUARD_TTL="30", REALTIME_BATCH_SIZE="250", REALTIME_DRAINS="2",
                    REALTIME_REDELIVER_AFTER="45")  # fmt: skip
    assert settings.delete_behaviour == "remove"
    assert settings.order_update_statuses == ("canceled", "handling")
    assert settings.consent_create_missing_cl is True
    assert (settings.realtime_dedupe_ttl, settings.echo_guard_ttl) == (3600, 30)
    assert (settings.realtime_batch_size, settings.realtime_drains) == (250, 2)
    assert settings.realtime_redeliver_after == 45


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("DELETE_BEHAVIOUR", "anonymize", "one of event, remove, ignore"),
        ("CONSENT_CREATE_MISSING_CL", "maybe", "true or false"),
        ("ORDER_UPDATE_STATUSES", "invoiced,,canceled", "comma-separated field names"),
        ("REALTIME_DEDUPE_TTL", "10", "a whole number from 60"),
        ("ECHO_GUARD_TTL", "0", "a whole number from 1"),
        ("REALTIME_BATCH_SIZE", "1001", "a whole number from 1 to 1000"),
        ("REALTIME_DRAINS", "0", "a whole number from 1 to 64"),
        ("REALTIME_REDELIVER_AFTER", "0", "a whole number from 1 to 3600"),
    ],
)
def test_bad_values_name_the_variable(variable, value, expected):
    with pytest.raises(ConfigError) as error:
        load(**{variable: value})
    assert error.value.variable == variable and expected in str(error.value)


def test_the_webhook_secret_never_shows():
    settings = load(WEBHOOK_SECRET="top-secret-77")
    assert "top-secret-77" not in repr(settings)
    assert "top-secret-77" not in repr(settings.snapshot())
