"""One heartbeat per worker process: it keeps the process's claims and its runs' leases alive.

A chunk task claims its chunk in PostgreSQL for ``SYNC_CLAIM_TTL`` seconds under the process's
token (``host:pid:random``); a producer claims its run's planning the same way. Instead of each
task renewing its own claim and its run's Redis lease before every write (a PostgreSQL and a
Redis round trip per step), one daemon thread per process extends *all* of the process's live
claims in one transaction and renews the leases of their runs in one Redis pipeline, every
``SYNC_CLAIM_TTL / 3`` seconds, and records what it learnt in memory. A task then checks that
memory (``check``), which costs nothing: its run is still running, its run still holds its slot,
its claim is still its own. The writes themselves are fenced in SQL (a chunk completes only for
the attempt and holder that claimed it, and only while its run is running), so the check is an
early stop, not the guarantee.

When the process dies, freezes (SIGSTOP) or is cut off from PostgreSQL, the heartbeat stops with
it, the claims expire within ``SYNC_CLAIM_TTL``, and another worker's upkeep puts the work back
(``Chunks.recover_expired``, ``Runs.recover_planning``) even while other workers keep the run
itself alive. A frozen process that wakes up finds its claims handed on and writes nothing.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from etl.errors import ClaimLostError, RunStoppedError, SlotLostError
from etl.lease import SlotLease
from etl.state.store import StateStore

__all__ = ["WorkerHeartbeat"]

log = logging.getLogger(__name__)


@dataclass
class _RunSeen:
    """What the heartbeat last learnt about a run this process works on."""

    confirmed_at: float = -float("inf")
    """``time.monotonic()`` of the last successful lease renewal."""
    stopped: str | None = None
    """The run's status once it is no longer ``running``."""
    lease_lost: bool = False


