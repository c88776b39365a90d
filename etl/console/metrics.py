"""Business metrics in the Prometheus text format, for the console's ``GET /metrics``.

Computed at scrape time from PostgreSQL (run counters, rejects, cursors: ``etl.console.reads``)
and Redis (queue lengths, ``etl.apiusage`` traffic counters), which every worker writes to, so
any number of workers is counted once and a restarted console loses nothing. Every family is
declared once in ``METRICS``; the alert rules and the dashboard in ``docker/`` are checked
against it (tests/test_monitoring.py).

``vtex_synerise_records_total`` sums the counters of every run that is not a dry run, realtime
runs included (``vtex_synerise_realtime_total`` is their share). Its ``failed`` outcome counts
records in chunks that are failed *now*: ``sync resume`` puts them back, so that one series can
go down (Prometheus reads a decrease as a counter reset). Numbers from a source that cannot be
read are left out, and ``vtex_synerise_source_up{source}`` says so.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import psycopg2
import redis
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from etl import connections
from etl.apiusage import STATUS_FIELDS, read_usage
from etl.console import reads
from etl.ratelimit import read_rates
from etl.state.runs import RUN_STATUSES, SCOPES
from etl.state.store import StateStore
from etl.sync.inbox import INBOX_SCOPES, Inbox

__all__ = ["CONTENT_TYPE", "METRICS", "MetricDef", "Scrape", "sample_names"]

log = logging.getLogger(__name__)

CONTENT_TYPE = CONTENT_TYPE_LATEST
OUTCOMES = ("read", "sent", "skipped", "rejected", "failed")


@dataclass(frozen=True)
class MetricDef:
    """One metric family: its name as scraped, type, labels and meaning."""

    name: str
    kind: str
    """``counter`` or ``gauge``"""
    labels: tuple[str, ...]
    help: str

    def family(self) -> CounterMetricFamily | GaugeMetricFamily:
        cls = CounterMetricFamily if self.kind == "counter" else GaugeMetricFamily
        return cls(self.name, self.help, labels=list(self.labels))


METRICS = {
    definition.name: definition
    for definition in (
        MetricDef("vtex_synerise_records_total", "counter", ("connection", "scope", "outcome"),
                  "Records handled by runs (not dry runs), by outcome: read, sent, skipped "
                  "(unchanged), rejected, failed (in chunks failed now)."),
        MetricDef("vtex_synerise_rejects_total", "counter", ("connection", "scope", "reason"),
                  "Rejected records kept for replay, by reason code."),
        MetricDef("vtex_synerise_runs", "gauge", ("connection", "scope", "status"),
                  "Runs (historical, incremental, replay) in each status."),
        MetricDef("vtex_synerise_cursor_lag_seconds", "gauge", ("connection", "scope"),
                  "How far behind now the scope's incremental cursor is."),
        MetricDef("vtex_synerise_last_success_timestamp_seconds", "gauge",
                  ("connection", "scope", "kind"),
                  "When the latest run of this kind and scope finished done (Unix time)."),
        MetricDef("vtex_synerise_run_idle_seconds", "gauge", ("connection", "scope"),
                  "Seconds since the least recently progressing running run of the scope "
                  "wrote anything."),
        MetricDef("vtex_synerise_realtime_total", "counter", ("connection", "kind", "outcome"),
                  "Webhook records of the realtime runs, by kind (scope) and outcome."),
        MetricDef("vtex_synerise_queue_depth", "gauge", ("queue",),
                  "Task messages waiting in a Celery queue."),
        MetricDef("vtex_synerise_realtime_inbox_depth", "gauge", ("scope",),
                  "Webhook notifications in a realtime inbox, waiting or being drained."),
        MetricDef("vtex_synerise_workers", "gauge", ("queue",),
                  "Celery workers consuming the queue (answering a broadcast within 1 s)."),
        MetricDef("vtex_synerise_api_requests_total", "counter",
                  ("connection", "family", "status"),
                  "Requests to an API family by answer: 2xx, 3xx, 4xx, 429, 5xx, network."),
        MetricDef("vtex_synerise_rate_budget_wait_seconds_total", "counter",
                  ("connection", "family"),
                  "Time spent waiting for a turn of the shared rate budget."),
        MetricDef("vtex_synerise_rate_budget_exhausted_total", "counter",
                  ("connection", "family"),
                  "Turns the rate budget refused (beyond its max wait): the task retried later."),
        MetricDef("vtex_synerise_rate_budget_requests_per_second", "gauge", ("family", "account"),
                  "What the shared rate budget of an API family and account (VTEX account, "
                  "Synerise workspace) grants now: its configured rate, or the rate adapted to "
                  "429s (RATE_ADAPTIVE). Present while the budget is in use."),
        MetricDef("vtex_synerise_source_up", "gauge", ("source",),
                  "1 when the source (postgresql, redis, celery) could be read for this scrape."),
    )
}
"""Every metric family ``/metrics`` may expose, by name."""


def sample_names() -> set[str]:
    """The names samples carry (a counter ``x_total``'s samples are ``x_total``)."""
    return set(METRICS)


class _Families:
    """The families of one scrape, created on first use."""

    def __init__(self) -> None:
        self.found: dict[str, CounterMetricFamily | GaugeMetricFamily] = {}

    def add(self, name: str, labels: Iterable[str], value: float) -> None:
        family = self.found.get(name)
        if family is None:
            family = self.found[name] = METRICS[name].family()
        family.add_metric([str(label) for label in labels], float(value))


class Scrape:
    """A ``prometheus_client`` collector over the deployment's state; one per console process.

    Args:
        store: the state store (PostgreSQL).
        redis_client: the broker's Redis (queues and the API traffic counters).
        queues: the Celery queues to measure.
        consumers: returns ``{queue: workers consuming it}`` (a Celery broadcast); ``None``
            leaves ``vtex_synerise_workers`` out.
        consumers_ttl: seconds a consumers answer is reused (the broadcast waits its timeout).
    """

    def __init__(
        self,
        store: StateStore,
        redis_client: redis.Redis,
        queues: Iterable[str],
        consumers: Callable[[], dict[str, int]] | None = None,
        consumers_ttl: float = 15.0,
    ) -> None:
        self.store = store
        self.redis = redis_client
        self.queues = tuple(queues)
        self.consumers = consumers
        self.consumers_ttl = consumers_ttl
        self._consumers_cache: tuple[float, dict[str, int] | None] = (0.0, None)
        self._consumers_lock = threading.Lock()

    def render(self) -> bytes:
        """The exposition text of one scrape."""
        return bytes(generate_latest(self))  # any object with collect() will do

    def collect(self) -> Iterator[Metric]:
        families = _Families()
        up = {
            "postgresql": self._from_postgres(families),
            "redis": self._from_redis(families),
        }
        if self.consumers is not None:
            up["celery"] = self._from_celery(families)
        for source, ok in up.items():
            families.add("vtex_synerise_source_up", [source], 1 if ok else 0)
        yield from families.found.values()

    def _from_postgres(self, families: _Families) -> bool:
        try:
            totals = reads.totals(self.store)
        except psycopg2.Error as error:
            log.warning("metrics: PostgreSQL unreadable: %s", error)
            return False
        put = families.add
        records: dict[tuple[str, str, str], float] = {}
        for row in totals.records:
            name, scope = row["connection"], row["scope"]
            for outcome in OUTCOMES:
                value = float(row[outcome] or 0)
                key = (name, scope, outcome)
                records[key] = records.get(key, 0) + value
                if row["kind"] == "realtime":
                    put("vtex_synerise_realtime_total", [name, scope, outcome], value)
        for name in totals.connections:
            for scope in SCOPES:
                for outcome in OUTCOMES:
                    value = records.get((name, scope, outcome), 0)
                    put("vtex_synerise_records_total", [name, scope, outcome], value)
        for row in totals.rejects:
            labels = [row["connection"], row["scope"], row["reason"]]
            put("vtex_synerise_rejects_total", labels, row["records"])
        counted = {(row["connection"], row["scope"], row["status"]): row["runs"]
                   for row in totals.runs}  # fmt: skip
        for name in totals.connections:
            for scope in SCOPES:
                for status in RUN_STATUSES:
                    value = counted.get((name, scope, status), 0)
                    put("vtex_synerise_runs", [name, scope, status], value)
        for cursor in totals.cursors:
            if cursor.lag_seconds is not None:
                labels = [cursor.connection, cursor.scope]
                put("vtex_synerise_cursor_lag_seconds", labels, cursor.lag_seconds)
        for row in totals.last_success:
            labels = [row["connection"], row["scope"], row["kind"]]
            put("vtex_synerise_last_success_timestamp_seconds", labels,
                row["finished_at"].timestamp())  # fmt: skip
        for row in totals.idle:
            labels = [row["connection"], row["scope"]]
            put("vtex_synerise_run_idle_seconds", labels, float(row["seconds"]))
        return True

    def _from_redis(self, families: _Families) -> bool:
        from kombu.transport.redis import PRIORITY_STEPS, Channel

        try:
            pipe = self.redis.pipeline(transaction=False)
            for queue in self.queues:
                for step in PRIORITY_STEPS:
                    pipe.llen(f"{queue}{Channel.sep}{step}" if step else queue)
            for scope in INBOX_SCOPES:
                pipe.xlen(Inbox.prefix + scope)
            lengths = pipe.execute()
            usage = read_usage(self.redis)
            rates = read_rates(self.redis)
        except redis.RedisError as error:
            log.warning("metrics: Redis unreadable: %s", error)
            return False
        put = families.add
        steps = len(PRIORITY_STEPS)
        for index, queue in enumerate(self.queues):
            depth = sum(lengths[index * steps : (index + 1) * steps])
            put("vtex_synerise_queue_depth", [queue], depth)
        inboxes = lengths[len(self.queues) * steps :]
        for scope, depth in zip(INBOX_SCOPES, inboxes, strict=True):
            put("vtex_synerise_realtime_inbox_depth", [scope], depth)
        for (connection, family), counts in sorted(_by_connection(usage).items()):
            for field in STATUS_FIELDS:
                status = field.partition(":")[2]
                put("vtex_synerise_api_requests_total", [connection, family, status],
                    counts.get(field, 0))  # fmt: skip
            put("vtex_synerise_rate_budget_wait_seconds_total", [connection, family],
                counts.get("budget_wait_seconds", 0))  # fmt: skip
            put("vtex_synerise_rate_budget_exhausted_total", [connection, family],
                counts.get("budget_exhausted", 0))  # fmt: skip
        for (family, account), rate in sorted(rates.items()):
            put("vtex_synerise_rate_budget_requests_per_second", [family, account], rate)
        return True

    def _from_celery(self, families: _Families) -> bool:
        assert self.consumers is not None
        with self._consumers_lock:
            at, cached = self._consumers_cache
            if cached is None or time.monotonic() - at > self.consumers_ttl:
                try:
                    cached = self.consumers()
                except Exception as error:  # the broker may be down: say so, scrape the rest
                    log.warning("metrics: no answer from the Celery workers: %s", error)
                    return False
                self._consumers_cache = (time.monotonic(), cached)
        for queue in self.queues:
            families.add("vtex_synerise_workers", [queue], cached.get(queue, 0))
        return True


def _by_connection(usage: dict[str, dict[str, float]]) -> dict[tuple[str, str], dict[str, float]]:
    """API traffic counted per family and account, summed per connection and family (a
    connection's sub-accounts count as its own; counts of an account no connection names any
    more, or of a version that did not record the account, count as ``default``'s)."""
    owners = connections.budget_owners()
    totals: dict[tuple[str, str], dict[str, float]] = {}
    for key, counts in usage.items():
        family, _, account = key.partition(":")
        owner = owners.get((family, account), connections.DEFAULT)
        summed = totals.setdefault((owner, family), {})
        for field, amount in counts.items():
            summed[field] = summed.get(field, 0.0) + amount
    return totals


def celery_consumers(timeout: float = 1.0) -> dict[str, int]:
    """``{queue: workers consuming it}`` from a Celery broadcast (waits ``timeout``)."""
    from workers.app import app  # the Celery seam, imported only when metrics are scraped

    answers: dict[str, Any] = app.control.inspect(timeout=timeout).active_queues() or {}
    counts: dict[str, int] = {}
    for queues in answers.values():
        for queue in queues or ():
            name = queue.get("name")
            if name:
                counts[name] = counts.get(name, 0) + 1
    return counts
