"""``vtex-synerise sandbox``: option errors, ground truth, a real ``serve`` stopped by SIGINT."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import requests
from click.testing import CliRunner

from etl.cli.sandbox import sandbox
from etl.sandbox.data import Dataset


def test_expected_prints_the_ground_truth() -> None:
    result = CliRunner().invoke(
        sandbox, ["expected", "--customers", "300", "--orders", "200", "--seed", "4"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == Dataset(300, 200, seed=4).expected()


def test_bad_options_exit_2() -> None:
    runner = CliRunner()
    bad_fault = runner.invoke(sandbox, ["serve", "--fault", "oms.*:latency_ms=fast"])
    assert bad_fault.exit_code == 2 and "latency_ms" in bad_fault.output
    bad_share = runner.invoke(sandbox, ["serve", "--dirty-share", "2"])
    assert bad_share.exit_code == 2
    missing = runner.invoke(sandbox, ["serve", "--fixtures", "/no/such/dir"])
    assert missing.exit_code == 2


def test_serve_prints_exports_and_stops_on_sigint() -> None:
    code = "from etl.cli.sandbox import sandbox; sandbox()"
    args = ["serve", "--customers", "20", "--orders", "20", "--rate-limit", "1000",
            "--fault", "oms.get_order:latency_ms=1", "--app-token", "tok en",
            "--relaxed"]  # fmt: skip
    process = subprocess.Popen(
        [sys.executable, "-c", code, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline().strip() for _ in range(6)]
        env = dict(line.removeprefix("export ").split("=", 1) for line in lines)
        assert env["VTEX_APP_TOKEN"] == "'tok en'"  # shell-quoted
        headers = {"X-VTEX-API-AppKey": env["VTEX_APP_KEY"], "X-VTEX-API-AppToken": "tok en"}
        orders = requests.get(
            env["VTEX_BASE_URL"] + "/api/oms/pvt/orders", headers=headers, timeout=5
        )
        assert orders.json()["paging"]["total"] == 20
        faults = requests.get(env["VTEX_BASE_URL"] + "/__sandbox__/faults", timeout=5).json()
        assert {"route": "oms.get_order", "latency_ms": 1.0} in faults["rules"]
        login = requests.post(
            env["SYNERISE_API_HOST"] + "/uauth/v2/auth/login/profile",
            json={"apiKey": env["SYNERISE_API_KEY"]},
            timeout=5,
        )
        assert login.ok
        stats = requests.get(env["SYNERISE_API_HOST"] + "/__sandbox__/stats", timeout=5).json()
        assert stats["strict"] is False
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=15)
    assert process.returncode == 0


# The sandbox is the `sandbox` extra: a production install has no aiohttp. Simulated in a child
# process where importing aiohttp fails, as it does when the package is absent.
_WITHOUT_AIOHTTP = "import sys; sys.modules['aiohttp'] = None; from etl.cli import main; main()"


def _run_without_aiohttp(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _WITHOUT_AIOHTTP, *args],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_the_cli_loads_without_the_sandbox_extra() -> None:
    code = "import sys; import etl.cli; print(sorted(m for m in sys.modules if m.startswith(("
    code += "'aiohttp', 'etl.sandbox'))))"
    listed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert listed.stdout.strip() == "[]"
    assert _run_without_aiohttp("sync", "--help").returncode == 0


def test_sandbox_commands_without_the_extra_name_it_in_one_line() -> None:
    for args in (("sandbox", "serve"), ("sandbox", "expected"), ("demo", "--customers", "1")):
        result = _run_without_aiohttp(*args)
        assert result.returncode == 2, (args, result.stderr)
        assert result.stderr.splitlines() == [
            "error: the sandbox needs the 'sandbox' extra: "
            "pip install 'vtex-synerise-etl[sandbox]'"
        ], args
