"""How a run is shown: a finished run keeps its rate, a dry run says what it would do."""

from __future__ import annotations

from dataclasses import fields
from datetime import UTC, datetime, timedelta
from typing import Any

from etl.state.runs import Run
from etl.sync.report import progress_line, summary

START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def make_run(**values: Any) -> Run:
    """A ``Run`` with neutral values for every column (later migrations may add some)."""
    neutral: dict[str, Any] = {}
    for field in fields(Run):
        kind = str(field.type)
        if "datetime" in kind:
            neutral[field.name] = None if "None" in kind else START
        elif kind.startswith("int"):
            neutral[field.name] = 0
        elif kind == "bool":
            neutral[field.name] = False
        elif kind.startswith("dict"):
            neutral[field.name] = {}
        else:
            neutral[field.name] = None if "None" in kind else ""
    neutral.update(id=7, kind="backfill", scope="orders", status="running")
    return Run(**{**neutral, **values})


def test_a_finished_run_keeps_the_rate_of_its_own_duration():
    run = make_run(status="done", planning_done=True, records_total=3000, read_count=3000,
                   sent_count=3000, started_at=START, finished_at=START + timedelta(seconds=10))
    shown = [progress_line(run, now=START + timedelta(hours=hours)) for hours in (0, 1, 48)]
    assert len(set(shown)) == 1
    assert " 300/s " in shown[0] and "ETA" not in shown[0]


def test_a_running_run_shows_its_rate_so_far_and_an_eta():
    run = make_run(planning_done=True, records_total=3000, read_count=1000, started_at=START)
    line = progress_line(run, now=START + timedelta(seconds=10))
    assert "1000/3000 records (33%) 100/s ETA 20s" in line


def test_a_dry_run_says_what_it_would_create_update_skip_and_reject():
    run = make_run(status="done", dry_run=True, planning_done=True, records_total=300,
                   read_count=300, would_create=250, would_update=30, skipped_count=10,
                   rejected_count=10, started_at=START, finished_at=START + timedelta(seconds=3))
    line = progress_line(run)
    assert line.endswith(
        "| dry run: would create 250, update 30, skip 10, reject 10; failed 0 warned 0"
    ), line
    assert summary(run)["counts"]["would_create"] == 250
