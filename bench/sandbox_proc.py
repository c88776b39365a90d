"""The sandbox emulators in a process of their own, so benchmarks can measure its CPU apart.

``python -m bench.sandbox_proc --config JSON`` starts `etl.sandbox.start_sandbox` with the
dataset, per-server fault rules and emulator options the JSON names, prints one JSON line
``{"env": {...}, "vtex_url": ..., "synerise_url": ...}`` on stdout once both servers listen, and
serves until SIGTERM/SIGINT (or until its parent dies: stdin is a pipe the parent holds).

Fault rules are applied per server (``vtex_faults`` / ``synerise_faults``), so a ``"*"`` rule on
VTEX never touches Synerise. The config keys::

    {"customers": 1000, "orders": 2000, "products": 60, "seed": 1, "dirty_share": 0.05,
     "vtex_faults": [["oms.get_order", {"latency_ms": 40}]], "synerise_faults": [],
     "vtex_options": {}, "synerise_options": {"token_expiry_interval": 30}}
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading

from etl.sandbox import start_sandbox


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="JSON (see the module docstring)")
    config = json.loads(parser.parse_args(argv).config)
    sandbox = start_sandbox(
        customers=int(config.get("customers", 1000)),
        orders=int(config.get("orders", 2000)),
        seed=int(config.get("seed", 0)),
        products=int(config.get("products", 60)),
        dirty_share=float(config.get("dirty_share", 0.05)),
        vtex_options=config.get("vtex_options") or {},
        synerise_options=config.get("synerise_options") or {},
    )
    try:
        for pattern, fields in config.get("vtex_faults") or ():
            sandbox.vtex.faults.set(pattern, **fields)
        for pattern, fields in config.get("synerise_faults") or ():
            sandbox.synerise.faults.set(pattern, **fields)
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        # The parent holds our stdin: when it dies (even by SIGKILL) we read EOF and stop.
        threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
        print(
            json.dumps(
                {
                    "env": sandbox.env(),
                    "vtex_url": sandbox.vtex_url,
                    "synerise_url": sandbox.synerise_url,
                }
            ),
            flush=True,
        )
        stop.wait()
    finally:
        sandbox.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
