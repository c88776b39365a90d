"""What every benchmark shares: a fresh stack, process accounting, results and tables.

A `Stack` is one self-contained deployment of the real pipeline on this machine:

* embedded Redis and PostgreSQL (`etl.infra`) in a fresh ``ETL_STATE_DIR`` under ``/tmp``;
* the sandbox emulators in their own process (`bench.sandbox_proc`), so their CPU is apart;
* real Celery workers started through the CLI (``vtex-synerise worker -P ... -c ... -Q ...``),
  each in its own session (process group);
* runs started through the CLI (``vtex-synerise sync start ... --json``) and followed in
  PostgreSQL, whose ``started_at``/``finished_at`` time them.

`Stack.close` (also on errors: use it as a context manager) kills every process group it started,
stops the embedded servers and deletes the state folder, so a benchmark leaves no orphan behind.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import requests

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
PYTHON = sys.executable
CLI = [PYTHON, "-m", "etl.cli"]

# The sandbox's generated data spans 2025-06-01 .. 2026-06-01 (etl.sandbox.data.Dataset).
DATA_FROM = "2025-06-01T00:00:00Z"
DATA_TO = "2026-06-01T00:00:00Z"


# -- machine and results ------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    model = ""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        for line in subprocess.run(
            ["lscpu"], capture_output=True, text=True, check=False, timeout=10
        ).stdout.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    commit = ""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        commit = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, check=False, timeout=10,
        ).stdout.strip()  # fmt: skip
    return {
        "cpu_model": model,
        "nproc": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "git_commit": commit,
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def write_results(name: str, rows: Iterable[Mapping[str, Any]], command: str) -> Path:
    """Append rows as JSON lines to ``bench/results/{name}.jsonl`` with machine and command."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.jsonl"
    info = machine()
    with path.open("a") as handle:
        for row in rows:
            handle.write(json.dumps({"bench": name, "command": command, "machine": info, **row},
                                    default=str) + "\n")  # fmt: skip
    return path


