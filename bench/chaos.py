"""Chaos: a historical orders + customers sync through faults, crashes and a Redis restart,
then a reconciliation of what Synerise stored against the sandbox's ground truth.

The storm (all at once, on the real pipeline: embedded Redis and PostgreSQL, two
``vtex-synerise worker -P threads -c 4`` processes, both runs started with the CLI):

* both sandbox servers answer 5% of API requests with 500/502/503 (``error_rate``), after
  10+U(0,10) ms of latency; Synerise batch routes also refuse 2% of valid items with a
  transient per-item 503 in a 207 (``partial_reject_rate``);
* every ``burst_every`` s, both servers rate-limit every route to 5 requests/s for
  ``burst_seconds`` s: bursts of 429 with ``Retry-After``;
* Synerise expires every token every 30 s (``token_expiry_interval``);
* a worker process group is killed with SIGKILL several times (a replacement starts 2 s later);
* Redis is stopped once and started again on the same port and data folder
  (``etl.infra.start_redis_process``; AOF keeps the queues); workers reconnect.

Then the runs finish on their own (the workers' upkeep hands a killed worker's chunks on once
their claims expire, ``SYNC_CLAIM_TTL``, and re-enqueues messages lost with Redis once the run
stands still for ``SYNC_STALE_AFTER=30``) or, if a run has not ended
``recover_after`` s after the last event, ``vtex-synerise sync resume RUN``. No ``sync replay``:
the goal is zero loss without a manual replay.

Reconciliation, per record, from ``etl.sandbox.data.Dataset`` (the same seed: what the sandbox
served and which records are dirty) against ``/__sandbox__/synerise/{transactions,profiles}``
and the runs' ``rejected_record`` rows:

* ``lost``: a record that should be in Synerise and is not (a transaction by ``orderId``; a
  profile by ``customId``, or by e-mail where Synerise merged two customers sharing one);
* ``duplicated``: an order stored more than once (a resend that did not overwrite);
* ``rejected``: records the ETL rejected; they must be exactly the dirty records
  (``wrong_rejects``: rejected though clean, e.g. a transient refusal; ``missed_rejects``:
  dirty but not rejected).
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import requests

from bench.harness import SandboxConfig, Stack, log, table

NAME = "chaos"

PARAMS = {
    "quick": {"customers": 8_000, "orders": 4_000, "kills": (8.0, 20.0), "redis_at": 14.0,
              "burst_every": 12.0},
    "full": {"customers": 30_000, "orders": 15_000, "kills": (10.0, 30.0, 55.0),
             "redis_at": 42.0, "burst_every": 15.0},
}  # fmt: skip
BURST_SECONDS = 3.0
RECOVER_AFTER = 90.0
SETTINGS = {
    "VTEX_RATE_LIMIT": "300",
    "SYNERISE_RATE_LIMIT": "60",
    "SYNC_FETCH_CONCURRENCY": "8",
    "SYNC_STALE_AFTER": "30",
    "SYNC_MAX_ACTIVE_RUNS": "2",
}
WORKER = {"pool": "threads", "concurrency": 4}
SEED = 5


def sandbox_config(customers: int, orders: int) -> SandboxConfig:
    faults = [("*", {"latency_ms": 10, "jitter_ms": 10, "error_rate": 0.05})]
    return SandboxConfig(
        customers=customers,
        orders=orders,
        seed=SEED,
        vtex_faults=list(faults),
        synerise_faults=[*faults, ("synerise.*_batch", {"partial_reject_rate": 0.02})],
        synerise_options={"token_expiry_interval": 30},
    )


# -- the storm ------------------------------------------------------------------------------------


class Storm:
    """Runs the scheduled events in a thread; records what it did."""

    def __init__(self, stack: Stack, params: dict[str, Any]):
        self.stack = stack
        self.params = params
        self.events: list[dict[str, Any]] = []
        self.stop = threading.Event()
        self.last_event = time.monotonic()
        self.started = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="chaos-storm", daemon=True)

    def note(self, what: str, **details: Any) -> None:
        elapsed = round(time.monotonic() - self.started, 1)
        self.events.append({"t": elapsed, "event": what, **details})
        self.last_event = time.monotonic()
        log(f"chaos t={elapsed:>5}s {what} {details or ''}")

    def start(self) -> None:
        self.started = time.monotonic()
        self._thread.start()

    def join(self) -> None:
        self.stop.set()
        self._thread.join(60)
        self._burst(False)

    def _run(self) -> None:
        schedule: list[tuple[float, str, Callable[[], None]]] = []
        for index, at in enumerate(self.params["kills"]):
            schedule.append((at, f"kill{index}", lambda i=index: self._kill(i)))
        schedule.append((self.params["redis_at"], "redis", self._restart_redis))
        horizon = max(at for at, _, _ in schedule) + 10
        at = self.params["burst_every"]
        while at < horizon:
            schedule.append((at, "burst", lambda: self._burst(True)))
            schedule.append((at + BURST_SECONDS, "burst-end", lambda: self._burst(False)))
            at += self.params["burst_every"]
        for at, _, action in sorted(schedule, key=lambda item: item[0]):
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
        alive = [w for w in self.stack.workers if w.proc.poll() is None]
        victim = alive[index % len(alive)]
        os.killpg(victim.pid, signal.SIGKILL)
        victim.proc.wait(10)
        self.note("SIGKILL worker", pid=victim.pid)
        time.sleep(2)
        replacement = self.stack.start_worker(**WORKER)  # type: ignore[arg-type]
        self.note("worker started", pid=replacement.pid)

    def _restart_redis(self) -> None:
        from etl import infra

        state_file = self.stack.state_dir / "infra.json"
        state = json.loads(state_file.read_text())
        pid, port = state["redis_pid"], urlsplit(state["redis_url"]).port
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            try:  # our child when this process started it: reap it
                if os.waitpid(pid, os.WNOHANG)[0] == pid:
                    break
            except ChildProcessError:
                pass
            time.sleep(0.05)
        self.note("Redis stopped", pid=pid)
        time.sleep(2)
        proc = infra.start_redis_process(self.stack.state_dir / "redis", int(port))
        state["redis_pid"] = proc.pid  # so Stack.close (infra.down) stops the new one
        state_file.write_text(json.dumps(state, indent=2))
        self.note("Redis started", pid=proc.pid, port=port)


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


def _wait_all(
    stack: Stack, run_ids: list[int], until: Callable[[], bool], poll: float = 1.0
) -> None:
    while not until():
        if all(stack.store.runs.get(r).status in ("done", "failed", "cancelled") for r in run_ids):
            return
        time.sleep(poll)


def run(mode: str = "full") -> list[dict[str, Any]]:
    params = PARAMS[mode]
    config = sandbox_config(params["customers"], params["orders"])
    with Stack(NAME, config, SETTINGS) as stack:
        for _ in range(2):
            stack.start_worker(**WORKER)  # type: ignore[arg-type]
        stack.wait_workers_ready()
        storm = Storm(stack, params)
        started = time.monotonic()
        run_ids = [stack.start_run("orders"), stack.start_run("customers_created")]
        storm.start()
        log(f"chaos: runs {run_ids} started; storm under way")
        storm_end = max(*params["kills"], params["redis_at"]) + 10

        def quiet_long_enough() -> bool:
            return (time.monotonic() - started > storm_end
                    and time.monotonic() - storm.last_event > RECOVER_AFTER)  # fmt: skip

        _wait_all(stack, run_ids, quiet_long_enough)
        storm.join()
        resumed: list[int] = []
        why: list[dict[str, Any]] = []
        for _ in range(3):
            pending = [r for r in run_ids if stack.store.runs.get(r).status != "done"]
            if not pending:
                break
            for run_id in pending:
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
        elapsed = time.monotonic() - started
        final = [stack.store.runs.get(r) for r in run_ids]
        vtex, synerise = stack.vtex_stats(), stack.synerise_stats()
        log("chaos: reconciling")
        result = reconcile(stack, params, run_ids)
    runs = [{"run_id": r.id, "scope": r.scope, "status": r.status, "read": r.read_count,
             "sent": r.sent_count, "rejected": r.rejected_count, "failed": r.failed_count,
             "error": r.error} for r in final]  # fmt: skip
    summary = {
        "kind": "summary",
        "customers": params["customers"],
        "orders": params["orders"],
        "seconds": round(elapsed, 1),
        "resumed": resumed,
        "resume_reasons": why,
        "all_done": all(r.status == "done" for r in final),
        "faults": {
            "vtex_5xx": vtex["faults"]["errors_injected"],
            "vtex_429": vtex["rate_limited"],
            "synerise_5xx": synerise["errors_injected"],
            "synerise_429": synerise["rate_limited"],
            "synerise_item_503": synerise["fault_rejected_items"],
            "token_expired_401": synerise["token_expired_401"],
        },
        **{k: v for k, v in result.items()},
    }
    print(table(
        f"Chaos: {params['orders']} orders + {params['customers']} customers, "
        f"{len(params['kills'])} SIGKILLs, 1 Redis restart, {summary['seconds']} s",
        ["lost", "duplicated", "rejected", "expected rejected (dirty)", "wrong rejects",
         "missed rejects", "resumed runs"],
        [[result["lost"], result["duplicated"], result["rejected"], result["expected_rejected"],
          result["wrong_rejects"], result["missed_rejects"], len(set(resumed))]],
    ))  # fmt: skip
    print(table("Faults served", list(summary["faults"]), [list(summary["faults"].values())]))
    print(table("Runs", ["run", "scope", "status", "read", "sent", "rejected", "failed"],
                [[r["run_id"], r["scope"], r["status"], r["read"], r["sent"], r["rejected"],
                  r["failed"]] for r in runs]))  # fmt: skip
    if result["wrong_rejects"]:
        print(f"wrong rejects by reason: {result['wrong_reject_reasons']}")
    return [{"kind": "event", **event} for event in storm.events] + [
        {"kind": "run", **r} for r in runs
    ] + [summary]
