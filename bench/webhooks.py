"""Webhook ingestion benchmark: concurrent keep-alive clients against the gunicorn-served app.

``python -m bench.webhooks [--duration 30] [--concurrency 32] [--rate 500] ...`` (or ``python -m
bench webhooks`` through the suite runner: ``run(mode=...)``; ``run(duration, concurrency)``
returns the rows by phase). One fresh `bench.harness.Stack` (embedded Redis and PostgreSQL, the
sandbox in its own process), then:

1. ``vtex-synerise webhooks serve --gunicorn`` (``gthread``) in its own process group;
2. two load phases of ``duration`` seconds, ``concurrency`` asyncio clients (one keep-alive
   HTTP/1.1 connection each, a minimal client so the server keeps the CPU): *paced* at
   ``--rate`` requests/s in total, latency measured from each request's scheduled send time
   (no coordinated omission), then *saturation* (each client sends as soon as it has its
   answer). The mix: Orders Hook notifications (distinct status
   changes of distinct orders) 60 %, Master Data customer triggers 30 %, exact re-sends of
   earlier notifications 10 % (they must have no second effect);
3. Celery workers on the ``realtime`` queue drain what was accepted. By default they start after
   the load: the service is built to absorb bursts into the queue, and on a small machine the
   workers and the emulated VTEX/Synerise would otherwise compete with the server for CPU
   (``--workers-during-load`` measures that too);
4. reconciliation: every request answered 200 was processed exactly once (the realtime runs'
   ``read_count``: fewer is *lost*, more is *duplicated*), every notified order is one Synerise
   transaction (or a recorded reject), every triggered customer one profile (or a reject), no
   duplicate transaction, empty queue and inboxes; the drain's rate is *processed/s*;
5. the drain side by side (``compare_drains``, its own fresh stack, skipped with
   ``--no-compare``): a backlog of the same mix on fresh ids, once as one Celery task per
   notification (the path before the realtime inbox: the baseline), once in the realtime inbox
   (drains in batches), alternating, the same worker; processed/s, lost, duplicated, worker CPU
   per notification and the ratio of the two.

Prints the tables and returns one row per phase; run standalone it appends the rows to
``bench/results/webhooks.jsonl`` (the suite runner does that itself).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from bench.harness import (
    SandboxConfig,
    Stack,
    kill_group,
    log,
    median,
    table,
    tree_cpu,
    write_results,
)
from etl.sync.inbox import INBOX_SCOPES
from etl.webhooks.server import THREADS, WORKERS

SECRET = "bench-webhook-secret"
HEADER = "x-synerise-api-key"
ORDER_PATH = "/_v/private/synerise/hooks/orders"
CUSTOMER_PATH = "/_v/private/synerise/triggers/customer"
ORDERS, CUSTOMERS = 20_000, 20_000
RECENT = 1_000
"""Re-sent notifications are drawn from this many most recent ones."""
SHARES = {"order": 0.6, "customer": 0.3, "duplicate": 0.1}
"""Request mix: new order notifications, customer triggers, re-sent notifications."""
BACKLOG, QUICK_BACKLOG = 6_000, 2_000
"""Notifications per drain in ``compare_drains`` (full, quick)."""
PER_TASK, INBOX = "one task per notification", "realtime inbox"
"""``compare_drains``'s two modes: the baseline and the batched drains."""


@dataclass
class Load:
    """What the clients sent and what came back."""

    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    errors: int = 0
    orders: set[str] = field(default_factory=set)
    customers: set[str] = field(default_factory=set)
    duplicates: int = 0
    elapsed: float = 0.0

    @property
    def accepted(self) -> int:
        return self.statuses.get(200, 0)


