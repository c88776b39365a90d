"""Settings from environment variables (and an optional ``.env``), validated once at start.

Every variable is documented in ``docs/architecture.md``; this module is its executable form.
A bad value fails fast with ``ConfigError(variable, expected, got)`` rather than deep inside a
sync. An unset or empty variable takes its default.

Credentials are needed only by commands that talk to VTEX, Synerise or receive webhooks, so they
are checked per section: ``Settings.from_env(require=("vtex", "synerise"))``. Infra, database and
worker commands load with ``require=()`` and work on a machine that has no credentials yet.
"""

from __future__ import annotations

import dataclasses
import hmac
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from dotenv import dotenv_values

from etl.errors import ConfigError
from etl.redaction import register_secret

__all__ = [
    "CATALOG_DERIVED_SOURCES",
    "CATALOG_FIXED_COLUMNS",
    "CRON_FIELDS",
    "DELETE_BEHAVIOURS",
    "INCREMENTAL_SCOPES",
    "SECTIONS",
    "SOURCE_RULE_FIELDS",
    "SYNERISE_HOSTS",
    "TRANSACTION_SOURCES",
    "VARIABLES",
    "ConfigError",
    "Secret",
    "Settings",
    "SourceRule",
    "SubAccount",
    "read_environment",
]

T = TypeVar("T")

SYNERISE_HOSTS: Mapping[str, str] = {
    "azure": "https://api.synerise.com",
    "gcp": "https://api.geb.synerise.com",
    "azure-us": "https://api.azu.synerise.com",
}
"""``SYNERISE_API_HOST`` aliases (the regions Synerise's own plugins offer)."""

SECTIONS: Mapping[str, tuple[str, ...]] = {
    "vtex": ("VTEX_ACCOUNT", "VTEX_APP_KEY", "VTEX_APP_TOKEN"),
    "synerise": ("SYNERISE_API_KEY",),
    "webhooks": ("WEBHOOK_SECRET",),
}
"""Credential sections a command may require, and the variables each one needs."""

DELETE_BEHAVIOURS = ("event", "remove", "ignore")
"""What a deleted VTEX customer does to its Synerise profile (after Synerise's Magento module):
send a ``client.deleteAccount`` event, delete the profile by ``customId``, or nothing."""

TRANSACTION_SOURCES = ("WEB_DESKTOP", "WEB_MOBILE", "MOBILE_APP", "POS", "MOBILE", "DESKTOP")
"""The values Synerise accepts as a transaction's ``source`` (the ``EventSource`` enum of its
generated clients; Synerise API reference §3.2)."""

SOURCE_RULE_FIELDS = ("salesChannel", "origin", "affiliateId")
"""The order fields a ``SYNERISE_TRANSACTION_SOURCE_MAP`` rule can test; a rule that names no
field tests ``salesChannel``."""

SubAccount = tuple[str, str]
"""``(VTEX account, base URL)`` of a sub-account."""

CATALOG_DERIVED_SOURCES = (
    "url", "image", "categories", "price", "listPrice", "currency", "deleted",
)  # fmt: skip
"""Catalog column sources computed from several VTEX fields (``docs/mapping.md``); any other
source names a field: ``sku:Path.In.Context`` or ``price:field``."""

CATALOG_FIXED_COLUMNS = ("itemId", "deleted")
"""Catalog columns ``CATALOG_COLUMNS`` cannot change: the item's id and its deletion flag."""

CatalogColumn = tuple[str, str]
"""``(catalog column, source)``; an empty source drops a default column."""

SourceRule = tuple[str, str, str]
"""``(order field, value, Synerise source)``: an order whose field equals the value gets the
source."""

