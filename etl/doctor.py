"""``vtex-synerise doctor``: can this deployment sync? Every check passes or fails with its fix.

Checks, in order (a check whose prerequisite failed is skipped and says why):

* ``settings``: every variable parses and the VTEX and Synerise credentials are set;
* ``mapping``: the mapping settings hold together and every enricher loads (docs/enrichers.md);
* ``redis``, ``postgres``: reachable, and the schema is at the code's latest migration;
* ``vtex.*``: one cheap call per resource the app key's role must cover (OMS list, get order,
  Master Data ``CL`` search, catalog, pricing, the order hook); ``vtex.credentials`` fails
  when VTEX refused every call (a wrong app key or token rather than a missing role);
* ``synerise.login`` (a JWT from the key), ``synerise.basic`` (with ``SYNERISE_WORKSPACE_GUID``)
  and ``synerise.permissions`` (``POST /uauth/api-key/permission-check``: what the scopes need);
* ``clocks``: this machine's clock against Redis, PostgreSQL, VTEX and Synerise (``Date``);
* ``hook``, ``webhooks.reachable`` (realtime, when ``WEBHOOK_SECRET`` is set): the order hook is
  registered, sends this deployment's secret to the orders endpoint, and the service answers.

A check is *needed* when the scopes asked for depend on it; a failure of one that is not needed
(catalog, pricing) is a warning. The doctor writes nothing anywhere.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg2
import redis
import requests

from etl.config import Settings
from etl.errors import (
    AuthenticationError,
    ConfigError,
    EtlError,
    NetworkError,
    PermissionDeniedError,
)
from etl.http import new_session
from etl.retry import RetryPolicy
from etl.state.migrate import available
from etl.synerise.auth import BasicAuth, TokenAuth
from etl.synerise.client import SyneriseClient
from etl.vtex.client import VtexClient
from etl.webhooks.app import ORDER_HOOK_PATH
from etl.webhooks.auth import HEADER
from schemas.mapping_config import MappingConfig

__all__ = [
    "PERMISSIONS_BY_SCOPE",
    "SCOPES",
    "Check",
    "Report",
    "run",
]

SCOPES = ("customers_created", "customers_updated", "orders")
PERMISSIONS_BY_SCOPE: Mapping[str, tuple[str, ...]] = {
    "customers_created": ("API_BATCH_CLIENT_CREATE",),
    "customers_updated": ("API_BATCH_CLIENT_CREATE",),
    "orders": ("API_BATCH_TRANSACTION_CREATE",),
    "realtime": ("API_BATCH_CLIENT_CREATE", "API_BATCH_TRANSACTION_CREATE"),
}
"""The Synerise permissions each scope's calls need (synerise-api.md §1.4)."""
DELETE_EVENT_PERMISSION = "API_CUSTOM_EVENTS_CREATE"
"""Realtime with ``DELETE_BEHAVIOUR=event`` sends ``client.deleteAccount`` custom events."""

_DOCTOR_USER = "vtex-synerise-doctor"
_NO_ORDER = "0000000000000-01"
_DOCTOR_RETRY = RetryPolicy(max_attempts=2, base=0.5, cap=1.0)


@dataclass
class Check:
    """One line of the report."""

    name: str
    status: str
    """``pass``, ``fail``, ``warn`` (failed, but nothing asked for needs it) or ``skip``."""
    detail: str
    fix: str = ""
    variable: str | None = None
    """The setting to look at, when one is to blame."""


@dataclass
class Report:
    """Every check, in the order they ran."""

    connection: str
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no needed check failed."""
        return not self.failed

    @property
    def failed(self) -> list[Check]:
        return [check for check in self.checks if check.status == "fail"]

    def as_dict(self) -> dict[str, Any]:
        return {
            "connection": self.connection,
            "ok": self.ok,
            "checks": [asdict(check) for check in self.checks],
        }

    def add(self, check: Check) -> Check:
        self.checks.append(check)
        return check


@dataclass(frozen=True)
class _Resource:
    """A VTEX resource the app key's License Manager role must include."""

    name: str
    role: str
    scopes: frozenset[str]
    call: Callable[[VtexClient, dict[str, Any]], str]


def _oms_list(vtex: VtexClient, found: dict[str, Any]) -> str:
    now = datetime.now(UTC)
    page = vtex.list_orders(now - timedelta(days=30), now, page=1, per_page=1)
    if page.orders:
        found["order_id"] = str(page.orders[0].get("orderId"))
    return f"{page.total} order(s) in the last 30 days"


