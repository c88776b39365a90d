"""The demo runs end to end and leaves no process behind, even when interrupted."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

REPO = Path(__file__).resolve().parents[2]


def demo_env(state: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("REDIS_URL", "DATABASE_URL", "FLOWER_BASIC_AUTH")}
    env["ETL_STATE_DIR"] = str(state)
    return env


def leftovers(state: Path) -> list[str]:
    """Processes still tied to the demo: its servers, worker or Flower."""
    found = []
    for proc in psutil.process_iter(["pid", "cmdline", "environ"]):
        try:
            cmdline = " ".join(proc.info["cmdline"] or [])
            environ = proc.info["environ"] or {}
        except (psutil.Error, TypeError):
            continue
        if str(state) in cmdline or environ.get("ETL_STATE_DIR", "").startswith(str(state)):
            found.append(f"{proc.info['pid']}: {cmdline}")
    return found


def wait_gone(state: Path, seconds: float = 10) -> list[str]:
    deadline = time.monotonic() + seconds
    while (left := leftovers(state)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


def test_demo_end_to_end_twice_in_one_checkout(tmp_path):
    """The second demo finds the first one's state (ledger, runs) and starts clean anyway."""
    for attempt in ("first", "second"):
        result = subprocess.run(
            [sys.executable, "-m", "etl.cli", "--log-level", "warning", "demo",
             "--customers", "150", "--orders", "150"],
            cwd=REPO, env=demo_env(tmp_path), capture_output=True, text=True, timeout=240,
        )
        assert result.returncode == 0, f"{attempt} demo:\n{result.stdout}{result.stderr}"
        assert "report agrees with the sandbox: yes" in result.stdout
        assert "(strict: Synerise's request models and rules) refused 0 bodies; items breaking" \
               " them: 0" in result.stdout
        assert "guest buyers' profiles before their transactions" in result.stdout
        assert "skipped" in result.stdout and "demo ok" in result.stdout
        assert "refused anonymous requests: yes" in result.stdout
        assert f"demo state in {tmp_path / 'demo'}" in result.stdout
        assert wait_gone(tmp_path) == []
    assert (tmp_path / "demo" / "pg").is_dir()  # kept until the next demo, for a look


@pytest.mark.parametrize(
    ("when", "sig", "says"),
    [
        ("holding:", signal.SIGINT, "shutting down"),
        ("worker started", signal.SIGTERM, "interrupted; everything was shut down"),
        ("worker started", signal.SIGINT, "interrupted; everything was shut down"),
    ],
)
def test_interrupted_demo_cleans_up(tmp_path, when, sig, says):
    proc = subprocess.Popen(
        [sys.executable, "-m", "etl.cli", "--log-level", "warning", "demo", "--hold",
         "--customers", "100", "--orders", "100"],
        cwd=REPO, env=demo_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if line.startswith(when):
            break
    else:
        pytest.fail(f"the demo ended before {when!r}:\n" + "".join(seen))
    assert leftovers(tmp_path), "the demo's processes should be running now"
    proc.send_signal(sig)
    rest, _ = proc.communicate(timeout=120)
    assert says in rest
    assert wait_gone(tmp_path) == []
