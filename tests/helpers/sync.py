"""Helpers for end-to-end sync tests (``tests/etl/sync``, ``tests/workers``): the sandbox's data
range, fast settings, waiting for runs, reading what the emulators hold, and the CLI.

The fixtures these tests use (``sandbox``, ``sync_env``, ``engine``, ``worker``, ``store``) are in
``tests/conftest.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests

from etl.sandbox import Sandbox
from etl.state.runs import END_STATUSES, Run
from etl.state.store import StateStore
from etl.sync import runs
from etl.sync.engine import Engine
from etl.sync.windows import Window

REPO = Path(__file__).resolve().parents[2]

DATA_FROM = datetime(2025, 6, 1, tzinfo=UTC)
DATA_TO = datetime(2026, 6, 1, tzinfo=UTC)
"""The generated sandbox data lies in ``[DATA_FROM, DATA_TO)`` (``Dataset`` defaults)."""
WHOLE_RANGE = Window(DATA_FROM, DATA_TO)
RANGE_ARGS = ["--from", "2025-06-01", "--to", "2026-06-01"]

FAST_SETTINGS = {
    "VTEX_RATE_LIMIT": "2000",
    "VTEX_CATALOG_RATE_LIMIT": "2000",
    "SYNERISE_RATE_LIMIT": "2000",
    "SYNC_LEASE_TTL": "5",
    "SYNC_CHUNK_SIZE": "50",
    "SYNC_FETCH_CONCURRENCY": "8",
    "SYNC_STALE_AFTER": "300",
    "SYNC_CLAIM_TTL": "5",
}
"""Tests are not about throughput limits unless they say so."""


def wait_until(
    condition: Callable[[], Any], timeout: float = 60, interval: float = 0.1, what: str = ""
) -> Any:
    """Poll until ``condition()`` is truthy and return it; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what or condition}")
        time.sleep(interval)


def wait_for_run(store: StateStore, run_id: int, timeout: float = 90) -> Run:
    """Wait for a run to end (done, failed or cancelled) and return it."""
    last: list[Run] = []

    def ended() -> bool:
        last[:] = [store.runs.get(run_id)]
        return last[0].status in END_STATUSES

    try:
        wait_until(ended, timeout, 0.1, f"run {run_id} to end")
    except pytest.fail.Exception:
        run = last[0]
        pytest.fail(
            f"run {run_id} still {run.status} after {timeout:g} s: chunks "
            f"{run.chunks_done}+{run.chunks_failed}/{run.chunks_total} "
            f"planning_done={run.planning_done} error={run.error!r}"
        )
    return last[0]


def planned_inline(engine: Engine, request: runs.StartRequest) -> tuple[int, list[int]]:
    """A run planned in this process (its task messages wait in Redis, no worker needed); the
    run and its pending chunks."""
    run = runs.start(engine, request)
    runs.run_producer(engine, run.id)
    return run.id, engine.store.chunks.ids(run.id, ["pending"])


def stats(sandbox: Sandbox, side: str = "synerise") -> dict[str, Any]:
    """``GET /__sandbox__/stats`` of the Synerise (default) or VTEX emulator."""
    url = sandbox.synerise_url if side == "synerise" else sandbox.vtex_url
    response = requests.get(f"{url}/__sandbox__/stats", timeout=10)
    response.raise_for_status()
    return dict(response.json())


def listing(sandbox: Sandbox, kind: str, **filters: str) -> list[dict[str, Any]]:
    """Everything the Synerise emulator stored: ``profiles`` or ``transactions``."""
    response = requests.get(
        f"{sandbox.synerise_url}/__sandbox__/synerise/{kind}", params=filters, timeout=30
    )
    response.raise_for_status()
    return list(response.json())


def expected(sandbox: Sandbox) -> dict[str, Any]:
    """The ground truth: ``GET /__sandbox__/vtex/expected``."""
    response = requests.get(f"{sandbox.vtex_url}/__sandbox__/vtex/expected", timeout=30)
    response.raise_for_status()
    return dict(response.json())


def set_faults(sandbox: Sandbox, *rules: Mapping[str, Any]) -> None:
    """``POST /__sandbox__/faults`` on both emulators (route names never clash)."""
    for url in (sandbox.vtex_url, sandbox.synerise_url):
        requests.post(f"{url}/__sandbox__/faults", json=list(rules), timeout=10).raise_for_status()


def cli_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "etl.cli", "--log-level", "WARNING", *args]


def process_env(env: Mapping[str, str]) -> dict[str, str]:
    """The environment of a ``vtex-synerise`` child process (``celeryconfig`` importable from
    any directory, even when the editable install predates it)."""
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, **env, "PYTHONPATH": path}