def table(title: str, headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A plain-text table (also valid Markdown) for the terminal and docs/benchmarks.md."""
    cells = [[_fmt(value) for value in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h)
              for i, h in enumerate(headers)]  # fmt: skip
    line = "| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |"
    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    body = ["| " + " | ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) + " |"
            for r in cells]  # fmt: skip
    return "\n".join([f"\n{title}", line, rule, *body])


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        if value == 0:
            return "0"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        return f"{value:.3g}" if abs(value) < 1 else f"{value:.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def log(message: str) -> None:
    """Progress on stderr (tables go to stdout)."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- process accounting ---------------------------------------------------------------------------


def tree_cpu(pid: int) -> float:
    """User+system CPU seconds of a process, its live descendants and its reaped children."""
    try:
        root = psutil.Process(pid)
        times = root.cpu_times()
        total = times.user + times.system + times.children_user + times.children_system
        for child in root.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                child_times = child.cpu_times()
                total += child_times.user + child_times.system
        return total
    except psutil.Error:
        return 0.0


def tree_rss(pid: int) -> int:
    """Resident bytes of a process and its live descendants."""
    try:
        root = psutil.Process(pid)
        total = root.memory_info().rss
        for child in root.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                total += child.memory_info().rss
        return total
    except psutil.Error:
        return 0


def peak_rss_kib(pid: int) -> int:
    """The high-water mark of a process's resident memory (``VmHWM``), in KiB."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def kill_group(proc: subprocess.Popen[Any], timeout: float = 10.0) -> None:
    """SIGTERM a process group, then SIGKILL what is left; reap the leader."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout)
    # Prefork children share the group; they may outlive their parent for a moment.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(5)


# -- the stack ------------------------------------------------------------------------------------


@dataclass
class SandboxConfig:
    """What `bench.sandbox_proc` serves (see its docstring)."""

    customers: int = 1000
    orders: int = 2000
    products: int = 60
    seed: int = 1
    dirty_share: float = 0.05
    vtex_faults: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    synerise_faults: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    vtex_options: dict[str, Any] = field(default_factory=dict)
    synerise_options: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> str:
        return json.dumps(self.__dict__)


@dataclass
class Worker:
    """A ``vtex-synerise worker`` process group."""

    proc: subprocess.Popen[bytes]
    argv: list[str]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.proc.pid


class Stack:
    """A fresh, self-contained deployment: infra, sandbox, workers. Use ``with Stack(...)``.

    Args:
        name: used in the state folder's name.
        sandbox: the sandbox to serve.
        settings: ETL settings (``VTEX_RATE_LIMIT``, ``SYNC_FETCH_CONCURRENCY`` ...) for every
            process of the stack.
    """

    def __init__(self, name: str, sandbox: SandboxConfig, settings: Mapping[str, str]):
        self.name = name
        self.sandbox_config = sandbox
        self.settings = dict(settings)
        self.state_dir = Path(tempfile.mkdtemp(prefix=f"bench-{name}-", dir="/tmp"))
        self.workers: list[Worker] = []
        self.services: dict[str, subprocess.Popen[bytes]] = {}
        self.sandbox_proc: subprocess.Popen[str] | None = None
        self.sandbox_info: dict[str, Any] = {}
        self.env: dict[str, str] = {}
        self.redis_url = ""
        self.database_url = ""
        self._store: Any = None
        self._closed = False

    # -- lifecycle --------------------------------------------------------------------------
    def __enter__(self) -> Stack:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        from etl import infra
        from etl.state.migrate import upgrade

        state = infra.up(self.state_dir)
        self.redis_url, self.database_url = state.redis_url, state.database_url
        upgrade(self.database_url)
        self._start_sandbox()
        base = {k: v for k, v in os.environ.items() if not k.startswith(("VTEX_", "SYNERISE_",
                                                                           "SYNC_"))}  # fmt: skip
        self.env = {
            **base,
            **self.sandbox_info["env"],
            "REDIS_URL": self.redis_url,
            "DATABASE_URL": self.database_url,
            "ETL_STATE_DIR": str(self.state_dir),
            "PYTHONUNBUFFERED": "1",
            **self.settings,
        }

    def _start_sandbox(self) -> None:
        log_path = self.state_dir / "sandbox.log"
        self.sandbox_proc = subprocess.Popen(
            [PYTHON, "-m", "bench.sandbox_proc", "--config", self.sandbox_config.as_json()],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log_path.open("w"),
            text=True,
            start_new_session=True,
        )
        line = self.sandbox_proc.stdout.readline() if self.sandbox_proc.stdout else ""
        if not line:
            raise RuntimeError(f"sandbox did not start: {log_path.read_text()[-2000:]}")
        self.sandbox_info = json.loads(line)

    def close(self) -> None:
        """Kill every process group started here, stop the servers, delete the state folder."""
        if self._closed:
            return
        self._closed = True
        for proc in [*self.services.values(), *(worker.proc for worker in self.workers)]:
            kill_group(proc)
        if self.sandbox_proc is not None:
            with contextlib.suppress(OSError):
                if self.sandbox_proc.stdin:
                    self.sandbox_proc.stdin.close()
            kill_group(self.sandbox_proc)
        if self._store is not None:
            with contextlib.suppress(Exception):
                self._store.close()
        from etl import infra

        with contextlib.suppress(Exception):
            infra.down(self.state_dir)
        if not os.environ.get("BENCH_KEEP_STATE"):
            shutil.rmtree(self.state_dir, ignore_errors=True)

    # -- URLs and inspection ----------------------------------------------------------------
    @property
    def vtex_url(self) -> str:
        return str(self.sandbox_info["vtex_url"])

    @property
    def synerise_url(self) -> str:
        return str(self.sandbox_info["synerise_url"])

    @property
    def sandbox_pid(self) -> int:
        assert self.sandbox_proc is not None
        return self.sandbox_proc.pid

    def vtex_stats(self) -> dict[str, Any]:
        return dict(requests.get(f"{self.vtex_url}/__sandbox__/stats", timeout=30).json())

    def synerise_stats(self) -> dict[str, Any]:
        return dict(requests.get(f"{self.synerise_url}/__sandbox__/stats", timeout=30).json())

    def reset_sandbox(self) -> None:
        """Forget stored Synerise data and both servers' counters (fault rules stay)."""
        requests.post(f"{self.vtex_url}/__sandbox__/reset", timeout=60).raise_for_status()
        requests.post(f"{self.synerise_url}/__sandbox__/reset", timeout=60).raise_for_status()

    def script_args(self) -> list[str]:
        """The URL and credential flags of the hand-written scripts (bench/naive.py,
        bench/peer.py) for this stack's sandbox."""
        env = self.sandbox_info["env"]
        return ["--vtex-url", env["VTEX_BASE_URL"], "--app-key", env["VTEX_APP_KEY"],
                "--app-token", env["VTEX_APP_TOKEN"], "--synerise-url", env["SYNERISE_API_HOST"],
                "--api-key", env["SYNERISE_API_KEY"]]  # fmt: skip

    def set_faults(self, server: str, rules: list[dict[str, Any]]) -> None:
        url = self.vtex_url if server == "vtex" else self.synerise_url
        requests.post(f"{url}/__sandbox__/faults", json=rules, timeout=30).raise_for_status()

    def clear_faults(self, server: str) -> None:
        url = self.vtex_url if server == "vtex" else self.synerise_url
        requests.delete(f"{url}/__sandbox__/faults", timeout=30).raise_for_status()

    @property
    def store(self) -> Any:
        if self._store is None:
            from etl.state.store import StateStore

            self._store = StateStore(self.database_url)
        return self._store

    def redis_pid(self) -> int:
        from etl import infra

        return int(infra._read_state(self.state_dir).redis_pid)  # type: ignore[union-attr]

    def postgres_pid(self) -> int | None:
        from etl import infra

        return infra._postgres_pid(self.state_dir / "pg")

    def infra_cpu(self) -> float:
        """CPU seconds of Redis and PostgreSQL (postmaster and every backend)."""
        total = tree_cpu(self.redis_pid())
        pg = self.postgres_pid()
        return total + (tree_cpu(pg) if pg else 0.0)

    def wal_position(self) -> int:
        """PostgreSQL's WAL position in bytes: the difference of two is the WAL written between."""
        row = self.store.db.fetch_one("SELECT pg_current_wal_lsn() - '0/0' AS at", ())
        return int(row["at"]) if row else 0

    # -- workers ------------------------------------------------------------------------------
    def start_worker(
        self,
        pool: str = "threads",
        concurrency: int = 8,
        queues: str = "backfill",
        name: str | None = None,
        extra_env: Mapping[str, str] | None = None,
    ) -> Worker:
        """Start ``vtex-synerise worker -P pool -c concurrency -Q queues`` in its own group."""
        index = len(self.workers)
        hostname = name or f"bench{index}@%h"
        argv = [*CLI, "--log-level", "WARNING", "worker", "-P", pool, "-c", str(concurrency),
                "-Q", queues, "-n", hostname]  # fmt: skip
        return self._spawn_worker(argv, extra_env)

    def start_profiled_worker(self, out: Path, queues: str = "backfill") -> Worker:
        """A ``-P solo`` worker under cProfile (CPU time); stats land in ``out`` when stopped."""
        hostname = f"profiled{len(self.workers)}@%h"
        argv = [PYTHON, "-m", "bench.profiled_worker", str(out), "--", "worker", "-P", "solo",
                "-Q", queues, "-n", hostname, "--loglevel", "WARNING"]  # fmt: skip
        return self._spawn_worker(argv, None)

    def _spawn_worker(self, argv: list[str], extra_env: Mapping[str, str] | None) -> Worker:
        index = len(self.workers)
        log_path = self.state_dir / f"worker{index}.log"
        proc = subprocess.Popen(
            argv,
            cwd=ROOT,
            env={**self.env, **(extra_env or {})},
            stdin=subprocess.DEVNULL,
            stdout=log_path.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        worker = Worker(proc, argv, log_path)
        self.workers.append(worker)
        return worker

    def wait_workers_ready(self, timeout: float = 60.0) -> None:
        """Until every started worker answers a ping (its pool is up and consuming)."""
        from celery import Celery

        expected = sum(1 for w in self.workers if w.proc.poll() is None)
        app = Celery(broker=self.redis_url)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                replies = app.control.ping(timeout=1.0) or []
                if len(replies) >= expected:
                    return
            logs = "\n".join(w.log_path.read_text()[-1500:] for w in self.workers)
            raise RuntimeError(f"workers not ready after {timeout:.0f} s:\n{logs}")
        finally:
            app.close()

    def stop_worker(self, worker: Worker) -> None:
        kill_group(worker.proc)

    def held_chunks(self, worker: Worker, run_ids: Sequence[int]) -> list[int]:
        """Ids of the running chunks of these runs that a process of ``worker`` has claimed."""
        try:
            leader = psutil.Process(worker.pid)
            pids = {leader.pid, *(c.pid for c in leader.children(recursive=True))}
        except psutil.Error:
            return []
        with self.store.db.transaction() as cur:
            cur.execute(
                "SELECT id, claimed_by FROM sync_chunk"
                " WHERE run_id = ANY(%s) AND status = 'running'",
                (list(run_ids),),
            )
            rows = cur.fetchall()
        return [r["id"] for r in rows if claim_pid(r["claimed_by"]) in pids]

    def freeze_holding(self, worker: Worker, run_ids: Sequence[int], timeout: float) -> list[int]:
        """Freeze ``worker``'s process group (SIGSTOP: a stand-in for a network partition, it
        answers and renews nothing) as soon as it holds a chunk of these runs; the chunks it
        holds, frozen. Thaw it with ``os.killpg(worker.pid, signal.SIGCONT)``."""
        deadline = time.monotonic() + timeout
        while True:
            if self.held_chunks(worker, run_ids):
                os.killpg(worker.pid, signal.SIGSTOP)
                held = self.held_chunks(worker, run_ids)  # not finished just before the stop
                if held:
                    return held
                os.killpg(worker.pid, signal.SIGCONT)
            if time.monotonic() > deadline:
                raise TimeoutError(f"worker {worker.pid} held no chunk within {timeout:.0f} s")
            time.sleep(0.05)

    # -- services and infrastructure ----------------------------------------------------------
    def start_service(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        """``vtex-synerise ARGS`` (beat, webhooks serve ...) in its own process group, logging to
        ``NAME.log`` in the state folder; stopped by `close`."""
        log_path = self.state_dir / f"{name}.log"
        proc = subprocess.Popen(
            [*CLI, "--log-level", "WARNING", *args],
            cwd=ROOT, env=self.env, stdin=subprocess.DEVNULL, stdout=log_path.open("wb"),
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        self.services[name] = proc
        return proc

    def start_webhooks(self, workers: int, threads: int) -> tuple[subprocess.Popen[bytes], str]:
        """``webhooks serve --gunicorn`` (needs ``WEBHOOK_SECRET`` in the settings) on a free
        port; the process and its URL once it answers ``/readyz``."""
        from etl.infra import free_port

        port = free_port()
        proc = self.start_service("webhooks", "webhooks", "serve", "--gunicorn", "--workers",
                                  str(workers), "--threads", str(threads), "--bind",
                                  f"127.0.0.1:{port}")  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(requests.ConnectionError):
                if requests.get(url + "/readyz", timeout=1).status_code == 200:
                    return proc, url
            if proc.poll() is not None or time.monotonic() > deadline:
                logged = (self.state_dir / "webhooks.log").read_text()[-2000:]
                raise RuntimeError(f"webhooks did not start: {logged}")
            time.sleep(0.2)

    def infra(self, *args: str) -> str:
        """``vtex-synerise infra ARGS`` on this stack's embedded servers, as an operator types it
        (without ``REDIS_URL``/``DATABASE_URL``, which would make them "external")."""
        env = {k: v for k, v in self.env.items() if k not in ("REDIS_URL", "DATABASE_URL")}
        done = subprocess.run(
            [*CLI, "--log-level", "WARNING", "infra", *args], cwd=ROOT, env=env,
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"vtex-synerise infra {' '.join(args)} exited "
                               f"{done.returncode}: {done.stderr[-2000:]}")  # fmt: skip
        return done.stdout

    def workers_cpu(self) -> float:
        return sum(tree_cpu(w.pid) for w in self.workers if w.proc.poll() is None)

    # -- runs ---------------------------------------------------------------------------------
    def cli(self, *args: str, timeout: float = 120.0, check: bool = True) -> str:
        """Run a ``vtex-synerise`` command with the stack's environment; return its stdout."""
        done = subprocess.run(
            [*CLI, "--log-level", "WARNING", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and done.returncode != 0:
            raise RuntimeError(
                f"vtex-synerise {' '.join(args)} exited {done.returncode}: {done.stderr[-2000:]}"
            )
        return done.stdout

    def start_run(
        self,
        scope: str,
        date_from: str = DATA_FROM,
        date_to: str = DATA_TO,
        *,
        full: bool = False,
    ) -> int:
        """``vtex-synerise sync start orders|customers --from --to [--full] --json``; the run id.

        ``full`` ignores the entity ledger, so a repeated run in one stack does the same work
        as the first (which has an empty ledger).
        """
        kind = ["orders"] if scope == "orders" else ["customers", "--by", scope.split("_", 1)[1]]
        flags = ["--full"] if full else []
        out = self.cli(
            "sync", "start", *kind, "--from", date_from, "--to", date_to, *flags, "--json"
        )
        return int(json.loads(out)["id"])

    def warm_up(self, scope: str, date_to: str = "2025-06-15T00:00:00Z") -> None:
        """Sync the first two weeks once, so measured runs start with warm workers (imports,
        connections, pool children); measured runs then use ``--full``."""
        run = self.wait_run(self.start_run(scope, DATA_FROM, date_to), timeout=600)
        if run.status != "done":
            raise RuntimeError(f"warm-up run {run.id} ended {run.status}: {run.error}")

    def wait_run(self, run_id: int, timeout: float, poll: float = 0.25) -> Any:
        """Poll PostgreSQL until the run ends; raise ``TimeoutError`` after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            run = self.store.runs.get(run_id)
            if run.status in ("done", "failed", "cancelled"):
                return run
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"run {run_id} still {run.status} after {timeout:.0f} s "
                    f"({run.read_count}/{run.records_total} read)"
                )
            time.sleep(poll)


def claim_pid(claimed_by: str | None) -> int:
    """The process id in a chunk claim (``hostname:pid:token``); 0 when unclaimed."""
    return int((claimed_by or "::").split(":")[1] or 0)


def plan_then_process(stack: Stack, run_id: int) -> tuple[dict[str, Any], Any, int]:
    """For memory benchmarks: the run's producer task body alone in a process of its own
    (bench/producer_proc.py), then one ``-P threads -c 2`` worker (one process, never recycled)
    for its chunks. Returns the producer's report, the finished run and the worker's peak RSS
    (KiB)."""
    done = subprocess.run(
        [PYTHON, "-m", "bench.producer_proc", str(run_id)],
        cwd=ROOT, env=stack.env, capture_output=True, text=True, timeout=3600, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"producer process failed: {done.stderr[-2000:]}")
    producer: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    if not producer["planning_done"]:
        raise RuntimeError(f"the producer did not finish planning run {run_id}")
    worker = stack.start_worker(pool="threads", concurrency=2)
    run = stack.wait_run(run_id, timeout=3600)
    worker_peak = peak_rss_kib(worker.pid)
    if run.status != "done":
        raise RuntimeError(f"run {run_id} ended {run.status}: {run.error}")
    return producer, run, worker_peak


def ceiling_summary(
    pipeline: Sequence[Mapping[str, Any]], naive: Mapping[str, Any], rate: float, unit: str
) -> dict[str, Any]:
    """The summary row of a throughput benchmark against a rate ceiling: medians of the
    pipeline runs (``{unit}_per_s``, ``ratio``, ``budget_use``), their 429s and the speed-up
    over the naive script."""
    speed = median([r[f"{unit}_per_s"] for r in pipeline])
    return {
        "kind": "summary",
        "rate_limit": rate,
        "runs": len(pipeline),
        f"median_{unit}_per_s": speed,
        "median_ratio": median([r["ratio"] for r in pipeline]),
        "median_budget_use": median([r["budget_use"] for r in pipeline]),
        "vtex_429_total": sum(r["vtex_429"] for r in pipeline),
        f"naive_{unit}_per_s": naive[f"{unit}_per_s"],
        "speedup_vs_naive": round(speed / naive[f"{unit}_per_s"], 1),
    }


def run_seconds(run: Any) -> float:
    """Wall time of a run, from its start to its end, as PostgreSQL recorded them."""
    return float((run.finished_at - run.started_at).total_seconds())


@contextlib.contextmanager
def cpu_meter(pids: Mapping[str, int]) -> Iterator[dict[str, float]]:
    """CPU seconds each named process tree used inside the ``with`` block."""
    before = {name: tree_cpu(pid) for name, pid in pids.items()}
    out: dict[str, float] = {}
    yield out
    for name, pid in pids.items():
        out[name] = tree_cpu(pid) - before[name]
