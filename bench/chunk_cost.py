"""The fixed cost of a chunk and the cost of a record, separated by varying the chunk size.

The same customers sync (``--full``, so every run does the same work) runs with several chunk
sizes on one stack, each size with its own worker (``-P prefork -c 2``) and a warm-up run, the
sizes taking turns. For each run it records the CPU seconds of the worker (producer and chunk
tasks), of PostgreSQL (postmaster and every backend) and of Redis (psutil), and the database's
committed transactions (``pg_stat_database.xact_commit``, minus this benchmark's own polls).
PostgreSQL publishes a backend's counts once it has been idle for up to 10 s
(``PGSTAT_IDLE_INTERVAL``), so the counter is read after 11 s of quiet before and after a run.

With ``N`` records and ``c = N / size`` chunks, a run costs ``fixed * c + per_record * N``, so a
least-squares line through (chunks, CPU) over the sizes gives the fixed CPU per chunk (slope)
and the per-record CPU (intercept / N, which also carries the run's own one-off cost: planning
counts, start, end). Transactions per chunk is the slope of (chunks, transactions).

Celery's own share is measured apart: the same worker runs a few hundred no-op tasks
(``celery.accumulate``) sent in batches of ten, as the producer sends its messages; the worker's
and Redis's CPU per task. Customers chunks share a task message up to
``etl.sync.runs.TASK_RECORDS`` records, so the number of tasks follows the records, not the
chunks: Celery's cost per task lands in the per-record figure of the fit (about 2 ms per 1,000
records, 2 µs per record), not in the per-chunk one.

CPU, not wall time: the machine is shared, and CPU time is what another process's load does
not inflate much (cache and frequency effects aside).
"""

from __future__ import annotations

import json
import subprocess
import time
from typing import Any

import redis

from bench.harness import PYTHON, ROOT, SandboxConfig, Stack, cpu_meter, log, median, table

NAME = "chunk_cost"

PARAMS = {
    "quick": {"customers": 4_000, "sizes": (100, 500), "rounds": 1},
    "full": {"customers": 20_000, "sizes": (50, 100, 250, 500, 1000), "rounds": 2},
}
UNLIMITED = {"VTEX_RATE_LIMIT": "100000", "SYNERISE_RATE_LIMIT": "100000"}
WORKER = {"pool": "prefork", "concurrency": 2}
POLL = 0.5
SETTLE = 11.0
"""Seconds of quiet for every backend's counts to reach ``pg_stat_database``."""
NOOP_TASKS = 400

NOOP_SENDER = f"""
import json, time
from workers.app import app
started = time.process_time()
for first in range(0, {NOOP_TASKS}, 10):
    with app.producer_or_acquire() as producer, producer.batch():
        for i in range(first, first + 10):
            app.send_task("celery.accumulate", args=[i], queue="backfill", producer=producer)
print(json.dumps(time.process_time() - started))
"""
"""Sends the no-op tasks as ``workers.dispatch.enqueue_many`` sends chunks (in any checkout)."""

__all__ = ["fit", "measure", "run"]


def _xact_commit(stack: Stack) -> int:
    with stack.store.db.transaction() as cur:
        cur.execute("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")
        return int(cur.fetchone()["xact_commit"])


def one_run(stack: Stack, size: int) -> dict[str, Any]:
    """A measured ``--full`` customers sync with the running worker; its costs."""
    pids = {"worker": stack.workers[0].pid, "redis": stack.redis_pid()}
    pg = stack.postgres_pid()
    assert pg is not None
    pids["postgres"] = pg
    time.sleep(SETTLE)
    xacts = _xact_commit(stack)
    polls = 1
    with cpu_meter(pids) as cpu:
        run_id = stack.start_run("customers_created", full=True)
        while True:
            run = stack.store.runs.get(run_id)
            polls += 1
            if run.status in ("done", "failed", "cancelled"):
                break
            time.sleep(POLL)
    if run.status != "done":
        raise RuntimeError(f"run {run.id} ended {run.status}: {run.error}")
    time.sleep(SETTLE)
    committed = _xact_commit(stack) - xacts - polls  # the polls and the first read are ours
    records, chunks = run.read_count, run.chunks_total
    return {
        "size": size,
        "records": records,
        "chunks": chunks,
        "worker_cpu_s": round(cpu["worker"], 3),
        "postgres_cpu_s": round(cpu["postgres"], 3),
        "redis_cpu_s": round(cpu["redis"], 3),
        "transactions": committed,
        "seconds": round((run.finished_at - run.started_at).total_seconds(), 2),
    }


def measure(stack: Stack, size: int, batch: int) -> dict[str, Any]:
    """A fresh worker with these chunk and batch sizes, a warm-up run, then ``one_run``."""
    for worker in list(stack.workers):
        stack.stop_worker(worker)
    stack.workers.clear()
    stack.start_worker(
        **WORKER,  # type: ignore[arg-type]
        extra_env={"SYNC_CHUNK_SIZE": str(size), "SYNERISE_BATCH_SIZE": str(batch)},
    )
    stack.wait_workers_ready()
    stack.warm_up("customers_created")
    return one_run(stack, size)


