"""Sync tasks: thin wrappers over ``etl.sync.runs``; the logic and its tests live there.

Retries: a retriable error (429, 5xx, timeouts) left over after the HTTP client's own retries,
or a rate budget blocked for longer than its ``max_wait``, is retried by Celery with exponential
backoff and jitter, short countdowns only (a long ETA sits unacknowledged in Redis and risks
redelivery); on the last attempt the chunk is marked ``failed`` and ``sync resume`` picks it up.

``start_upkeep`` is each worker's maintenance loop (started when the worker is ready and stopped
at shutdown, see ``_start_upkeep``; tests start it next to an embedded worker).
"""

from __future__ import annotations

import functools
import logging
import random
import threading
from datetime import timedelta
from typing import Any

from celery import Task, signals

from etl import connections
from etl.config import Settings
from etl.errors import BudgetExhaustedError, ConfigError, NetworkError, RetriableError
from etl.state.store import StateStore
from etl.sync import runs
from etl.sync.engine import Engine
from etl.sync.engines import Engines, UnknownConnectionError
from etl.sync.inbox import Inbox
from etl.sync.products import start_scheduled_products
from etl.sync.queues import (
    TASK_INCREMENTAL,
    TASK_PROCESS_CHUNK,
    TASK_PRODUCE,
    TASK_PRODUCTS,
    TASK_SELFTEST,
    TASK_SWEEP,
)
from workers.app import app
from workers.dispatch import enqueue, enqueue_many, queue_sizes

__all__ = [
    "engine",
    "engines",
    "incremental",
    "process_chunk",
    "produce",
    "products",
    "selftest",
    "start_upkeep",
    "sweep",
]

log = logging.getLogger(__name__)

MAX_RETRIES = 6


@functools.cache
def engines() -> Engines:
    """One engine per connection per worker process (pooled HTTP sessions, one DB connection
    per thread, shared by the connections)."""
    return Engines.build(connections.load(), enqueue, enqueue_many, queue_sizes)


def engine(name: str | None = None) -> Engine:
    """The engine of connection ``name`` (of the only one when not given)."""
    return engines().get(name)


@functools.lru_cache(maxsize=8)
def _store(dsn: str) -> StateStore:
    """One store per database per process (each keeps a connection per thread)."""
    return StateStore(dsn)


def _countdown(retries: int) -> float:
    """Exponential backoff with full jitter, capped well under the visibility timeout and at
    ``runs.RETRY_WITHIN`` (the engine counts a message as lost only after that)."""
    return random.uniform(0, min(runs.RETRY_WITHIN, 2.0 * 2**retries))


@app.task(name=TASK_PRODUCE, bind=True, max_retries=MAX_RETRIES)
def produce(self: Task, run_id: int) -> None:
    """Plan a run: list VTEX in windows, write chunk rows, enqueue chunk tasks."""
    try:
        found = _of(engines().for_run, run_id)
        if found is not None:
            runs.run_producer(found, run_id, final_attempt=self.request.retries >= MAX_RETRIES)
    except (RetriableError, BudgetExhaustedError) as error:
        raise self.retry(countdown=_countdown(self.request.retries), exc=error) from error


@app.task(name=TASK_PROCESS_CHUNK, bind=True, max_retries=MAX_RETRIES)
def process_chunk(self: Task, chunk_ids: list[int] | int) -> list[str] | str:
    """Fetch, map, diff, post and record chunks, one after the other, each claimed and
    completed on its own (``runs.run_chunk``); what happened to each.

    ``chunk_ids`` is a list (several chunks share one message, so Celery's cost per task is paid
    once for them) or one id (the message of earlier versions, still in Redis after an
    upgrade). Only the chunks that hit a retriable error are retried, together in one message
    with the backoff; the others are recorded already, and a redelivered message finds them
    done (their claim is a no-op)."""
    ids = chunk_ids if isinstance(chunk_ids, list) else [chunk_ids]
    final = self.request.retries >= MAX_RETRIES
    found = engines().for_chunks(ids)
    results: list[str] = []
    retry: list[int] = []
    retriable: Exception | None = None
    crashed: Exception | None = None
    for chunk_id in ids:
        engine_of = found.get(chunk_id)
        if not isinstance(engine_of, Engine):
            _missing(chunk_id, engine_of)
            results.append("missing")
            continue
        try:
            results.append(runs.run_chunk(engine_of, chunk_id, final_attempt=final))
        except (RetriableError, BudgetExhaustedError) as error:
            retry.append(chunk_id)
            results.append("retrying")
            retriable = error
        except Exception as error:  # a bug: that chunk failed (resume retries it); the rest go on
            log.exception("chunk %s failed", chunk_id)
            results.append("failed")
            crashed = crashed or error
    if retry:
        again = retry if isinstance(chunk_ids, list) else retry[0]
        raise self.retry(args=[again], countdown=_countdown(self.request.retries), exc=retriable)
    if crashed is not None:
        raise crashed  # the task fails as its chunk did (Flower shows it)
    return results if isinstance(chunk_ids, list) else results[0]


