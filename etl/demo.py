"""The demo: the product's main job, end to end, on embedded defaults, then a clean shutdown.

It brings up embedded Redis and PostgreSQL of its own in ``$ETL_STATE_DIR/demo`` (so it never
touches servers you run, ``REDIS_URL``/``DATABASE_URL`` included), migrates the database, starts
the VTEX and Synerise sandbox emulators with generated customers, orders and a product catalog
(dirty ones included), a real Celery worker and Flower through this project's CLI, and runs a
historical customers sync and an orders sync at once (the two slots) plus a catalog sync that
waits for a free slot, with progress bars. It then checks its report against the sandbox's
inspection API (the catalog item by item), runs the customers sync again to show the ledger
skipping unchanged records, and says where Flower is.

Every demo starts from a clean state: the sandbox starts empty, so the demo folder of an earlier
demo (its ledger, runs and queues) is wiped first; otherwise the ledger would skip everything the
new, empty sandbox has never seen. Whatever happens (success, failure, Ctrl-C, SIGTERM) every
process it started is stopped before it returns: SIGTERM to each process group at once, SIGKILL
to whatever is left after ``STOP_GRACE`` seconds.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

import click

from etl import infra
from etl.config import Settings
from etl.state import migrate
from etl.state.runs import Run

__all__ = ["DemoError", "DemoReport", "run"]

T = TypeVar("T")
Say = Callable[[str], None]
END_STATES = ("done", "failed", "cancelled")
DEMO_RANGE = ("2025-06-01", "2026-06-01")
"""The sandbox generates records over this year; the syncs ask for all of it."""
STOP_GRACE = 10.0
"""Seconds the worker and Flower get to stop after SIGTERM before their groups get SIGKILL."""


class DemoError(RuntimeError):
    """A step of the demo failed; the message says which and where its log is."""


@dataclass
class DemoReport:
    """What the demo did, for the caller to print or check."""

    redis_url: str = ""
    database_url: str = ""
    migrations_applied: list[int] = field(default_factory=list)
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    synerise: dict[str, Any] = field(default_factory=dict)
    catalog: dict[str, int] = field(default_factory=dict)
    expected: dict[str, Any] = field(default_factory=dict)
    mismatches: list[str] = field(default_factory=list)
    resync_skipped: int = 0
    resync_sent: int = 0
    flower_url: str = ""
    flower_user: str = ""
    flower_password: str = ""
    flower_tasks_seen: int = 0
    flower_rejects_anonymous: bool = False
    seconds: float = 0.0


def run(
    settings: Settings,
    customers: int = 3000,
    orders: int = 3000,
    seed: int = 42,
    timeout: float = 300.0,
    products: int = 200,
    hold: bool = False,
    say: Say = print,
) -> DemoReport:
    """Run the demo; raise ``DemoError`` if a step fails. Always cleans up.

    Args:
        settings: loaded with ``require=()``; external ``REDIS_URL``/``DATABASE_URL`` are used.
        customers: how many Master Data customers the sandbox generates.
        orders: how many OMS orders the sandbox generates.
        seed: the sandbox data seed (same seed, same data).
        products: how many catalog products the sandbox generates (1-3 SKUs each).
        timeout: seconds each waiting step may take.
        hold: keep Flower and the worker running until Ctrl-C before shutting down.
        say: where progress lines go.
    """
    from etl.sandbox import start_sandbox  # local: the sandbox is heavy to import
    from etl.sync import runs
    from etl.sync.engine import Engine
    from etl.sync.products import start_products
    from etl.sync.windows import Window, parse_time
    from workers.dispatch import enqueue

    report = DemoReport()
    started = time.monotonic()
    folder = Path(settings.etl_state_dir).resolve() / "demo"
    spawned: list[subprocess.Popen[bytes]] = []
    with _terminate_on_sigterm(), _cleanup_stack() as cleanup:
        settings = _servers(settings, folder, cleanup, say)
        cleanup.callback(stop_groups, spawned)
        assert settings.redis_url and settings.database_url
        report.redis_url, report.database_url = settings.redis_url, settings.database_url
        report.migrations_applied = migrate.upgrade(settings.database_url)
        say(f"database migrated (applied: {report.migrations_applied or 'nothing new'})")

        # A little latency makes the sandbox behave like a remote API; no other faults here.
        faults = [(route, {"latency_ms": 5.0}) for route in ("oms.*", "md.*", "catalog.*",
                                                              "pricing.*")]  # fmt: skip
        sandbox = start_sandbox(customers, orders, seed, faults=faults, products=products)
        cleanup.callback(sandbox.stop)
        say(f"sandbox up: VTEX {sandbox.vtex_url} ({customers} customers, {orders} orders, "
            f"about 5% dirty; {products} products), Synerise {sandbox.synerise_url}")
        env = {
            **os.environ,
            **settings.process_env(),
            **sandbox.env(),
            "VTEX_RATE_LIMIT": os.environ.get("VTEX_RATE_LIMIT", "600"),
            "VTEX_CATALOG_RATE_LIMIT": os.environ.get("VTEX_CATALOG_RATE_LIMIT", "600"),
            "SYNERISE_RATE_LIMIT": os.environ.get("SYNERISE_RATE_LIMIT", "100"),
            "SYNC_FETCH_CONCURRENCY": os.environ.get("SYNC_FETCH_CONCURRENCY", "8"),
        }
        os.environ.update(env)  # for the engine in this process

        node = f"demo-{os.getpid()}@%h"
        _spawn(
            "worker",
            ["worker", "--pool", "threads", "--concurrency", "8", "--hostname", node],
            env, folder, cleanup, spawned,
        )
        say(f"worker started (log: {folder / 'worker.log'})")

        report.flower_user, report.flower_password = "demo", secrets.token_urlsafe(12)
        port = infra.free_port()
        report.flower_url = f"http://127.0.0.1:{port}"
        flower_env = {**env, "FLOWER_BASIC_AUTH": f"{report.flower_user}:{report.flower_password}"}
        flower = _spawn(
            "flower", ["flower", "--port", str(port)], flower_env, folder, cleanup, spawned
        )
        auth = _basic(report.flower_user, report.flower_password)
        worker_name = node.replace("%h", socket.gethostname())  # as Celery expands %h
        online = f'flower_worker_online{{worker="{worker_name}"}} 1.0'
        _wait(
            lambda: online in _get(f"{report.flower_url}/metrics", auth),
            timeout, f"Flower did not see the worker online (logs in {folder})", watch=flower,
        )
        report.flower_rejects_anonymous = _status(f"{report.flower_url}/api/workers") == 401
        if not report.flower_rejects_anonymous:
            raise DemoError("Flower answered an anonymous request: authentication is off")
        say(f"Flower up at {report.flower_url} (user {report.flower_user}, "
            f"password {report.flower_password}); sees worker {worker_name}")

        engine = Engine.from_settings(Settings.from_env(env), enqueue)
        window = Window(parse_time(DEMO_RANGE[0]), parse_time(DEMO_RANGE[1]))
        started_runs = [
            runs.start(engine, runs.StartRequest("customers_created", window)),
            runs.start(engine, runs.StartRequest("orders", window)),
            start_products(engine),  # the third run: it waits for a free slot
        ]
        say(f"started runs {', '.join(f'{r.id} ({r.scope}, {r.status})' for r in started_runs)}; "
            "follow them with `vtex-synerise sync status ID --follow` too")
        finished = [_follow(engine.store, r.id, timeout) for r in started_runs]
        for done in finished:
            report.runs[done.scope] = _counts(done)
            if done.status != "done":
                raise DemoError(f"run {done.id} ({done.scope}) ended {done.status}: {done.error}")

        report.synerise = _json(f"{sandbox.synerise_url}/__sandbox__/stats")
        report.expected = _json(f"{sandbox.vtex_url}/__sandbox__/vtex/expected")
        report.catalog = _catalog_counts(
            _json_rows(f"{sandbox.synerise_url}/__sandbox__/synerise/catalog-items"), sandbox
        )
        report.mismatches = _reconcile(report)
        for line in _report_lines(report):
            say(line)

        again = runs.start(engine, runs.StartRequest("customers_created", window))
        again = _follow(engine.store, again.id, timeout, label="customers again")
        report.resync_sent, report.resync_skipped = again.sent_count, again.skipped_count
        say(f"second customers run {again.id}: sent {again.sent_count}, skipped "
            f"{again.skipped_count} unchanged (the entity ledger), rejected {again.rejected_count}")

        report.flower_tasks_seen = _wait(
            lambda: _flower_count(report.flower_url, auth),
            timeout, "Flower recorded no sync task (are worker events on?)",
        )
        say(f"Flower recorded {report.flower_tasks_seen} succeeded sync tasks at "
            f"{report.flower_url}")
        report.seconds = time.monotonic() - started
        if report.mismatches:
            raise DemoError("report and sandbox disagree: " + "; ".join(report.mismatches))
        if hold:
            say(f"holding: browse {report.flower_url}; Ctrl-C to shut down")
            with contextlib.suppress(KeyboardInterrupt):
                while True:
                    time.sleep(1)
        say("shutting down worker, Flower, the sandbox and the demo's servers")
    return report


def _follow(store: Any, run_id: int, timeout: float, label: str | None = None) -> Run:
    """Draw a progress bar over a run's planned records until it ends."""
    run = store.runs.get(run_id)
    deadline = time.monotonic() + timeout
    with click.progressbar(length=max(run.records_total, 1), label=label or run.scope,
                           file=sys.stderr, show_pos=True) as bar:
        shown = 0
        while run.status not in END_STATES:
            if time.monotonic() > deadline:
                raise DemoError(f"run {run_id} did not finish within {timeout:g} s")
            time.sleep(0.3)
            run = store.runs.get(run_id)
            bar.length = max(run.records_total, 1)
            bar.update(max(run.read_count - shown, 0))
            shown = max(shown, run.read_count)
    return run


