"""Scaling: the I/O-bound orders workload with 1, 2 and 4 worker processes.

Same sandbox as bench/orders.py (40+U(0,20) ms latency, the VTEX family limited to R = 200
requests/s, ``VTEX_RATE_LIMIT=200``). Each worker process is ``vtex-synerise worker -P threads
-c 2 -Q backfill`` with ``SYNC_FETCH_CONCURRENCY=4``, small on purpose, so that one process
cannot reach the ceiling alone: throughput should grow with processes until the shared rate
budget binds, and then stay at the ceiling without provoking 429s.
"""

from __future__ import annotations

from typing import Any

from bench.harness import Stack, log, median, table
from bench.orders import RATE, pipeline_run, sandbox_config

NAME = "scaling"

PARAMS = {
    "quick": {"orders": 500, "runs": 1, "processes": (1, 2, 4)},
    "full": {"orders": 4000, "runs": 2, "processes": (1, 2, 4)},
}
PER_PROCESS = {"pool": "threads", "concurrency": 2}
FETCH_CONCURRENCY = 4


def run(mode: str = "full") -> list[dict[str, Any]]:
    params = PARAMS[mode]
    settings = {"VTEX_RATE_LIMIT": str(RATE), "SYNC_FETCH_CONCURRENCY": str(FETCH_CONCURRENCY)}
    rows: list[dict[str, Any]] = []
    with Stack(NAME, sandbox_config(params["orders"]), settings) as stack:
        first = True
        for processes in params["processes"]:
            while len(stack.workers) < processes:  # add processes; the others keep running
                stack.start_worker(**PER_PROCESS)  # type: ignore[arg-type]
            stack.wait_workers_ready()
            if first:
                stack.warm_up("orders", "2025-06-05T00:00:00Z")
                first = False
            for attempt in range(params["runs"]):
                log(f"scaling: {processes} process(es), run {attempt + 1}/{params['runs']}")
                result = pipeline_run(stack, RATE, full=True)
                rows.append({"kind": "run", "processes": processes, **PER_PROCESS,
                             "fetch_concurrency": FETCH_CONCURRENCY, "rate_limit": RATE,
                             **result})  # fmt: skip
    summary = []
    for processes in params["processes"]:
        mine = [r for r in rows if r["processes"] == processes]
        summary.append({
            "kind": "summary",
            "processes": processes,
            "median_orders_per_s": median([r["orders_per_s"] for r in mine]),
            "median_ratio": median([r["ratio"] for r in mine]),
            "vtex_429_total": sum(r["vtex_429"] for r in mine),
        })  # fmt: skip
    rows += summary
    print(table(
        f"Scaling: orders/s with N worker processes (threads -c 2, fetch 4 each); "
        f"R = {RATE:.0f} req/s, {params['orders']} orders, median of {params['runs']}",
        ["processes", "orders/s", "÷ R", "429s"],
        [[s["processes"], s["median_orders_per_s"], s["median_ratio"], s["vtex_429_total"]]
         for s in summary],
    ))  # fmt: skip
    return rows
