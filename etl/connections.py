"""Connections: the VTEX account and Synerise workspace pairs a deployment moves data between.

Without ``ETL_CONNECTIONS`` there is one connection, ``default``, configured by the environment
exactly as before. With ``ETL_CONNECTIONS=path.toml`` there is one per table of that file::

    [storea]
    VTEX_ACCOUNT = "storea"
    VTEX_APP_KEY = "..."
    VTEX_APP_TOKEN = "..."
    SYNERISE_API_KEY = "..."

A table's keys are the environment's variable names and its values win over the environment, so
values every connection shares (``SYNERISE_API_HOST``) may stay there. Each connection's
settings are validated like the environment; an error names the connection and the variable.
Variables of the whole process (``PROCESS_WIDE``: servers, the console's users, the worker
timings) are refused inside a table.

A connection's *identity* is its VTEX account and Synerise workspace (``identity``): the state
store keys runs, the ledger and cursors by it, so pointing a connection at another workspace
starts an empty ledger there, and two accounts never share a ledger row.

Everything that names a connection (``--connection`` of the CLI, the console's start form, the
``connection`` label of metrics) asks this module.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from etl.config import VARIABLES, Settings, read_environment
from etl.errors import ConfigError

__all__ = [
    "DEFAULT",
    "PROCESS_WIDE",
    "Connection",
    "budget_owners",
    "load",
    "names",
    "select",
    "unnamed",
    "workspace_of",
]

DEFAULT = "default"

PROCESS_WIDE = (
    "REDIS_URL",
    "DATABASE_URL",
    "ETL_STATE_DIR",
    "FLOWER_BASIC_AUTH",
    "CONSOLE_BASIC_AUTH",
    "SYNC_LEASE_TTL",
    "SYNC_CLAIM_TTL",
    "SYNC_STALE_AFTER",
    "REALTIME_DEDUPE_TTL",
    "ECHO_GUARD_TTL",
)
"""Variables that belong to the process, not to a connection: the servers every connection's
state lives on, the users of the console and Flower, and the timings of the worker's one
heartbeat and upkeep. Refused inside an ``ETL_CONNECTIONS`` table."""

_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")


@dataclass(frozen=True)
class Connection:
    """One VTEX account and Synerise workspace, with the settings to move data between them."""

    name: str
    settings: Settings

    @property
    def identity(self) -> tuple[str, str]:
        """``(VTEX account, Synerise workspace)``: what the state is keyed by.

        Raises:
            ConfigError: the connection has no VTEX account or Synerise key configured.
        """
        account = self.settings.vtex_account
        if not account:
            raise ConfigError(self._variable("VTEX_ACCOUNT"), "a value (it names the connection)")
        return account, workspace_of(self.settings, self._variable("SYNERISE_API_KEY"))

    def _variable(self, variable: str) -> str:
        return variable if self.name == DEFAULT else f"connection {self.name}: {variable}"


def workspace_of(settings: Settings, variable: str = "SYNERISE_API_KEY") -> str:
    """The Synerise workspace of these settings: ``SYNERISE_WORKSPACE_GUID`` when set, else a
    fingerprint of the API key and host (one key belongs to one workspace). Never the key.

    Raises:
        ConfigError: neither a GUID nor a key is configured.
    """
    if settings.synerise_workspace_guid:
        return settings.synerise_workspace_guid
    if settings.synerise_api_key is None:
        raise ConfigError(variable, "a value (it names the Synerise workspace)")
    digest = hashlib.sha256(
        f"{settings.synerise_api_host}\n{settings.synerise_api_key.reveal()}".encode()
    ).hexdigest()
    return f"key-{digest[:16]}"


def load(
    env: Mapping[str, str] | None = None,
    require: Iterable[str] = ("vtex", "synerise"),
) -> dict[str, Connection]:
    """The connections of this deployment, by name, in the file's order.

    Args:
        env: the variables; ``os.environ`` (and ``./.env``) when omitted.
        require: credential sections every connection must have (``Settings.from_env``).

    Raises:
        ConfigError: a bad file, table, name or value; the message names the connection.
    """
    dotenv: Any = None if env is not None else ".env"
    base = read_environment(env, dotenv)
    path = base.get("ETL_CONNECTIONS")
    if not path:
        return {DEFAULT: Connection(DEFAULT, Settings.from_env(env, dotenv, require))}
    found: dict[str, Connection] = {}
    for name, table in _tables(path).items():
        overrides = _overrides(name, table)
        if name != DEFAULT and "SYNERISE_SALT_NAMESPACE" not in overrides:
            # Each account its own eventSalt namespace; `default` keeps today's (or the env's).
            account = overrides.get("VTEX_ACCOUNT") or base.get("VTEX_ACCOUNT")
            overrides["SYNERISE_SALT_NAMESPACE"] = (account or name)[:32]
        try:
            settings = Settings.from_env(env, dotenv, require, overrides=overrides)
        except ConfigError as error:
            raise _named(name, error.variable, error.expected, error.got) from None
        found[name] = Connection(name, settings)
    _check_distinct(found, require)
    return found


def _tables(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as file:
            tables = tomllib.load(file)
    except OSError as error:
        raise ConfigError(
            "ETL_CONNECTIONS", "a readable TOML file", f"{path} ({error.strerror})"
        ) from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError("ETL_CONNECTIONS", "a valid TOML file", f"{path} ({error})") from None
    if not tables:
        raise ConfigError("ETL_CONNECTIONS", "a file with at least one [connection] table", path)
    return tables


def _overrides(name: str, table: object) -> dict[str, str]:
    """A table's values as environment strings, after checking its name and keys."""
    _check_name(name)
    if not isinstance(table, dict):
        raise ConfigError(f"ETL_CONNECTIONS: {name}", "a [table] of VARIABLE = value")
    values: dict[str, str] = {}
    for key, value in table.items():
        if key in PROCESS_WIDE or key == "ETL_CONNECTIONS":
            raise _named(name, key, "it in the environment: it applies to every connection")
        if key not in VARIABLES:
            raise _named(name, key, "one of the documented variables (docs/architecture.md)")
        if isinstance(value, bool):
            values[key] = "true" if value else "false"
        elif isinstance(value, str | int | float):
            values[key] = str(value)
        else:
            raise _named(name, key, "a string, number or boolean")
    return values


