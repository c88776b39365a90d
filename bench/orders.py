"""Orders against the ceiling, and the naive baseline on the same sandbox.

The sandbox answers every VTEX route after 40 ms plus up to 20 ms of jitter, and rate-limits
the whole VTEX family (OMS list and get order, Master Data search) to one shared bucket of
``R`` requests/s: over it, 429 with ``Retry-After``. Synerise answers after the same latency.
``VTEX_RATE_LIMIT`` is set to ``R``, as a user would set it to their account's limit.

Ceiling, stated strictly: every VTEX call counts against ``R``, the listing and the buyers'
Master Data lookups included, so ``orders/s ÷ R`` can only approach 1 (it would exceed the
get-order-only ceiling a real account has; see docs/benchmarks.md). Also reported: VTEX
calls/s ÷ R (how much of the budget the run used) and the 429s our client provoked (the
sandbox's ``rate_limited``), which a client keeping to a shared budget keeps near zero.

The pipeline is the real one: embedded Redis and PostgreSQL, one ``vtex-synerise worker -P
threads -c 8 -Q backfill`` process, ``SYNC_FETCH_CONCURRENCY=16`` (R x latency = 10 requests
must be in flight; 8 chunks x 16 leave room for the chunk phases that do not fetch), runs
started with ``vtex-synerise sync start orders --full --json`` and timed by PostgreSQL.

The naive baseline (bench/naive.py) runs as its own process against the same sandbox with the
same faults, on the first ``naive_orders`` orders (it is sequential, so its rate is steady from
the first order; a full pass would take minutes).
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

from bench.harness import (
    DATA_FROM,
    DATA_TO,
    PYTHON,
    ROOT,
    SandboxConfig,
    Stack,
    ceiling_summary,
    cpu_meter,
    log,
    median,
    run_seconds,
    table,
)

NAME = "orders"

LATENCY = {"latency_ms": 40, "jitter_ms": 20}
PARAMS = {
    "quick": {"orders": 1500, "runs": 2, "naive_orders": 40},
    "full": {"orders": 8000, "runs": 3, "naive_orders": 400, "before_orders": 3000},
}
RATE = 200.0
WORKER = {"pool": "threads", "concurrency": 8}
FETCH_CONCURRENCY = 16
NO_BURST = "0"
VARIANTS: tuple[tuple[str, dict[str, str]], ...] = (
    ("pipeline", {}),
    ("pipeline_no_burst", {"VTEX_RATE_BURST": NO_BURST}),
)
"""Default settings (the budget may spend half a second of R at once after a lull,
``VTEX_RATE_BURST=0.5``; the sandbox's bucket holds a whole second, R requests), and a budget of
one request at a time (the default before 2026-12-05)."""


def sandbox_config(orders: int, rate: float = RATE, seed: int = 1) -> SandboxConfig:
    """Latency on both servers; one ``rate`` bucket for every VTEX route."""
    return SandboxConfig(
        customers=orders,
        orders=orders,
        seed=seed,
        vtex_faults=[("*", {**LATENCY, "rate_limit": rate})],
        synerise_faults=[("*", dict(LATENCY))],
    )


def pipeline_run(
    stack: Stack, rate: float, *, full: bool, check: bool = True, date_to: str = DATA_TO
) -> dict[str, Any]:
    """One orders run (created up to ``date_to``) on a clean sandbox; throughput, budget use,
    429s and CPU. ``check``: raise unless the run ended ``done`` (without it, its status and
    failed chunks are reported)."""
    stack.reset_sandbox()
    pids = {"sandbox": stack.sandbox_pid}
    for index, worker in enumerate(stack.workers):
        if worker.proc.poll() is None:
            pids[f"worker{index}"] = worker.pid
    infra_before = stack.infra_cpu()
    with cpu_meter(pids) as cpu:
        run = stack.wait_run(stack.start_run("orders", DATA_FROM, date_to, full=full), timeout=900)
    infra = stack.infra_cpu() - infra_before
    if check and run.status != "done":
        raise RuntimeError(f"run {run.id} ended {run.status}: {run.error}")
    seconds = run_seconds(run)
    vtex, synerise = stack.vtex_stats(), stack.synerise_stats()
    calls = vtex["requests"]
    vtex_calls = sum(calls.values())
    worker_cpu = sum(v for k, v in cpu.items() if k.startswith("worker"))
    return {
        "run_id": run.id,
        "status": run.status,
        "chunks_failed": run.chunks_failed,
        "orders": run.read_count,
        "sent": run.sent_count,
        "rejected": run.rejected_count,
        "seconds": round(seconds, 3),
        "orders_per_s": round(run.read_count / seconds, 2),
        "ratio": round(run.read_count / seconds / rate, 4),
        "vtex_calls": calls,
        "vtex_calls_per_order": round(vtex_calls / run.read_count, 4),
        "budget_use": round(vtex_calls / seconds / rate, 4),
        "vtex_429": vtex["rate_limited"],
        "synerise_429": synerise["rate_limited"],
        "worker_cpu_us_per_order": round(worker_cpu / run.read_count * 1e6),
        "sandbox_cpu_us_per_order": round(cpu["sandbox"] / run.read_count * 1e6),
        "infra_cpu_us_per_order": round(infra / run.read_count * 1e6),
    }


def naive_run(stack: Stack, orders: int) -> dict[str, Any]:
    """bench/naive.py as a user would run it, against the same sandbox."""
    stack.reset_sandbox()
    argv = [PYTHON, str(ROOT / "bench" / "naive.py"), *stack.script_args(),
            "--from", DATA_FROM, "--limit", str(orders), "--json"]  # fmt: skip
    done = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=900,
        check=True,
        cwd=ROOT,
    )
    result = json.loads(done.stdout)
    result["vtex_429"] = stack.vtex_stats()["rate_limited"]
    return dict(result)


def before_fix(orders: int, settings: dict[str, str]) -> list[dict[str, Any]]:
    """The same run with one Master Data search per buyer again (bench/undo ``lookup``)."""
    undo = {"PYTHONPATH": str(ROOT / "bench" / "undo"), "BENCH_UNDO": "lookup,http"}
    with Stack(NAME, sandbox_config(orders), settings) as stack:
        stack.start_worker(**WORKER, extra_env=undo)  # type: ignore[arg-type]
        stack.wait_workers_ready()
        stack.warm_up("orders", "2025-06-05T00:00:00Z")
        log(f"orders: before the batched buyer lookup ({orders} orders)")
        result = pipeline_run(stack, RATE, full=True)
        log(f"orders (before): {result['orders_per_s']}/s, ratio {result['ratio']}")
    return [{"kind": "before", "rate_limit": RATE, **WORKER,
             "fetch_concurrency": FETCH_CONCURRENCY, **result}]  # fmt: skip


def run(mode: str = "full") -> list[dict[str, Any]]:
    params = PARAMS[mode]
    settings = {"VTEX_RATE_LIMIT": str(RATE), "SYNC_FETCH_CONCURRENCY": str(FETCH_CONCURRENCY)}
    rows: list[dict[str, Any]] = []
    with Stack(NAME, sandbox_config(params["orders"]), settings) as stack:
        for attempt in range(params["runs"]):
            # Default settings, then VTEX_RATE_BURST=0 (a worker each), taking turns.
            for kind, extra in VARIANTS:
                for worker in list(stack.workers):
                    stack.stop_worker(worker)
                stack.workers.clear()
                stack.start_worker(**WORKER, extra_env=extra)  # type: ignore[arg-type]
                stack.wait_workers_ready()
                stack.warm_up("orders", "2025-06-05T00:00:00Z")
                log(f"orders: {kind} run {attempt + 1}/{params['runs']} "
                    f"({params['orders']} orders)")  # fmt: skip
                result = pipeline_run(stack, RATE, full=True)
                rows.append({"kind": kind, "rate_limit": RATE, **WORKER, **extra,
                             "fetch_concurrency": FETCH_CONCURRENCY, **result})  # fmt: skip
                log(f"orders: {result['orders_per_s']}/s, ratio {result['ratio']}, "
                    f"429s {result['vtex_429']}")  # fmt: skip
        for worker in list(stack.workers):
            stack.stop_worker(worker)
        log(f"orders: naive baseline on {params['naive_orders']} orders")
        naive = naive_run(stack, params["naive_orders"])
        rows.append({"kind": "naive", "rate_limit": RATE, **naive})
    if params.get("before_orders"):
        rows += before_fix(params["before_orders"], settings)
    pipeline = [r for r in rows if r["kind"] == "pipeline"]
    summary = {"orders": params["orders"], **ceiling_summary(pipeline, naive, RATE, "orders")}
    speed = summary["median_orders_per_s"]
    rows.append(summary)
    one_at_a_time = [r for r in rows if r["kind"] == "pipeline_no_burst"]
    if one_at_a_time:
        summary["no_burst_median_ratio"] = median([r["ratio"] for r in one_at_a_time])
        summary["no_burst_vtex_429_total"] = sum(r["vtex_429"] for r in one_at_a_time)
    print(table(
        f"Orders against the ceiling: R = {RATE:.0f} VTEX requests/s (whole family), "
        f"40+U(0,20) ms latency, {params['orders']} orders",
        ["settings", "run", "orders/s", "÷ R", "VTEX calls/s ÷ R", "VTEX calls/order", "429s",
         "worker CPU µs/order", "sandbox CPU µs/order"],
        [[label, i + 1, r["orders_per_s"], r["ratio"], r["budget_use"],
          r["vtex_calls_per_order"], r["vtex_429"], r["worker_cpu_us_per_order"],
          r["sandbox_cpu_us_per_order"]]
         for label, runs in (("default", pipeline),
                             (f"VTEX_RATE_BURST={NO_BURST}", one_at_a_time))
         for i, r in enumerate(runs)],
    ))  # fmt: skip
    before = [r for r in rows if r["kind"] == "before"]
    if before:
        summary["before_orders_per_s"] = before[0]["orders_per_s"]
        summary["before_ratio"] = before[0]["ratio"]
        print(table(
            "Before/after batching the buyers' Master Data lookups",
            ["", "orders/s", "÷ R", "VTEX calls/order", "429s"],
            [[f"before ({before[0]['orders']} orders)", before[0]["orders_per_s"],
              before[0]["ratio"], before[0]["vtex_calls_per_order"], before[0]["vtex_429"]],
             ["after (median)", speed, summary["median_ratio"],
              median([r["vtex_calls_per_order"] for r in pipeline]), summary["vtex_429_total"]]],
        ))  # fmt: skip
    print(table(
        "Pipeline vs naive sequential script (same sandbox, same faults)",
        ["", "orders/s", "speed-up"],
        [["pipeline (median)", speed, f"{summary['speedup_vs_naive']}x"],
         [f"naive ({naive['orders']} orders)", naive["orders_per_s"], "1x"]],
    ))  # fmt: skip
    return rows