class Workload:
    """An endless, reproducible stream of requests over the sandbox's ids."""

    def __init__(self, order_ids: list[str], customer_ids: list[str], seed: int = 1) -> None:
        self.order_ids, self.customer_ids = order_ids, customer_ids
        self.random = random.Random(seed)
        # Re-sends pick among recent notifications (as a sender's retries do); bounded, so the
        # load generator's own garbage collections stay short and do not show as latency.
        self.sent_orders: deque[dict[str, Any]] = deque(maxlen=RECENT)
        self.serial = 0
        self.base = datetime(2026, 1, 1, tzinfo=UTC)

    def next(self) -> tuple[str, str, dict[str, Any], str]:
        """``(kind, path, body, key)`` of the next request."""
        roll = self.random.random()
        if roll < SHARES["duplicate"] and self.sent_orders:
            return "duplicate", ORDER_PATH, self.random.choice(self.sent_orders), ""
        self.serial += 1
        if roll < SHARES["duplicate"] + SHARES["order"]:
            order_id = self.order_ids[self.serial % len(self.order_ids)]
            change = (self.base + timedelta(milliseconds=self.serial)).isoformat()
            body = {"Domain": "Marketplace", "OrderId": order_id, "State": "payment-approved",
                    "LastState": "payment-pending", "LastChange": change,
                    "Origin": {"Account": "sandbox", "Key": "bench"}}  # fmt: skip
            self.sent_orders.append(body)
            return "order", ORDER_PATH, body, order_id
        doc_id = self.customer_ids[self.serial % len(self.customer_ids)]
        return "customer", CUSTOMER_PATH, {"id": doc_id}, doc_id


