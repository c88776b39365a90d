"""The catalog: SKUs/s against a configured catalog rate ceiling, a naive script, flat memory.

**Throughput.** The sandbox answers every VTEX route after 40 ms plus up to 20 ms of jitter and
rate-limits the whole VTEX family (here: Catalog GetProductAndSkuIds and SKU context, Pricing)
with one shared bucket of ``R`` requests/s; over it, 429 with ``Retry-After``. Synerise answers
after the same latency. ``VTEX_CATALOG_RATE_LIMIT`` is set to ``R``, as a user sets it to what
they may spend of Catalog's limits. A SKU costs two catalog calls (its context and its price),
plus one listing call per 250 products, so the ceiling is ``R / 2`` SKUs/s and the figure is
``SKUs/s ÷ (R / 2)``: it approaches 1 only if the pipeline keeps the budget busy all the time.
Also reported: catalog calls/s ÷ R (how much of the budget the run used, listing included) and
the 429s the client provoked. One ``vtex-synerise worker -P threads -c 8 -Q backfill``,
``SYNC_FETCH_CONCURRENCY=16``; a first run creates the catalog (not measured), then measured
runs with ``sync start products --full --json`` (the ledger would skip unchanged items).

**Naive baseline.** What a hand-written script does on the same sandbox: list, read each SKU
and its price, post each item, one request at a time (on the first ``naive_skus`` SKUs).

**Memory.** For each size (quick: about 1k and 10k SKUs; full: 10k and 100k), on a fresh stack
with no latency and budgets far above what the machine can do: the producer task body in a
process of its own (bench/producer_proc.py) lists the whole catalog and plans every chunk; then
one ``vtex-synerise worker -P threads -c 2`` (one process, never recycled) processes them.
Peak RSS (``VmHWM``) of each. Goal: peak(large) / peak(small) <= 1.05 for both.
"""

from __future__ import annotations

import json
import time
from typing import Any

import requests

from bench.harness import (
    SandboxConfig,
    Stack,
    ceiling_summary,
    cpu_meter,
    log,
    plan_then_process,
    run_seconds,
    table,
)

NAME = "products"

LATENCY = {"latency_ms": 40, "jitter_ms": 20}
RATE = 200.0
"""R: catalog requests/s the sandbox serves and ``VTEX_CATALOG_RATE_LIMIT``."""
CALLS_PER_SKU = 2
PARAMS: dict[str, dict[str, Any]] = {
    "quick": {"skus": 2_000, "runs": 1, "naive_skus": 40, "memory": (1_000, 10_000)},
    "full": {"skus": 10_000, "runs": 3, "naive_skus": 200, "memory": (10_000, 100_000)},
}
WORKER = {"pool": "threads", "concurrency": 8}
FETCH_CONCURRENCY = 16
UNLIMITED = {
    "VTEX_RATE_LIMIT": "100000",
    "VTEX_CATALOG_RATE_LIMIT": "100000",
    "SYNERISE_RATE_LIMIT": "100000",
}
CATALOG_ROUTES = ("catalog.", "pricing.")