def _oms_get(vtex: VtexClient, found: dict[str, Any]) -> str:
    order_id = found.get("order_id", _NO_ORDER)
    vtex.get_order(order_id)
    return "order read" if "order_id" in found else "answered (no recent order to read)"


def _md_search(vtex: VtexClient, found: dict[str, Any]) -> str:
    vtex.find_customer_by_user_id(_DOCTOR_USER, ["id"])
    return "CL search answered"


def _catalog(vtex: VtexClient, found: dict[str, Any]) -> str:
    products, total = vtex.product_and_sku_ids(1, 1)
    for skus in products.values():
        if skus:
            found["sku_id"] = str(skus[0])
    return f"{total} product(s)"


def _pricing(vtex: VtexClient, found: dict[str, Any]) -> str:
    vtex.get_price(found.get("sku_id", "1"))
    return "price read"


def _hook(vtex: VtexClient, found: dict[str, Any]) -> str:
    found["hook"] = vtex.get_hook_config()
    return "hook configuration read"


_EVERY_SCOPE = frozenset({"customers_created", "customers_updated", "orders", "realtime"})
_RESOURCES = (
    _Resource("vtex.oms_list", "OMS > List orders", frozenset({"orders"}), _oms_list),
    _Resource("vtex.oms_get", "OMS > View order", frozenset({"orders"}), _oms_get),
    _Resource("vtex.md_search", "Dynamic Storage > Read only documents", _EVERY_SCOPE, _md_search),
    _Resource("vtex.catalog", "Catalog > Products and SKUs (read)", frozenset(), _catalog),
    _Resource("vtex.pricing", "Pricing > Read prices", frozenset(), _pricing),
    _Resource(
        "vtex.hook", "OMS > Feed v3 and Hook Admin", frozenset({"realtime"}), _hook
    ),
)


class _Clocks:
    """What other servers said the time was, next to this machine's clock."""

    def __init__(self) -> None:
        self.offsets: dict[str, tuple[float, float]] = {}
        """server -> (their time minus ours in seconds, how precise the reading is)"""

    def watch(self, service: str, session: requests.Session) -> None:
        """Read the ``Date`` header of every answer ``session`` receives."""

        def hook(response: requests.Response, *args: Any, **kwargs: Any) -> None:
            date = response.headers.get("Date")
            if not date or service in self.offsets:
                return
            try:
                theirs = parsedate_to_datetime(date).timestamp() + 0.5  # whole seconds
            except (TypeError, ValueError):
                return
            elapsed = response.elapsed.total_seconds()
            self.offsets[service] = (theirs - (time.time() - elapsed / 2), 0.5 + elapsed / 2)

        session.hooks["response"].append(hook)


def run(
    settings_loader: Callable[[tuple[str, ...]], Settings] = lambda require: Settings.from_env(
        require=require
    ),
    scopes: Sequence[str] = SCOPES,
    connection: str = "default",
    orders_url: str | None = None,
    max_skew: float = 5.0,
) -> Report:
    """Run every check; never raises for what it checks.

    Args:
        settings_loader: ``Settings.from_env`` for the given required sections.
        scopes: what the deployment syncs (decides which checks are needed).
        connection: the connection's name (``settings_loader`` loads its settings).
        orders_url: the public URL of this deployment's orders endpoint, if known: the hook
            must point there.
        max_skew: seconds another server's clock may differ from this machine's.
    """
    report = Report(connection)
    settings = _check_settings(report, settings_loader)
    if settings is None:
        return report
    _check_mapping(report, settings)
    realtime = settings.webhook_secret is not None
    wanted = set(scopes) | ({"realtime"} if realtime else set())
    clocks = _Clocks()
    _check_infra(report, settings, clocks)
    if settings.vtex_app_token is not None and settings.vtex_base_url:
        found = _check_vtex(report, settings, wanted, clocks)
        if realtime:
            _check_hook(report, settings, found, orders_url)
    if settings.synerise_api_key is not None:
        _check_synerise(report, settings, _permissions_needed(settings, wanted), clocks)
    _check_clocks(report, clocks, max_skew)
    if not realtime:
        report.add(Check("hook", "skip", "realtime is off (WEBHOOK_SECRET unset)"))
    return report


