"""``vtex-synerise doctor`` against the sandbox: passes when all is well, names what is not."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from werkzeug.serving import make_server
from werkzeug.wrappers import Response

from etl import doctor
from etl.sandbox.synerise import SANDBOX_WORKSPACE_GUID
from etl.vtex.client import VtexClient
from etl.webhooks.app import ORDER_HOOK_PATH
from etl.webhooks.auth import HEADER
from tests.helpers.databases import scratch_database
from tests.helpers.sync import invoke


def run_doctor(*args: str, expect: int) -> dict[str, Any]:
    result = invoke("doctor", "--json", *args, expect=expect)
    return dict(json.loads(result.stdout))


def checks(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {check["name"]: check for check in report["checks"] if check["name"] != "settings"}


def failed(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in report["checks"] if c["status"] == "fail"}


def test_passes_against_the_sandbox(sync_env):
    report = run_doctor(expect=0)
    assert report["ok"] and report["connection"] == "default"
    found = checks(report)
    for name in ("redis", "postgres", "vtex.oms_list", "vtex.oms_get", "vtex.md_search",
                 "vtex.catalog", "vtex.pricing", "vtex.credentials", "synerise.login",
                 "synerise.permissions", "clocks"):  # fmt: skip
        assert found[name]["status"] == "pass", found[name]
    assert "API_BATCH_CLIENT_CREATE, API_BATCH_TRANSACTION_CREATE" in found[
        "synerise.permissions"]["detail"]  # fmt: skip
    assert found["hook"]["status"] == "skip"  # realtime is off

    human = invoke("doctor", expect=0)
    assert "ok    synerise.login" in human.stdout
    assert "connection default is ready" in human.stderr


def test_a_wrong_synerise_key_is_named(sync_env, monkeypatch):
    monkeypatch.setenv("SYNERISE_API_KEY", "not-the-key")
    report = run_doctor(expect=1)
    login = failed(report)["synerise.login"]
    assert login["variable"] == "SYNERISE_API_KEY"
    assert "refused SYNERISE_API_KEY" in login["detail"]
    human = invoke("doctor", expect=1)
    assert "FAIL  synerise.login" in human.stdout
    assert "look at SYNERISE_API_KEY" in human.stderr
    assert "not-the-key" not in human.stdout + human.stderr


def test_missing_settings_are_named(sync_env, monkeypatch):
    monkeypatch.delenv("SYNERISE_API_KEY")
    monkeypatch.setenv("VTEX_RATE_LIMIT", "fast")
    report = run_doctor(expect=1)
    assert [c["variable"] for c in report["checks"]] == ["VTEX_RATE_LIMIT"]
    monkeypatch.setenv("VTEX_RATE_LIMIT", "50")
    report = run_doctor(expect=1)
    assert failed(report)["settings"]["variable"] == "SYNERISE_API_KEY"
    assert "synerise.login" not in checks(report) and checks(report)["vtex.credentials"]


@pytest.mark.sandbox(synerise_options={"permissions": ["API_BATCH_CLIENT_CREATE"]})
def test_a_missing_permission_fails_only_the_scopes_that_need_it(sync_env):
    report = run_doctor(expect=1)
    permissions = failed(report)["synerise.permissions"]
    assert "lacks API_BATCH_TRANSACTION_CREATE" in permissions["detail"]
    assert permissions["variable"] == "SYNERISE_API_KEY"
    report = run_doctor("--scope", "customers_created", "--scope", "customers_updated", expect=0)
    assert checks(report)["synerise.permissions"]["status"] == "pass"


@pytest.mark.sandbox(vtex_options={"denied_routes": ("md.*", "catalog.*")})
def test_a_missing_vtex_role_fails_and_an_unneeded_one_warns(sync_env):
    report = run_doctor(expect=1)
    found = checks(report)
    assert found["vtex.md_search"]["status"] == "fail"
    assert "Dynamic Storage > Read only documents" in found["vtex.md_search"]["fix"]
    assert found["vtex.catalog"]["status"] == "warn"
    assert found["vtex.oms_list"]["status"] == "pass"
    assert found["vtex.credentials"]["status"] == "pass"


def test_a_wrong_vtex_token_is_named(sync_env, monkeypatch):
    monkeypatch.setenv("VTEX_APP_TOKEN", "wrong-token")
    report = run_doctor("--scope", "orders", expect=1)
    assert failed(report)["vtex.credentials"]["variable"] == "VTEX_APP_TOKEN"


def test_an_unmigrated_database_says_to_upgrade(sync_env, infra, monkeypatch):
    with scratch_database(infra.database_url, f"etl_doctor_{id(sync_env)}") as empty:
        monkeypatch.setenv("DATABASE_URL", empty)
        report = run_doctor(expect=1)
    postgres = failed(report)["postgres"]
    assert "schema at 0000" in postgres["detail"]
    assert postgres["fix"] == "run `vtex-synerise db upgrade`"


def test_basic_auth_is_checked_when_a_guid_is_set(sync_env, monkeypatch):
    monkeypatch.setenv("SYNERISE_WORKSPACE_GUID", SANDBOX_WORKSPACE_GUID)
    assert checks(run_doctor(expect=0))["synerise.basic"]["status"] == "pass"
    monkeypatch.setenv("SYNERISE_WORKSPACE_GUID", "00000000-0000-0000-0000-00000000beef")
    basic = failed(run_doctor(expect=1))["synerise.basic"]
    assert basic["variable"] == "SYNERISE_WORKSPACE_GUID"


@pytest.fixture
def webhooks_service() -> Iterator[str]:
    """Something that answers 200 everywhere, like the webhook service does to VTEX's ping."""
    server = make_server("127.0.0.1", 0, Response("ok"), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(10)


def test_the_order_hook_must_point_at_this_deployment(sync_env, monkeypatch, webhooks_service):
    monkeypatch.setenv("WEBHOOK_SECRET", "this-deployment")
    report = run_doctor("--webhooks-url", webhooks_service, expect=1)
    assert "no order hook is registered" in failed(report)["hook"]["detail"]

    vtex = VtexClient(sync_env["VTEX_BASE_URL"], sync_env["VTEX_APP_KEY"],
                      sync_env["VTEX_APP_TOKEN"])  # fmt: skip
    orders = webhooks_service + ORDER_HOOK_PATH
    vtex.set_hook_config(orders, ["invoiced"], {HEADER: "another-deployment"})
    report = run_doctor("--webhooks-url", webhooks_service, expect=1)
    assert "WEBHOOK_SECRET" in failed(report)["hook"]["detail"]

    vtex.set_hook_config(orders, ["invoiced"], {HEADER: "this-deployment"})
    report = run_doctor("--webhooks-url", webhooks_service, expect=0)
    found = checks(report)
    assert found["hook"]["detail"] == f"order hook -> {orders} on invoiced"
    assert found["webhooks.reachable"]["status"] == "pass"
    report = run_doctor("--webhooks-url", "https://elsewhere.example.com", expect=1)
    elsewhere = f"not at 'https://elsewhere.example.com{ORDER_HOOK_PATH}'"
    assert elsewhere in failed(report)["hook"]["detail"]
    vtex.close()


def test_clocks_apart_fail():
    report = doctor.Report("default")
    clocks = doctor._Clocks()
    clocks.offsets = {"Redis": (0.1, 0.05), "VTEX": (42.0, 0.6)}
    doctor._check_clocks(report, clocks, max_skew=5)
    [check] = report.checks
    assert check.status == "fail" and "differs from VTEX" in check.detail
    clocks.offsets = {"VTEX": (5.4, 0.6)}  # within the Date header's one-second precision
    doctor._check_clocks(report, clocks, max_skew=5)
    assert report.checks[-1].status == "pass"


def test_the_enrichers_are_loaded_or_named(sync_env, monkeypatch):
    monkeypatch.setenv("ENRICHERS", "tests.helpers.enrichers:marked")
    found = checks(run_doctor(expect=0))["mapping"]
    assert found["status"] == "pass" and "tests.helpers.enrichers:marked" in found["detail"]
    monkeypatch.setenv("ENRICHERS", "no_such_module:enrich")
    mapping = failed(run_doctor(expect=1))["mapping"]
    assert mapping["variable"] == "ENRICHERS" and "no_such_module" in mapping["detail"]
