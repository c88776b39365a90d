"""Settings: defaults, validation with one clear error per bad variable, partial loads, secrets."""

from __future__ import annotations

import logging

import pytest

from etl.config import SYNERISE_HOSTS, Secret, Settings
from etl.errors import ConfigError
from etl.redaction import install_log_redaction

CREDENTIALS = {
    "VTEX_ACCOUNT": "shop",
    "VTEX_APP_KEY": "vtexappkey-shop-ABC",
    "VTEX_APP_TOKEN": "app-token-value-123",
    "SYNERISE_API_KEY": "synerise-key-456",
}


def load(**env: str) -> Settings:
    return Settings.from_env({**CREDENTIALS, **env})


def test_defaults_follow_the_architecture_table():
    settings = load()
    assert settings.vtex_environment == "vtexcommercestable"
    assert settings.vtex_base_url == "https://shop.vtexcommercestable.com.br"
    assert settings.vtex_rate_limit == 80
    assert settings.synerise_api_host == "https://api.synerise.com"
    assert settings.synerise_rate_limit == 20
    assert settings.synerise_batch_size is None  # per path: 1,000 profiles or events, else 100
    assert settings.sync_chunk_size is None  # each stream's own
    assert settings.sync_claim_ttl == 15
    assert settings.sync_fetch_concurrency == 8
    assert settings.sync_max_active_runs == 2
    assert settings.profile_phone_fields == ("phone", "homePhone", "cellPhone", "businessPhone")
    assert settings.profile_extra_attributes == ()
    assert settings.order_customer_attributes == ()
    assert settings.redis_url is None and settings.database_url is None
    assert settings.etl_state_dir == ".state"
    assert settings.synerise_workspace_guid is None
    assert settings.flower_basic_auth is None and settings.webhook_secret is None
    assert settings.synerise_transaction_source == "WEB_DESKTOP"
    assert settings.synerise_transaction_source_map == ()
    assert settings.synerise_guest_profiles is True


def test_values_are_parsed():
    settings = load(
        VTEX_ENVIRONMENT="myvtex",
        VTEX_BASE_URL="http://127.0.0.1:8001/",
        VTEX_RATE_LIMIT="12.5",
        SYNERISE_API_HOST="gcp",
        SYNERISE_BATCH_SIZE="1000",
        PROFILE_EXTRA_ATTRIBUTES=" gender , tradeName",
        REDIS_URL="redis://localhost:6379/1",
        DATABASE_URL="postgresql://etl:pw@db:5432/etl",
        FLOWER_BASIC_AUTH="admin:s3cret",
        CONSOLE_BASIC_AUTH="ops:c0nsole,prometheus:scrape",
    )
    assert settings.vtex_base_url == "http://127.0.0.1:8001"
    assert settings.vtex_rate_limit == 12.5
    assert settings.synerise_api_host == SYNERISE_HOSTS["gcp"]
    assert settings.synerise_batch_size == 1000
    assert settings.profile_extra_attributes == ("gender", "tradeName")
    assert settings.redis_url == "redis://localhost:6379/1"
    assert settings.flower_basic_auth == Secret("admin:s3cret")
    assert settings.console_basic_auth == Secret("ops:c0nsole,prometheus:scrape")


def test_transaction_source_settings():
    settings = load(
        SYNERISE_TRANSACTION_SOURCE="POS",
        SYNERISE_TRANSACTION_SOURCE_MAP=" 1=WEB_DESKTOP, 2 = MOBILE_APP,origin:Fulfillment=POS,"
        "affiliateId:MLB=WEB_MOBILE",
        SYNERISE_GUEST_PROFILES="false",
    )
    assert settings.synerise_transaction_source == "POS"
    assert settings.synerise_transaction_source_map == (
        ("salesChannel", "1", "WEB_DESKTOP"),
        ("salesChannel", "2", "MOBILE_APP"),
        ("origin", "Fulfillment", "POS"),
        ("affiliateId", "MLB", "WEB_MOBILE"),
    )
    assert settings.synerise_guest_profiles is False


