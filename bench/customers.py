"""Customers, CPU-bound: customers/s end to end and CPU µs per record, then where it goes.

No artificial latency or limit: the sandbox answers at once and both rate budgets are set far
above what the machine can do (``VTEX_RATE_LIMIT=SYNERISE_RATE_LIMIT=100000``). One worker
process, ``vtex-synerise worker -P prefork -c 2`` (the machine's core count), runs the producer
and the chunks. CPU is summed per process tree with psutil: the worker (producer and chunk
tasks, parent and pool children), the sandbox process, and Redis + PostgreSQL.

Variants on one stack, each with its own worker process, taking turns run by run:

* ``before``: this checkout with the CPU fixes of docs/benchmarks.md undone in the workers
  (bench/undo: ``BENCH_UNDO=mapping,http``), chunks of 100 (the default when it was measured);
* ``after, chunks of 100``: this checkout, ``SYNC_CHUNK_SIZE=100``, batches of 100;
* ``after, default settings``: customer chunks of 1,000 (the customers stream's own size), each
  one Synerise call (profile batches fill up to the 1,000 items Synerise documents), which
  spreads the fixed cost of a chunk (its task, its transactions, its Synerise call) over ten
  times the records; windows of more than 100 documents are read by scroll, 1,000 a page; the
  listed documents wait in Redis for their chunk (``etl.state.listed``);
* ``after, documents in the rows``: the same with ``SYNC_REDIS_LISTED_RECORDS=0``: the chunk
  rows in PostgreSQL carry the listed documents, as before ``etl.state.listed``.

Each run also reports the WAL PostgreSQL wrote per customer (``pg_current_wal_lsn``).

Then a profile: a ``-P solo`` worker under cProfile counting CPU time (bench/profiled_worker.py)
runs the whole sync; the top functions by own time and the share of the main phases are printed
and saved to ``bench/results/customers_profile.txt`` (cProfile's overhead inflates Python-heavy
code such as marshmallow against C code such as ``json``; the shares are indicative).
"""

from __future__ import annotations

import io
import pstats
import signal
from pathlib import Path
from typing import Any

from bench.harness import (
    DATA_FROM,
    RESULTS,
    ROOT,
    SandboxConfig,
    Stack,
    cpu_meter,
    log,
    median,
    run_seconds,
    table,
)

NAME = "customers"

PARAMS = {
    "quick": {"customers": 4_000, "runs": 1, "profile_to": None},  # profile: full mode only
    "full": {"customers": 50_000, "runs": 3, "profile_to": "2025-10-01T00:00:00Z"},
}
UNLIMITED = {"VTEX_RATE_LIMIT": "100000", "SYNERISE_RATE_LIMIT": "100000"}
WORKER = {"pool": "prefork", "concurrency": 2}
UNDO = {"PYTHONPATH": str(ROOT / "bench" / "undo"), "BENCH_UNDO": "mapping,http"}

VARIANTS = (
    ("before", {"SYNC_CHUNK_SIZE": "100"}, UNDO),
    ("after, chunks of 100", {"SYNC_CHUNK_SIZE": "100"}, {}),
    ("after, default settings", {}, {}),
    ("after, documents in the rows", {"SYNC_REDIS_LISTED_RECORDS": "0"}, {}),
)

PHASES = (
    ("mapping (profile_from_customer)", "profiles.py", "profile_from_customer"),
    ("ledger hash (payload_hash)", "mapping.py", "payload_hash"),
    ("listing CL pages (HTTP + JSON)", "streams.py", "list_pages"),
    ("posting batches to Synerise", "streams.py", "send"),
    ("claiming chunks (PostgreSQL)", "state/chunks.py", "claim"),
    ("ledger lookups (PostgreSQL)", "state/ledger.py", "hashes"),
    ("recording outcomes (PostgreSQL)", "state/chunks.py", "complete"),
    ("writing chunk rows (PostgreSQL)", "state/chunks.py", "append"),
    ("heartbeat: claims and leases", "sync/heartbeat.py", "beat"),
    ("enqueueing chunk tasks (Celery)", "sync/engine.py", "enqueue_chunks"),
    ("chunk task total", "sync/runs.py", "run_chunk"),
    ("producer task total", "sync/runs.py", "run_producer"),
)


def one_run(stack: Stack, full: bool) -> dict[str, Any]:
    pids = {"sandbox": stack.sandbox_pid}
    pids.update(
        {f"worker{i}": w.pid for i, w in enumerate(stack.workers) if w.proc.poll() is None}
    )
    infra_before, wal_before = stack.infra_cpu(), stack.wal_position()
    with cpu_meter(pids) as cpu:
        run = stack.wait_run(stack.start_run("customers_created", full=full), timeout=1800)
    infra, wal = stack.infra_cpu() - infra_before, stack.wal_position() - wal_before
    if run.status != "done":
        raise RuntimeError(f"run {run.id} ended {run.status}: {run.error}")
    seconds = run_seconds(run)
    records = run.read_count
    workers = sum(v for k, v in cpu.items() if k.startswith("worker"))
    return {
        "run_id": run.id,
        "customers": records,
        "sent": run.sent_count,
        "rejected": run.rejected_count,
        "seconds": round(seconds, 3),
        "customers_per_s": round(records / seconds, 1),
        "worker_cpu_us": round(workers / records * 1e6, 1),
        "sandbox_cpu_us": round(cpu["sandbox"] / records * 1e6, 1),
        "infra_cpu_us": round(infra / records * 1e6, 1),
        "wal_bytes": round(wal / records),
    }


