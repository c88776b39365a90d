"""The producer task body in a process of its own, for bench/memory.py.

``python -m bench.producer_proc RUN_ID`` builds the engine from the environment (the stack's
``REDIS_URL``, ``DATABASE_URL``, sandbox credentials) and runs ``etl.sync.runs.run_producer``,
exactly what the ``etl.produce`` task does, enqueueing chunk tasks through Celery. It prints
``{"seconds": ..., "cpu_s": ..., "peak_rss_kib": ...}`` (``VmHWM``: the process's high-water
mark of resident memory) as one JSON line.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time

from bench.harness import peak_rss_kib


def main() -> None:
    run_id = int(sys.argv[1])
    from etl.config import Settings
    from etl.sync import runs
    from etl.sync.engine import Engine
    from workers.dispatch import enqueue, enqueue_many

    engine = Engine.from_settings(Settings.from_env(), enqueue, enqueue_many)
    started, cpu = time.perf_counter(), time.process_time()
    runs.run_producer(engine, run_id)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({
        "seconds": round(time.perf_counter() - started, 3),
        "cpu_s": round(time.process_time() - cpu, 3),
        "peak_rss_kib": peak_rss_kib(os.getpid()) or usage.ru_maxrss,
        "planning_done": engine.store.runs.get(run_id).planning_done,
    }))  # fmt: skip


if __name__ == "__main__":
    main()
