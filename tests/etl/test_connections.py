"""Connections from the environment or an ``ETL_CONNECTIONS`` TOML file."""

from __future__ import annotations

import pytest

from etl import connections
from etl.errors import ConfigError

BASE = {
    "VTEX_APP_KEY": "vtexappkey-shared",
    "VTEX_APP_TOKEN": "token-shared-secret",
    "SYNERISE_API_HOST": "azure",
}

TWO = """
[storea]
VTEX_ACCOUNT = "storea"
SYNERISE_API_KEY = "key-a-secret"
SYNERISE_BATCH_SIZE = 50

[storeb]
VTEX_ACCOUNT = "storeb"
VTEX_APP_TOKEN = "token-b-secret"
SYNERISE_API_KEY = "key-b-secret"
SYNERISE_GUEST_PROFILES = false
"""


def with_file(tmp_path, text: str) -> dict[str, str]:
    path = tmp_path / "connections.toml"
    path.write_text(text)
    return {**BASE, "ETL_CONNECTIONS": str(path)}


def test_without_a_file_the_environment_is_the_default_connection():
    env = {**BASE, "VTEX_ACCOUNT": "shop", "SYNERISE_API_KEY": "k-secret"}
    found = connections.load(env)
    assert list(found) == ["default"]
    default = found["default"]
    assert default.settings.vtex_account == "shop"
    assert default.settings.synerise_salt_namespace == "vtex"  # unchanged for existing users
    account, workspace = default.identity
    assert account == "shop" and "k-secret" not in workspace
    guid = connections.load({**env, "SYNERISE_WORKSPACE_GUID": "ws-guid-1"})["default"]
    assert guid.identity == ("shop", "ws-guid-1")


def test_each_table_is_a_connection_whose_values_win_over_the_environment(tmp_path):
    found = connections.load(with_file(tmp_path, TWO))
    assert list(found) == ["storea", "storeb"]
    a, b = found["storea"].settings, found["storeb"].settings
    assert (a.vtex_account, a.synerise_batch_size) == ("storea", 50)
    assert a.synerise_guest_profiles is True
    assert a.vtex_app_token is not None and a.vtex_app_token.reveal() == "token-shared-secret"
    assert b.vtex_app_token is not None and b.vtex_app_token.reveal() == "token-b-secret"
    assert b.synerise_guest_profiles is False
    assert a.vtex_base_url == "https://storea.vtexcommercestable.com.br"
    # Each account gets its own eventSalt namespace (a table named `default` keeps `vtex`).
    assert (a.synerise_salt_namespace, b.synerise_salt_namespace) == ("storea", "storeb")
    assert found["storea"].identity != found["storeb"].identity


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('[storea]\nVTEX_ACCOUNT = "storea"\nSYNERISE_BATCH_SIZE = 5000\n',
         "connection storea: SYNERISE_BATCH_SIZE: expected a whole number from 1 to 1000, "
         "got '5000'"),
        ('[storea]\nVTEX_ACCOUNT = "Store A"\n',
         "connection storea: VTEX_ACCOUNT: expected a host name label"),
        ('[storea]\nVTEX_ACCOUNT = "storea"\nREDIS_URL = "redis://x"\n',
         "connection storea: REDIS_URL: expected it in the environment"),
        ('[storea]\nVTEX_ACOUNT = "storea"\n',
         "connection storea: VTEX_ACOUNT: expected one of the documented variables"),
        ('[storea]\nVTEX_ACCOUNT = ["storea"]\n',
         "connection storea: VTEX_ACCOUNT: expected a string, number or boolean"),
        ('[Store_A]\nVTEX_ACCOUNT = "storea"\n', "ETL_CONNECTIONS: expected connection names"),
        ("[storea\n", "ETL_CONNECTIONS: expected a valid TOML file"),
        ('[storea]\nVTEX_ACCOUNT = "storea"\n[storec]\nVTEX_ACCOUNT = "storea"\n',
         "connection storec: VTEX_ACCOUNT: expected an account or workspace other than "
         "connection storea's"),
        ('[storea]\nVTEX_ACCOUNT = "storea"\nSYNERISE_SALT_NAMESPACE = "x"\n'
         '[storec]\nVTEX_ACCOUNT = "storec"\nSYNERISE_SALT_NAMESPACE = "x"\n',
         "connection storec: SYNERISE_SALT_NAMESPACE: expected a namespace other than "
         "connection storea's"),
        ('[storea]\nVTEX_ACCOUNT = "storea"\nSYNERISE_CATALOG_NAME = "shop"\n'
         '[storec]\nVTEX_ACCOUNT = "storec"\nSYNERISE_CATALOG_NAME = "shop"\n',
         "connection storec: SYNERISE_CATALOG_NAME: expected a catalog other than "
         "connection storea's"),
    ],
)
def test_a_bad_table_is_one_line_naming_the_connection_and_the_variable(
    tmp_path, table, message
):
    env = with_file(tmp_path, table)
    env["SYNERISE_API_KEY"] = "shared-key-secret"
    with pytest.raises(ConfigError) as raised:
        connections.load(env)
    text = str(raised.value)
    assert text.startswith(message), text
    assert "\n" not in text
    assert "secret" not in text


def test_a_missing_credential_names_the_connection(tmp_path):
    env = with_file(tmp_path, '[storea]\nVTEX_ACCOUNT = "storea"\n')
    missing = r"^connection storea: SYNERISE_API_KEY: expected a value"
    with pytest.raises(ConfigError, match=missing):
        connections.load(env)
    assert list(connections.load(env, require=())) == ["storea"]


def test_a_missing_file_is_one_line():
    with pytest.raises(ConfigError, match=r"^ETL_CONNECTIONS: expected a readable TOML file"):
        connections.load({"ETL_CONNECTIONS": "/nonexistent/connections.toml"})


def test_select_needs_a_name_only_when_there_are_several():
    assert connections.select(None, ["default"]) == "default"
    assert connections.select("b", ["a", "b"]) == "b"
    with pytest.raises(ConfigError, match=r"^--connection: expected one of a, b \(there are"):
        connections.select(None, ["a", "b"])
    with pytest.raises(ConfigError, match=r"^--connection: expected one of a, b, got 'c'"):
        connections.select("c", ["a", "b"])


def test_each_rate_budget_belongs_to_its_connections(tmp_path):
    shared = TWO + '\n[storec]\nVTEX_ACCOUNT = "storea"\nSYNERISE_API_KEY = "key-c-secret"\n'
    shared += 'VTEX_SUB_ACCOUNTS = "storecsub"\n'
    found = connections.load(with_file(tmp_path, shared))
    owners = connections.budget_owners(found)
    workspace = {name: c.identity[1] for name, c in found.items()}
    assert owners[("vtex", "storea")] == "storea+storec"  # one account: one budget, shared
    assert owners[("vtex_catalog", "storeb")] == "storeb"
    assert owners[("vtex", "storecsub")] == "storec"  # a sub-account counts as its connection's
    assert owners[("synerise", workspace["storeb"])] == "storeb"
    assert owners[("synerise", workspace["storec"])] == "storec"
    assert not any("secret" in key or "secret" in name for (_, key), name in owners.items())
