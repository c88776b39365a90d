"""A Celery worker under cProfile, counting CPU time (not wall time), for bench/customers.py.

``python -m bench.profiled_worker OUT.prof -- worker -P solo -Q backfill ...`` runs
``celery -A workers.app ARGS`` in this process with ``cProfile.Profile(time.process_time)``
enabled, and writes the stats to ``OUT.prof`` when the worker stops (SIGTERM: Celery's warm
shutdown). With ``-P solo`` every task runs on the profiled thread, so the profile covers the
producer and the chunk tasks entirely (the customers stream starts no fetch threads).
"""

from __future__ import annotations

import cProfile
import sys
import time


def main() -> None:
    out, separator, *args = sys.argv[1:]
    if separator != "--":
        raise SystemExit("usage: python -m bench.profiled_worker OUT.prof -- CELERY ARGS")
    from celery.bin.celery import main as celery_main

    sys.argv = ["celery", "-A", "workers.app", *args]
    profile = cProfile.Profile(time.process_time)
    profile.enable()
    try:
        celery_main()
    finally:
        profile.disable()
        profile.dump_stats(out)


if __name__ == "__main__":
    main()