VARIABLES = (
    "VTEX_ACCOUNT", "VTEX_ENVIRONMENT", "VTEX_APP_KEY", "VTEX_APP_TOKEN", "VTEX_BASE_URL",
    "VTEX_RATE_LIMIT", "VTEX_SUB_ACCOUNTS", "SYNERISE_API_KEY", "SYNERISE_WORKSPACE_GUID",
    "SYNERISE_API_HOST",
    "SYNERISE_RATE_LIMIT", "RATE_ADAPTIVE", "RATE_ADAPT_DECREASE", "RATE_ADAPT_INCREASE",
    "VTEX_RATE_BURST", "SYNERISE_RATE_BURST",
    "SYNERISE_BATCH_SIZE", "SYNC_CHUNK_SIZE", "SYNC_FETCH_CONCURRENCY",
    "SYNC_REDIS_LISTED_RECORDS",
    "SYNC_MAX_ACTIVE_RUNS", "SYNC_LEASE_TTL", "SYNC_CLAIM_TTL", "SYNC_STALE_AFTER",
    "PROFILE_PHONE_FIELDS", "PROFILE_EXTRA_ATTRIBUTES", "ORDER_CUSTOMER_ATTRIBUTES",
    "STORE_BASE_URL", "SYNERISE_SALT_NAMESPACE", "VTEX_CENTS_DIVISOR_MODE",
    "SYNERISE_TRANSACTION_SOURCE", "SYNERISE_TRANSACTION_SOURCE_MAP", "SYNERISE_GUEST_PROFILES",
    "REDIS_URL", "DATABASE_URL", "ETL_STATE_DIR", "FLOWER_BASIC_AUTH", "CONSOLE_BASIC_AUTH",
    "WEBHOOK_SECRET", "DELETE_BEHAVIOUR", "ORDER_UPDATE_STATUSES", "CONSENT_CREATE_MISSING_CL",
    "REALTIME_DEDUPE_TTL", "ECHO_GUARD_TTL", "REALTIME_BATCH_SIZE", "REALTIME_REDELIVER_AFTER",
    "REALTIME_DRAINS", "SYNERISE_CATALOG_NAME", "CATALOG_COLUMNS",
    "CATALOG_TRADE_POLICY", "CATALOG_CURRENCY", "VTEX_CATALOG_RATE_LIMIT",
    "SYNC_INCREMENTAL_CRON", "SYNC_INCREMENTAL_SCOPES", "SYNC_PRODUCTS_CRON",
    "ORDERS_FEED_INTERVAL", "ENRICHERS", "ATTRIBUTES_INCLUDE", "ATTRIBUTES_EXCLUDE",
    "ATTRIBUTES_RENAME",
)  # fmt: skip
"""Every variable ``Settings.from_env`` reads."""

INCREMENTAL_SCOPES = ("customers_created", "customers_updated", "orders")
"""What beat's incremental syncs can cover: the scopes with a changed-since listing (the catalog
has none, so ``products`` runs whole on ``SYNC_PRODUCTS_CRON``)."""

CRON_FIELDS: tuple[tuple[str, int, int, tuple[str, ...]], ...] = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day of month", 1, 31, ()),
    ("month", 1, 12, ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct",
                      "nov", "dec")),
    ("day of week", 0, 6, ("sun", "mon", "tue", "wed", "thu", "fri", "sat")),
)  # fmt: skip
"""The five fields of a cron expression: name, range and names (``jan`` is 1, ``sun`` is 0)."""

_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_CATALOG_NAME = re.compile(r"[A-Za-z0-9_-]{1,100}")
_COLUMN_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_FIELD_PATH = re.compile(
    r"sku:[A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)*|price:(?:basePrice|listPrice|costPrice|markup)"
)
_FIELD_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
_ENRICHER = re.compile(r"^[A-Za-z0-9_.-]+(?::[A-Za-z_][A-Za-z0-9_.]*)?$")
_UNSET = object()