def test_field_lists_reject_empty_names():
    with pytest.raises(ConfigError) as error:
        load(PROFILE_EXTRA_ATTRIBUTES="gender,,tradeName,")
    assert error.value.variable == "PROFILE_EXTRA_ATTRIBUTES"


@pytest.mark.parametrize("alias", ["azure", "gcp", "azure-us", "AZURE"])
def test_synerise_host_aliases(alias):
    assert load(SYNERISE_API_HOST=alias).synerise_api_host == SYNERISE_HOSTS[alias.lower()]


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("VTEX_RATE_LIMIT", "abc"),
        ("VTEX_RATE_LIMIT", "0"),
        ("VTEX_RATE_LIMIT", "-3"),
        ("VTEX_RATE_LIMIT", "nan"),
        ("SYNERISE_RATE_LIMIT", "inf"),
        ("SYNERISE_BATCH_SIZE", "1001"),
        ("SYNERISE_BATCH_SIZE", "1.5"),
        ("SYNC_CHUNK_SIZE", "0"),
        ("SYNC_CLAIM_TTL", "0.5"),
        ("SYNC_FETCH_CONCURRENCY", "many"),
        ("SYNC_MAX_ACTIVE_RUNS", "-1"),
        ("SYNERISE_API_HOST", "aws"),
        ("VTEX_BASE_URL", "ftp://x"),
        ("VTEX_ACCOUNT", "Shop Name"),
        ("VTEX_ENVIRONMENT", "a.b"),
        ("REDIS_URL", "localhost:6379"),
        ("DATABASE_URL", "mysql://u@h/db"),
        ("FLOWER_BASIC_AUTH", "admin"),
        ("FLOWER_BASIC_AUTH", "admin:"),
        ("SYNERISE_TRANSACTION_SOURCE", "web_desktop"),
        ("SYNERISE_TRANSACTION_SOURCE", "APP"),
        ("SYNERISE_TRANSACTION_SOURCE_MAP", "1"),
        ("SYNERISE_TRANSACTION_SOURCE_MAP", "1=APP"),
        ("SYNERISE_TRANSACTION_SOURCE_MAP", "=POS"),
        ("SYNERISE_TRANSACTION_SOURCE_MAP", "1=POS,"),
        ("SYNERISE_TRANSACTION_SOURCE_MAP", "hostname:shop=POS"),
        ("SYNERISE_TRANSACTION_SOURCE_MAP", "1=POS,salesChannel:1=MOBILE_APP"),
        ("SYNERISE_GUEST_PROFILES", "sometimes"),
    ],
)
def test_bad_values_name_the_variable(variable, value):
    with pytest.raises(ConfigError) as error:
        load(**{variable: value})
    assert error.value.variable == variable
    assert str(error.value).startswith(f"{variable}: expected ")


def test_error_message_matches_the_contract():
    with pytest.raises(ConfigError) as error:
        load(VTEX_RATE_LIMIT="abc")
    assert str(error.value) == "VTEX_RATE_LIMIT: expected a positive number, got 'abc'"


def test_secret_values_never_appear_in_errors():
    with pytest.raises(ConfigError) as error:
        load(FLOWER_BASIC_AUTH="admin-with-no-colon-SECRETPART")
    assert "SECRETPART" not in str(error.value)
    with pytest.raises(ConfigError) as error:
        load(DATABASE_URL="mysql://user:hunter2@h/db")
    assert "hunter2" not in str(error.value)


@pytest.mark.parametrize("missing", sorted(CREDENTIALS))
def test_required_credentials(missing):
    env = {k: v for k, v in CREDENTIALS.items() if k != missing}
    with pytest.raises(ConfigError) as error:
        Settings.from_env(env)
    assert error.value.variable == missing


def test_partial_load_needs_no_credentials():
    settings = Settings.from_env({}, require=())
    assert settings.vtex_account is None
    assert settings.vtex_base_url is None
    assert settings.synerise_api_key is None
    only_vtex = Settings.from_env({k: v for k, v in CREDENTIALS.items() if "VTEX" in k},
                                  require=("vtex",))
    assert only_vtex.vtex_app_token == Secret("app-token-value-123")
    with pytest.raises(ConfigError, match="WEBHOOK_SECRET"):
        Settings.from_env({}, require=("webhooks",))
    with pytest.raises(ValueError, match="unknown settings section"):
        Settings.from_env({}, require=("vtx",))


