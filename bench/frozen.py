"""How long a frozen worker's chunk takes to finish elsewhere, with the default settings.

Two workers (``-P prefork -c 2``, default ``SYNC_CLAIM_TTL`` and ``SYNC_LEASE_TTL``) sync the
customers; Synerise answers each batch after 300 ms so chunks are in flight for a while. As soon
as the first worker holds a chunk, its whole process group is frozen (SIGSTOP: a stand-in for a
network partition, it answers nothing and renews nothing) and the clock starts; it stops when that
chunk is ``done``, by the other worker. The run must then end with its counts equal to the
sandbox's ground truth; the frozen worker is woken (SIGCONT) and must write nothing more.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import requests

from bench.harness import SandboxConfig, Stack, log, table

NAME = "frozen"

PARAMS = {"quick": {"customers": 3_000, "runs": 1}, "full": {"customers": 6_000, "runs": 3}}
SETTINGS = {"VTEX_RATE_LIMIT": "100000", "SYNERISE_RATE_LIMIT": "100000"}


def _rows(stack: Stack, run_id: int) -> tuple[Any, ...]:
    run = stack.store.runs.get(run_id)
    with stack.store.db.transaction() as cur:
        cur.execute("SELECT count(*) AS n FROM entity_ledger")
        ledger = cur.fetchone()["n"]
    return run.read_count, run.sent_count, run.rejected_count, run.chunks_done, ledger


def one_run(stack: Stack) -> dict[str, Any]:
    frozen = stack.workers[0]
    run_id = stack.start_run("customers_created", full=True)
    held = stack.freeze_holding(frozen, [run_id], timeout=120)
    frozen_at = time.monotonic()
    try:
        while stack.store.chunks.get(held[0]).status != "done":
            if time.monotonic() - frozen_at > 600:
                raise TimeoutError(f"chunk {held[0]} not done 600 s after the freeze")
            time.sleep(0.1)
        moved = time.monotonic() - frozen_at
        run = stack.wait_run(run_id, timeout=600)
        ended = time.monotonic() - frozen_at
        before = _rows(stack, run_id)
    finally:
        os.killpg(frozen.pid, signal.SIGCONT)
    time.sleep(10)  # the woken worker gets its late answer and tries to record it
    truth = requests.get(f"{stack.vtex_url}/__sandbox__/vtex/expected", timeout=30).json()
    expected = truth["customers"]
    return {
        "seconds_to_move": round(moved, 1),
        "seconds_to_end": round(ended, 1),
        "status": run.status,
        "counts_exact": (run.read_count, run.sent_count, run.rejected_count)
        == (expected["total"], expected["sent"], expected["rejected"]),
        "late_answer_wrote_nothing": _rows(stack, run_id) == before,
    }


def run(mode: str = "full") -> list[dict[str, Any]]:
    params = PARAMS[mode]
    config = SandboxConfig(
        customers=params["customers"],
        orders=10,
        seed=1,
        synerise_faults=[("synerise.*_batch", {"latency_ms": 300})],
    )
    rows = []
    with Stack(NAME, config, SETTINGS) as stack:
        for attempt in range(params["runs"]):
            for worker in list(stack.workers):
                stack.stop_worker(worker)
            stack.workers.clear()
            for _ in range(2):
                stack.start_worker(pool="prefork", concurrency=2)
            stack.wait_workers_ready()
            result = one_run(stack)
            log(f"frozen run {attempt + 1}: {result}")
            rows.append({"kind": "run", **result})
    print(table(
        "A worker frozen (SIGSTOP) while it holds a chunk, default SYNC_CLAIM_TTL (15 s)",
        ["run", "s until its chunk is done elsewhere", "s until the run ended", "run",
         "counts exact", "late answer wrote nothing"],
        [[i + 1, r["seconds_to_move"], r["seconds_to_end"], r["status"], r["counts_exact"],
          r["late_answer_wrote_nothing"]] for i, r in enumerate(rows)],
    ))  # fmt: skip
    return rows