def _catalog_counts(items: list[dict[str, Any]], sandbox: Any) -> dict[str, int]:
    """What the Synerise sandbox's catalog holds, and how many items disagree with the VTEX
    sandbox's SKU (key, product, deleted flag, price and image present or not)."""
    values = [item["value"] for item in items]
    wrong = 0
    for item in items:
        value, sku_id = item["value"], int(item["itemKey"])
        doc, price = sandbox.vtex.catalog.sku(sku_id), sandbox.vtex.catalog.price(sku_id)
        expected = doc is not None and (
            value.get("itemId") == item["itemKey"]
            and value.get("parentId") == str(doc["ProductId"])
            and value.get("deleted") == ("0" if doc["IsActive"] and doc["IsProductActive"] else "1")
            and ("price" in value) == (price is not None)
            and ("image" in value) == bool(doc["Images"])
        )
        wrong += not expected
    return {
        "items": len(values),
        "deleted": sum(value.get("deleted") == "1" for value in values),
        "without_price": sum("price" not in value for value in values),
        "without_image": sum("image" not in value for value in values),
        "disagreeing": wrong,
    }


def _counts(run: Run) -> dict[str, Any]:
    return {"id": run.id, "read": run.read_count, "sent": run.sent_count,
            "skipped": run.skipped_count, "rejected": run.rejected_count,
            "failed": run.failed_count, "warned": run.warned_count,
            "guests_sent": run.guest_sent_count, "guests_rejected": run.guest_rejected_count}