def test_partial_load_still_validates_everything_present():
    with pytest.raises(ConfigError, match="SYNC_CHUNK_SIZE"):
        Settings.from_env({"SYNC_CHUNK_SIZE": "abc"}, require=())


def test_empty_means_default():
    assert load(SYNC_CHUNK_SIZE="", VTEX_ENVIRONMENT="  ").sync_chunk_size is None


def test_dotenv_file_is_read_and_environment_wins(tmp_path):
    dotenv = tmp_path / ".env"
    dotenv.write_text("SYNC_CHUNK_SIZE=250\nSYNC_MAX_ACTIVE_RUNS=3\n")
    settings = Settings.from_env({"SYNC_MAX_ACTIVE_RUNS": "5"}, dotenv_path=dotenv, require=())
    assert settings.sync_chunk_size == 250
    assert settings.sync_max_active_runs == 5


def test_given_env_ignores_the_working_directory_dotenv(tmp_path, monkeypatch):
    (tmp_path / ".env").write_text("SYNC_CHUNK_SIZE=250\n")
    monkeypatch.chdir(tmp_path)
    assert Settings.from_env({}, require=()).sync_chunk_size is None
    monkeypatch.delenv("SYNC_CHUNK_SIZE", raising=False)
    assert Settings.from_env(require=()).sync_chunk_size == 250  # os.environ + ./.env


def test_secret_hides_its_value():
    secret = Secret("hunter2")
    assert repr(secret) == "Secret('***')"
    assert str(secret) == "Secret('***')"
    assert f"{secret}" == "Secret('***')"
    assert secret.reveal() == "hunter2"
    assert secret == Secret("hunter2") and secret != Secret("other")
    settings = load()
    assert "app-token-value-123" not in repr(settings)
    assert "synerise-key-456" not in repr(settings)


def test_settings_are_frozen():
    settings = load()
    with pytest.raises(AttributeError):
        settings.sync_chunk_size = 5  # type: ignore[misc]


def test_snapshot_has_no_secrets():
    settings = load(
        DATABASE_URL="postgresql://etl:dbpass99@db:5432/etl",
        FLOWER_BASIC_AUTH="admin:flowerpass77",
        CONSOLE_BASIC_AUTH="ops:consolepass66",
        WEBHOOK_SECRET="hook-secret-88",
    )
    snapshot = settings.snapshot()
    text = repr(snapshot)
    for secret in ("app-token-value-123", "synerise-key-456", "dbpass99", "flowerpass77",
                   "consolepass66", "hook-secret-88"):
        assert secret not in text
    assert snapshot["vtex_app_token"] == "***"
    assert snapshot["database_url"] == "postgresql://etl:***@db:5432/etl"
    assert snapshot["sync_chunk_size"] is None
    assert snapshot["profile_phone_fields"] == ["phone", "homePhone", "cellPhone", "businessPhone"]
    assert snapshot["vtex_app_key"] == "vtexappkey-shop-ABC"


def test_loaded_secrets_are_redacted_from_logs():
    load(VTEX_APP_TOKEN="tok-zz9-plural-z-alpha", FLOWER_BASIC_AUTH="admin:flw-77-plural")
    handler = logging.StreamHandler()
    logging.getLogger().addHandler(handler)
    try:
        redacting = install_log_redaction()
        record = logging.LogRecord("t", logging.INFO, __file__, 1, "used %s and %s", (
            "tok-zz9-plural-z-alpha", "flw-77-plural"), None)
        redacting.filter(record)
        assert "plural" not in record.getMessage()
    finally:
        logging.getLogger().removeHandler(handler)


def test_with_infra_keeps_external_urls():
    settings = load(REDIS_URL="redis://r:6379/0", DATABASE_URL="postgresql://u@h/db")
    assert settings.with_infra() is settings
    assert settings.process_env()["REDIS_URL"] == "redis://r:6379/0"


def test_process_env_needs_resolved_urls():
    with pytest.raises(ValueError, match="with_infra"):
        load().process_env()
