"""How a run is shown: one dict for ``--json`` and one line for humans."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from etl.state.runs import Run

__all__ = ["progress_line", "summary"]


def summary(run: Run) -> dict[str, Any]:
    """The machine-readable view of a run (``--json``)."""
    data: dict[str, Any] = {
        "id": run.id,
        "connection_id": run.connection_id,
        "kind": run.kind,
        "scope": run.scope,
        "status": run.status,
        "window": {"from": _iso(run.window_from), "to": _iso(run.window_to)},
        "dry_run": run.dry_run,
        "full": run.full_resync,
        "counts": {
            "read": run.read_count,
            "sent": run.sent_count,
            "skipped": run.skipped_count,
            "rejected": run.rejected_count,
            "failed": run.failed_count,
            "warned": run.warned_count,
            "guest_profiles": {
                "sent": run.guest_sent_count,
                "skipped": run.guest_skipped_count,
                "rejected": run.guest_rejected_count,
            },
        },
        "chunks": {
            "total": run.chunks_total,
            "done": run.chunks_done,
            "failed": run.chunks_failed,
            "planning_done": run.planning_done,
        },
        "records_planned": run.records_total,
        "error": run.error,
        "created_at": _iso(run.created_at),
        "started_at": _iso(run.started_at),
        "finished_at": _iso(run.finished_at),
    }
    if run.dry_run:
        data["counts"]["would_create"] = run.would_create
        data["counts"]["would_update"] = run.would_update
    return data


def progress_line(run: Run, now: datetime | None = None) -> str:
    """``run 7 running 1200/3000 records (40%) 310/s ETA 6s | sent 1100 skipped 0 ...``; an
    orders run that upserted guest profiles ends with ``| guest profiles sent 12 ...``.

    A finished run's rate is over its own duration (start to finish), so it stays what it
    was; a dry run shows what it would do: ``| dry run: would create 250, update 30, skip 10,
    reject 10; failed 0 warned 0``.
    """
    end = run.finished_at or now or datetime.now(UTC)
    total = f"{run.records_total}" + ("" if run.planning_done else "+")
    done = run.read_count
    percent = f" ({100 * done // run.records_total}%)" if run.records_total else ""
    rate_text, eta_text = "", ""
    if run.started_at and done:
        elapsed = max((end - run.started_at).total_seconds(), 1e-3)
        rate = done / elapsed
        rate_text = f" {rate:,.0f}/s"
        if run.planning_done and rate > 0 and run.status == "running":
            eta_text = f" ETA {max(run.records_total - done, 0) / rate:,.0f}s"
    if run.dry_run:
        counts = (
            f"dry run: would create {run.would_create}, update {run.would_update},"
            f" skip {run.skipped_count}, reject {run.rejected_count};"
            f" failed {run.failed_count} warned {run.warned_count}"
        )
    else:
        counts = (
            f"sent {run.sent_count} skipped {run.skipped_count}"
            f" rejected {run.rejected_count} failed {run.failed_count} warned {run.warned_count}"
        )
    if run.guest_sent_count or run.guest_skipped_count or run.guest_rejected_count:
        counts += (
            f" | guest profiles sent {run.guest_sent_count} skipped {run.guest_skipped_count}"
            f" rejected {run.guest_rejected_count}"
        )
    progress = f"{done}/{total} records{percent}{rate_text}{eta_text}"
    return f"run {run.id} {run.status} {progress} | {counts}"


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat() if moment else None