def _missing(chunk_id: int, error: Exception | None) -> None:
    """A chunk with no engine here: logged; its work waits for ``sync resume``."""
    if error is not None:
        log.error("chunk %s: %s", chunk_id, error)
    else:
        log.warning("chunk %s does not exist (a message from another database?)", chunk_id)


def _of(lookup: Any, work_id: int) -> Engine | None:
    """The engine of a run's (or chunk's) connection; ``None`` (logged) when there is no such
    run or its connection is no longer configured here: the work waits for ``sync resume``
    from a process that has it."""
    try:
        found: Engine | None = lookup(work_id)
    except UnknownConnectionError as error:
        log.error("%s %s: %s", lookup.__name__.removeprefix("for_"), work_id, error)
        return None
    if found is None:
        log.warning("%s %s does not exist (a message from another database?)",
                    lookup.__name__.removeprefix("for_"), work_id)  # fmt: skip
    return found


@app.task(name=TASK_SWEEP)
def sweep() -> None:
    """Upkeep (beat, and every worker's own loop): renew leases, hand expired claims on,
    recover lost messages, start waiting runs, and see that every realtime inbox (of every
    connection) holding notifications has a drain coming."""
    every = engines()
    for each in every:
        runs.maintain(each, timedelta(seconds=each.settings.sync_stale_after))
        Inbox(each.redis, each.enqueue, connection=each.connection.name).sweep()
    names = every.names()
    if connections.DEFAULT not in names and connections.unnamed(names):
        # Entries left in ``default``'s streams (before its one connection had a name): that
        # connection drains them (``etl.realtime.drain(scope)``).
        first = every.get()
        Inbox(first.redis, first.enqueue).sweep()


def start_upkeep(interval: float | None = None) -> threading.Event:
    """Run ``sweep`` every ``interval`` seconds (a third of the shorter of the lease and claim
    TTLs) in a daemon thread.

    Every worker runs one, beat or no beat, so its runs keep their slots while their tasks wait
    in the queue, and work whose claim expired (its worker died, froze or was cut off) moves to
    a live worker within seconds. Set the returned event to stop it (the worker does at
    shutdown).

    Raises:
        ConfigError: the worker has no VTEX/Synerise credentials (it keeps no runs then).
    """
    settings = next(iter(engines())).settings  # the TTLs are the process's (PROCESS_WIDE)
    shortest = min(settings.sync_lease_ttl, settings.sync_claim_ttl)
    every = interval if interval is not None else max(1.0, shortest / 3)
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            try:
                sweep()
            except NetworkError as error:  # a passing Redis or PostgreSQL outage: one line
                log.warning("upkeep failed (retrying in %.0f s): %s", every, error)
            except Exception:  # a bug: its traceback, and upkeep goes on
                log.exception("upkeep failed; retrying")
            stop.wait(every)

    threading.Thread(target=loop, name="etl-upkeep", daemon=True).start()
    return stop


@signals.worker_ready.connect
def _start_upkeep(sender: Any, **_: Any) -> None:
    """Each worker renews its runs' leases and recovers lost chunks, beat or no beat.

    While workers live, their runs keep their slots even with tasks waiting in the queue; when
    the last worker dies, nobody renews, and the slots free themselves after the lease TTL.
    Connected here, next to the loop: the worker imports this module (``include``) before it
    is ready, and ``workers.app`` never imports its task modules.
    """
    try:
        stop = start_upkeep()
    except ConfigError as error:  # a worker without credentials (selftest) has no runs to keep
        log.warning("run upkeep disabled: %s", error)
        return

    def _stop(**_: Any) -> None:
        stop.set()

    signals.worker_shutdown.connect(_stop, weak=False)


@app.task(name=TASK_INCREMENTAL)
def incremental(
    scope: str,
    lookback_seconds: float = 900,
    lag_seconds: float = 300,
    connection: str | None = None,
) -> int | None:
    """Beat-driven incremental sync of one scope of a connection (the only one when not
    given); returns the run id, if one started."""
    run = runs.start_incremental(
        engine(connection),
        scope,
        timedelta(seconds=lookback_seconds),
        timedelta(seconds=lag_seconds),
    )
    return run.id if run else None


@app.task(name=TASK_PRODUCTS, bind=True, max_retries=MAX_RETRIES)
def products(self: Task, connection: str | None = None) -> int | None:
    """Beat's catalog pass (``SYNC_PRODUCTS_CRON``) of a connection (the only one when not
    named), unless one is under way; the run id.

    Finding or creating the Synerise catalog may meet a passing outage: retried with backoff.
    """
    try:
        run = start_scheduled_products(engine(connection))
    except RetriableError as error:
        raise self.retry(countdown=_countdown(self.request.retries), exc=error) from error
    return run.id if run else None


@app.task(name=TASK_SELFTEST, bind=True)
def selftest(self: Task, token: str) -> str:
    """Record ``token`` with this worker's name in the ``selftest`` table; return the name."""
    worker = self.request.hostname or "unknown"
    url = Settings.from_env(require=()).with_infra().database_url
    assert url is not None  # with_infra() always sets it
    _store(url).selftest.record(token, worker)
    return worker
