"""The project against the competent peer (bench/peer.py), taking turns in one run.

Two workloads, each on its own stack, the project and the peer alternating run by run on the
same sandbox (a fresh one for every run: ``reset_sandbox``), so a change in the machine's load
(it is shared) hits both alike:

* **customers**, CPU-bound (bench/customers.py's sandbox: no latency, budgets far above what
  the machine can do): the project with default settings and one worker ``-P prefork -c 2``;
  the peer with its thread pool of 8. Ratios: the project's customers/s ÷ the peer's, and its
  CPU µs per customer ÷ the peer's, CPU excluding the sandbox (the project: worker processes +
  Redis + PostgreSQL; the peer: its own process, measured inside it from the sync's start);
* **orders**, rate-bound (bench/orders.py's sandbox: 40+U(0,20) ms latency, one VTEX bucket of
  R = 200 requests/s): the project as in bench/orders.py; the peer with 16 threads (R x latency
  = 10 requests must be in flight; 8 cannot reach R) pacing its VTEX calls at R itself. Both
  should sit at the ceiling; the ratios say how close and at what CPU.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

from bench import customers, orders
from bench.harness import PYTHON, ROOT, SandboxConfig, Stack, log, median, table

NAME = "peer_ratio"

PARAMS = {
    "quick": {"customers": 10_000, "orders": 1_500, "runs": 1},
    "full": {"customers": 20_000, "orders": 4_000, "runs": 3},
}
ORDER_THREADS = 16


def peer_run(stack: Stack, what: str, *extra: str) -> dict[str, Any]:
    """bench/peer.py as its own process against the stack's (fresh) sandbox."""
    stack.reset_sandbox()
    argv = [PYTHON, str(ROOT / "bench" / "peer.py"), what, *stack.script_args(), *extra, "--json"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=900, check=False, cwd=ROOT)
    if done.returncode:
        raise RuntimeError(f"bench/peer.py {what} exited {done.returncode}: {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    result["vtex_429"] = stack.vtex_stats()["rate_limited"]
    return result


def customers_pairs(params: dict[str, Any]) -> list[dict[str, Any]]:
    config = SandboxConfig(customers=params["customers"], orders=10, seed=1)
    rows = []
    with Stack(f"{NAME}-customers", config, customers.UNLIMITED) as stack:
        stack.start_worker(**customers.WORKER)  # type: ignore[arg-type]
        stack.wait_workers_ready()
        stack.warm_up("customers_created")
        for attempt in range(params["runs"]):
            stack.reset_sandbox()
            ours = customers.one_run(stack, full=True)
            peer = peer_run(stack, "customers")
            row = {
                "kind": "pair", "workload": "customers", "run": attempt + 1,
                "records": ours["customers"], "peer_records": peer["records"],
                "per_s": ours["customers_per_s"], "peer_per_s": peer["records_per_s"],
                "cpu_us": round(ours["worker_cpu_us"] + ours["infra_cpu_us"], 1),
                "worker_cpu_us": ours["worker_cpu_us"], "infra_cpu_us": ours["infra_cpu_us"],
                "peer_cpu_us": peer["cpu_us_per_record"],
                "vtex_429": 0, "peer_vtex_429": peer["vtex_429"],
            }  # fmt: skip
            rows.append(with_ratios(row))
    return rows


def orders_pairs(params: dict[str, Any]) -> list[dict[str, Any]]:
    settings = {"VTEX_RATE_LIMIT": str(orders.RATE),
                "SYNC_FETCH_CONCURRENCY": str(orders.FETCH_CONCURRENCY)}  # fmt: skip
    rows = []
    with Stack(f"{NAME}-orders", orders.sandbox_config(params["orders"]), settings) as stack:
        stack.start_worker(**orders.WORKER)  # type: ignore[arg-type]
        stack.wait_workers_ready()
        stack.warm_up("orders", "2025-06-05T00:00:00Z")
        for attempt in range(params["runs"]):
            ours = orders.pipeline_run(stack, orders.RATE, full=True)
            peer = peer_run(stack, "orders", "--threads", str(ORDER_THREADS),
                            "--vtex-rate", str(orders.RATE))  # fmt: skip
            row = {
                "kind": "pair", "workload": "orders", "run": attempt + 1,
                "records": ours["orders"], "peer_records": peer["records"],
                "per_s": ours["orders_per_s"], "peer_per_s": peer["records_per_s"],
                "ceiling_ratio": ours["ratio"],
                "peer_ceiling_ratio": round(peer["records_per_s"] / orders.RATE, 4),
                "cpu_us": ours["worker_cpu_us_per_order"] + ours["infra_cpu_us_per_order"],
                "worker_cpu_us": ours["worker_cpu_us_per_order"],
                "infra_cpu_us": ours["infra_cpu_us_per_order"],
                "peer_cpu_us": peer["cpu_us_per_record"],
                "vtex_429": ours["vtex_429"], "peer_vtex_429": peer["vtex_429"],
            }  # fmt: skip
            rows.append(with_ratios(row))
    return rows


def with_ratios(row: dict[str, Any]) -> dict[str, Any]:
    row["speed_ratio"] = round(row["per_s"] / row["peer_per_s"], 3)
    row["cpu_ratio"] = round(row["cpu_us"] / row["peer_cpu_us"], 2)
    log(f"peer ratio [{row['workload']}] run {row['run']}: {row['per_s']}/s vs peer "
        f"{row['peer_per_s']}/s ({row['speed_ratio']}), CPU {row['cpu_us']} vs "
        f"{row['peer_cpu_us']} µs/record ({row['cpu_ratio']}x)")  # fmt: skip
    return row


def run(mode: str = "full") -> list[dict[str, Any]]:
    params = PARAMS[mode]
    rows = customers_pairs(params) + orders_pairs(params)
    summary = []
    for workload in ("customers", "orders"):
        mine = [r for r in rows if r["workload"] == workload]
        summary.append({
            "kind": "summary", "workload": workload, "runs": len(mine),
            "records": mine[0]["records"],
            "median_per_s": median([r["per_s"] for r in mine]),
            "median_peer_per_s": median([r["peer_per_s"] for r in mine]),
            "median_speed_ratio": median([r["speed_ratio"] for r in mine]),
            "median_cpu_us": median([r["cpu_us"] for r in mine]),
            "median_peer_cpu_us": median([r["peer_cpu_us"] for r in mine]),
            "median_cpu_ratio": median([r["cpu_ratio"] for r in mine]),
            "vtex_429": sum(r["vtex_429"] for r in mine),
            "peer_vtex_429": sum(r["peer_vtex_429"] for r in mine),
        })  # fmt: skip
    print(table(
        "Project vs competent peer, alternating runs (CPU excludes the sandbox; the project's "
        "is worker + Redis + PostgreSQL)",
        ["workload", "run", "records", "project /s", "peer /s", "speed ratio",
         "project CPU µs/rec", "(worker + Redis/PG)", "peer CPU µs/rec", "CPU ratio",
         "429s project/peer"],
        [[r["workload"], r["run"], r["records"], r["per_s"], r["peer_per_s"], r["speed_ratio"],
          r["cpu_us"], f"{r['worker_cpu_us']} + {r['infra_cpu_us']}", r["peer_cpu_us"],
          f"{r['cpu_ratio']}x", f"{r['vtex_429']}/{r['peer_vtex_429']}"] for r in rows],
    ))  # fmt: skip
    print(table(
        f"Medians ({params['runs']} pair(s) each; orders: R = {orders.RATE:.0f} VTEX requests/s)",
        ["workload", "speed ratio (project ÷ peer)", "CPU ratio (project ÷ peer)"],
        [[s["workload"], s["median_speed_ratio"], f"{s['median_cpu_ratio']}x"] for s in summary],
    ))  # fmt: skip
    return rows + summary
