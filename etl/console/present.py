"""How the console shows a run: the ``sync --json`` summary plus progress, rate and warnings.

The same dicts feed the HTML pages and the JSON API, so both always say the same thing.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from etl.console.reads import CursorState, RejectGroup
from etl.state.runs import END_STATUSES, Run
from etl.sync.report import summary
from etl.sync.runs import horizon_warning
from etl.sync.windows import Window

__all__ = ["STALLED_AFTER", "cursor_view", "group_view", "is_active", "run_view", "warnings"]

STALLED_AFTER = timedelta(minutes=5)
"""A running run that wrote nothing for this long is flagged (the sweep recovers lost chunks
after ``SYNC_STALE_AFTER``, 5 minutes by default)."""


def is_active(run: Run) -> bool:
    """Still changing: queued, running or paused."""
    return run.status not in END_STATUSES


def run_view(run: Run, now: datetime | None = None) -> dict[str, Any]:
    """``etl.sync.report.summary`` plus ``progress`` (bar parts in %, rate, ETA) and flags."""
    now = now or datetime.now(UTC)
    data = summary(run)
    counts = data["counts"]
    if run.dry_run:
        parts = [("would create", run.would_create), ("would update", run.would_update)]
    else:
        parts = [("sent", run.sent_count)]
    parts += [("skipped", run.skipped_count), ("rejected", run.rejected_count),
              ("failed", run.failed_count)]  # fmt: skip
    done = run.read_count + run.failed_count
    total = max(run.records_total, done)
    rate = eta = None
    if run.started_at and run.read_count:
        end = run.finished_at or now
        rate = run.read_count / max((end - run.started_at).total_seconds(), 1e-3)
        if run.status == "running" and run.planning_done and rate > 0:
            eta = max(run.records_total - done, 0) / rate
    data["progress"] = {
        "total": run.records_total,
        "planning_done": run.planning_done,
        "done": done,
        "percent": round(100 * done / total, 1) if total else (100.0 if not is_active(run)
                                                                   else 0.0),
        "parts": [
            {"label": label, "count": count,
             "percent": round(100 * count / total, 2) if total else 0.0}
            for label, count in parts
        ],
        "rate_per_second": round(rate, 1) if rate is not None else None,
        "eta_seconds": round(eta) if eta is not None else None,
    }  # fmt: skip
    data["active"] = is_active(run)
    data["counts"] = counts
    return data


def warnings(run: Run, chunk_counts: dict[str, int], now: datetime | None = None) -> list[str]:
    """What an operator should know about a run, one sentence each."""
    now = now or datetime.now(UTC)
    found = []
    if run.status == "failed" and run.error:
        found.append(f"failed: {run.error}")
    elif run.status in ("paused", "cancelled") and run.error:
        found.append(f"{run.status}: {run.error}")
    if run.status == "queued":
        found.append("waiting for a free slot: at most two syncs run at once")
    if chunk_counts.get("failed"):
        found.append(f"{chunk_counts['failed']} chunk(s) failed after retries: resume retries them")
    if run.status == "running" and now - run.updated_at > STALLED_AFTER:
        minutes = int((now - run.updated_at).total_seconds() // 60)
        found.append(f"no progress for {minutes} min: is a worker consuming the queues?")
    horizon = horizon_warning(run.scope, Window(run.window_from, run.window_to), now)
    if horizon and run.kind != "realtime":
        found.append(horizon)
    if run.dry_run:
        found.append("dry run: nothing was sent to Synerise")
    return found


def group_view(group: RejectGroup) -> dict[str, Any]:
    return {
        "reason": group.reason,
        "stream": group.stream,
        "records": group.records,
        "unresolved": group.unresolved,
        "sample": {
            "key": group.sample_key,
            "message": group.sample_message,
            "payload": group.sample_payload,
        },
    }


def cursor_view(cursor: CursorState, last_run: Run | None) -> dict[str, Any]:
    return {
        "connection": cursor.connection,
        "scope": cursor.scope,
        "cursor": cursor.cursor.astimezone(UTC).isoformat() if cursor.cursor else None,
        "lag_seconds": round(cursor.lag_seconds) if cursor.lag_seconds is not None else None,
        "last_incremental_run": run_view(last_run) if last_run else None,
    }