def process_cwd(env: Mapping[str, str]) -> str:
    """The test's temporary folder (no stray ``./.env``)."""
    return str(Path(env["ETL_STATE_DIR"]).parent)


def run_cli(
    env: Mapping[str, str], *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``vtex-synerise ARGS`` in a separate process with the ETL's environment."""
    return subprocess.run(
        cli_argv(*args),
        env=process_env(env),
        cwd=process_cwd(env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def cli_json(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert result.stdout.strip(), result.stderr
    return dict(json.loads(result.stdout))


def invoke(*args: str, expect: int = 0, stdin: str | None = None) -> Any:
    """``vtex-synerise ARGS`` in this process (it shares the ``engine`` fixture's engine)."""
    from click.testing import CliRunner

    from etl.cli import main

    result = CliRunner().invoke(main, ["--log-level", "WARNING", *args], input=stdin)
    assert result.exit_code == expect, (
        f"exit {result.exit_code}: {result.stdout}\n{result.stderr}\n{result.exception!r}"
    )
    return result


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def customer_truth(sandbox: Sandbox) -> dict[str, tuple[str | None, str | None]]:
    """CL document id -> (expected reject reason or None, userId) for the generated data."""
    data = sandbox.dataset
    truth = {}
    for i in range(data.customer_count):
        doc = data.customer(i)
        truth[doc["id"]] = (data.expected_reason("customer", i), doc.get("userId"))
    return truth


def order_truth(sandbox: Sandbox) -> dict[str, str | None]:
    """orderId -> expected reject reason (None: must arrive) for the generated data."""
    data = sandbox.dataset
    return {
        data.order(i)["orderId"]: data.expected_reason("order", i) for i in range(data.order_count)
    }


def expected_profiles(sandbox: Sandbox) -> list[set[str]]:
    """The profiles Synerise must end up with, as the ``customId``s that may carry each one.

    One per valid customer, except that customers sharing an e-mail (the ``duplicate_email``
    kind) are one profile: the emulator resolves an item with an unknown ``customId`` by its
    e-mail, so the later one takes the earlier one's profile over (which one is last depends on
    the order chunks finish in). Payloads come from ``schemas.mapping`` with the default
    ``MappingConfig``, as the ground truth assumes.
    """
    from schemas.mapping import MappingConfig, profile_from_customer

    config, data = MappingConfig(), sandbox.dataset
    groups: dict[str, set[str]] = {}
    for i in range(data.customer_count):
        if data.expected_reason("customer", i) is not None:
            continue
        payload = profile_from_customer(data.customer(i), config)
        email = payload.get("email")
        key = f"email:{email.lower()}" if email else f"customId:{payload['customId']}"
        groups.setdefault(key, set()).add(payload["customId"])
    return list(groups.values())


def guest_profiles(sandbox: Sandbox) -> dict[str, dict[str, Any]]:
    """The orders sync's guest profiles: orderId -> the ``/v4/clients/batch`` item sent for the
    buyer, for each order that maps and has no ``CL`` buyer (``schemas.mapping``, defaults)."""
    from etl.errors import SkippableRecordError
    from schemas.mapping import MappingConfig, guest_profile_from_order, transaction_from_order

    config, data, found = MappingConfig(), sandbox.dataset, {}
    for i in range(data.order_count):
        order = data.order(i)
        user_id = (order.get("clientProfileData") or {}).get("userProfileId")
        buyers = data.find_customers("userId", user_id) if user_id else []
        buyer = data.customer(buyers[0]) if buyers else None
        try:
            transaction_from_order(order, buyer, config)
        except SkippableRecordError:
            continue
        guest = guest_profile_from_order(order, buyer, config)
        if guest is not None:
            found[order["orderId"]] = guest
    return found


def assert_profiles_arrived(sandbox: Sandbox, *, guests: bool = True) -> None:
    """Every expected profile is in Synerise once, and nothing else is: the customers', and
    (``guests``, when the orders were synced too) the guest buyers'."""
    from collections import Counter

    profiles = listing(sandbox, "profiles")
    groups = expected_profiles(sandbox)
    if guests:
        groups += [{guest["customId"]} for guest in guest_profiles(sandbox).values()]
    present = Counter(profile.get("customId") for profile in profiles)
    assert set(present.values()) == {1}, "a customId is on two profiles"
    assert len(profiles) == len(groups)
    missing = [ids for ids in groups if len(ids & set(present)) != 1]
    assert not missing, f"{len(missing)} expected profile(s) missing, e.g. {missing[:3]}"
