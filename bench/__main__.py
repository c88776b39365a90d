"""``python -m bench full|quick|chaos|NAME [NAME ...] [--quick]``: run benchmarks, record results.

* ``full`` (``make bench``): every benchmark at full size, several runs each (tens of minutes).
* ``quick`` (``make bench-quick``): the same benchmarks, smaller and fewer runs (a few minutes).
* ``chaos`` (``make chaos``): the fault-tolerance run (bench/chaos.py).
* ``NAME``: one benchmark module of this package (``orders``, ``scaling``, ``customers``,
  ``memory``, ``chaos``, ``webhooks`` ...) at full size, or quick size with ``--quick``.

A benchmark is a module ``bench/NAME.py`` with ``run(mode: str = "full") -> list[dict]``
(``mode`` is ``"quick"`` or ``"full"``): it prints its tables on stdout and returns its result
rows, which the runner appends as JSON lines to ``bench/results/NAME.jsonl`` together with the
command, the machine and the date. Modules listed in ``SUITE`` run in that order; an optional
module missing from this checkout (``webhooks``) is skipped with a note.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import os
import shlex
import sys
import time
import traceback
from typing import Any

from bench.harness import log, machine, write_results

SUITE = ("sandbox_throughput", "orders", "scaling", "customers", "peer_ratio", "memory",
         "products", "unknown_limit", "webhooks")  # fmt: skip
OPTIONAL = frozenset({"webhooks"})
NOT_QUICK = frozenset({"webhooks", "products", "unknown_limit"})
"""Left out of ``quick`` to keep it short (draining the webhooks' notifications takes ~1.5 min,
the catalog's rate-limited passes and its 10k-SKU memory pass ~1.5 min, the unknown-limit runs
at 60 requests/s ~2.5 min); run them alone with ``python -m bench NAME --quick``."""


def run_one(name: str, mode: str, command: str) -> bool:
    """Run ``bench/NAME.py`` in ``mode``; record its rows. False if it failed."""
    try:
        module = importlib.import_module(f"bench.{name}")
    except ModuleNotFoundError as error:
        if error.name == f"bench.{name}" and name in OPTIONAL:
            log(f"{name}: bench/{name}.py is not in this checkout; skipped")
            return True
        raise
    started = time.monotonic()
    load_before = os.getloadavg()[0]
    log(f"{name}: start ({mode}); load average {load_before:.2f}")
    try:
        rows = _call(module.run, mode)
    except Exception:
        traceback.print_exc()
        log(f"{name}: FAILED after {time.monotonic() - started:.0f} s")
        return False
    elapsed = time.monotonic() - started
    # Other work on the machine skews every figure: the load averages say whether it was quiet.
    load = {"load_before": round(load_before, 2), "load_after": round(os.getloadavg()[0], 2)}
    path = write_results(name, [{"mode": mode, **load, **row} for row in rows or ()], command)
    log(f"{name}: done in {elapsed:.0f} s; results appended to {path}")
    return True


def wait_quiet(seconds: float, threshold: float = 0.5) -> None:
    """Wait up to ``seconds`` for the 1-minute load average to drop under ``threshold``."""
    deadline = time.monotonic() + seconds
    while os.getloadavg()[0] > threshold and time.monotonic() < deadline:
        time.sleep(5)
    load = os.getloadavg()[0]
    if load > threshold:
        log(f"warning: load average {load:.2f}: other work on this machine skews the figures")


def _call(func: Any, mode: str) -> Any:
    """Call ``run(mode)``; tolerate a ``run(quick: bool)`` or ``run()`` signature too."""
    params = inspect.signature(func).parameters
    if "mode" in params:
        return func(mode=mode)
    if "quick" in params:
        return func(quick=mode == "quick")
    return func()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("targets", nargs="+", help="full, quick, chaos, or benchmark names")
    parser.add_argument("--quick", action="store_true", help="quick size for named benchmarks")
    args = parser.parse_args(argv)
    command = "python -m bench " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    info = machine()
    log(f"machine: {info['cpu_model']}, {info['nproc']} CPUs, {info['memory_gb']} GB, "
        f"Python {info['python']}, commit {info['git_commit']}")  # fmt: skip
    started = time.monotonic()
    jobs: list[tuple[str, str]] = []
    for target in args.targets:
        if target in ("full", "quick"):
            jobs += [(name, target) for name in SUITE
                     if target == "full" or name not in NOT_QUICK]  # fmt: skip
        else:
            jobs.append((target, "quick" if args.quick else "full"))
    wait_quiet(float(os.environ.get("BENCH_WAIT_QUIET", "0")))
    failed = [name for name, mode in jobs if not run_one(name, mode, command)]
    log(f"all done in {time.monotonic() - started:.0f} s"
        + (f"; FAILED: {', '.join(failed)}" if failed else ""))  # fmt: skip
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
