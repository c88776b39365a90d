"""Run a ``vtex-synerise`` HTTP service in a child process for a test, and stop it after."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def cli_service(
    args: list[str], env: Mapping[str, str], folder: Path, health: str, timeout: float = 60
) -> Iterator[Path]:
    """``vtex-synerise ARGS`` until ``health`` (a URL) answers 200; yields the log file.

    The child gets ``env`` on top of this process's environment, runs in ``folder`` (no stray
    ``.env``) and can import ``celeryconfig``; it gets SIGTERM (then SIGKILL) at the end.
    """
    path = folder / f"{args[0]}.log"
    with path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "etl.cli", "--log-level", "WARNING", *args],
            env={**os.environ, **env, "PYTHONPATH": str(REPO)}, cwd=folder,
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    if requests.get(health, timeout=2).status_code == 200:
                        break
                except requests.ConnectionError:
                    pass
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"`{' '.join(args)}` did not start: {path.read_text()}")
                time.sleep(0.2)
            yield path
        finally:
            process.terminate()
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