class WorkerHeartbeat:
    """This process's claims and the one thread that keeps them alive. Share it between threads.

    Args:
        store: the state store.
        lease: the run slots (``SYNC_MAX_ACTIVE_RUNS``).
        claim_ttl: seconds a claim lasts unless extended (``SYNC_CLAIM_TTL``); the heartbeat
            runs every third of it.
        lease_token: the lease token of a run id (``etl.sync.runs.token``).
    """

    def __init__(
        self,
        store: StateStore,
        lease: SlotLease,
        claim_ttl: float,
        lease_token: Callable[[int], str],
    ) -> None:
        self.store = store
        self.lease = lease
        self.claim_ttl = claim_ttl
        self.interval = claim_ttl / 3
        self.lease_token = lease_token
        self._pid = -1
        self._reset()

    def _reset(self) -> None:
        """Fresh state for this process (a forked pool child inherits none of its parent's)."""
        self._pid = os.getpid()
        self._token = f"{socket.gethostname()}:{self._pid}:{secrets.token_hex(4)}"
        self._lock = threading.Lock()
        self._beating = threading.Lock()
        self._chunks: dict[int, int] = {}  # chunk id -> run id
        self._plannings: set[int] = set()
        self._lost: set[tuple[str, int]] = set()  # ("chunk"|"planning", id)
        self._runs: dict[int, _RunSeen] = {}
        self._beat_at = time.monotonic()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _here(self) -> None:
        if os.getpid() != self._pid:
            self._reset()

    @property
    def token(self) -> str:
        """The holder name of this process's claims."""
        self._here()
        return self._token

    # -- claims this process works on ---------------------------------------------------------

    def hold_chunk(self, chunk_id: int, run_id: int) -> None:
        """This process now works on the chunk (it claimed it in PostgreSQL)."""
        self._hold(lambda: self._chunks.__setitem__(chunk_id, run_id), ("chunk", chunk_id), run_id)

    def drop_chunk(self, chunk_id: int) -> None:
        """This process is done with the chunk (completed, released, failed or lost)."""
        with self._lock:
            self._chunks.pop(chunk_id, None)
            self._lost.discard(("chunk", chunk_id))

    def hold_planning(self, run_id: int) -> None:
        """This process now plans the run (it claimed its planning in PostgreSQL)."""
        self._hold(lambda: self._plannings.add(run_id), ("planning", run_id), run_id)

    def drop_planning(self, run_id: int) -> None:
        with self._lock:
            self._plannings.discard(run_id)
            self._lost.discard(("planning", run_id))

    def _hold(self, add: Callable[[], None], claim: tuple[str, int], run_id: int) -> None:
        self._here()
        with self._lock:
            add()
            self._lost.discard(claim)
            seen = self._runs.setdefault(run_id, _RunSeen())
            fresh = time.monotonic() - seen.confirmed_at < self.interval
            if self._thread is None:
                self._start()
        if not fresh:  # first work on this run here: confirm its slot now, then every beat
            renewed = self.lease.renew(self.lease_token(run_id))
            with self._lock:
                if renewed:
                    seen.confirmed_at = time.monotonic()
                else:
                    seen.lease_lost = True

    # -- the cheap check before each step -----------------------------------------------------

    def check(self, run_id: int, chunk_id: int | None = None, planning: bool = False) -> None:
        """Raise unless the work may go on: the run is running and holds its slot, and the claim
        (chunk or planning) is still this process's. Costs a heartbeat only when the last one is
        older than two intervals (the thread is starved or failing).

        Raises:
            RunStoppedError: the run was cancelled, paused or ended.
            SlotLostError: the run's lease slot expired or was taken.
            ClaimLostError: the claim expired and was handed to another worker.
        """
        self._here()
        if time.monotonic() - self._beat_at > 2 * self.interval:
            self.beat()
        with self._lock:
            seen = self._runs.get(run_id)
            lost_chunk = chunk_id is not None and ("chunk", chunk_id) in self._lost
            lost_planning = planning and ("planning", run_id) in self._lost
        if seen is not None and seen.stopped is not None:
            raise RunStoppedError(f"run {run_id} is {seen.stopped}")
        if seen is not None and seen.lease_lost:
            raise SlotLostError(f"run {run_id} lost its slot lease")
        if lost_chunk:
            raise ClaimLostError(f"chunk {chunk_id}: its claim was handed to another worker")
        if lost_planning:
            raise ClaimLostError(f"run {run_id}: its planning was handed to another producer")

    # -- the heartbeat ------------------------------------------------------------------------

    def beat(self) -> None:
        """Extend every live claim of this process (one PostgreSQL transaction), renew the leases
        of their runs (one Redis round trip) and record what was found."""
        self._here()
        with self._beating:
            with self._lock:
                chunks = dict(self._chunks)
                plannings = set(self._plannings)
            run_ids = set(chunks.values()) | plannings
            if not run_ids:
                self._beat_at = time.monotonic()
                return
            extended = self.store.claims.extend(
                self._token, chunks, plannings, run_ids, self.claim_ttl
            )
            renewed = self.lease.renew_many(self.lease_token(run_id) for run_id in run_ids)
            now = time.monotonic()
            with self._lock:
                for chunk_id in chunks.keys() - extended.chunks:
                    if chunk_id in self._chunks:
                        self._lost.add(("chunk", chunk_id))
                for run_id in plannings - extended.plannings:
                    if run_id in self._plannings:
                        self._lost.add(("planning", run_id))
                for run_id in run_ids:
                    seen = self._runs.setdefault(run_id, _RunSeen())
                    status = extended.run_status.get(run_id, "gone")
                    seen.stopped = None if status == "running" else status
                    if renewed.get(self.lease_token(run_id)):
                        seen.confirmed_at, seen.lease_lost = now, False
                    else:
                        seen.lease_lost = True
                held = set(self._chunks.values()) | self._plannings
                for run_id in self._runs.keys() - held:
                    del self._runs[run_id]
                self._beat_at = now

    def _start(self) -> None:
        """Start this process's heartbeat thread (called under the lock)."""
        stop = self._stop

        def loop() -> None:
            while not stop.wait(self.interval):
                try:
                    self.beat()
                except Exception as error:  # PostgreSQL or Redis away: try again next beat
                    log.warning("heartbeat failed (claims are not extended): %s", error)

        self._thread = threading.Thread(target=loop, name="etl-heartbeat", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the heartbeat thread (claims then expire unless dropped)."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread.is_alive() and thread is not threading.current_thread():
            thread.join(timeout=5)