class Secret:
    """A credential that never shows itself in ``repr``, ``str``, logs or snapshots.

    Call ``reveal()`` at the one place the value is sent (an HTTP header).
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The real value; use it only to authenticate."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class Settings:
    """Every setting of the project, typed and validated (see ``docs/architecture.md``).

    Credential fields are ``None`` when their section was not required and is not configured.
    ``redis_url``/``database_url`` are ``None`` for the embedded servers; ``with_infra()``
    fills them in.
    """

    vtex_account: str | None
    vtex_environment: str
    vtex_app_key: str | None
    vtex_app_token: Secret | None
    vtex_base_url: str | None
    vtex_rate_limit: float
    vtex_sub_accounts: tuple[SubAccount, ...]
    """The connection's VTEX sub-accounts (multistore): their orders are read from them with
    this connection's credentials and sent to its workspace (``etl.sync.accounts``)."""
    synerise_api_key: Secret | None
    synerise_workspace_guid: str | None
    synerise_api_host: str
    synerise_rate_limit: float
    synerise_batch_size: int | None
    """Items per Synerise batch call on every path; ``None``: 1,000 where Synerise documents
    that limit (profiles, events), 100 elsewhere (``etl.synerise.client``)."""
    rate_adaptive: bool
    """The ``*_RATE_LIMIT`` settings are ceilings the shared budgets adapt under (AIMD on 429s,
    ``etl.ratelimit``); ``False``: they are used as they are."""
    rate_adapt_decrease: float
    rate_adapt_increase: float
    vtex_rate_burst: float
    """Seconds of the VTEX budget's rate it may spend at once after a moment of less demand
    (``RedisTokenBucket.burst_seconds``), only while 429s have not cut the rate; 0: one request
    at a time. The shape of most VTEX buckets is UNCONFIRMED; every limit VTEX publishes allows
    far larger bursts (Pricing: 40 requests/s with 1,000 burst credits), hence 0.5."""
    synerise_rate_burst: float
    sync_chunk_size: int | None
    """Records per chunk for every stream; ``None``: each stream's own (``Stream.chunk_size``)."""
    sync_fetch_concurrency: int
    sync_redis_listed_records: int
    """Records of a run whose listed documents may wait in Redis ahead of its workers
    (``etl.state.listed``); past that, chunk rows carry them. 0: always the rows."""
    sync_max_active_runs: int
    sync_lease_ttl: float
    sync_claim_ttl: float
    sync_stale_after: float
    profile_phone_fields: tuple[str, ...]
    profile_extra_attributes: tuple[str, ...]
    order_customer_attributes: tuple[str, ...]
    store_base_url: str | None
    synerise_salt_namespace: str
    vtex_cents_divisor_mode: str
    synerise_transaction_source: str
    synerise_transaction_source_map: tuple[SourceRule, ...]
    synerise_guest_profiles: bool
    synerise_catalog_name: str
    catalog_columns: tuple[CatalogColumn, ...]
    catalog_trade_policy: str
    catalog_currency: str | None
    vtex_catalog_rate_limit: float
    redis_url: str | None = dataclasses.field(repr=False)
    database_url: str | None = dataclasses.field(repr=False)
    etl_state_dir: str
    flower_basic_auth: Secret | None
    console_basic_auth: Secret | None
    webhook_secret: Secret | None
    delete_behaviour: str
    order_update_statuses: tuple[str, ...]
    consent_create_missing_cl: bool
    realtime_dedupe_ttl: int
    echo_guard_ttl: int
    realtime_batch_size: int
    realtime_redeliver_after: int
    realtime_drains: int
    sync_incremental_cron: tuple[str, str, str, str, str]
    sync_incremental_scopes: tuple[str, ...]
    sync_products_cron: tuple[str, str, str, str, str] | None
    orders_feed_interval: int
    enrichers: tuple[str, ...] | None = None
    """Enrichers to run, in order (``schemas.enrichment``); ``None``: every installed one."""
    attributes_include: tuple[str, ...] = ()
    attributes_exclude: tuple[str, ...] = ()
    attributes_rename: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_env(
        cls,
        env: Mapping[str, str] | None = None,
        dotenv_path: str | os.PathLike[str] | object | None = _UNSET,
        require: Iterable[str] = ("vtex", "synerise"),
        overrides: Mapping[str, str] | None = None,
    ) -> Settings:
        """Load and validate the settings.

        Args:
            env: the variables; ``os.environ`` when omitted.
            dotenv_path: a ``.env`` file whose values the environment overrides. Defaults to
                ``./.env`` when reading ``os.environ`` and to none when ``env`` is given, so
                tests stay hermetic.
            require: credential sections that must be present (keys of ``SECTIONS``).
            overrides: values that win over the environment (a connection's table in the
                ``ETL_CONNECTIONS`` file, ``etl.connections``).

        Raises:
            ConfigError: the first missing or malformed variable.
        """
        merged = read_environment(env, dotenv_path, keep_empty=True)
        merged.update(overrides or {})
        values = {k: v.strip() for k, v in merged.items() if v and v.strip()}

        for section in require:
            if section not in SECTIONS:
                raise ValueError(f"unknown settings section {section!r}")
            for variable in SECTIONS[section]:
                if variable not in values:
                    raise ConfigError(variable, "a value (it is required for this command)")

        def get(variable: str, parse: Callable[[str, str], T], default: T) -> T:
            assert variable in VARIABLES, variable  # keeps the list connections check honest
            raw = values.get(variable)
            return default if raw is None else parse(variable, raw)

        account = get("VTEX_ACCOUNT", _host_label, None)
        environment = get("VTEX_ENVIRONMENT", _host_label, "vtexcommercestable")
        default_base = f"https://{account}.{environment}.com.br" if account else None
        settings = cls(
            vtex_account=account,
            vtex_environment=environment,
            vtex_app_key=values.get("VTEX_APP_KEY"),
            vtex_app_token=get("VTEX_APP_TOKEN", _secret, None),
            vtex_base_url=get("VTEX_BASE_URL", _http_url, default_base),
            vtex_rate_limit=get("VTEX_RATE_LIMIT", _positive_float, 80.0),
            vtex_sub_accounts=get("VTEX_SUB_ACCOUNTS", _sub_accounts(environment), ()),
            synerise_api_key=get("SYNERISE_API_KEY", _secret, None),
            synerise_workspace_guid=values.get("SYNERISE_WORKSPACE_GUID"),
            synerise_api_host=get("SYNERISE_API_HOST", _synerise_host, SYNERISE_HOSTS["azure"]),
            synerise_rate_limit=get("SYNERISE_RATE_LIMIT", _positive_float, 20.0),
            synerise_batch_size=get("SYNERISE_BATCH_SIZE", _int_between(1, 1000), None),
            rate_adaptive=get("RATE_ADAPTIVE", _bool, True),
            rate_adapt_decrease=get("RATE_ADAPT_DECREASE", _fraction, 0.9),
            rate_adapt_increase=get("RATE_ADAPT_INCREASE", _fraction, 0.01),
            vtex_rate_burst=get("VTEX_RATE_BURST", _float_between(0.0, 10.0), 0.5),
            synerise_rate_burst=get("SYNERISE_RATE_BURST", _float_between(0.0, 10.0), 0.0),
            sync_chunk_size=get("SYNC_CHUNK_SIZE", _int_between(1, 10_000), None),
            sync_fetch_concurrency=get("SYNC_FETCH_CONCURRENCY", _int_between(1, 64), 8),
            sync_redis_listed_records=get(
                "SYNC_REDIS_LISTED_RECORDS", _int_between(0, 10_000_000), 20_000
            ),
            sync_max_active_runs=get("SYNC_MAX_ACTIVE_RUNS", _int_between(1, 100), 2),
            sync_lease_ttl=get("SYNC_LEASE_TTL", _positive_float, 60.0),
            sync_claim_ttl=get("SYNC_CLAIM_TTL", _seconds_from(1.0), 15.0),
            sync_stale_after=get("SYNC_STALE_AFTER", _positive_float, 300.0),
            profile_phone_fields=get(
                "PROFILE_PHONE_FIELDS", _names, ("phone", "homePhone", "cellPhone", "businessPhone")
            ),
            profile_extra_attributes=get("PROFILE_EXTRA_ATTRIBUTES", _names, ()),
            order_customer_attributes=get("ORDER_CUSTOMER_ATTRIBUTES", _names, ()),
            store_base_url=get("STORE_BASE_URL", _http_url, None),
            synerise_salt_namespace=get("SYNERISE_SALT_NAMESPACE", _salt_namespace, "vtex"),
            vtex_cents_divisor_mode=get(
                "VTEX_CENTS_DIVISOR_MODE", _choice("always_100", "decimal_digits"), "always_100"
            ),
            synerise_transaction_source=get(
                "SYNERISE_TRANSACTION_SOURCE", _choice(*TRANSACTION_SOURCES), "WEB_DESKTOP"
            ),
            synerise_transaction_source_map=get(
                "SYNERISE_TRANSACTION_SOURCE_MAP", _source_rules, ()
            ),
            synerise_guest_profiles=get("SYNERISE_GUEST_PROFILES", _bool, True),
            synerise_catalog_name=get(
                "SYNERISE_CATALOG_NAME", _catalog_name, default_catalog_name(account)
            ),
            catalog_columns=get("CATALOG_COLUMNS", _catalog_columns, ()),
            catalog_trade_policy=get("CATALOG_TRADE_POLICY", _trade_policy, "1"),
            catalog_currency=get("CATALOG_CURRENCY", _currency, None),
            vtex_catalog_rate_limit=get("VTEX_CATALOG_RATE_LIMIT", _positive_float, 100.0),
            redis_url=get("REDIS_URL", _url_with_scheme("redis", "rediss", "unix"), None),
            database_url=get("DATABASE_URL", _url_with_scheme("postgresql", "postgres"), None),
            etl_state_dir=values.get("ETL_STATE_DIR", ".state"),
            flower_basic_auth=get("FLOWER_BASIC_AUTH", _basic_auth, None),
            console_basic_auth=get("CONSOLE_BASIC_AUTH", _basic_auth, None),
            webhook_secret=get("WEBHOOK_SECRET", _secret, None),
            delete_behaviour=get("DELETE_BEHAVIOUR", _choice(*DELETE_BEHAVIOURS), "event"),
            order_update_statuses=get(
                "ORDER_UPDATE_STATUSES", _names, ("invoiced", "canceled")
            ),
            consent_create_missing_cl=get("CONSENT_CREATE_MISSING_CL", _bool, False),
            realtime_dedupe_ttl=get("REALTIME_DEDUPE_TTL", _int_between(60, 30 * 86_400), 172_800),
            echo_guard_ttl=get("ECHO_GUARD_TTL", _int_between(1, 86_400), 600),
            realtime_batch_size=get("REALTIME_BATCH_SIZE", _int_between(1, 1000), 100),
            realtime_redeliver_after=get("REALTIME_REDELIVER_AFTER", _int_between(1, 3600), 20),
            realtime_drains=get("REALTIME_DRAINS", _int_between(1, 64), 4),
            sync_incremental_cron=get(
                "SYNC_INCREMENTAL_CRON", _cron, ("*/15", "*", "*", "*", "*")
            ),
            sync_incremental_scopes=_scopes(
                "SYNC_INCREMENTAL_SCOPES", merged.get("SYNC_INCREMENTAL_SCOPES")
            ),
            sync_products_cron=get("SYNC_PRODUCTS_CRON", _cron_or_off, NIGHTLY_PRODUCTS_CRON),
            orders_feed_interval=get("ORDERS_FEED_INTERVAL", _int_between(0, 3600), 60),
            enrichers=get("ENRICHERS", _enricher_names, None),
            attributes_include=get("ATTRIBUTES_INCLUDE", _names, ()),
            attributes_exclude=get("ATTRIBUTES_EXCLUDE", _names, ()),
            attributes_rename=get("ATTRIBUTES_RENAME", _renames, ()),
        )
        settings._register_secrets()
        return settings

    def with_infra(self) -> Settings:
        """A copy whose ``redis_url``/``database_url`` are set, starting embedded servers if needed.

        Lazy on purpose: loading settings must never start servers (``infra status`` reads them).
        """
        if self.redis_url and self.database_url:
            return self
        from etl import infra  # local: starting servers is this method's job, not the import's

        state = infra.up(
            self.etl_state_dir, need_redis=not self.redis_url, need_postgres=not self.database_url
        )
        return dataclasses.replace(
            self,
            redis_url=self.redis_url or state.redis_url,
            database_url=self.database_url or state.database_url,
        )

    def process_env(self) -> dict[str, str]:
        """Variables that make a child process (worker, beat, Flower) share these servers.

        Call on a ``with_infra()`` copy; the state folder is made absolute so the child may run
        from any directory.
        """
        if not (self.redis_url and self.database_url):
            raise ValueError("process_env() needs resolved URLs: call with_infra() first")
        return {
            "REDIS_URL": self.redis_url,
            "DATABASE_URL": self.database_url,
            "ETL_STATE_DIR": str(Path(self.etl_state_dir).resolve()),
        }

    def snapshot(self) -> dict[str, Any]:
        """The settings as JSON-ready data without secrets, stored with each run.

        Secrets appear as ``"***"`` when set (so a run shows *that* a key was used) and URL
        passwords are masked.
        """
        data: dict[str, Any] = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, Secret):
                value = "***"
            elif isinstance(value, tuple):
                value = list(value)
            elif field.name in ("redis_url", "database_url") and value:
                value = _mask_password(value)
            data[field.name] = value
        return data

    def _register_secrets(self) -> None:
        """Teach the log redaction filter every secret, including URL passwords."""
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, Secret):
                register_secret(value.reveal())
        for pairs in (self.flower_basic_auth, self.console_basic_auth):
            for pair in pairs.reveal().split(",") if pairs else ():
                register_secret(pair.partition(":")[2])
        for url in (self.redis_url, self.database_url):
            if url and urlsplit(url).password:
                register_secret(str(urlsplit(url).password))