def _check_settings(
    report: Report, load: Callable[[tuple[str, ...]], Settings]
) -> Settings | None:
    try:
        settings = load(())
    except ConfigError as error:
        report.add(_misconfigured("settings", error))
        return None
    problems: list[ConfigError] = []
    for section in ("vtex", "synerise"):
        try:
            load((section,))
        except ConfigError as missing:
            problems.append(missing)
    for problem in problems:
        report.add(_misconfigured("settings", problem))
    if not problems:
        extra = "; realtime webhooks on" if settings.webhook_secret else ""
        report.add(Check("settings", "pass", f"VTEX and Synerise settings are valid{extra}"))
    return settings


def _check_mapping(report: Report, settings: Settings) -> None:
    """The mapping settings, and the enrichers this process can load (install them wherever a
    worker or the webhook server runs)."""
    try:
        enrichers = MappingConfig.from_settings(settings).enrichment.enrichers
    except ConfigError as error:
        report.add(_misconfigured("mapping", error))
        return
    except ValueError as error:
        report.add(Check("mapping", "fail", str(error), "fix the mapping (docs/mapping.md)"))
        return
    names = ", ".join(enricher.name for enricher in enrichers) or "none"
    report.add(Check("mapping", "pass", f"mapping settings are valid; enrichers: {names}"))


def _check_infra(report: Report, settings: Settings, clocks: _Clocks) -> None:
    try:
        resolved = settings.with_infra()
    except ConfigError as error:
        report.add(_misconfigured("infra", error))
        return
    assert resolved.redis_url and resolved.database_url  # with_infra() sets both
    try:
        client = redis.Redis.from_url(
            resolved.redis_url, socket_timeout=5, socket_connect_timeout=5
        )
        before = time.time()
        seconds, micros = client.time()
        version = client.info("server").get("redis_version", "?")
        clocks.offsets["Redis"] = (seconds + micros / 1e6 - (before + time.time()) / 2, 0.05)
        client.close()
        report.add(Check("redis", "pass", f"Redis {version} answers"))
    except redis.RedisError as error:
        report.add(Check("redis", "fail", f"cannot reach Redis: {type(error).__name__}: {error}",
                         "set REDIS_URL to a running Redis (redis://host:6379/0)",
                         "REDIS_URL"))  # fmt: skip
    report.add(_check_postgres(resolved.database_url, clocks))


def _check_postgres(dsn: str, clocks: _Clocks) -> Check:
    latest = max(migration.version for migration in available())
    try:
        conn = psycopg2.connect(dsn, connect_timeout=5)
    except psycopg2.Error as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        return Check("postgres", "fail", f"cannot reach PostgreSQL: {first}",
                     "set DATABASE_URL to a running PostgreSQL", "DATABASE_URL")  # fmt: skip
    try:
        with conn, conn.cursor() as cur:
            before = time.time()
            cur.execute("SELECT extract(epoch FROM clock_timestamp()), current_setting("
                        "'server_version'), to_regclass('schema_migrations') IS NOT NULL")
            theirs, version, bookkept = cur.fetchone()
            clocks.offsets["PostgreSQL"] = (float(theirs) - (before + time.time()) / 2, 0.05)
            at = 0
            if bookkept:
                cur.execute("SELECT coalesce(max(version), 0) FROM schema_migrations")
                at = int(cur.fetchone()[0])
    finally:
        conn.close()
    if at < latest:
        return Check("postgres", "fail",
                     f"PostgreSQL {version}: schema at {at:04d}, this code needs {latest:04d}",
                     "run `vtex-synerise db upgrade`")  # fmt: skip
    if at > latest:
        newer = f"schema at {at:04d}, newer than this code's {latest:04d}"
        return Check("postgres", "fail", f"PostgreSQL {version}: {newer}",
                     "upgrade vtex-synerise-etl to the version that migrated it")  # fmt: skip
    return Check("postgres", "pass", f"PostgreSQL {version}, schema at {at:04d} (latest)")


