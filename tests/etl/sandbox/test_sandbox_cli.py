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
            "--fault", "oms.get_order:latency_ms=1", "--app-token", "tok en"]  # fmt: skip
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
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=15)
    assert process.returncode == 0
