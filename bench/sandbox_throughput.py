"""Sandbox throughput: the emulators must never be what limits our other benchmarks.

The sandbox runs in its own process (`bench.sandbox_proc`, one aiohttp event loop per server);
this process drives simple routes with keep-alive connections from an aiohttp client for a fixed
time and reports requests/s and latency per route, against the goal of 1,000 requests/s.

    python -m bench.sandbox_throughput [--seconds 10] [--concurrency 32] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

DATA_FROM, DATA_TO = "2025-06-01T00:00:00.000Z", "2026-06-01T00:00:00.000Z"
"""The span of the sandbox's generated data."""

GOAL = 1000.0
"""Requests/s the sandbox must sustain on a 2-core machine (issue: sandbox)."""


def start_sandbox_process(
    customers: int, orders: int
) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    """Start ``bench.sandbox_proc``; return the process and its announced URLs and env."""
    config = json.dumps({"customers": customers, "orders": orders, "seed": 11})
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.sandbox_proc", "--config", config],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        proc.kill()
        raise RuntimeError("the sandbox process did not start")
    return proc, json.loads(line)


async def _drive(
    make_request: Callable[[aiohttp.ClientSession, int], Any], seconds: float, concurrency: int
) -> dict[str, Any]:
    latencies: list[float] = []
    errors = 0
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        deadline = time.perf_counter() + seconds

        async def client(worker: int) -> None:
            nonlocal errors
            i = worker
            while time.perf_counter() < deadline:
                began = time.perf_counter()
                async with make_request(session, i) as response:
                    await response.read()
                    if response.status >= 400:
                        errors += 1
                latencies.append(time.perf_counter() - began)
                i += concurrency

        began = time.perf_counter()
        await asyncio.gather(*(client(w) for w in range(concurrency)))
        elapsed = time.perf_counter() - began
    latencies.sort()
    return {
        "requests": len(latencies),
        "rps": len(latencies) / elapsed,
        "p50_ms": 1000 * latencies[len(latencies) // 2],
        "p99_ms": 1000 * latencies[int(len(latencies) * 0.99)],
        "errors": errors,
    }


def routes(info: dict[str, Any], token: str) -> dict[str, Any]:
    """The simple routes measured: name -> request factory."""
    env, vtex, synerise = info["env"], info["vtex_url"], info["synerise_url"]
    vtex_headers = {
        "X-VTEX-API-AppKey": env["VTEX_APP_KEY"],
        "X-VTEX-API-AppToken": env["VTEX_APP_TOKEN"],
    }
    syn_headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    order_ids: list[str] = info["order_ids"]
    return {
        "vtex get order": lambda s, i: s.get(
            f"{vtex}/api/oms/pvt/orders/{order_ids[i % len(order_ids)]}", headers=vtex_headers),
        "vtex CL by userId": lambda s, i: s.get(
            f"{vtex}/api/dataentities/CL/search",
            params={"userId": info["user_ids"][i % len(info["user_ids"])], "_fields": "id,email"},
            headers={**vtex_headers, "REST-Range": "resources=0-1"}),
        "synerise profile upsert": lambda s, i: s.post(
            f"{synerise}/v4/clients", headers=syn_headers,
            data=json.dumps({"customId": f"bench-{i}", "email": f"bench{i}@example.com"})),
        "synerise list catalogs": lambda s, i: s.get(
            f"{synerise}/catalogs/bags", headers=syn_headers),
    }  # fmt: skip


def _prepare(info: dict[str, Any]) -> str:
    """Log in to the Synerise sandbox and collect real order and user ids to ask for."""
    import requests

    env = info["env"]
    vtex_headers = {"X-VTEX-API-AppKey": env["VTEX_APP_KEY"],
                    "X-VTEX-API-AppToken": env["VTEX_APP_TOKEN"]}  # fmt: skip
    listing = requests.get(
        f"{info['vtex_url']}/api/oms/pvt/orders",
        params={"f_creationDate": f"creationDate:[{DATA_FROM} TO {DATA_TO}]",
                "per_page": 100, "page": 1},
        headers=vtex_headers, timeout=30,
    ).json()  # fmt: skip
    info["order_ids"] = [row["orderId"] for row in listing["list"]]
    docs = requests.get(
        f"{info['vtex_url']}/api/dataentities/CL/search",
        params={"_fields": "userId", "_where": "createdIn between 2025-06-01 AND 2026-06-01",
                "_sort": "createdIn ASC"},
        headers={**vtex_headers, "REST-Range": "resources=0-100"}, timeout=30,
    ).json()  # fmt: skip
    info["user_ids"] = [doc["userId"] for doc in docs]
    login = requests.post(
        f"{info['synerise_url']}/uauth/v2/auth/login/profile",
        json={"apiKey": env["SYNERISE_API_KEY"]}, timeout=30,
    )  # fmt: skip
    return str(login.json()["token"])


def run(mode: str = "full") -> list[dict[str, Any]]:
    """The `bench` runner's entry point: full is 3 runs of 10 s per route, quick 1 of 3 s."""
    rows = measure(*((10.0, 32, 3) if mode == "full" else (3.0, 32, 1)))
    print_table(rows)
    return rows


def measure(seconds: float, concurrency: int, repeats: int) -> list[dict[str, Any]]:
    """Measure every route ``repeats`` times; one row per route with the median figures."""
    proc, info = start_sandbox_process(customers=100_000, orders=100_000)
    try:
        token = _prepare(info)
        rows = []
        for name, factory in routes(info, token).items():
            samples = [asyncio.run(_drive(factory, seconds, concurrency)) for _ in range(repeats)]
            rps = statistics.median(s["rps"] for s in samples)
            rows.append({
                "route": name,
                "rps": round(rps),
                "p50_ms": round(statistics.median(s["p50_ms"] for s in samples), 2),
                "p99_ms": round(statistics.median(s["p99_ms"] for s in samples), 2),
                "errors": sum(s["errors"] for s in samples),
                "vs_goal": round(rps / GOAL, 2),
                "seconds": seconds, "concurrency": concurrency, "runs": repeats,
            })  # fmt: skip
        return rows
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def print_table(rows: list[dict[str, Any]]) -> None:
    print(f"{'route':<26}{'req/s':>8}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}{'vs 1000/s':>11}")
    for row in rows:
        print(f"{row['route']:<26}{row['rps']:>8}{row['p50_ms']:>9}{row['p99_ms']:>9}"
              f"{row['errors']:>8}{row['vs_goal']:>11}")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    rows = measure(args.seconds, args.concurrency, args.runs)
    print_table(rows)
    results = Path(__file__).resolve().parent / "results"
    results.mkdir(exist_ok=True)
    with open(results / "sandbox_throughput.jsonl", "a") as out:
        for row in rows:
            out.write(json.dumps(row) + "\n")
    return 0 if all(row["errors"] == 0 for row in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
