"""Memory does not grow with the sync: peak RSS of the producer and a worker, small vs large.

For each size (quick: 2k and 20k customers; full: 20k and 200k) on a fresh stack:

1. ``vtex-synerise sync start customers`` records the run and enqueues its producer task;
   no worker is running yet;
2. the producer task body runs in a dedicated process (bench/producer_proc.py): it lists every
   customer and writes and enqueues every chunk; its peak RSS is its ``VmHWM``;
3. then one worker, ``vtex-synerise worker -P threads -c 2``, processes every chunk (and finds
   the queued producer task with nothing left to plan). A thread pool keeps all work in one
   process that is never recycled (prefork children would be replaced every 200 tasks and hide
   growth); its ``VmHWM`` when the run is done is its peak.

Goal: peak(large) / peak(small) <= 1.2 for both.
"""

from __future__ import annotations

from typing import Any

from bench.harness import SandboxConfig, Stack, log, plan_then_process, run_seconds, table

NAME = "memory"

PARAMS = {"quick": (2_000, 20_000), "full": (20_000, 200_000)}
UNLIMITED = {"VTEX_RATE_LIMIT": "100000", "SYNERISE_RATE_LIMIT": "100000"}


def one_size(customers: int) -> dict[str, Any]:
    config = SandboxConfig(customers=customers, orders=10, seed=1)
    with Stack(NAME, config, UNLIMITED) as stack:
        producer, run, worker_peak = plan_then_process(stack, stack.start_run("customers_created"))
        return {
            "customers": customers,
            "read": run.read_count,
            "producer_peak_rss_mib": round(producer["peak_rss_kib"] / 1024, 1),
            "producer_seconds": producer["seconds"],
            "worker_peak_rss_mib": round(worker_peak / 1024, 1),
            "run_seconds": round(run_seconds(run), 1),
        }


def run(mode: str = "full") -> list[dict[str, Any]]:
    rows = []
    for customers in PARAMS[mode]:
        log(f"memory: {customers} customers")
        rows.append({"kind": "size", **one_size(customers)})
        log(f"memory: {rows[-1]}")
    small, large = rows
    summary = {
        "kind": "summary",
        "producer_ratio": round(large["producer_peak_rss_mib"] / small["producer_peak_rss_mib"], 3),
        "worker_ratio": round(large["worker_peak_rss_mib"] / small["worker_peak_rss_mib"], 3),
    }
    rows.append(summary)
    print(table(
        "Peak RSS (VmHWM) by sync size",
        ["customers", "producer peak MiB", "worker peak MiB", "producer s", "run s"],
        [[r["customers"], r["producer_peak_rss_mib"], r["worker_peak_rss_mib"],
          r["producer_seconds"], r["run_seconds"]] for r in (small, large)]
        + [["ratio", summary["producer_ratio"], summary["worker_ratio"], "", ""]],
    ))  # fmt: skip
    return rows