def products_for(skus: int) -> int:
    """Products for about ``skus`` SKUs (the sandbox gives each product 1-3, 2 on average)."""
    return max(1, skus // 2)


def start_products(stack: Stack, *flags: str) -> int:
    """``vtex-synerise sync start products --json FLAGS``; the run id."""
    return int(json.loads(stack.cli("sync", "start", "products", "--json", *flags))["id"])


def catalog_calls(stack: Stack) -> tuple[int, int]:
    """Catalog and Pricing requests the VTEX sandbox has served, and its 429s."""
    stats = stack.vtex_stats()
    calls = sum(n for route, n in stats["requests"].items() if route.startswith(CATALOG_ROUTES))
    return calls, int(stats["rate_limited"])


def pipeline_run(stack: Stack) -> dict[str, Any]:
    """One full catalog pass (``--full``): SKUs/s against the ceiling, budget use, 429s, CPU."""
    pids = {"sandbox": stack.sandbox_pid}
    pids.update({f"worker{i}": w.pid for i, w in enumerate(stack.workers) if w.proc.poll() is None})
    calls_before, limited_before = catalog_calls(stack)
    with cpu_meter(pids) as cpu:
        run = stack.wait_run(start_products(stack, "--full"), timeout=1800)
    if run.status != "done":
        raise RuntimeError(f"run {run.id} ended {run.status}: {run.error}")
    calls_after, limited_after = catalog_calls(stack)
    seconds, skus = run_seconds(run), run.read_count
    calls = calls_after - calls_before
    worker_cpu = sum(v for k, v in cpu.items() if k.startswith("worker"))
    return {
        "run_id": run.id,
        "skus": skus,
        "sent": run.sent_count,
        "seconds": round(seconds, 3),
        "skus_per_s": round(skus / seconds, 2),
        "ratio": round(skus / seconds / (RATE / CALLS_PER_SKU), 4),
        "catalog_calls_per_sku": round(calls / skus, 4),
        "budget_use": round(calls / seconds / RATE, 4),
        "vtex_429": limited_after - limited_before,
        "worker_cpu_us_per_sku": round(worker_cpu / skus * 1e6),
        "sandbox_cpu_us_per_sku": round(cpu["sandbox"] / skus * 1e6),
    }


def naive_run(stack: Stack, limit: int) -> dict[str, Any]:
    """The hand-written script: one request at a time, one item per post."""
    env = stack.sandbox_info["env"]
    vtex = requests.Session()
    vtex.headers.update(
        {"X-VTEX-API-AppKey": env["VTEX_APP_KEY"], "X-VTEX-API-AppToken": env["VTEX_APP_TOKEN"]}
    )
    synerise = requests.Session()
    base = env["SYNERISE_API_HOST"]
    token = synerise.post(
        f"{base}/uauth/v2/auth/login/profile", json={"apiKey": env["SYNERISE_API_KEY"]}, timeout=30
    ).json()["token"]
    synerise.headers["Authorization"] = f"Bearer {token}"
    bag = synerise.post(f"{base}/catalogs/bags", json={"name": "naive"}, timeout=30).json()
    catalog = bag["data"]["id"]
    _, limited_before = catalog_calls(stack)
    started, done = time.monotonic(), 0
    listing = vtex.get(
        f"{env['VTEX_BASE_URL']}/api/catalog_system/pvt/products/GetProductAndSkuIds",
        params={"_from": 1, "_to": 250}, timeout=30,
    ).json()["data"]  # fmt: skip
    for sku in (s for skus in listing.values() for s in skus):
        if done == limit:
            break
        context = vtex.get(
            f"{env['VTEX_BASE_URL']}/api/catalog_system/pvt/sku/stockkeepingunitbyid/{sku}",
            timeout=30,
        ).json()
        price = vtex.get(f"{env['VTEX_BASE_URL']}/pricing/prices/{sku}", timeout=30)
        value = {"itemId": str(sku), "title": str(context.get("NameComplete") or ""),
                 "deleted": "0" if context.get("IsActive") else "1"}  # fmt: skip
        if price.ok:
            value["price"] = str(price.json().get("basePrice"))
        synerise.post(
            f"{base}/catalogs/bags/{catalog}/items/batch",
            json=[{"itemKey": str(sku), "value": value}], timeout=30,
        ).raise_for_status()  # fmt: skip
        done += 1
    seconds = time.monotonic() - started
    _, limited_after = catalog_calls(stack)
    return {
        "skus": done,
        "seconds": round(seconds, 3),
        "skus_per_s": round(done / seconds, 2),
        "ratio": round(done / seconds / (RATE / CALLS_PER_SKU), 4),
        "vtex_429": limited_after - limited_before,
    }


def throughput(params: dict[str, Any]) -> list[dict[str, Any]]:
    config = SandboxConfig(
        customers=10,
        orders=10,
        products=products_for(params["skus"]),
        seed=1,
        vtex_faults=[("*", {**LATENCY, "rate_limit": RATE})],
        synerise_faults=[("*", dict(LATENCY))],
    )
    settings = {
        "VTEX_CATALOG_RATE_LIMIT": str(RATE),
        "SYNC_FETCH_CONCURRENCY": str(FETCH_CONCURRENCY),
        "SYNERISE_RATE_LIMIT": "1000",
    }
    rows: list[dict[str, Any]] = []
    with Stack(NAME, config, settings) as stack:
        stack.start_worker(**WORKER)  # type: ignore[arg-type]
        stack.wait_workers_ready()
        first = stack.wait_run(start_products(stack), timeout=1800)  # creates the catalog
        if first.status != "done":
            raise RuntimeError(f"first run {first.id} ended {first.status}: {first.error}")
        for attempt in range(params["runs"]):
            log(f"products: pipeline run {attempt + 1}/{params['runs']} ({first.read_count} SKUs)")
            result = pipeline_run(stack)
            rows.append({"kind": "pipeline", "rate_limit": RATE, **WORKER,
                         "fetch_concurrency": FETCH_CONCURRENCY, **result})  # fmt: skip
            log(f"products: {result['skus_per_s']} SKUs/s, ratio {result['ratio']}, "
                f"429s {result['vtex_429']}")  # fmt: skip
        for worker in list(stack.workers):
            stack.stop_worker(worker)
        log(f"products: naive baseline on {params['naive_skus']} SKUs")
        rows.append({"kind": "naive", "rate_limit": RATE, **naive_run(stack, params["naive_skus"])})
    return rows


def one_size(skus: int) -> dict[str, Any]:
    config = SandboxConfig(customers=10, orders=10, products=products_for(skus), seed=1)
    with Stack(NAME, config, UNLIMITED) as stack:
        producer, run, worker_peak = plan_then_process(stack, start_products(stack))
        return {
            "skus": run.read_count,
            "sent": run.sent_count,
            "producer_peak_rss_mib": round(producer["peak_rss_kib"] / 1024, 1),
            "producer_seconds": producer["seconds"],
            "worker_peak_rss_mib": round(worker_peak / 1024, 1),
            "run_seconds": round(run_seconds(run), 1),
        }


def memory(sizes: tuple[int, int]) -> list[dict[str, Any]]:
    rows = []
    for skus in sizes:
        log(f"products: memory at about {skus} SKUs")
        rows.append({"kind": "memory", **one_size(skus)})
        log(f"products: {rows[-1]}")
    small, large = rows
    rows.append({
        "kind": "memory_summary",
        "producer_ratio": round(large["producer_peak_rss_mib"] / small["producer_peak_rss_mib"], 3),
        "worker_ratio": round(large["worker_peak_rss_mib"] / small["worker_peak_rss_mib"], 3),
    })  # fmt: skip
    return rows


def run(mode: str = "full") -> list[dict[str, Any]]:
    params = PARAMS[mode]
    rows = throughput(params)
    pipeline = [r for r in rows if r["kind"] == "pipeline"]
    naive = next(r for r in rows if r["kind"] == "naive")
    summary = {"skus": pipeline[0]["skus"], **ceiling_summary(pipeline, naive, RATE, "skus")}
    speed = summary["median_skus_per_s"]
    rows.append(summary)
    rows += memory(params["memory"])
    print(table(
        f"Catalog against the ceiling: R = {RATE:.0f} catalog requests/s (Catalog and Pricing,"
        f" one bucket), 40+U(0,20) ms latency, {summary['skus']} SKUs; ceiling R/2 SKUs/s",
        ["run", "SKUs/s", "÷ (R/2)", "catalog calls/s ÷ R", "calls/SKU", "429s",
         "worker CPU µs/SKU", "sandbox CPU µs/SKU"],
        [[i + 1, r["skus_per_s"], r["ratio"], r["budget_use"], r["catalog_calls_per_sku"],
          r["vtex_429"], r["worker_cpu_us_per_sku"], r["sandbox_cpu_us_per_sku"]]
         for i, r in enumerate(pipeline)],
    ))  # fmt: skip
    print(table(
        "Pipeline vs naive sequential script (same sandbox, same faults)",
        ["", "SKUs/s", "÷ (R/2)", "speed-up"],
        [["pipeline (median)", speed, summary["median_ratio"], f"{summary['speedup_vs_naive']}x"],
         [f"naive ({naive['skus']} SKUs)", naive["skus_per_s"], naive["ratio"], "1x"]],
    ))  # fmt: skip
    sizes = [r for r in rows if r["kind"] == "memory"]
    ratios = next(r for r in rows if r["kind"] == "memory_summary")
    print(table(
        "Peak RSS (VmHWM) by catalog size",
        ["SKUs", "producer peak MiB", "worker peak MiB", "producer s", "run s"],
        [[r["skus"], r["producer_peak_rss_mib"], r["worker_peak_rss_mib"],
          r["producer_seconds"], r["run_seconds"]] for r in sizes]
        + [["ratio", ratios["producer_ratio"], ratios["worker_ratio"], "", ""]],
    ))  # fmt: skip
    return rows
