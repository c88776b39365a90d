"""Unknown limit: the rate budget configured 10x above VTEX's real limit finds the real one.

The sandbox of bench/orders.py (40+U(0,20) ms latency on both servers) with one shared bucket of
``LIMIT`` = 60 VTEX requests/s, while ``VTEX_RATE_LIMIT`` says 600, as a user who does not know
the account's limit would set it. Same pipeline: one ``vtex-synerise worker -P threads -c 8``,
``SYNC_FETCH_CONCURRENCY=16``, runs started with ``sync start orders --full --json``.

Printed per run, over the whole run (the first seconds at 600/s included):

* fraction of the real limit reached: VTEX requests the sandbox accepted per second ÷ ``LIMIT``;
* 429 share: VTEX requests answered 429 ÷ VTEX requests;
* failed chunks (a chunk fails when its retries run out), and the run's status;
* the budget's adapted rate at the end of the run (``etl:rate:vtex:{account}``).

Variants on one stack, each run on a fresh sandbox: ``cold``: the learnt rate is deleted before
the run, so the budget starts from 600/s; ``learnt``: the next run keeps what the previous one
learnt (the key lives an hour); ``known``: ``VTEX_RATE_LIMIT=60``, ``RATE_ADAPTIVE=false``, the
best a user who knows the limit gets (the reference); ``fixed`` (full mode only):
``VTEX_RATE_LIMIT=600``, ``RATE_ADAPTIVE=false``, the behaviour before the adaptive budget (on
the first quarter of the orders).
"""

from __future__ import annotations

from typing import Any

import redis

from bench.harness import DATA_TO, Stack, log, median, table
from bench.orders import FETCH_CONCURRENCY, WORKER, pipeline_run, sandbox_config
from etl.ratelimit import RateAdaptation, RedisTokenBucket

NAME = "unknown_limit"

LIMIT = 60.0
CONFIGURED = 600.0
PARAMS = {
    "quick": {"orders": 2500, "runs": 1, "fixed_to": None},
    "full": {"orders": 10_000, "runs": 1, "fixed_to": "2025-09-01T00:00:00Z"},
}
"""``fixed_to``: the fixed budget's run syncs the orders created up to then (a quarter of them):
its 429 storm makes it slow."""
SETTINGS = {"SYNC_FETCH_CONCURRENCY": str(FETCH_CONCURRENCY)}


def vtex_bucket(stack: Stack, client: redis.Redis) -> RedisTokenBucket:
    """The sandbox account's VTEX budget, as the workers build it."""
    account = stack.sandbox_info["env"]["VTEX_ACCOUNT"]
    return RedisTokenBucket(client, "vtex", CONFIGURED, adapt=RateAdaptation(), account=account)


def adapted_rate(stack: Stack) -> float:
    """The VTEX budget's rate as every worker sees it now."""
    client = redis.Redis.from_url(stack.redis_url)
    try:
        return round(vtex_bucket(stack, client).current_rate(), 1)
    finally:
        client.close()


def forget_rate(stack: Stack) -> None:
    """Start the next run from the configured rate, as a first run on a new deployment."""
    client = redis.Redis.from_url(stack.redis_url)
    try:
        client.delete(vtex_bucket(stack, client).key)
    finally:
        client.close()


def one_run(stack: Stack, variant: str, date_to: str = DATA_TO) -> dict[str, Any]:
    result = pipeline_run(stack, LIMIT, full=True, check=False, date_to=date_to)
    calls = sum(result["vtex_calls"].values())
    refused = result["vtex_429"]
    row = {
        "kind": "run",
        "variant": variant,
        "limit": LIMIT,
        "configured": CONFIGURED,
        **result,
        "accepted_per_s": round((calls - refused) / result["seconds"], 2),
        "fraction_of_limit": round((calls - refused) / result["seconds"] / LIMIT, 4),
        "share_429": round(refused / calls, 5) if calls else 0.0,
        "rate_at_end": adapted_rate(stack),
    }
    log(f"unknown limit [{variant}]: {row['fraction_of_limit']} of the limit, "
        f"429 share {row['share_429']:.4f}, {row['chunks_failed']} chunks failed, "
        f"rate at the end {row['rate_at_end']}/s")  # fmt: skip
    return row


VARIANTS = {
    "adaptive": {"VTEX_RATE_LIMIT": str(CONFIGURED), "RATE_ADAPTIVE": "true"},
    "known": {"VTEX_RATE_LIMIT": str(LIMIT), "RATE_ADAPTIVE": "false"},
    "fixed": {"VTEX_RATE_LIMIT": str(CONFIGURED), "RATE_ADAPTIVE": "false"},
}


def use_worker(stack: Stack, settings: dict[str, str]) -> None:
    """One worker with these settings, warm (the budget it learnt while warming up is kept)."""
    for worker in list(stack.workers):
        stack.stop_worker(worker)
    stack.workers.clear()
    stack.start_worker(**WORKER, extra_env=settings)  # type: ignore[arg-type]
    stack.wait_workers_ready()
    stack.warm_up("orders", "2025-06-03T00:00:00Z")


def measure(mode: str) -> list[dict[str, Any]]:
    """Adaptive runs (cold, then learnt), the limit known, and (full mode) the fixed budget,
    each with its own worker on one stack."""
    params = PARAMS[mode]
    rows: list[dict[str, Any]] = []
    with Stack(NAME, sandbox_config(params["orders"], rate=LIMIT), SETTINGS) as stack:
        use_worker(stack, VARIANTS["adaptive"])
        for attempt in range(params["runs"]):
            log(f"unknown limit: run {attempt + 1}/{params['runs']} ({params['orders']} orders)")
            forget_rate(stack)
            rows.append(one_run(stack, "cold"))
            rows.append(one_run(stack, "learnt"))
        use_worker(stack, VARIANTS["known"])
        rows.append(one_run(stack, "known"))
        if params["fixed_to"]:
            use_worker(stack, VARIANTS["fixed"])
            forget_rate(stack)
            rows.append(one_run(stack, "fixed", params["fixed_to"]))
    return rows


def run(mode: str = "full") -> list[dict[str, Any]]:
    rows = measure(mode)
    summary = []
    for variant in ("cold", "learnt", "known", "fixed"):
        mine = [r for r in rows if r["variant"] == variant]
        if not mine:
            continue
        summary.append({
            "kind": "summary",
            "variant": variant,
            "runs": len(mine),
            "orders": mine[0]["orders"],
            "median_fraction_of_limit": median([r["fraction_of_limit"] for r in mine]),
            "max_share_429": max(r["share_429"] for r in mine),
            "chunks_failed": sum(r["chunks_failed"] for r in mine),
            "median_rate_at_end": median([r["rate_at_end"] for r in mine]),
        })  # fmt: skip
    print(table(
        f"Unknown limit: real limit {LIMIT:.0f} VTEX requests/s, VTEX_RATE_LIMIT="
        f"{CONFIGURED:.0f}, {PARAMS[mode]['orders']} orders, 40+U(0,20) ms latency",
        ["variant", "run", "status", "accepted/s ÷ limit", "429 share", "failed chunks",
         "orders/s", "rate at end /s"],
        [[r["variant"], r["run_id"], r["status"], r["fraction_of_limit"],
          f"{100 * r['share_429']:.2f}%", r["chunks_failed"], r["orders_per_s"],
          r["rate_at_end"]] for r in rows],
    ))  # fmt: skip
    return rows + summary