def read_environment(
    env: Mapping[str, str] | None = None,
    dotenv_path: str | os.PathLike[str] | object | None = _UNSET,
    keep_empty: bool = False,
) -> dict[str, str]:
    """The variables as ``Settings.from_env`` sees them: ``.env`` under the environment, values
    stripped, empty ones dropped unless ``keep_empty`` (then as given: an empty
    ``SYNC_INCREMENTAL_SCOPES`` means none) (see ``from_env`` for the defaults of the others)."""
    if dotenv_path is _UNSET:
        dotenv_path = ".env" if env is None else None
    merged: dict[str, str] = {}
    if dotenv_path is not None and Path(str(dotenv_path)).is_file():
        merged.update({k: v for k, v in dotenv_values(str(dotenv_path)).items() if v})
    merged.update(os.environ if env is None else env)
    if keep_empty:
        return merged
    return {k: v.strip() for k, v in merged.items() if v and v.strip()}

def default_catalog_name(account: str | None) -> str:
    """``vtex`` and the account's letters and digits: Synerise's recommendation feeds allow only
    those in a catalog name (its API's own rule is UNCONFIRMED)."""
    return "vtex" + re.sub(r"[^A-Za-z0-9]", "", account or "")


# -- parsers: (variable, raw) -> value, raising ConfigError ---------------------------------------