class Connection:
    """A minimal keep-alive HTTP/1.1 client connection (POST JSON, read one answer).

    Much lighter than a general client, so the load generator leaves the CPU to the server it
    measures (they share the machine). Answers must carry ``Content-Length`` (werkzeug's do).
    """

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        head = (f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n{HEADER}: {SECRET}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n")
        self.writer.write(head.encode() + body)
        try:
            raw = await self.reader.readuntil(b"\r\n\r\n")
            lines = raw.decode("latin-1").split("\r\n")
            status = int(lines[0].split(" ", 2)[1])
            length = next((int(line.split(":", 1)[1]) for line in lines[1:]
                           if line.lower().startswith("content-length:")), 0)  # fmt: skip
            await self.reader.readexactly(length)
            if any(line.lower() == "connection: close" for line in lines):
                self.close()
            return status
        except (OSError, asyncio.IncompleteReadError, ValueError):
            self.close()
            raise

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def drive(
    base_url: str, workload: Workload, duration: float, concurrency: int, rate: float = 0.0
) -> Load:
    """``concurrency`` clients on keep-alive connections, sending until ``duration`` is over.

    ``rate`` > 0 paces the clients to that many requests per second in total, each on its own
    schedule, and measures latency from the *scheduled* send time, so a server that falls
    behind shows it (no coordinated omission). ``rate`` = 0: each client sends its next request
    as soon as the previous one is answered (the saturation throughput).
    """
    gc.collect()
    gc.freeze()  # the generator's own long-lived objects: its collections stay short
    load = Load()
    parts = urlsplit(base_url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    started = time.perf_counter()
    deadline = started + duration
    interval = concurrency / rate if rate > 0 else 0.0

    async def client(index: int) -> None:
        connection = Connection(host, port)
        scheduled = started + interval * index / concurrency
        while scheduled < deadline:
            if interval:
                delay = scheduled - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            else:
                scheduled = time.perf_counter()
            kind, path, body, key = workload.next()
            try:
                status = await asyncio.wait_for(connection.post(path, json.dumps(body).encode()),
                                                10)  # fmt: skip
            except (OSError, asyncio.IncompleteReadError, ValueError, TimeoutError):
                connection.close()
                load.errors += 1
                status = 0
            if status:
                load.latencies.append(time.perf_counter() - scheduled)
                load.statuses[status] = load.statuses.get(status, 0) + 1
            if status == 200:
                if kind == "order":
                    load.orders.add(key)
                elif kind == "customer":
                    load.customers.add(key)
                else:
                    load.duplicates += 1
            scheduled += interval
        connection.close()

    await asyncio.gather(*(client(i) for i in range(concurrency)))
    load.elapsed = time.perf_counter() - started
    return load


def percentile(values: list[float], share: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def realtime_reads(stack: Stack) -> int:
    return sum(run.read_count for run in stack.store.runs.find() if run.kind == "realtime")


def realtime_rejects(stack: Stack) -> dict[str, set[str]]:
    """Rejected record keys per ledger stream, over the realtime runs."""
    found: dict[str, set[str]] = {"profiles": set(), "transactions": set()}
    for run in stack.store.runs.find():
        if run.kind == "realtime":
            for reject in stack.store.rejects.find(run.id):
                found[reject.stream].add(reject.record_key)
    return found


def run(duration: float = 30.0, concurrency: int = 32, mode: str | None = None) -> Any:
    """The benchmark's result rows (one per phase); with ``mode`` (the suite runner) a list,
    without it the rows keyed by phase. ``mode="quick"``: 5 s phases, 16 clients."""
    if mode == "quick":
        duration, concurrency = min(duration, 5.0), min(concurrency, 16)
    rows = measure(duration, concurrency)
    rows += compare_drains(QUICK_BACKLOG if mode == "quick" else BACKLOG,
                           rounds=1 if mode == "quick" else 2)  # fmt: skip
    return rows if mode is not None else {row["phase"]: row for row in rows}


def measure(
    duration: float,
    concurrency: int,
    *,
    rate: float = 500.0,
    server_workers: int = WORKERS,
    threads: int = THREADS,
    celery_concurrency: int = 16,
    drain_after: bool = True,
    drain_timeout: float = 900.0,
) -> list[dict[str, Any]]:
    """One stack and server; a paced phase at ``rate`` req/s and a saturation phase, then one
    drain and one reconciliation over both. Prints the tables; returns a row per phase."""
    from etl.sandbox import build_dataset

    sandbox = SandboxConfig(customers=CUSTOMERS, orders=ORDERS, seed=1, dirty_share=0.0)
    dataset = build_dataset(sandbox.customers, sandbox.orders, sandbox.seed, None, 0.0)
    workload = Workload([dataset.order(i)["orderId"] for i in range(dataset.order_count)],
                        [dataset.customer(i)["id"] for i in range(dataset.customer_count)])
    settings = {"VTEX_RATE_LIMIT": "100000", "SYNERISE_RATE_LIMIT": "100000",
                "WEBHOOK_SECRET": SECRET}  # fmt: skip
    phases = [(f"paced {rate:.0f}/s", rate), ("saturation", 0.0)] if rate else [("saturation", 0)]
    loads: list[tuple[str, Load, float, float]] = []
    with Stack("webhooks", sandbox, settings) as stack:
        server, url = stack.start_webhooks(server_workers, threads)
        try:
            if not drain_after:
                stack.start_worker(pool="threads", concurrency=celery_concurrency,
                                   queues="realtime")  # fmt: skip
                stack.wait_workers_ready()
            for name, phase_rate in phases:
                load_average = os.getloadavg()[0]
                log(f"webhooks: {name}: {concurrency} clients for {duration:.0f} s against "
                    f"{url} ({server_workers} x {threads} gthread)")  # fmt: skip
                cpu_before = tree_cpu(server.pid)
                load = asyncio.run(drive(url, workload, duration, concurrency, phase_rate))
                loads.append((name, load, tree_cpu(server.pid) - cpu_before, load_average))
            load_done = time.monotonic()
            if drain_after:
                stack.start_worker(pool="threads", concurrency=celery_concurrency,
                                   queues="realtime")  # fmt: skip
            accepted = sum(load.accepted for _, load, _, _ in loads)
            log(f"webhooks: {accepted} accepted; draining")
            deadline = time.monotonic() + drain_timeout
            while realtime_reads(stack) < accepted and time.monotonic() < deadline:
                time.sleep(0.5)
            effect = reconcile(stack, [entry[1] for entry in loads], time.monotonic() - load_done)
        finally:
            kill_group(server)
    rows = []
    for name, load, cpu, load_average in loads:
        rows.append({
            "phase": name,
            "target_rate": dict(phases)[name],
            **ingestion(load),
            "server_cpu_ms_per_request": round(1000 * cpu / max(1, sum(load.statuses.values())),
                                               2),
            "duration_s": round(load.elapsed, 1),
            "concurrency": concurrency,
            "server": f"gunicorn gthread {server_workers}x{threads}",
            "celery": f"threads x{celery_concurrency}",
            "workers_during_load": not drain_after,
            "machine_load_1m_before": round(load_average, 2),
            **effect,
        })  # fmt: skip
    print(report(rows))
    return rows


def compare_drains(
    count: int, rounds: int = 2, celery_concurrency: int = 16
) -> list[dict[str, Any]]:
    """The drain side by side on one fresh stack and one worker: ``rounds`` x (baseline, inbox),
    the order alternating, each a backlog of ``count`` notifications (the benchmark's mix) on ids
    no earlier drain touched, queued while the worker does not consume, then timed from the
    moment it does until every one is recorded. Prints a table; returns a row per drain."""
    from celery import Celery

    from etl.sandbox import build_dataset

    drains = rounds * 2
    sandbox = SandboxConfig(customers=count * drains, orders=count * drains, seed=2,
                            dirty_share=0.0)  # fmt: skip
    dataset = build_dataset(sandbox.customers, sandbox.orders, sandbox.seed, None, 0.0)
    settings = {"VTEX_RATE_LIMIT": "100000", "SYNERISE_RATE_LIMIT": "100000"}
    rows = []
    with Stack("drains", sandbox, settings) as stack:
        stack.start_worker(pool="threads", concurrency=celery_concurrency, queues="realtime")
        stack.wait_workers_ready()
        app = Celery(broker=stack.redis_url)
        try:
            for index in range(drains):
                mode = (PER_TASK, INBOX)[(index + index // 2) % 2]  # AB BA AB ...
                ids = slice(index * count, (index + 1) * count)
                workload = Workload(
                    [dataset.order(i)["orderId"] for i in range(dataset.order_count)][ids],
                    [dataset.customer(i)["id"] for i in range(dataset.customer_count)][ids],
                    seed=index,
                )
                log(f"webhooks: drain {index + 1}/{drains}: {count} notifications, {mode}")
                rows.append(timed_drain(stack, app, mode, workload, count))
        finally:
            app.close()
        duplicate_transactions = stack.synerise_stats()["duplicate_transactions"]
    baseline = median([row["processed_per_s"] for row in rows if row["phase"] == PER_TASK])
    for row in rows:
        row["vs_per_task"] = round(row["processed_per_s"] / baseline, 2) if baseline else None
        row["duplicate_transactions"] = duplicate_transactions
        row["celery"] = f"threads x{celery_concurrency}"
        row["reconciled"] = row["lost"] == row["duplicated"] == duplicate_transactions == 0
    print(drain_report(rows))
    return rows


def timed_drain(
    stack: Stack, app: Any, mode: str, workload: Workload, count: int
) -> dict[str, Any]:
    """Queue ``count`` notifications as ``mode`` while the worker does not consume, then let it
    and time it until they are all recorded."""
    from etl.sync.inbox import Inbox
    from etl.webhooks.handlers import customer_job, order_job

    jobs = []
    for _ in range(count):
        kind, _path, body, _key = workload.next()
        jobs.append(customer_job("POST", body) if kind == "customer" else order_job(body))
    app.control.cancel_consumer("realtime", reply=True, timeout=5)
    client = stack_redis(stack)
    before = realtime_reads(stack)
    try:
        if mode == PER_TASK:
            with app.producer_or_acquire() as producer:
                for job in jobs:
                    app.send_task(job.task, args=job.args, queue="realtime", producer=producer)
        else:
            inbox = Inbox(client, lambda task, args, queue: app.send_task(task, args=args,
                                                                          queue=queue))  # fmt: skip
            for job in jobs:
                inbox.enqueue(job.task, job.args, "realtime")
    finally:
        client.close()
    cpu_before, infra_before = stack.workers_cpu(), stack.infra_cpu()
    sandbox_before = tree_cpu(stack.sandbox_pid)
    started = time.perf_counter()
    app.control.add_consumer("realtime", reply=True, timeout=5)
    deadline = time.monotonic() + max(120.0, count / 20)
    while realtime_reads(stack) - before < count and time.monotonic() < deadline:
        time.sleep(0.1)
    elapsed = time.perf_counter() - started
    cpu, infra = stack.workers_cpu() - cpu_before, stack.infra_cpu() - infra_before
    sandbox_cpu = tree_cpu(stack.sandbox_pid) - sandbox_before
    time.sleep(1.0)  # a drain that would (wrongly) record more has time to
    processed = realtime_reads(stack) - before
    return {
        "phase": mode,
        "notifications": count,
        "processed": processed,
        "lost": max(0, count - processed),
        "duplicated": max(0, processed - count),
        "drain_s": round(elapsed, 1),
        "processed_per_s": round(min(processed, count) / elapsed, 1),
        "worker_cpu_ms_per_notification": round(1000 * cpu / count, 2),
        "redis_pg_cpu_ms_per_notification": round(1000 * infra / count, 2),
        "sandbox_cpu_ms_per_notification": round(1000 * sandbox_cpu / count, 2),
        "queue_left": waiting(stack),
    }


def drain_report(rows: list[dict[str, Any]]) -> str:
    return table(
        "Realtime drain: a backlog processed, one task per notification vs the realtime inbox",
        ["mode", "notifications", "processed", "lost", "dup.", "seconds", "processed/s",
         "vs per-task", "CPU ms/notif.: worker", "Redis+PG", "sandbox", "left"],
        [[r["phase"], r["notifications"], r["processed"], r["lost"], r["duplicated"],
          r["drain_s"], r["processed_per_s"], r["vs_per_task"],
          r["worker_cpu_ms_per_notification"], r["redis_pg_cpu_ms_per_notification"],
          r["sandbox_cpu_ms_per_notification"], r["queue_left"]] for r in rows],
    )  # fmt: skip


def ingestion(load: Load) -> dict[str, Any]:
    """Throughput and client-side latency of one phase."""
    answered = sum(load.statuses.values())
    return {
        "requests": answered + load.errors,
        "accepted": load.accepted,
        "non_200": answered - load.accepted,
        "client_errors": load.errors,
        "req_per_s": round(answered / load.elapsed, 1),
        "p50_ms": round(percentile(load.latencies, 0.50) * 1000, 2),
        "p90_ms": round(percentile(load.latencies, 0.90) * 1000, 2),
        "p99_ms": round(percentile(load.latencies, 0.99) * 1000, 2),
        "max_ms": round(max(load.latencies, default=float("nan")) * 1000, 1),
    }


def reconcile(stack: Stack, loads: list[Load], drained: float) -> dict[str, Any]:
    """Every accepted request (of every phase) had its effect, once."""
    accepted = sum(load.accepted for load in loads)
    orders = set().union(*(load.orders for load in loads))
    customers = set().union(*(load.customers for load in loads))
    reads = realtime_reads(stack)
    synerise = stack.synerise_stats()
    rejects = realtime_rejects(stack)
    queued = waiting(stack)
    orders_ok = synerise["transactions"] + len(rejects["transactions"] & orders)
    # Guest buyers of notified orders get profiles too: they are not triggered customers.
    guests = sum(run.guest_sent_count for run in stack.store.runs.find() if run.kind == "realtime")
    customers_ok = synerise["profiles"] - guests + len(rejects["profiles"] & customers)
    lost, duplicated = max(0, accepted - reads), max(0, reads - accepted)
    return {
        "all_accepted": accepted,
        "processed": reads,
        "lost": lost,
        "duplicated": duplicated,
        "drain_s": round(drained, 1),
        "processed_per_s": round(reads / drained, 1) if drained else None,
        "orders_notified": len(orders),
        "orders_with_effect": orders_ok,
        "customers_triggered": len(customers),
        "customers_with_effect": customers_ok,
        "duplicates_sent": sum(load.duplicates for load in loads),
        "duplicate_transactions": synerise["duplicate_transactions"],
        "queue_left": queued,
        "reconciled": lost == 0 and duplicated == 0 and queued == 0 and orders_ok == len(orders)
        and customers_ok == len(customers) and synerise["duplicate_transactions"] == 0,
    }


def stack_redis(stack: Stack) -> Any:
    import redis

    return redis.Redis.from_url(stack.redis_url)


def waiting(stack: Stack) -> int:
    """Realtime work not done yet: tasks in the queue and entries in the inboxes."""
    client = stack_redis(stack)
    try:
        inboxes = sum(int(client.xlen(f"etl:inbox:{scope}")) for scope in INBOX_SCOPES)
        return int(client.llen("realtime")) + inboxes
    finally:
        client.close()


def report(rows: list[dict[str, Any]]) -> str:
    ingest = table(
        "Webhooks: ingestion (client-side latency from the scheduled send, keep-alive)",
        ["phase", "server", "clients", "seconds", "requests", "req/s", "p50 ms", "p90 ms",
         "p99 ms", "max ms", "non-200", "errors", "server CPU ms/req"],
        [[r["phase"], r["server"], r["concurrency"], r["duration_s"], r["requests"],
          r["req_per_s"], r["p50_ms"], r["p90_ms"], r["p99_ms"], r["max_ms"], r["non_200"],
          r["client_errors"], r["server_cpu_ms_per_request"]] for r in rows],
    )  # fmt: skip
    r = rows[-1]
    effect = table(
        "Webhooks: reconciliation after the workers drained (all phases)",
        ["accepted", "processed", "lost", "dup.", "drain s", "processed/s", "orders (effect)",
         "customers (effect)", "re-sent", "dup. txns", "queue left", "ok"],
        [[r["all_accepted"], r["processed"], r["lost"], r["duplicated"], r["drain_s"],
          r["processed_per_s"],
          f"{r['orders_notified']} ({r['orders_with_effect']})",
          f"{r['customers_triggered']} ({r['customers_with_effect']})",
          r["duplicates_sent"], r["duplicate_transactions"], r["queue_left"],
          "yes" if r["reconciled"] else "NO"]],
    )  # fmt: skip
    return ingest + "\n" + effect


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.webhooks",
                                     description=__doc__.splitlines()[0])  # fmt: skip
    parser.add_argument("--duration", type=float, default=30.0, help="seconds per phase")
    parser.add_argument("--concurrency", type=int, default=32, help="concurrent clients")
    parser.add_argument("--rate", type=float, default=500.0,
                        help="paced phase: total req/s (0: saturation phase only)")
    parser.add_argument("--server-workers", type=int, default=WORKERS, help="gunicorn processes")
    parser.add_argument("--threads", type=int, default=THREADS, help="threads per gunicorn process")
    parser.add_argument("--celery-concurrency", type=int, default=16, help="worker threads")
    parser.add_argument("--workers-during-load", action="store_true",
                        help="start the Celery workers before the load instead of after it")
    parser.add_argument("--quick", action="store_true",
                        help=f"5 s phases, 16 clients, one drain of {QUICK_BACKLOG} per mode")
    parser.add_argument("--backlog", type=int, default=BACKLOG,
                        help="notifications per drain in the side-by-side drain comparison")
    parser.add_argument("--no-compare", action="store_true",
                        help="skip the side-by-side drain comparison")
    parser.add_argument("--compare-only", action="store_true",
                        help="only the side-by-side drain comparison")
    args = parser.parse_args(argv)
    duration, concurrency = args.duration, args.concurrency
    if args.quick:
        duration, concurrency = min(duration, 5.0), min(concurrency, 16)
    rows = [] if args.compare_only else measure(
        duration, concurrency, rate=args.rate, server_workers=args.server_workers,
        threads=args.threads, celery_concurrency=args.celery_concurrency,
        drain_after=not args.workers_during_load,
    )  # fmt: skip
    if not args.no_compare:
        backlog = min(args.backlog, QUICK_BACKLOG) if args.quick else args.backlog
        rows += compare_drains(backlog, rounds=1 if args.quick else 2,
                               celery_concurrency=args.celery_concurrency)  # fmt: skip
    command = "python -m bench.webhooks " + " ".join(argv if argv is not None else sys.argv[1:])
    path = write_results("webhooks", rows, command)
    log(f"webhooks: results appended to {path}")
    return 0 if all(row["reconciled"] for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
