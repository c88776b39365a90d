"""PostgreSQL's CPU per customer in each step of a chunk, apart from everything else.

A diagnostic for the customers path (docs/benchmarks.md, section 7): the state store's own
calls, on a fresh stack's PostgreSQL, measured as the CPU of the store's backend process
(psutil), per record:

* ``append``: the producer's chunk rows, two chunks a transaction, as ``etl.sync.producer``
  writes them: keys only (their listed ``CL`` documents wait in Redis, ``etl.state.listed``:
  the default), or carrying the documents (about 1 KB each; past ``SYNC_REDIS_LISTED_RECORDS``);
* ``claim``: ``Chunks.claim`` (the chunk running, its payload if any and its ledger hashes);
* ``complete``: ``Chunks.complete`` with 490 accepted records and 10 rejects (the ledger upsert,
  the rejects, the run's counters, the chunk done).

Rounds of 40 chunks of 500 customers, each round two new runs over the same keys (documents
in Redis, then in the rows): the first inserts the ledger rows, the next ones rewrite them with
the same hashes, as a ``--full`` resync does; and the WAL the three steps write.
``python -m bench pg_steps`` (not in the suite: it explains figures, it does not set goals).
"""

from __future__ import annotations

import hashlib
import random
import string
from datetime import UTC, datetime, timedelta
from typing import Any

import psutil

from bench.harness import SandboxConfig, Stack, log, table
from etl.state.chunks import ChunkOutcome

NAME = "pg_steps"

PARAMS = {"quick": {"chunks": 10, "rounds": 2}, "full": {"chunks": 40, "rounds": 4}}
SIZE = 500
ACCEPTED = 490
T0 = datetime(2025, 1, 1, tzinfo=UTC)


def _documents(chunks: int) -> list[list[dict[str, Any]]]:
    rng = random.Random(1)

    def text(n: int) -> str:
        return "".join(rng.choices(string.ascii_letters, k=n))

    return [
        [
            {"id": f"{c:04d}-{i:04d}-{text(20)}", "email": f"{text(10)}@example.com",
             "firstName": text(8), "lastName": text(10), "rclastcart": text(400),
             "tradeName": text(200)}
            for i in range(SIZE)
        ]
        for c in range(chunks)
    ]  # fmt: skip


def one_round(
    stack: Stack, backend: psutil.Process, docs: list[list[dict[str, Any]]], carried: bool
) -> dict[str, float]:
    """One run's chunks through the three steps; CPU µs (and WAL bytes) per customer."""
    store = stack.store
    run_id = store.runs.create("backfill", "customers_created", T0, T0 + timedelta(days=10))
    assert store.runs.transition(run_id, "running", ("queued",))
    spent: dict[str, float] = {}

    def cpu() -> float:
        times = backend.cpu_times()
        return float(times.user + times.system)

    ids: list[int] = []
    cursor = None
    wal_at = stack.wal_position()
    before = cpu()  # each step in one span: the backend's CPU time ticks every 10 ms
    for first in range(0, len(docs), 2):
        pair = [([doc["id"] for doc in chunk], chunk if carried else None)
                for chunk in docs[first : first + 2]]  # fmt: skip
        position = (T0, (first + len(pair)) * SIZE)
        ids += store.chunks.append(run_id, pair, position, expected=cursor)
        cursor = position
    spent["append"] = cpu() - before
    before = cpu()
    claimed = [
        store.chunks.claim(chunk_id, "bench", 300, ledger_stream=lambda scope: "profiles")
        for chunk_id in ids
    ]
    spent["claim"] = cpu() - before
    outcomes = []
    for chunk_docs in docs:
        outcome = ChunkOutcome("profiles", read=SIZE)
        for doc in chunk_docs[:ACCEPTED]:
            outcome.accept(doc["id"], hashlib.sha256(doc["id"].encode()).hexdigest()[:32])
        for doc in chunk_docs[ACCEPTED:]:
            outcome.reject(doc["id"], "INVALID_EMAIL", "bad e-mail", {"email": "***"})
        outcomes.append(outcome)
    before = cpu()
    for chunk, outcome in zip(claimed, outcomes, strict=True):
        assert chunk is not None
        store.chunks.complete(chunk, outcome, expected=dict(chunk.known))
    spent["complete"] = cpu() - before
    records = len(docs) * SIZE
    costs = {step: round(seconds / records * 1e6, 2) for step, seconds in spent.items()}
    return {**costs, "wal_bytes": round((stack.wal_position() - wal_at) / records)}


def run(mode: str = "full") -> list[dict[str, Any]]:
    params = PARAMS[mode]
    docs = _documents(params["chunks"])
    rows = []
    with Stack(NAME, SandboxConfig(customers=10, orders=10, seed=1), {}) as stack:
        with stack.store.db.transaction() as cur:
            cur.execute("SELECT pg_backend_pid() AS pid")
            backend = psutil.Process(int(cur.fetchone()["pid"]))
        for attempt in range(params["rounds"]):
            for carried in (False, True):
                costs = one_round(stack, backend, docs, carried)
                steps = costs["append"] + costs["claim"] + costs["complete"]
                row = {"round": attempt + 1, "ledger": "insert" if attempt == 0 else "rewrite",
                       "documents": "rows" if carried else "redis", **costs,
                       "total": round(steps, 2)}  # fmt: skip
                log(f"pg steps: {row}")
                rows.append(row)
    print(table(
        f"PostgreSQL CPU µs per customer by step ({params['chunks']} chunks of {SIZE} a round)",
        ["round", "ledger", "documents in", "append", "claim", "complete", "total",
         "WAL bytes"],
        [[r["round"], r["ledger"], r["documents"], r["append"], r["claim"], r["complete"],
          r["total"], r["wal_bytes"]] for r in rows],
    ))  # fmt: skip
    return rows