def _reconcile(report: DemoReport) -> list[str]:
    """Where our counts and the sandbox's stored data disagree (empty: they agree)."""
    customers, orders = report.runs["customers_created"], report.runs["orders"]
    products = report.runs["products"]
    stats, expected = report.synerise, report.expected
    # Customers that share an e-mail with an earlier one land on that one's Synerise profile;
    # each guest buyer of an order gets a profile of its own.
    merged = expected["customers"]["by_kind"].get("duplicate_email", 0)
    profiles = customers["sent"] - merged + orders["guests_sent"]
    checks = [
        ("profiles in Synerise", stats.get("profiles"), profiles),
        ("transactions in Synerise", stats.get("transactions"), orders["sent"]),
        ("duplicate transactions", stats.get("duplicate_transactions"), 0),
        ("bodies the strict Synerise sandbox refused", sum(stats["refused"].values()), 0),
        ("items breaking Synerise's models or rules", sum(stats["violations"].values()), 0),
        ("guest profiles expected sent", expected["orders"]["guest_profiles"],
         orders["guests_sent"]),
        ("guest profiles refused", orders["guests_rejected"], 0),
        ("customers expected sent", expected["customers"]["sent"], customers["sent"]),
        ("customers expected rejected", expected["customers"]["rejected"], customers["rejected"]),
        ("orders expected sent", expected["orders"]["sent"], orders["sent"]),
        ("orders expected rejected", expected["orders"]["rejected"], orders["rejected"]),
        ("catalog items in Synerise", report.catalog["items"], products["sent"]),
        ("catalog SKUs expected sent", expected["catalog"]["skus"], products["sent"]),
        ("catalog items deleted", report.catalog["deleted"], expected["catalog"]["deleted"]),
        ("catalog items without a price", report.catalog["without_price"],
         expected["catalog"]["without_price"]),
        ("catalog items without an image", report.catalog["without_image"],
         expected["catalog"]["without_image"]),
        ("catalog items that disagree with their SKU", report.catalog["disagreeing"], 0),
    ]  # fmt: skip
    return [f"{name}: sandbox {theirs} vs ours {ours}"
            for name, theirs, ours in checks if theirs != ours]