def _check_name(name: str) -> None:
    if not _NAME.match(name):
        raise ConfigError(
            "ETL_CONNECTIONS",
            "connection names of 1-32 lower-case letters, digits or '-' (not first)",
            name,
        )


_DISTINCT = {
    "VTEX_ACCOUNT": ("an account or workspace other than", "they would share one ledger"),
    "SYNERISE_SALT_NAMESPACE": (
        "a namespace other than",
        "both send to one workspace, and equal eventSalts would overwrite each other's"
        " transactions",
    ),
    "SYNERISE_CATALOG_NAME": (
        "a catalog other than",
        "both send to one workspace, and their SKU ids would overwrite each other's items",
    ),
}
"""What two connections may not share: the variable blamed, what it must be, and why."""


def _check_distinct(found: Mapping[str, Connection], require: Iterable[str]) -> None:
    """Refuse two connections that would share state, or eventSalts or a catalog in one
    workspace."""
    if not {"vtex", "synerise"} <= set(require):
        return  # identities need credentials; commands that need none do not compare them
    seen: dict[tuple[str, str, str], str] = {}
    for name, connection in found.items():
        account, workspace = connection.identity
        salt = connection.settings.synerise_salt_namespace
        catalog = connection.settings.synerise_catalog_name
        for variable, key, shown in (
            ("VTEX_ACCOUNT", ("VTEX_ACCOUNT", account, workspace), account),
            ("SYNERISE_SALT_NAMESPACE", ("SYNERISE_SALT_NAMESPACE", workspace, salt), salt),
            ("SYNERISE_CATALOG_NAME", ("SYNERISE_CATALOG_NAME", workspace, catalog), catalog),
        ):
            if key in seen:
                expected, why = _DISTINCT[variable]
                raise _named(name, variable, f"{expected} connection {seen[key]}'s ({why})", shown)
            seen[key] = name


def _named(name: str, variable: str, expected: str, got: object | None = None) -> ConfigError:
    return ConfigError(f"connection {name}: {variable}", expected, got)


def names(env: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The names of this process's connections, without validating their settings (``doctor``
    reports those).

    Raises:
        ConfigError: the ``ETL_CONNECTIONS`` file cannot be read, or names a table badly.
    """
    path = read_environment(env, None if env is not None else ".env").get("ETL_CONNECTIONS")
    if not path:
        return (DEFAULT,)
    tables = _tables(path)
    for name in tables:
        _check_name(name)
    return tuple(tables)


def unnamed(available: Iterable[str]) -> str | None:
    """The connection that work naming none belongs to (today's webhook paths, realtime work
    queued before connections): ``default``, or a file's only connection; ``None`` when a file
    has several and none is called ``default``."""
    known = tuple(available)
    if DEFAULT in known:
        return DEFAULT
    return known[0] if len(known) == 1 else None


def select(name: str | None, available: Iterable[str] | None = None) -> str:
    """The connection a command acts on: ``name``, or the only one there is.

    Raises:
        ConfigError: ``name`` is not a connection, or none was given and there are several.
    """
    known = tuple(available if available is not None else names())
    if name is None and len(known) == 1:
        return known[0]
    if name is None:
        raise ConfigError("--connection", f"one of {', '.join(known)} (there are several)")
    if name not in known:
        raise ConfigError("--connection", f"one of {', '.join(known)}", name)
    return name


def budget_owners(found: Mapping[str, Connection] | None = None) -> dict[tuple[str, str], str]:
    """The connection whose traffic each shared rate budget counts, ``{(family, account):
    name}``: its VTEX account and sub-accounts for ``vtex`` and ``vtex_catalog``, its Synerise
    workspace for ``synerise``. Connections naming the same account share its budget and its
    counts, and are named together (``a+b``). A connection without credentials owns nothing.
    """
    owners: dict[tuple[str, str], list[str]] = {}
    for name, connection in (found if found is not None else load(require=())).items():
        try:
            account, workspace = connection.identity
        except ConfigError:
            continue
        budgets = [("vtex", account), ("vtex_catalog", account), ("synerise", workspace)]
        budgets += [("vtex", sub) for sub, _ in connection.settings.vtex_sub_accounts]
        for budget in budgets:
            owners.setdefault(budget, []).append(name)
    return {budget: "+".join(names) for budget, names in owners.items()}
