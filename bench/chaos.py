"""Chaos: a historical orders + customers sync and a stream of order status changes through
faults, crashes, restarts and a frozen worker, then a reconciliation of what Synerise stored
against the sandbox's ground truth. Nothing is done by hand: no ``sync resume``, no worker
restarted by an operator.

The deployment (all real: embedded Redis and PostgreSQL, processes started with the CLI):
two ``vtex-synerise worker -P threads -c 4`` on ``backfill``, one on ``realtime,incremental``,
``vtex-synerise webhooks serve --gunicorn``, ``vtex-synerise beat`` (the Orders Feed consumer
every ``ORDERS_FEED_INTERVAL`` s, incremental syncs off), the Orders Hook and the Orders Feed
registered with ``vtex-synerise vtex hook register``.

The storm (all during one run):

* both sandbox servers answer 5% of API requests with 500/502/503 (``error_rate``), after
  10+U(0,10) ms of latency, and 1% of the requests they serve with a 502 instead of the answer
  (``lost_rate``: a batch stored, a scroll token moved on, and the client told it failed);
  Synerise batch routes also refuse 2% of valid items with a transient per-item 503 in a 207
  (``partial_reject_rate``);
* every ``burst_every`` s, both servers rate-limit every route to 5 requests/s for
  ``burst_seconds`` s: bursts of 429 with ``Retry-After``;
* Synerise expires every token every 30 s (``token_expiry_interval``);
* order status changes (``invoiced``, then ``canceled`` for some) of clean orders, paced over
  the storm; the Orders Hook loses ``HOOK_MISS_RATE`` of them (the sandbox's
  ``hook_miss_rate``): only the Orders Feed consumer can bring those;
* the first backfill worker is frozen (SIGSTOP of its process group: a stand-in for a network
  partition) as soon as it holds a chunk, for ``freeze_seconds``, then woken (SIGCONT): its
  chunks must finish elsewhere (per-chunk claims, ``SYNC_CLAIM_TTL``) and its late answers
  change nothing;
* Redis, then PostgreSQL, is restarted the operator's way: ``vtex-synerise infra down --only
  redis|postgres``, 2 s, ``vtex-synerise infra up`` (same address; every process reconnects);
* the healthy backfill worker is killed with SIGKILL at each ``kills`` time; a replacement
  starts 2 s later, as a supervisor (systemd, Kubernetes) would: not a manual step.

Then the runs must finish on their own. Only if a run has not ended ``recover_after`` s after
the last event does the benchmark type ``vtex-synerise sync resume RUN``, and counts it as a
**manual step** (the goal is 0). No ``sync replay``.

Reconciliation, per record, from ``etl.sandbox.data.Dataset`` (the same seed: what the sandbox
served and which records are dirty) against ``/__sandbox__/synerise/{transactions,profiles}``
and the runs' ``rejected_record`` rows:

* ``lost``: a record that should be in Synerise and is not (a transaction by ``orderId``; a
  profile by ``customId``, or by e-mail where Synerise merged two customers sharing one);
* ``duplicated``: an order stored more than once (a resend that did not overwrite);
* ``rejected``: records the ETL rejected; they must be exactly the dirty records
  (``wrong_rejects``: rejected though clean, e.g. a transient refusal; ``missed_rejects``:
  dirty but not rejected);
* ``status``: every changed order's transaction carries the status the sandbox answered for
  its last change (``status_arrived`` of ``status_changed_orders``).
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, TypeVar

import psutil
import requests

from bench.harness import SandboxConfig, Stack, Worker, claim_pid, log, table

NAME = "chaos"

PARAMS: dict[str, dict[str, Any]] = {
    "quick": {"customers": 6_000, "orders": 1_500, "changes": 300, "changes_over": 40.0,
              "freeze_seconds": 45.0, "redis_at": 25.0, "postgres_at": 35.0, "kills": (50.0,),
              "burst_every": 12.0, "settle": 300.0},
    "full": {"customers": 20_000, "orders": 3_000, "changes": 900, "changes_over": 150.0,
             "freeze_seconds": 120.0, "redis_at": 30.0, "postgres_at": 60.0, "kills": (90.0,),
             "burst_every": 15.0, "settle": 420.0},
}  # fmt: skip
"""``changes``: status changes sent over ``changes_over`` s; ``settle``: seconds allowed after
the runs end for the last changes to arrive (a feed event read during an outage comes back
after the feed's visibility timeout, 240 s)."""
BURST_SECONDS = 3.0
RECOVER_AFTER = 90.0
HOOK_MISS_RATE = 0.1
SECRET = "bench-chaos-webhook-secret"
SETTINGS = {
    "VTEX_RATE_LIMIT": "30",
    "SYNERISE_RATE_LIMIT": "60",
    "SYNC_FETCH_CONCURRENCY": "8",
    "SYNC_STALE_AFTER": "30",
    "SYNC_MAX_ACTIVE_RUNS": "2",
    "WEBHOOK_SECRET": SECRET,
    "ORDERS_FEED_INTERVAL": "10",
    "SYNC_INCREMENTAL_SCOPES": "",
}
"""VTEX at 30 requests/s stretches the runs over the storm (about 4 minutes at the full size on 2
shared cores)."""
WORKER = {"pool": "threads", "concurrency": 4}
SEED = 5
T = TypeVar("T")


def sandbox_config(customers: int, orders: int) -> SandboxConfig:
    faults = [("*", {"latency_ms": 10, "jitter_ms": 10, "error_rate": 0.05, "lost_rate": 0.01})]
    return SandboxConfig(
        customers=customers,
        orders=orders,
        seed=SEED,
        vtex_faults=list(faults),
        synerise_faults=[*faults, ("synerise.*_batch", {"partial_reject_rate": 0.02})],
        vtex_options={"hook_miss_rate": HOOK_MISS_RATE, "seed": SEED},
        synerise_options={"token_expiry_interval": 30},
    )


def patiently(call: Callable[[], T], seconds: float = 120.0) -> T:
    """``call()``, retried while PostgreSQL or Redis is down (the benchmark's own reads)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return call()
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(1.0)


# -- the storm ------------------------------------------------------------------------------------


class Storm:
    """Runs the scheduled events in threads; records what it did."""

    def __init__(self, stack: Stack, params: dict[str, Any], run_ids: list[int]):
        self.stack = stack
        self.params = params
        self.run_ids = run_ids
        self.backfill: list[Worker] = list(stack.workers[:2])
        self.killed: set[int] = set()
        self.frozen = self.backfill[0]
        self.events: list[dict[str, Any]] = []
        self.freeze: dict[str, Any] = {}
        self.changes: dict[str, str] = {}
        """orderId -> the status the sandbox answered for its last change."""
        self.stop = threading.Event()
        self.last_event = time.monotonic()
        self.started = time.monotonic()
        self._threads = [
            threading.Thread(target=target, name=f"chaos-{target.__name__}", daemon=True)
            for target in (self._run, self._freeze, self._change_statuses)
        ]

    def note(self, what: str, **details: Any) -> None:
        elapsed = round(time.monotonic() - self.started, 1)
        self.events.append({"t": elapsed, "event": what, **details})
        self.last_event = time.monotonic()
        log(f"chaos t={elapsed:>5}s {what} {details or ''}")

    def start(self) -> None:
        self.started = time.monotonic()
        for thread in self._threads:
            thread.start()

    def finished(self) -> bool:
        return not any(thread.is_alive() for thread in self._threads)

    def join(self) -> None:
        for thread in self._threads:
            thread.join(self.params["freeze_seconds"] + 120)
        self.stop.set()
        self._burst(False)

    def _run(self) -> None:
        schedule: list[tuple[float, Callable[[], None]]] = []
        for index, at in enumerate(self.params["kills"]):
            schedule.append((at, lambda i=index: self._kill(i)))
        schedule.append((self.params["redis_at"], lambda: self._restart("redis")))
        schedule.append((self.params["postgres_at"], lambda: self._restart("postgres")))
        horizon = max(at for at, _ in schedule) + 10
        at = self.params["burst_every"]
        while at < horizon:
            schedule.append((at, lambda: self._burst(True)))
            schedule.append((at + BURST_SECONDS, lambda: self._burst(False)))
            at += self.params["burst_every"]
        for at, action in sorted(schedule, key=lambda item: item[0]):
            if self.stop.wait(max(0.0, self.started + at - time.monotonic())):
                return
            try:
                action()
            except Exception as error:  # the storm must go on; the run is what is tested
                self.note("event failed", error=f"{type(error).__name__}: {error}")

    def _burst(self, on: bool) -> None:
        rule = {"route": "*", "rate_limit": 5 if on else None}
        for server in ("vtex", "synerise"):
            self.stack.set_faults(server, [rule])
        if on:
            self.note("429 burst", seconds=BURST_SECONDS)

    def _kill(self, index: int) -> None:
        alive = [w for w in self.backfill if w is not self.frozen and w.proc.poll() is None]
        victim = alive[index % len(alive)]
        self.killed.add(victim.pid)
        os.killpg(victim.pid, signal.SIGKILL)
        victim.proc.wait(10)
        self.note("SIGKILL worker", pid=victim.pid)
        time.sleep(2)
        replacement = self.stack.start_worker(**WORKER)  # type: ignore[arg-type]
        self.backfill.append(replacement)
        self.note("worker started by its supervisor", pid=replacement.pid)

    def exited(self) -> list[str]:
        """Processes of the deployment that ended by themselves (the storm killed none of them):
        each would need someone to restart it."""
        workers = [w.log_path.stem for w in self.stack.workers
                   if w.proc.poll() is not None and w.pid not in self.killed]  # fmt: skip
        services = [name for name, p in self.stack.services.items() if p.poll() is not None]
        return workers + services

    def _restart(self, server: str) -> None:
        """``infra down --only SERVER``, 2 s, ``infra up``: an operator's restart."""
        self.note(f"{server} stopping", said=self.stack.infra("down", "--only", server).strip())
        time.sleep(2)
        self.stack.infra("up")
        self.note(f"{server} started again (infra up)")

    def _freeze(self) -> None:
        """SIGSTOP the first backfill worker while it holds chunks, SIGCONT after
        ``freeze_seconds``; the time until those chunks are done (by another worker, if before
        the thaw)."""
        worker, seconds = self.frozen, self.params["freeze_seconds"]
        held = patiently(lambda: self.stack.freeze_holding(worker, self.run_ids, timeout=120))
        frozen_at = time.monotonic()
        self.note("worker frozen (SIGSTOP)", pid=worker.pid, chunks=held)
        mine = {worker.pid, *(c.pid for c in psutil.Process(worker.pid).children(recursive=True))}
        picked: float | None = None  # every held chunk claimed by another worker (or done)
        moved: float | None = None  # every held chunk done
        thawed = False
        try:
            while not thawed or (moved is None and time.monotonic() - frozen_at < 600):
                chunks = [patiently(lambda c=c: self.stack.store.chunks.get(c)) for c in held]
                elapsed = round(time.monotonic() - frozen_at, 1)
                if picked is None and all(c.status == "done" or claim_pid(c.claimed_by) not in
                                          {0, *mine} for c in chunks):  # fmt: skip
                    picked = elapsed
                    self.note("frozen worker's chunks claimed elsewhere", seconds=picked,
                              while_frozen=not thawed)  # fmt: skip
                if moved is None and all(c.status == "done" for c in chunks):
                    moved = elapsed
                    self.note("frozen worker's chunks done", seconds=moved, while_frozen=not thawed)
                if not thawed and time.monotonic() - frozen_at >= seconds:
                    os.killpg(worker.pid, signal.SIGCONT)
                    thawed = True
                    self.note("worker woken (SIGCONT)", pid=worker.pid)
                time.sleep(0.2)
        finally:
            if not thawed:
                os.killpg(worker.pid, signal.SIGCONT)
        self.freeze = {"frozen_chunks": len(held), "freeze_seconds": seconds,
                       "seconds_to_claim_elsewhere": picked, "seconds_to_move": moved,
                       "moved_while_frozen": moved is not None and moved < seconds}  # fmt: skip

    def _change_statuses(self) -> None:
        """Status changes of clean orders (a third of them changed twice), paced evenly."""
        from etl.sandbox.data import Dataset

        dataset = Dataset(self.params["customers"], self.params["orders"], seed=SEED)
        clean = [i for i in range(self.params["orders"])
                 if dataset.expected_reason("order", i) is None]  # fmt: skip
        picked = random.Random(SEED).sample(clean, (self.params["changes"] * 3) // 4)
        plan = [(i, "invoiced") for i in picked] + [(i, "canceled") for i in picked[::3]]
        pause = self.params["changes_over"] / len(plan)
        for index, status in plan:
            order_id = dataset.order(index)["orderId"]
            answer = requests.post(f"{self.stack.vtex_url}/__sandbox__/orders/{order_id}/status",
                                   json={"status": status}, timeout=30)  # fmt: skip
            answer.raise_for_status()
            self.changes[order_id] = answer.json()["status"]
            if self.stop.wait(pause):
                return
        self.note("status changes sent", changes=len(plan), orders=len(self.changes))


# -- reconciliation -------------------------------------------------------------------------------


def _listing(url: str, kind: str) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    while True:
        page = requests.get(
            f"{url}/__sandbox__/synerise/{kind}",
            params={"limit": 5000, "offset": len(docs)},
            timeout=300,
        ).json()
        docs += page
        if len(page) < 5000:
            return docs


def reconcile(stack: Stack, params: dict[str, Any], run_ids: list[int]) -> dict[str, Any]:
    """Per-record comparison of the ground truth with Synerise's store and the ETL's rejects."""
    from etl.sandbox.data import Dataset

    dataset = Dataset(params["customers"], params["orders"], seed=SEED)
    transactions = _listing(stack.synerise_url, "transactions")
    profiles = _listing(stack.synerise_url, "profiles")
    stored_orders = Counter(t["orderId"] for t in transactions)
    custom_ids = {p.get("customId") for p in profiles}
    emails = {str(p["email"]).lower() for p in profiles if p.get("email")}
    rejected: dict[tuple[str, str], str] = {}
    for run_id in run_ids:
        for reject in stack.store.rejects.find(run_id, unresolved=True):
            rejected[(reject.stream, reject.record_key)] = reject.reason
    out: dict[str, Any] = {"lost": 0, "duplicated": 0, "rejected": len(rejected),
                           "expected_rejected": 0, "wrong_rejects": 0, "missed_rejects": 0,
                           "lost_keys": [], "wrong_reject_keys": []}  # fmt: skip
    wrong_reasons: Counter[str] = Counter()
    for kind, count in (("order", params["orders"]), ("customer", params["customers"])):
        stream = "transactions" if kind == "order" else "profiles"
        for i in range(count):
            doc = dataset.order(i) if kind == "order" else dataset.customer(i)
            key = doc["orderId"] if kind == "order" else doc["id"]
            reason = dataset.expected_reason(kind, i)
            got = rejected.get((stream, key))
            if reason is not None:
                out["expected_rejected"] += 1
                if got is None:
                    out["missed_rejects"] += 1
                continue
            if got is not None:
                out["wrong_rejects"] += 1
                wrong_reasons[got] += 1
                out["wrong_reject_keys"].append(key)
                continue
            if kind == "order":
                stored = stored_orders.get(key, 0)
                delivered = stored > 0
                out["duplicated"] += max(0, stored - 1)
            else:
                email = str(doc.get("email") or "").lower()
                delivered = doc.get("userId") in custom_ids or (email and email in emails)
            if not delivered:
                out["lost"] += 1
                out["lost_keys"].append(key)
    out["wrong_reject_reasons"] = dict(wrong_reasons)
    out["lost_keys"] = out["lost_keys"][:20]
    out["wrong_reject_keys"] = out["wrong_reject_keys"][:20]
    stats = stack.synerise_stats()
    out["synerise_duplicate_transactions"] = stats["duplicate_transactions"]
    out["transactions_overwritten"] = stats["transactions_overwritten"]
    out["identity_conflicts"] = stats["identity_conflicts"]
    return out


# -- the run -------------------------------------------------------------------------------------


def chunk_errors(stack: Stack, run_id: int) -> dict[str, int]:
    """Unfinished chunks of a run by status and error text (first 120 characters)."""
    with stack.store.db.transaction() as cur:
        cur.execute(
            """SELECT status, left(coalesce(error, ''), 120) AS error, count(*) AS n
               FROM sync_chunk WHERE run_id = %s AND status <> 'done'
               GROUP BY 1, 2 ORDER BY 3 DESC""",
            (run_id,),
        )
        return {f"{row['status']}: {row['error']}": int(row["n"]) for row in cur.fetchall()}


def run_status(stack: Stack, run_id: int) -> str:
    return str(patiently(lambda: stack.store.runs.get(run_id).status))


def _ended(stack: Stack, run_ids: list[int]) -> bool:
    return all(run_status(stack, r) in ("done", "failed", "cancelled") for r in run_ids)


def _wait_all(
    stack: Stack, run_ids: list[int], until: Callable[[], bool], poll: float = 1.0
) -> None:
    while not until() and not _ended(stack, run_ids):
        time.sleep(poll)


def status_check(stack: Stack, changes: dict[str, str]) -> dict[str, Any]:
    """Changed orders whose Synerise transaction carries the sandbox's last status."""
    stored: dict[str, list[str | None]] = {}
    for transaction in _listing(stack.synerise_url, "transactions"):
        status = (transaction.get("metadata") or {}).get("status")
        stored.setdefault(transaction["orderId"], []).append(status)
    wrong = {order_id: {"sandbox": status, "synerise": stored.get(order_id)}
             for order_id, status in changes.items()
             if stored.get(order_id) != [status]}  # fmt: skip
    return {"status_changed_orders": len(changes), "status_arrived": len(changes) - len(wrong),
            "status_wrong": dict(list(wrong.items())[:20])}  # fmt: skip


def settle(stack: Stack, storm: Storm, seconds: float) -> dict[str, Any]:
    """Wait (``seconds`` at most) until every changed order's status is in Synerise."""
    deadline = time.monotonic() + seconds
    while True:
        check = status_check(stack, storm.changes)
        if not check["status_wrong"] or time.monotonic() > deadline:
            break
        time.sleep(5)
    check["settled_after_runs_s"] = round(seconds - max(0.0, deadline - time.monotonic()), 1)
    return check


def start_stack(stack: Stack) -> None:
    """Two backfill workers, a realtime one, the webhook service, beat, the hook and feed."""
    for _ in range(2):
        stack.start_worker(**WORKER)  # type: ignore[arg-type]
    stack.start_worker(pool="threads", concurrency=8, queues="realtime,incremental")
    _, url = stack.start_webhooks(workers=1, threads=4)
    stack.start_service("beat", "beat")
    stack.cli("vtex", "hook", "register", "--url", url, "--statuses", "invoiced,canceled")
    stack.wait_workers_ready()


def moved_cell(freeze: dict[str, Any]) -> str:
    moved = freeze.get("seconds_to_move")
    if moved is None:
        return "not done"
    return f"{moved}" + ("" if freeze["moved_while_frozen"] else " (after the thaw)")


def run(mode: str = "full") -> list[dict[str, Any]]:
    params = PARAMS[mode]
    config = sandbox_config(params["customers"], params["orders"])
    with Stack(NAME, config, SETTINGS) as stack:
        start_stack(stack)
        started = time.monotonic()
        run_ids = [stack.start_run("orders"), stack.start_run("customers_created")]
        storm = Storm(stack, params, run_ids)
        storm.start()
        log(f"chaos: runs {run_ids} started; storm under way")

        def quiet_long_enough() -> bool:
            return storm.finished() and time.monotonic() - storm.last_event > RECOVER_AFTER

        _wait_all(stack, run_ids, quiet_long_enough)
        runs_ended = time.monotonic() - started
        resumed: list[int] = []
        why: list[dict[str, Any]] = []
        for _ in range(3):
            pending = [r for r in run_ids if run_status(stack, r) != "done"]
            if not pending:
                break
            for run_id in pending:  # a manual step: the goal is never to get here
                before = stack.store.runs.get(run_id)
                errors = chunk_errors(stack, run_id)
                log(f"chaos: run {run_id} is {before.status} ({before.error}); chunk errors: "
                    f"{errors}; vtex-synerise sync resume {run_id}")  # fmt: skip
                why.append({"run_id": run_id, "status": before.status, "error": before.error,
                            "chunk_errors": errors})  # fmt: skip
                stack.cli("sync", "resume", str(run_id), "--json", check=False)
                resumed.append(run_id)
            deadline = time.monotonic() + 300
            _wait_all(stack, pending, lambda d=deadline: time.monotonic() > d)  # type: ignore[misc]
        storm.join()
        log("chaos: runs ended; waiting for every status change to reach Synerise")
        statuses = settle(stack, storm, params["settle"])
        exited = storm.exited()
        elapsed = time.monotonic() - started
        final = [stack.store.runs.get(r) for r in run_ids]
        vtex, synerise = stack.vtex_stats(), stack.synerise_stats()
        log("chaos: reconciling")
        result = reconcile(stack, params, run_ids)
    runs = [{"run_id": r.id, "scope": r.scope, "status": r.status, "read": r.read_count,
             "sent": r.sent_count, "skipped": r.skipped_count, "rejected": r.rejected_count,
             "failed": r.failed_count, "error": r.error} for r in final]  # fmt: skip
    summary = {
        "kind": "summary",
        "customers": params["customers"],
        "orders": params["orders"],
        "seconds": round(elapsed, 1),
        "runs_ended_s": round(runs_ended, 1),
        "manual_steps": len(resumed) + len(exited),
        "resumed": resumed,
        "exited_by_themselves": exited,
        "resume_reasons": why,
        "all_done": all(r.status == "done" for r in final),
        **storm.freeze,
        **statuses,
        "hook": vtex["hook"],
        "feed": vtex["feed"],
        "faults": {
            "vtex_5xx": vtex["faults"]["errors_injected"],
            "vtex_lost": vtex["faults"]["answers_lost"],
            "vtex_429": vtex["rate_limited"],
            "synerise_5xx": synerise["errors_injected"],
            "synerise_lost": synerise["answers_lost"],
            "synerise_429": synerise["rate_limited"],
            "synerise_item_503": synerise["fault_rejected_items"],
            "token_expired_401": synerise["token_expired_401"],
        },
        **result,
    }
    print(table(
        f"Chaos: {params['orders']} orders + {params['customers']} customers, "
        f"{len(params['kills'])} SIGKILL, Redis and PostgreSQL restarts (infra), a worker "
        f"frozen {params['freeze_seconds']:.0f} s, hook missing {HOOK_MISS_RATE:.0%}, "
        f"{summary['seconds']} s",
        ["lost", "duplicated", "manual steps", "status changes arrived",
         "frozen chunks claimed elsewhere (s)", "frozen chunks done (s)",
         "rejected", "expected rejected (dirty)", "wrong rejects", "missed rejects"],
        [[result["lost"], result["duplicated"], summary["manual_steps"],
          f"{statuses['status_arrived']}/{statuses['status_changed_orders']}",
          storm.freeze.get("seconds_to_claim_elsewhere"), moved_cell(storm.freeze),
          result["rejected"], result["expected_rejected"],
          result["wrong_rejects"], result["missed_rejects"]]],
    ))  # fmt: skip
    hook = vtex["hook"]
    feed = {k: v for k, v in vtex["feed"].items() if k != "configured"}
    print(table("Orders Hook and Orders Feed (sandbox counts)",
                ["hook notifications", "hook missed", "hook delivered", "hook failed", "feed"],
                [[hook.get("notifications", 0), hook.get("missed", 0), hook.get("delivered", 0),
                  hook.get("failed", 0), feed]]))  # fmt: skip
    print(table("Faults served", list(summary["faults"]), [list(summary["faults"].values())]))
    print(table("Runs (skipped: the ledger says Synerise already has that payload)",
                ["run", "scope", "status", "read", "sent", "skipped", "rejected", "failed"],
                [[r["run_id"], r["scope"], r["status"], r["read"], r["sent"], r["skipped"],
                  r["rejected"], r["failed"]] for r in runs]))  # fmt: skip
    if result["wrong_rejects"]:
        print(f"wrong rejects by reason: {result['wrong_reject_reasons']}")
    if exited:
        print(f"ended by themselves (each a manual restart): {exited}")
    if statuses["status_wrong"]:
        print(f"status not arrived (first 20): {statuses['status_wrong']}")
    return (
        [{"kind": "event", **event} for event in storm.events]
        + [{"kind": "run", **r} for r in runs]
        + [summary]
    )