def _check_vtex(
    report: Report, settings: Settings, wanted: set[str], clocks: _Clocks
) -> dict[str, Any]:
    session = new_session(4)
    clocks.watch("VTEX", session)
    vtex = VtexClient.from_settings(settings, session=session, retry=_DOCTOR_RETRY)
    found: dict[str, Any] = {}
    refused, answered = 0, 0
    try:
        for resource in _RESOURCES:
            needed = bool(resource.scopes & wanted)
            try:
                detail = resource.call(vtex, found)
            except (AuthenticationError, PermissionDeniedError) as error:
                refused += 1
                report.add(Check(
                    resource.name, "fail" if needed else "warn", _first_sentence(error),
                    f"give the app key's role the resource {resource.role!r}"
                    + ("" if needed else " (not needed by the scopes asked for)"),
                ))  # fmt: skip
            except NetworkError as error:
                report.add(Check(resource.name, "fail" if needed else "warn", str(error),
                                 "check VTEX_ACCOUNT / VTEX_BASE_URL and the network",
                                 "VTEX_BASE_URL"))  # fmt: skip
            except EtlError as error:
                answered += 1
                report.add(Check(resource.name, "fail" if needed else "warn",
                                 _first_sentence(error), "see the message"))  # fmt: skip
            else:
                answered += 1
                report.add(Check(resource.name, "pass", f"{resource.role}: {detail}"))
    finally:
        vtex.close()
    if refused and not answered:
        report.add(Check(
            "vtex.credentials", "fail", "VTEX refused every call with 401/403",
            "check VTEX_APP_KEY and VTEX_APP_TOKEN (a key pair of VTEX_ACCOUNT), then the roles",
            "VTEX_APP_TOKEN",
        ))  # fmt: skip
    elif answered:
        accepted = f"app key accepted by {settings.vtex_account}"
        report.add(Check("vtex.credentials", "pass", accepted))
    return found


def _check_hook(
    report: Report, settings: Settings, found: Mapping[str, Any], orders_url: str | None
) -> None:
    if "hook" not in found:
        report.add(Check("hook", "skip", "the hook configuration could not be read (vtex.hook)"))
        return
    register = f"run `vtex-synerise vtex hook register --url {orders_url or 'PUBLIC_URL'}`"
    config = found["hook"]
    if not config:
        report.add(Check("hook", "fail", "no order hook is registered for this app key", register))
        return
    hook = config.get("hook") or {}
    url = str(hook.get("url") or "")
    secret = str((hook.get("headers") or {}).get(HEADER) or "")
    assert settings.webhook_secret is not None
    if not hmac.compare_digest(secret.encode(), settings.webhook_secret.reveal().encode()):
        problem = "the hook does not send this deployment's WEBHOOK_SECRET (another deployment?)"
    elif urlsplit(url).path != ORDER_HOOK_PATH:
        problem = f"the hook points at {url!r}, not at an orders endpoint ({ORDER_HOOK_PATH})"
    elif orders_url and url != orders_url:
        problem = f"the hook points at {url!r}, not at {orders_url!r}"
    else:
        statuses = ", ".join((config.get("filter") or {}).get("status") or ["every status"])
        report.add(Check("hook", "pass", f"order hook -> {url} on {statuses}"))
        _check_reachable(report, url)
        return
    report.add(Check("hook", "fail", problem, register))


def _check_reachable(report: Report, orders_url: str) -> None:
    parts = urlsplit(orders_url)
    health = urlunsplit((parts.scheme, parts.netloc, "/healthz", "", ""))
    try:
        status = requests.get(health, timeout=5).status_code
    except requests.RequestException as error:
        status, detail = 0, type(error).__name__
    else:
        detail = f"answered {status}"
    if status == 200:
        report.add(Check("webhooks.reachable", "pass", f"{health} answers 200"))
    else:
        report.add(Check("webhooks.reachable", "warn", f"{health}: {detail}",
                         "start `vtex-synerise webhooks serve --gunicorn` where VTEX reaches it"
                         " (this check runs from here, not from VTEX)"))  # fmt: skip


def _permissions_needed(settings: Settings, wanted: Iterable[str]) -> list[str]:
    names = [name for scope in sorted(wanted) for name in PERMISSIONS_BY_SCOPE.get(scope, ())]
    if "realtime" in wanted and settings.delete_behaviour == "event":
        names.append(DELETE_EVENT_PERMISSION)
    return list(dict.fromkeys(names))