def _report_lines(report: DemoReport) -> list[str]:
    lines = ["", f"{'run':<20}{'read':>8}{'sent':>8}{'skipped':>9}{'rejected':>10}{'failed':>8}"
                 f"{'warned':>8}"]
    for scope, c in report.runs.items():
        lines.append(f"{scope + ' #' + str(c['id']):<20}{c['read']:>8}{c['sent']:>8}"
                     f"{c['skipped']:>9}{c['rejected']:>10}{c['failed']:>8}{c['warned']:>8}")
    stats = report.synerise
    lines.append(
        f"Synerise sandbox holds {stats.get('profiles')} profiles, {stats.get('transactions')} "
        f"transactions ({stats.get('duplicate_transactions')} duplicates), "
        f"{stats.get('events')} events; 429s served: {stats.get('rate_limited')}"
    )
    catalog = report.catalog
    lines.append(
        f"Synerise sandbox catalog holds {catalog.get('items')} items, one per VTEX SKU: "
        f"{catalog.get('deleted')} deleted (inactive SKU or product), "
        f"{catalog.get('without_price')} without a price, "
        f"{catalog.get('without_image')} without an image"
    )
    lines.append(
        f"the orders sync upserted {report.runs['orders']['guests_sent']} guest buyers' profiles"
        " before their transactions"
    )
    mode = "strict" if stats.get("strict") else "relaxed"
    lines.append(
        f"Synerise sandbox ({mode}: Synerise's request models and rules) refused "
        f"{sum(stats['refused'].values())} bodies; items breaking them: "
        f"{sum(stats['violations'].values())}"
    )
    merged = report.expected["customers"]["by_kind"].get("duplicate_email", 0)
    lines.append(f"{merged} customers share an e-mail with another: one Synerise profile each pair")
    for kind in ("customers", "orders"):
        reasons = report.expected[kind].get("by_reason", {})
        lines.append(f"expected {kind} rejects by reason: "
                     + (", ".join(f"{k} {v}" for k, v in sorted(reasons.items())) or "none"))
    lines.append("report agrees with the sandbox: "
                 + ("yes" if not report.mismatches else "NO"))
    lines.append("see every rejected record: vtex-synerise sync rejects RUN_ID; the fields sent"
                 " records went without: vtex-synerise sync rejects RUN_ID --warnings")
    return [*lines, ""]


