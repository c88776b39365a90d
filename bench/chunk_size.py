"""Which customer chunk size to default to: CPU per customer by chunk size with the default
Synerise batch size (100), measured as in ``bench/chunk_cost.py`` (one worker ``-P prefork
-c 2``, ``--full`` runs after a warm-up, the variants taking turns, medians).
"""

from __future__ import annotations

from typing import Any

from bench.chunk_cost import UNLIMITED, measure
from bench.harness import SandboxConfig, Stack, log, median, table

NAME = "chunk_size"

PARAMS = {"quick": {"customers": 4_000, "rounds": 1}, "full": {"customers": 20_000, "rounds": 2}}
VARIANTS = ((100, 100), (250, 100), (500, 100), (1000, 100), (500, 500))
"""(``SYNC_CHUNK_SIZE``, ``SYNERISE_BATCH_SIZE``)"""

__all__ = ["run"]


def run(mode: str = "full") -> list[dict[str, Any]]:
    params = PARAMS[mode]
    config = SandboxConfig(customers=params["customers"], orders=10, seed=1)
    rows: list[dict[str, Any]] = []
    with Stack(NAME, config, UNLIMITED) as stack:
        for _ in range(params["rounds"]):
            for size, batch in VARIANTS:
                result = measure(stack, size, batch)
                log(f"chunk_size {size}, batches of {batch}: {result}")
                rows.append({"kind": "run", "batch": batch, **result})
    summary = []
    for size, batch in VARIANTS:
        mine = [r for r in rows if (r["size"], r["batch"]) == (size, batch)]
        records = mine[0]["records"]
        cpu = {k: median([r[f"{k}_cpu_s"] for r in mine]) / records * 1e6
               for k in ("worker", "postgres", "redis")}  # fmt: skip
        summary.append({
            "kind": "variant", "size": size, "batch": batch,
            **{f"{k}_us_per_record": round(v, 1) for k, v in cpu.items()},
            "total_us_per_record": round(sum(cpu.values()), 1),
            "customers_per_s": round(records / median([r["seconds"] for r in mine])),
        })  # fmt: skip
    print(table(
        f"CPU µs per customer by chunk size ({params['customers']} customers, median of "
        f"{params['rounds']})",
        ["chunk size", "batch size", "worker", "PostgreSQL", "Redis", "total", "customers/s"],
        [[s["size"], s["batch"], s["worker_us_per_record"], s["postgres_us_per_record"],
          s["redis_us_per_record"], s["total_us_per_record"], s["customers_per_s"]]
         for s in summary],
    ))  # fmt: skip
    return rows + summary
