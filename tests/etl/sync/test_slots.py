"""Two slots, enforced across processes: starts from separate ``vtex-synerise`` processes."""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterator

import psycopg2
import pytest

from etl.infra import free_port
from etl.sync import runs
from etl.sync.engine import Engine
from tests.helpers.sync import (
    RANGE_ARGS,
    WHOLE_RANGE,
    assert_profiles_arrived,
    cli_argv,
    expected,
    process_cwd,
    process_env,
    run_cli,
    set_faults,
    stats,
    wait_for_run,
)


class Sampler:
    """Counts, every 20 ms, the runs PostgreSQL says are running and the lease holders."""

    def __init__(self, engine: Engine, dsn: str) -> None:
        self.engine, self.dsn = engine, dsn
        self.running: list[int] = []
        self.holders: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        conn = psycopg2.connect(self.dsn)
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                while not self._stop.wait(0.02):
                    cur.execute("SELECT count(*) FROM sync_run WHERE status = 'running'")
                    self.running.append(cur.fetchone()[0])
                    self.holders.append(len(self.engine.lease.holders()))
        finally:
            conn.close()

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen]]:
    started: list[subprocess.Popen] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.sandbox(customers=150, orders=200)
@pytest.mark.sync_env(SYNC_LEASE_TTL="10", SYNC_CHUNK_SIZE="10", SYNC_FETCH_CONCURRENCY="2")
def test_three_starts_two_run_the_third_waits_then_runs_by_itself(
    sandbox, engine, worker, sync_env, database_url, procs
):
    # Slow Synerise down so the runs overlap the starts.
    set_faults(sandbox, {"route": "synerise.*_batch", "latency_ms": 400})
    with Sampler(engine, database_url) as sampler:
        for scope in ("orders", "customers", "orders"):
            procs.append(
                subprocess.Popen(
                    cli_argv("sync", "start", scope, *RANGE_ARGS, "--json"),
                    env=process_env(sync_env),
                    cwd=process_cwd(sync_env),
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
            )
        started = []
        for proc in procs:
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err
            started.append(json.loads(out))
        assert sorted(run["status"] for run in started) == ["queued", "running", "running"]
        ended = {run["id"]: wait_for_run(engine.store, run["id"], timeout=120) for run in started}
    assert {run.status for run in ended.values()} == {"done"}
    queued = next(run["id"] for run in started if run["status"] == "queued")
    others = [run for run_id, run in ended.items() if run_id != queued]
    # It started by itself, when the first of the other two had finished.
    assert ended[queued].started_at >= min(run.finished_at for run in others)
    assert max(sampler.running) == 2, "the two first runs never ran at the same time"
    assert max(sampler.holders) <= 2
    truth = expected(sandbox)
    synerise = stats(sandbox)
    assert synerise["transactions"] == truth["orders"]["sent"]
    assert synerise["duplicate_transactions"] == 0  # two orders runs: overwrites at most
    assert_profiles_arrived(sandbox)
    assert engine.lease.holders() == []


@pytest.mark.sync_env(SYNC_LEASE_TTL="60")
def test_no_queue_refuses_with_exit_3_when_both_slots_are_busy(sandbox, engine, sync_env):
    # No worker: the two runs keep their slots for the lease TTL.
    for _ in range(2):
        assert runs.start(engine, runs.StartRequest("orders", WHOLE_RANGE)).status == "running"
    result = run_cli(sync_env, "sync", "start", "customers", *RANGE_ARGS, "--no-queue")
    assert result.returncode == 3, result.stderr
    assert "2 syncs are already active" in result.stderr and "--no-queue" in result.stderr
    refused = engine.store.runs.find(limit=1)[0]
    assert refused.scope == "customers_created" and refused.status == "cancelled"
    assert len(engine.lease.holders()) == 2
    # With a free slot, --no-queue just starts.
    runs.cancel(engine, engine.store.runs.find(status="running")[0].id)
    result = run_cli(sync_env, "sync", "start", "customers", *RANGE_ARGS, "--no-queue", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["status"] == "running"


@pytest.mark.parametrize("unreachable", ["CELERY_BROKER_WRITE_URL", "REDIS_URL"])
def test_a_start_that_cannot_take_or_queue_its_slot_records_no_run(
    sandbox, engine, sync_env, unreachable
):
    """Retrying after the error must not leave a run behind that a worker starts later."""
    closed = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    env = {**sync_env, unreachable: closed}
    result = run_cli(env, "sync", "start", "customers", *RANGE_ARGS, timeout=180)
    assert result.returncode == 5, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "no run was recorded" in lines[0], result.stderr
    assert engine.store.runs.find() == []
    assert engine.lease.holders() == []


@pytest.mark.sync_env(SYNC_LEASE_TTL="60")
def test_resume_of_a_healthy_run_says_so_and_sends_nothing(sandbox, engine, sync_env, sync_redis):
    run = runs.start(engine, runs.StartRequest("orders", WHOLE_RANGE))  # no worker: it waits
    assert engine.queue_sizes is not None
    queued = engine.queue_sizes(["backfill"])  # every priority's list
    claimed = engine.store.runs.claim_planning(run.id, "a-live-producer", 60)
    assert claimed is not None
    result = run_cli(sync_env, "sync", "resume", str(run.id))
    assert result.returncode == 0, result.stderr
    assert f"run {run.id} running (healthy: nothing to resume)" in result.stdout
    assert engine.queue_sizes(["backfill"]) == queued, "a healthy run's work was sent again"