def measure(stack: Stack, mode: str) -> list[dict[str, Any]]:
    """Each variant with its own worker on one stack (settings reach the worker's env).

    Variants take turns (A B C, A B C, ...), so a change in the machine's load during the
    benchmark (it is shared) hits every variant alike instead of one.
    """
    params = PARAMS[mode]
    rows: list[dict[str, Any]] = []
    for attempt in range(params["runs"]):
        for variant, settings, worker_env in VARIANTS:
            for worker in list(stack.workers):
                stack.stop_worker(worker)
            stack.workers.clear()
            stack.start_worker(**WORKER, extra_env={**settings, **worker_env})  # type: ignore[arg-type]
            stack.wait_workers_ready()
            stack.warm_up("customers_created")
            result = one_run(stack, full=True)
            log(f"customers [{variant}] run {attempt + 1}: {result['customers_per_s']}/s, "
                f"worker {result['worker_cpu_us']} µs/record")  # fmt: skip
            rows.append({"kind": "run", "variant": variant, **settings, **WORKER, **result})
            if len({row["sent"] for row in rows}) > 1:  # a variant broke: nothing to compare
                raise RuntimeError(f"customers [{variant}] sent {result['sent']} records, "
                                   f"{rows[0]['variant']} sent {rows[0]['sent']}")  # fmt: skip
    for worker in list(stack.workers):
        stack.stop_worker(worker)
    stack.workers.clear()
    return rows


def profile(stack: Stack, date_to: str) -> tuple[list[dict[str, Any]], str]:
    """One sync (up to ``date_to``) under cProfile (CPU time) in a solo worker; the report."""
    out = RESULTS / "customers.prof"
    RESULTS.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)
    worker = stack.start_profiled_worker(out)
    stack.wait_workers_ready()
    run = stack.wait_run(
        stack.start_run("customers_created", DATA_FROM, date_to, full=True), timeout=1800
    )
    worker.proc.send_signal(signal.SIGTERM)
    worker.proc.wait(120)
    if not Path(out).exists():
        raise RuntimeError("the profiled worker wrote no profile")
    stats = pstats.Stats(str(out))
    total = stats.total_tt  # type: ignore[attr-defined]
    phases: list[dict[str, Any]] = []
    for label, filename, function in PHASES:
        cumulative = sum(
            entry[3]
            for (path, _, name), entry in stats.stats.items()  # type: ignore[attr-defined]
            if path.endswith(filename) and name == function
        )
        phases.append({"kind": "phase", "phase": label, "cpu_s": round(cumulative, 3),
                       "share": round(cumulative / total, 4)})  # fmt: skip
    buffer = io.StringIO()
    pstats.Stats(str(out), stream=buffer).sort_stats("tottime").print_stats(20)
    text = buffer.getvalue()
    report = "\n".join(
        [f"cProfile (CPU time) of a -P solo worker syncing {run.read_count} customers: "
         f"{total:.2f} s profiled CPU",
         table("Share of the worker's CPU by phase (inclusive)", ["phase", "CPU s", "share"],
               [[p["phase"], p["cpu_s"], f"{100 * p['share']:.1f}%"] for p in phases]),
         "", "Top functions by own CPU time:", text[text.find("ncalls") - 3:]]
    )  # fmt: skip
    (RESULTS / "customers_profile.txt").write_text(report)
    return phases, report


def run(mode: str = "full") -> list[dict[str, Any]]:
    params = PARAMS[mode]
    config = SandboxConfig(customers=params["customers"], orders=10, seed=1)
    with Stack(NAME, config, UNLIMITED) as stack:
        rows = measure(stack, mode)
        phases, report = [], ""
        if params["profile_to"]:
            log("customers: profiling a solo worker under cProfile")
            phases, report = profile(stack, params["profile_to"])
    summary = []
    for variant, _, _ in VARIANTS:
        mine = [r for r in rows if r["variant"] == variant]
        summary.append({
            "kind": "summary",
            "variant": variant,
            "customers": mine[0]["customers"],
            "runs": len(mine),
            "median_customers_per_s": median([r["customers_per_s"] for r in mine]),
            "median_worker_cpu_us": median([r["worker_cpu_us"] for r in mine]),
            "median_sandbox_cpu_us": median([r["sandbox_cpu_us"] for r in mine]),
            "median_infra_cpu_us": median([r["infra_cpu_us"] for r in mine]),
            "median_wal_bytes": median([r["wal_bytes"] for r in mine]),
        })  # fmt: skip
    rows += summary
    print(table(
        f"Customers, CPU-bound ({summary[0]['customers']} customers, one worker -P prefork -c 2,"
        f" median of {summary[0]['runs']} runs)",
        ["variant", "customers/s", "worker CPU µs/rec", "sandbox CPU µs/rec",
         "Redis+PG CPU µs/rec", "WAL bytes/rec"],
        [[s["variant"], s["median_customers_per_s"], s["median_worker_cpu_us"],
          s["median_sandbox_cpu_us"], s["median_infra_cpu_us"], s["median_wal_bytes"]]
         for s in summary],
    ))  # fmt: skip
    rows += phases
    if report:
        print(report)
    return rows