def celery_floor(stack: Stack) -> dict[str, Any]:
    """CPU per no-op task of the running worker and of Redis, and of sending it."""
    broker = redis.Redis.from_url(stack.redis_url)
    pids = {"worker": stack.workers[0].pid, "redis": stack.redis_pid()}
    try:
        with cpu_meter(pids) as cpu:
            sent = subprocess.run(
                [PYTHON, "-c", NOOP_SENDER], cwd=ROOT, env=stack.env, capture_output=True,
                text=True, check=True, timeout=120,
            )  # fmt: skip
            deadline = time.monotonic() + 120
            while broker.llen("backfill") or broker.hlen("unacked"):
                if time.monotonic() > deadline:
                    raise TimeoutError("no-op tasks still queued after 120 s")
                time.sleep(0.1)
    finally:
        broker.close()
    return {
        "kind": "celery_floor",
        "tasks": NOOP_TASKS,
        "worker_ms_per_task": round(cpu["worker"] / NOOP_TASKS * 1e3, 2),
        "redis_ms_per_task": round(cpu["redis"] / NOOP_TASKS * 1e3, 2),
        "sender_ms_per_task": round(json.loads(sent.stdout) / NOOP_TASKS * 1e3, 2),
    }


def fit(points: list[tuple[float, float]]) -> tuple[float, float]:
    """Least-squares ``y = slope * x + intercept``."""
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    sxx = sum((x - mean_x) ** 2 for x, _ in points)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in points) / sxx if sxx else 0.0
    return slope, mean_y - slope * mean_x


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per size (medians), then the fixed per-chunk and per-record costs of the fit."""
    sizes = sorted({r["size"] for r in rows})
    out: list[dict[str, Any]] = []
    for size in sizes:
        mine = [r for r in rows if r["size"] == size]
        records = mine[0]["records"]
        chunks = mine[0]["chunks"]
        cpu = {k: median([r[f"{k}_cpu_s"] for r in mine]) for k in ("worker", "postgres", "redis")}
        out.append({
            "kind": "size", "size": size, "records": records, "chunks": chunks,
            "runs": len(mine),
            "worker_us_per_record": round(cpu["worker"] / records * 1e6, 1),
            "postgres_us_per_record": round(cpu["postgres"] / records * 1e6, 1),
            "redis_us_per_record": round(cpu["redis"] / records * 1e6, 1),
            "transactions_per_chunk": round(median([r["transactions"] for r in mine]) / chunks, 2),
            "customers_per_s": round(records / median([r["seconds"] for r in mine]), 0),
        })  # fmt: skip
    fitted: dict[str, Any] = {"kind": "fit"}
    for key in ("worker", "postgres", "redis"):
        slope, intercept = fit([(r["chunks"], r[f"{key}_cpu_s"]) for r in rows])
        fitted[f"{key}_ms_per_chunk"] = round(slope * 1e3, 2)
        fitted[f"{key}_us_per_record"] = round(intercept / rows[0]["records"] * 1e6, 1)
    fitted["transactions_per_chunk"] = round(
        fit([(r["chunks"], r["transactions"]) for r in rows])[0], 2
    )
    out.append(fitted)
    return out


def run(mode: str = "full") -> list[dict[str, Any]]:
    params = PARAMS[mode]
    config = SandboxConfig(customers=params["customers"], orders=10, seed=1)
    rows: list[dict[str, Any]] = []
    with Stack(NAME, config, UNLIMITED) as stack:
        for attempt in range(params["rounds"]):
            for size in params["sizes"]:
                result = measure(stack, size, min(size, 1000))
                log(f"chunk_cost size {size} round {attempt + 1}: {result}")
                rows.append({"kind": "run", **result})
        floor = celery_floor(stack)
        log(f"chunk_cost: Celery alone: {floor}")
    summary = summarise(rows)
    sizes = [s for s in summary if s["kind"] == "size"]
    print(table(
        f"Customers by chunk size ({sizes[0]['records']} customers, one worker -P prefork -c 2,"
        f" median of {sizes[0]['runs']} runs; CPU µs per record)",
        ["chunk size", "chunks", "worker", "PostgreSQL", "Redis", "xact/chunk", "customers/s"],
        [[s["size"], s["chunks"], s["worker_us_per_record"], s["postgres_us_per_record"],
          s["redis_us_per_record"], s["transactions_per_chunk"], s["customers_per_s"]]
         for s in sizes],
    ))  # fmt: skip
    fitted = summary[-1]
    print(table(
        "Fixed cost per chunk and cost per record (least squares over the sizes)",
        ["", "worker", "PostgreSQL", "Redis"],
        [["CPU ms per chunk", fitted["worker_ms_per_chunk"], fitted["postgres_ms_per_chunk"],
          fitted["redis_ms_per_chunk"]],
         ["CPU µs per record", fitted["worker_us_per_record"], fitted["postgres_us_per_record"],
          fitted["redis_us_per_record"]],
         ["transactions per chunk", fitted["transactions_per_chunk"], "", ""],
         ["Celery alone: CPU ms per no-op task", floor["worker_ms_per_task"], "",
          floor["redis_ms_per_task"]],
         ["Celery alone: sending one (batches of 10)", floor["sender_ms_per_task"], "", ""]],
    ))  # fmt: skip
    return [*rows, *summary, floor]