def _json(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return dict(json.loads(response.read()))


def _json_rows(url: str) -> list[dict[str, Any]]:
    with urllib.request.urlopen(url, timeout=30) as response:
        return list(json.loads(response.read()))


def _servers(settings: Settings, folder: Path, cleanup: contextlib.ExitStack, say: Say) -> Settings:
    """Fresh embedded servers in the demo's own folder, whatever the environment points at."""
    if settings.redis_url or settings.database_url:
        say("REDIS_URL/DATABASE_URL are left alone: the demo runs servers of its own")
    with _signals_deferred():  # a server started is a server recorded for shutdown
        infra.down(folder)  # an earlier demo's servers, if one was killed before its cleanup
        shutil.rmtree(folder, ignore_errors=True)
        cleanup.callback(infra.down, folder)
        state = infra.up(folder)
    say(f"demo state in {folder} (embedded Redis and PostgreSQL, logs; wiped at each demo)")
    return Settings.from_env(
        {
            **os.environ,
            "REDIS_URL": state.redis_url,
            "DATABASE_URL": state.database_url,
            "ETL_STATE_DIR": str(folder),
        },
        require=(),
    )


def _spawn(
    name: str,
    args: list[str],
    env: dict[str, str],
    folder: Path,
    cleanup: contextlib.ExitStack,
    spawned: list[subprocess.Popen[bytes]],
) -> subprocess.Popen[bytes]:
    """Start ``vtex-synerise ARGS`` in its own process group, logging to ``folder/NAME.log``;
    ``spawned`` is what the cleanup stops."""
    folder.mkdir(parents=True, exist_ok=True)
    log = open(folder / f"{name}.log", "wb")  # noqa: SIM115 - closed by the cleanup stack
    cleanup.callback(log.close)
    with _signals_deferred():  # a process started is a process recorded for shutdown
        proc = subprocess.Popen(
            [sys.executable, "-m", "etl.cli", "--log-level", "INFO", *args],
            env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        spawned.append(proc)
    return proc


def stop_groups(procs: list[subprocess.Popen[bytes]], grace: float = STOP_GRACE) -> None:
    """Stop every process group in ``procs`` within about ``grace`` seconds, whatever the load.

    SIGTERM to all groups at once (Celery's warm shutdown, Flower's exit), one shared deadline,
    then SIGKILL to each whole group: a leader that exited may leave pool children behind, and
    one that ignores SIGTERM is not waited for longer. The group id is the leader's pid
    (``start_new_session``).
    """
    for proc in procs:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for proc in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(max(0.0, deadline - time.monotonic()))
    for proc in procs:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _wait(
    check: Callable[[], T | bool | None],
    timeout: float,
    message: str,
    watch: subprocess.Popen[bytes] | None = None,
) -> Any:
    """Poll ``check`` until it returns something truthy; raise ``DemoError`` on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        if watch is not None and watch.poll() is not None:
            raise DemoError(f"{message}; it exited with {watch.returncode}")
        time.sleep(0.2)
    raise DemoError(f"{message} within {timeout:g} s")


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def _request(url: str, auth: str | None) -> urllib.request.Request:
    request = urllib.request.Request(url)
    if auth:
        request.add_header("Authorization", auth)
    return request


def _get(url: str, auth: str) -> str:
    """The body of a GET, or "" while the server is not up."""
    try:
        with urllib.request.urlopen(_request(url, auth), timeout=5) as response:
            return str(response.read().decode())
    except (OSError, ValueError):
        return ""


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(_request(url, None), timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return 0


def _flower_count(url: str, auth: str) -> int:
    body = _get(f"{url}/api/tasks?taskname=etl.process_chunk&state=SUCCESS", auth)
    return len(json.loads(body)) if body else 0


@contextlib.contextmanager
def _signals_deferred() -> Iterator[None]:
    """Hold SIGINT/SIGTERM until the block ends, then raise ``KeyboardInterrupt`` if one came.

    Used where an interruption would leak a process: between starting it and recording it for
    cleanup, and while cleaning up.
    """
    caught: list[int] = []

    def record(signum: int, frame: FrameType | None) -> None:
        caught.append(signum)

    previous = {sig: signal.signal(sig, record) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if caught:
        raise KeyboardInterrupt


@contextlib.contextmanager
def _cleanup_stack() -> Iterator[contextlib.ExitStack]:
    """An ``ExitStack`` whose unwinding a second Ctrl-C cannot cut short."""
    stack = contextlib.ExitStack()
    try:
        yield stack
    finally:
        with _signals_deferred():
            stack.close()


@contextlib.contextmanager
def _terminate_on_sigterm() -> Iterator[None]:
    """Turn SIGTERM into KeyboardInterrupt so the cleanup stack runs (default would just die)."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