def _check_synerise(
    report: Report, settings: Settings, permissions: Sequence[str], clocks: _Clocks
) -> None:
    assert settings.synerise_api_key is not None
    host = settings.synerise_api_host
    session = new_session(2)
    clocks.watch("Synerise", session)
    basic = bool(settings.synerise_workspace_guid)
    login = TokenAuth(host, settings.synerise_api_key, session)
    try:
        login.token()
    except AuthenticationError:
        report.add(Check(
            "synerise.login", "warn" if basic else "fail",
            f"Synerise at {host} refused SYNERISE_API_KEY (401)",
            "set SYNERISE_API_KEY to a workspace API key (Synerise > Settings > API keys) of the "
            "workspace in SYNERISE_API_HOST's region",
            "SYNERISE_API_KEY",
        ))  # fmt: skip
        login_ok = False
    except EtlError as error:
        report.add(Check("synerise.login", "fail", _first_sentence(error),
                         "check SYNERISE_API_HOST (azure, gcp, azure-us or a URL)",
                         "SYNERISE_API_HOST"))  # fmt: skip
        session.close()
        return
    else:
        login_ok = True
        report.add(Check("synerise.login", "pass", f"JWT login with SYNERISE_API_KEY at {host}"))
    auth: Any = login
    if basic:
        assert settings.synerise_workspace_guid is not None
        auth = BasicAuth(settings.synerise_workspace_guid, settings.synerise_api_key)
    elif not login_ok:
        session.close()
        return
    client = SyneriseClient(host, auth, session=session, retry=_DOCTOR_RETRY)
    try:
        workspace, granted = client.check_permissions(permissions)
    except AuthenticationError:
        if basic:  # the key logged in alone: the GUID (or Basic on the key) is to blame
            report.add(Check(
                "synerise.basic", "fail",
                "Basic auth (SYNERISE_WORKSPACE_GUID:SYNERISE_API_KEY) was refused (401)",
                "check SYNERISE_WORKSPACE_GUID and that Basic authentication is enabled on the "
                "API key (or unset SYNERISE_WORKSPACE_GUID to log in with a JWT)",
                "SYNERISE_WORKSPACE_GUID" if login_ok else "SYNERISE_API_KEY",
            ))  # fmt: skip
        else:
            report.add(Check("synerise.permissions", "fail", "the permission check was refused",
                             "check SYNERISE_API_KEY", "SYNERISE_API_KEY"))  # fmt: skip
        return
    except EtlError as error:
        report.add(Check("synerise.permissions", "fail", _first_sentence(error),
                         "check SYNERISE_API_HOST", "SYNERISE_API_HOST"))  # fmt: skip
        return
    finally:
        client.close()
    if basic:
        report.add(Check("synerise.basic", "pass", "Basic auth with SYNERISE_WORKSPACE_GUID"))
    missing = [name for name in permissions if not granted.get(name)]
    where = f"workspace {workspace!r}" if workspace else "the workspace"
    if missing:
        report.add(Check(
            "synerise.permissions", "fail",
            f"the API key of {where} lacks {', '.join(missing)}",
            "grant them to the key in Synerise > Settings > API keys (or use another key in "
            "SYNERISE_API_KEY)",
            "SYNERISE_API_KEY",
        ))  # fmt: skip
    else:
        report.add(Check("synerise.permissions", "pass",
                         f"{where}: {', '.join(permissions) or 'nothing needed'}"))  # fmt: skip


def _check_clocks(report: Report, clocks: _Clocks, max_skew: float) -> None:
    if not clocks.offsets:
        report.add(Check("clocks", "skip", "no server answered with its time"))
        return
    parts, off = [], []
    for server, (offset, precision) in sorted(clocks.offsets.items()):
        parts.append(f"{server} {offset:+.1f} s")
        if abs(offset) > max_skew + precision:
            off.append(server)
    if off:
        report.add(Check(
            "clocks", "fail", f"this clock differs from {', '.join(off)}: {'; '.join(parts)}",
            f"synchronise the clocks (NTP); more than {max_skew:g} s apart skews sync windows "
            "and token expiry",
        ))  # fmt: skip
    else:
        report.add(Check("clocks", "pass", "agree within " f"{max_skew:g} s: {'; '.join(parts)}"))


def _misconfigured(name: str, error: ConfigError) -> Check:
    return Check(name, "fail", str(error), f"set {error.variable} (environment or .env)",
                 error.variable)  # fmt: skip


def _first_sentence(error: Exception) -> str:
    """The error's message without the generic hint its client appends."""
    text = str(error)
    return text.split(". ", 1)[0] if ". " in text else text
