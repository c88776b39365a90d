"""Fixtures of the tests that run real worker processes and kill or freeze them."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.helpers.sync import cli_argv, process_cwd, process_env

WORKER_ARGS = ("worker", "-P", "prefork", "-Q", "backfill,incremental,realtime")


@pytest.fixture
def spawn_worker(sync_env, tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen]]:
    """Start ``vtex-synerise worker NAME`` (prefork, ``concurrency`` children) in its own process
    group; whatever is left (also a frozen one) is killed at the end."""
    started: list[subprocess.Popen] = []

    def spawn(name: str, concurrency: int = 2) -> subprocess.Popen:
        log = (tmp_path / f"{name}.log").open("w")
        proc = subprocess.Popen(
            cli_argv(*WORKER_ARGS, "-c", str(concurrency), "-n", f"{name}@%h"),
            env=process_env(sync_env),
            cwd=process_cwd(sync_env),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: killpg reaches the pool children
        )
        started.append(proc)
        return proc

    yield spawn
    for proc in started:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