def _positive_float(variable: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(variable, "a positive number", raw) from None
    if not value > 0 or value == float("inf"):
        raise ConfigError(variable, "a positive number", raw)
    return value


def _fraction(variable: str, raw: str) -> float:
    """A number strictly between 0 and 1 (a factor or a share)."""
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(variable, "a number between 0 and 1 (both excluded)", raw) from None
    if not 0 < value < 1:
        raise ConfigError(variable, "a number between 0 and 1 (both excluded)", raw)
    return value


def _seconds_from(low: float) -> Callable[[str, str], float]:
    """A number of seconds of at least ``low`` (a shorter claim TTL would have every worker's
    heartbeat write to PostgreSQL several times a second)."""

    def parse(variable: str, raw: str) -> float:
        value = _positive_float(variable, raw)
        if value < low:
            raise ConfigError(variable, f"a number of seconds of at least {low:g}", raw)
        return value

    return parse


def _float_between(low: float, high: float) -> Callable[[str, str], float]:
    return _between(float, "a number", low, high)


def _int_between(low: int, high: int) -> Callable[[str, str], int]:
    return _between(int, "a whole number", low, high)


_N = TypeVar("_N", int, float)


def _between(
    convert: Callable[[str], _N], what: str, low: _N, high: _N
) -> Callable[[str, str], _N]:
    def parse(variable: str, raw: str) -> _N:
        expected = f"{what} from {low} to {high}"
        try:
            value = convert(raw)
        except ValueError:
            raise ConfigError(variable, expected, raw) from None
        if not low <= value <= high:
            raise ConfigError(variable, expected, raw)
        return value

    return parse


def _choice(*allowed: str) -> Callable[[str, str], str]:
    def parse(variable: str, raw: str) -> str:
        if raw not in allowed:
            raise ConfigError(variable, f"one of {', '.join(allowed)}", raw)
        return raw

    return parse


def _bool(variable: str, raw: str) -> bool:
    value = raw.lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ConfigError(variable, "true or false", raw)


def _salt_namespace(variable: str, raw: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9._-]{1,32}", raw):
        raise ConfigError(variable, "1-32 characters of letters, digits, '.', '_' or '-'", raw)
    return raw


def _host_label(variable: str, raw: str) -> str:
    if not _LABEL.match(raw):
        raise ConfigError(variable, "a host name label (lower-case letters, digits, '-')", raw)
    return raw


def _http_url(variable: str, raw: str) -> str:
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(variable, "an http(s) URL", raw)
    return raw.rstrip("/")


def _synerise_host(variable: str, raw: str) -> str:
    if raw.lower() in SYNERISE_HOSTS:
        return SYNERISE_HOSTS[raw.lower()]
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(variable, f"one of {', '.join(SYNERISE_HOSTS)} or an http(s) URL", raw)
    return raw.rstrip("/")


def _url_with_scheme(*schemes: str) -> Callable[[str, str], str]:
    def parse(variable: str, raw: str) -> str:
        if urlsplit(raw).scheme not in schemes:
            shown = _mask_password(raw) if "://" in raw else None
            raise ConfigError(variable, f"a URL starting with {' or '.join(schemes)}://", shown)
        return raw

    return parse


def _names(variable: str, raw: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in raw.split(","))
    if not all(_FIELD_NAME.match(name) for name in names):
        raise ConfigError(variable, "comma-separated field names", raw)
    return names


def _sub_accounts(environment: str) -> Callable[[str, str], tuple[SubAccount, ...]]:
    """Comma-separated ``account`` or ``account=base URL`` entries (the URL defaults to
    ``https://{account}.{environment}.com.br``, like ``VTEX_BASE_URL``)."""

    def parse(variable: str, raw: str) -> tuple[SubAccount, ...]:
        expected = "comma-separated VTEX account names, each optionally =http(s)://base-url"
        found: dict[str, str] = {}
        for part in raw.split(","):
            name, _, url = (text.strip() for text in part.partition("="))
            if not _LABEL.match(name) or name in found:
                raise ConfigError(variable, f"{expected}, each once", raw)
            default = f"https://{name}.{environment}.com.br"
            try:
                found[name] = _http_url(variable, url) if url else default
            except ConfigError:
                raise ConfigError(variable, expected, raw) from None
        return tuple(found.items())

    return parse


def _enricher_names(variable: str, raw: str) -> tuple[str, ...]:
    """``none``, or comma-separated entry-point names and ``package.module:function`` paths."""
    if raw.lower() == "none":
        return ()
    names = tuple(name.strip() for name in raw.split(","))
    if not all(_ENRICHER.match(name) for name in names):
        raise ConfigError(
            variable,
            "none, or comma-separated vtex_synerise.enrichers entry-point names or"
            " package.module:function paths",
            raw,
        )
    return names


def _renames(variable: str, raw: str) -> tuple[tuple[str, str], ...]:
    """Comma-separated ``old:new`` attribute renames, each old name once."""
    expected = "comma-separated old:new attribute names, each old name once"
    pairs: list[tuple[str, str]] = []
    for part in raw.split(","):
        old, colon, new = (text.strip() for text in part.partition(":"))
        if not (colon and _FIELD_NAME.match(old) and _FIELD_NAME.match(new)):
            raise ConfigError(variable, expected, raw)
        if any(old == seen for seen, _ in pairs):
            raise ConfigError(variable, expected, raw)
        pairs.append((old, new))
    return tuple(pairs)


def _source_rules(variable: str, raw: str) -> tuple[SourceRule, ...]:
    """Comma-separated ``[field:]value=SOURCE`` rules: ``1=WEB_DESKTOP,origin:Fulfillment=POS``."""
    expected = (
        "comma-separated [field:]value=SOURCE rules, field one of"
        f" {', '.join(SOURCE_RULE_FIELDS)} (default salesChannel), SOURCE one of"
        f" {', '.join(TRANSACTION_SOURCES)}"
    )
    rules: list[SourceRule] = []
    for part in raw.split(","):
        selector, equals, source = (text.strip() for text in part.partition("="))
        field, _, value = selector.partition(":") if ":" in selector else ("", "", selector)
        field, value = field.strip() or "salesChannel", value.strip()
        if not (equals and value and field in SOURCE_RULE_FIELDS and source in TRANSACTION_SOURCES):
            raise ConfigError(variable, expected, raw)
        if any(rule[:2] == (field, value) for rule in rules):
            raise ConfigError(variable, f"{expected}; each field:value once", raw)
        rules.append((field, value, source))
    return tuple(rules)


def _cron(variable: str, raw: str) -> tuple[str, str, str, str, str]:
    """Five cron fields (minute hour day-of-month month day-of-week), each checked for range."""
    expected = "five cron fields, minute hour day-of-month month day-of-week, e.g. '*/15 * * * *'"
    fields = raw.lower().split()
    if len(fields) != 5:
        raise ConfigError(variable, expected, raw)
    for text, (name, low, high, names) in zip(fields, CRON_FIELDS, strict=True):
        for item in text.split(","):
            if not _cron_item(item, low, high, names):
                raise ConfigError(variable, f"{expected} ({name} is {low}-{high})", raw)
    return fields[0], fields[1], fields[2], fields[3], fields[4]


NIGHTLY_PRODUCTS_CRON: tuple[str, str, str, str, str] | None = ("0", "3", "*", "*", "*")
"""``SYNC_PRODUCTS_CRON``'s default: 03:00 UTC every day."""


def _cron_or_off(variable: str, raw: str) -> tuple[str, str, str, str, str] | None:
    """Five cron fields, or ``off`` (the schedule is disabled)."""
    return None if raw.strip().lower() == "off" else _cron(variable, raw)


def _cron_item(item: str, low: int, high: int, names: tuple[str, ...]) -> bool:
    """``*``, ``N``, ``N-M``, each with an optional ``/STEP``; names count from ``low``."""
    span, slash, step = item.partition("/")
    if slash and not (step.isdigit() and int(step) > 0):
        return False

    def value(text: str) -> int | None:
        if text in names:
            return names.index(text) + low
        return int(text) if text.isdigit() and low <= int(text) <= high else None

    if span == "*":
        return True
    first, dash, last = span.partition("-")
    start, end = value(first), value(last) if dash else None
    return start is not None and (not dash or (end is not None and end >= start))


def _scopes(variable: str, raw: str | None) -> tuple[str, ...]:
    """Comma-separated scopes; unset is the default, an empty value none (beat starts none)."""
    if raw is None:
        return ("customers_updated", "orders")
    scopes = tuple(name.strip() for name in raw.split(",") if name.strip())
    unknown = [scope for scope in scopes if scope not in INCREMENTAL_SCOPES]
    if unknown:
        among = ", ".join(INCREMENTAL_SCOPES)
        raise ConfigError(variable, f"comma-separated scopes among {among}", raw)
    return scopes


def _catalog_name(variable: str, raw: str) -> str:
    if not _CATALOG_NAME.fullmatch(raw):
        raise ConfigError(variable, "1-100 letters, digits, '_' or '-'", raw)
    return raw


def _catalog_columns(variable: str, raw: str) -> tuple[CatalogColumn, ...]:
    """Comma-separated ``column=source`` changes to the default catalog columns, e.g.
    ``title=sku:ProductName,manufacturer=sku:ManufacturerCode,ean=``."""
    expected = (
        "comma-separated column=source, column of letters, digits, '_' or '-', source one of"
        f" {', '.join(CATALOG_DERIVED_SOURCES)}, sku:Field.Path,"
        " price:basePrice|listPrice|costPrice|markup, or empty to drop the column;"
        f" {' and '.join(CATALOG_FIXED_COLUMNS)} cannot be changed"
    )
    columns: list[CatalogColumn] = []
    for part in raw.split(","):
        column, equals, source = (text.strip() for text in part.partition("="))
        known = source in CATALOG_DERIVED_SOURCES or _FIELD_PATH.fullmatch(source)
        valid_source = not source or known
        if not (equals and _COLUMN_NAME.fullmatch(column) and valid_source):
            raise ConfigError(variable, expected, raw)
        if column in CATALOG_FIXED_COLUMNS or any(c == column for c, _ in columns):
            raise ConfigError(variable, f"{expected}; each column once", raw)
        columns.append((column, source))
    return tuple(columns)


def _trade_policy(variable: str, raw: str) -> str:
    if not raw.isdigit():
        raise ConfigError(variable, "a trade policy (sales channel) id, e.g. 1", raw)
    return raw


def _currency(variable: str, raw: str) -> str:
    if not re.fullmatch(r"[A-Z]{3}", raw):
        raise ConfigError(variable, "an ISO 4217 code, e.g. BRL", raw)
    return raw


def _secret(variable: str, raw: str) -> Secret:
    del variable  # nothing to validate, and a secret is never echoed
    return Secret(raw)


def _basic_auth(variable: str, raw: str) -> Secret:
    for pair in raw.split(","):
        user, sep, password = pair.partition(":")
        if not (user and sep and password):
            raise ConfigError(variable, "user:password (comma-separated for several users)")
    return Secret(raw)


def _mask_password(url: str) -> str:
    parts = urlsplit(url)
    if not parts.password:
        return url
    netloc = f"{parts.username or ''}:***@{parts.hostname or ''}"
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))
