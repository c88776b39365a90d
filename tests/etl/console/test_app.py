"""The console over HTTP: auth, pages and their JSON, forms with CSRF, actions, metrics."""

from __future__ import annotations

import csv
import io
import re

import pytest
import requests

from etl.apiusage import ApiUsage
from etl.console.metrics import METRICS
from etl.errors import ConfigError
from etl.sync import runs
from tests.helpers.console import PASSWORD, USER, csrf_token
from tests.helpers.sync import WHOLE_RANGE, wait_for_run

SAMPLE = re.compile(r"^(?P<name>[a-z_]+)(?:\{(?P<labels>[^}]*)\})? (?P<value>\S+)$")


def metrics(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """The exposition text as ``{(name, labels): value}``."""
    found = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = SAMPLE.match(line)
        assert match, line
        labels = frozenset(
            tuple(pair.split("=", 1)) for pair in (match["labels"] or "").split(",") if pair
        )
        labels = frozenset((key, value.strip('"')) for key, value in labels)
        found[(match["name"], labels)] = float(match["value"])
    return found


def value(found, name: str, **labels: str) -> float:
    return found[(name, frozenset(labels.items()))]


@pytest.fixture
def finished_run(engine, worker, store):
    """A customers historical sync, done (about 5% of the sandbox customers are rejected)."""
    run = runs.start(engine, runs.StartRequest("customers_created", WHOLE_RANGE))
    done = wait_for_run(store, run.id)
    assert done.status == "done" and done.sent_count and done.rejected_count
    return done


@pytest.mark.parametrize("path", ["/runs", "/runs/new", "/cursors", "/realtime", "/api/runs",
                                  "/api/cursors", "/metrics", "/runs/1"])  # fmt: skip
def test_everything_but_health_needs_the_credentials(console, path):
    anonymous = console.anonymous.get(console.url + path, timeout=10)
    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"].startswith("Basic ")
    wrong = console.anonymous.get(console.url + path, auth=(USER, "nope"), timeout=10)
    assert wrong.status_code == 401
    assert console.anonymous.get(console.url + "/healthz", timeout=10).status_code == 200
    assert console.anonymous.get(console.url + "/readyz", timeout=10).text == "ok\n"


def test_pages_show_a_finished_run(console, finished_run, store):
    page = console.get("/runs")
    assert page.status_code == 200
    assert f'id="run-{finished_run.id}"' in page.text and "status-done" in page.text
    assert page.headers["X-Frame-Options"] == "DENY"
    assert 'http-equiv="refresh"' not in page.text, "nothing active: no refresh"

    detail = console.get(f"/runs/{finished_run.id}")
    assert detail.status_code == 200
    total = finished_run.records_total
    assert f"{total} / {total} (100.0%)" in detail.text
    assert "INVALID_EMAIL" in detail.text or "INVALID_PHONE" in detail.text

    data = console.get(f"/api/runs/{finished_run.id}").json()
    assert data["run"]["counts"]["sent"] == finished_run.sent_count
    assert data["run"]["progress"]["percent"] == 100.0
    assert sum(group["records"] for group in data["rejects"]) == len(
        store.rejects.find(finished_run.id)
    )
    assert data["chunk_counts"]["done"] == finished_run.chunks_total
    listed = console.get("/api/runs").json()["runs"]
    assert [run["id"] for run in listed] == [finished_run.id]
    assert console.get("/api/runs/999999").status_code == 404
    assert console.get("/runs/999999").status_code == 404


def test_rejects_download_everything_redacted(console, finished_run, store):
    download = console.get(f"/runs/{finished_run.id}/rejects.csv")
    assert download.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(download.text)))
    kept = store.rejects.find(finished_run.id)
    assert sorted(row["key"] for row in rows) == sorted(r.record_key for r in kept)
    as_json = console.get(f"/api/runs/{finished_run.id}/rejects").json()["rejects"]
    assert len(as_json) == len(kept)
    assert not re.search(r"[\w.+-]+@[\w-]+\.[\w.]+", download.text), "an e-mail leaked"


def test_metrics_count_the_run_once(console, finished_run, engine):
    ApiUsage.for_redis(engine.redis).flush()  # what this process's clients counted so far
    for _ in range(3):  # notifications waiting in the orders inbox (no drain: nothing sent)
        engine.redis.xadd("etl:inbox:orders", {"task": "etl.realtime.order", "args": "[]"})
    response = console.get("/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    found = metrics(response.text)
    labels = {"connection": "default", "scope": "customers_created"}
    assert value(found, "vtex_synerise_records_total", outcome="sent", **labels) == (
        finished_run.sent_count
    )
    assert value(found, "vtex_synerise_records_total", outcome="rejected", **labels) == (
        finished_run.rejected_count
    )
    assert value(found, "vtex_synerise_runs", status="done", **labels) == 1
    assert value(found, "vtex_synerise_runs", status="running", **labels) == 0
    rejects = sum(v for (name, _), v in found.items() if name == "vtex_synerise_rejects_total")
    assert rejects == finished_run.rejected_count
    assert value(found, "vtex_synerise_last_success_timestamp_seconds", kind="backfill",
                 **labels) == pytest.approx(finished_run.finished_at.timestamp())  # fmt: skip
    for family in ("vtex", "synerise"):
        ok = value(found, "vtex_synerise_api_requests_total", connection="default",
                   family=family, status="2xx")  # fmt: skip
        assert ok > 0
    assert value(found, "vtex_synerise_queue_depth", queue="backfill") == 0
    assert value(found, "vtex_synerise_realtime_inbox_depth", scope="orders") == 3
    assert value(found, "vtex_synerise_realtime_inbox_depth", scope="customers_created") == 0
    assert value(found, "vtex_synerise_workers", queue="backfill") == 1
    assert {name for name, _ in found} <= set(METRICS)
    assert all(value(found, "vtex_synerise_source_up", source=source) == 1
               for source in ("postgresql", "redis", "celery"))  # fmt: skip


def test_the_start_form_needs_its_csrf_token(console, store):
    form = console.get("/runs/new")
    token = csrf_token(form.text)
    fields = {"scope": "orders", "from": "2025-06-01", "to": "2026-06-01", "dry_run": "true"}
    assert console.post("/runs", data=fields).status_code == 403
    assert console.post("/runs", data={**fields, "csrf_token": "1.forged"}).status_code == 403
    cross = console.post("/runs", data={**fields, "csrf_token": token},
                         headers={"Origin": "https://evil.example"})  # fmt: skip
    assert cross.status_code == 403
    assert store.runs.find() == []

    bad = console.post("/runs", data={**fields, "to": "2025-01-01", "csrf_token": token})
    assert bad.status_code == 400 and "to must be after from" in bad.text
    started = console.post("/runs", data={**fields, "csrf_token": token})
    assert started.status_code == 303
    [run] = store.runs.find()
    assert started.headers["Location"].endswith(f"/runs/{run.id}?notice=started")
    assert (run.scope, run.dry_run, run.kind) == ("orders", True, "backfill")
    assert "Sync started." in console.get(started.headers["Location"]).text


def test_cancel_resume_and_replay_from_the_forms(console, finished_run, store):
    page = console.get(f"/runs/{finished_run.id}")
    token = csrf_token(page.text)
    assert 'id="cancel-' not in page.text, "a finished run offers no cancel"
    replayed = console.post(f"/runs/{finished_run.id}/replay", data={"csrf_token": token})
    assert replayed.status_code == 303
    replay = store.runs.find()[0]
    assert replay.kind == "replay" and replay.replay_of == finished_run.id
    assert replayed.headers["Location"].endswith(f"/runs/{replay.id}?notice=replay")
    done = wait_for_run(store, replay.id)
    again = console.post(f"/runs/{done.id}/cancel", data={"csrf_token": token})
    assert again.status_code == 409 and "nothing to cancel" in again.text
    resumed = console.post(f"/runs/{finished_run.id}/resume", data={"csrf_token": token})
    assert resumed.status_code == 303 and store.runs.get(finished_run.id).status == "done"


def test_the_json_api_starts_and_cancels(console, engine, store):
    body = {"scope": "customers_updated", "from": "2025-06-01", "to": "2026-06-01"}
    plain = console.post("/api/runs", data="scope=orders", headers={"Content-Type": "text/plain"})
    assert plain.status_code == 400
    assert console.post("/api/runs", json={**body, "scope": "catalog"}).status_code == 400
    # No worker runs here: the run stays running until cancelled.
    created = console.post("/api/runs", json=body)
    assert created.status_code == 201, created.text
    run = created.json()["run"]
    assert run["scope"] == "customers_updated" and run["status"] == "running"
    cancelled = console.post(f"/api/runs/{run['id']}/cancel", json={})
    assert cancelled.status_code == 200 and cancelled.json()["run"]["status"] == "cancelled"
    assert console.post(f"/api/runs/{run['id']}/cancel", json={}).status_code == 409


def test_cursors_and_realtime_pages(console, engine, store):
    from datetime import UTC, datetime

    from etl.state.realtime import RealtimeRuns

    store.cursors.advance("orders", datetime(2026, 1, 1, tzinfo=UTC))
    realtime = RealtimeRuns(store)
    realtime.count(realtime.run_id("orders"), read=3, sent=2, skipped=1)
    cursors = console.get("/api/cursors").json()["cursors"]
    orders = next(c for c in cursors if c["scope"] == "orders")
    assert orders["cursor"].startswith("2026-01-01") and orders["lag_seconds"] > 0
    assert next(c for c in cursors if c["scope"] == "customers_updated")["cursor"] is None
    assert 'id="cursor-orders"' in console.get("/cursors").text
    day = console.get("/api/realtime").json()
    [orders_day] = [s for s in day["scopes"] if s["scope"] == "orders"]
    assert orders_day["run"]["counts"]["sent"] == 2
    assert console.get("/realtime?day=yesterday").status_code == 400
    found = metrics(console.get("/metrics").text)
    assert value(found, "vtex_synerise_realtime_total", connection="default", kind="orders",
                 outcome="sent") == 2  # fmt: skip
    assert value(found, "vtex_synerise_cursor_lag_seconds", connection="default",
                 scope="orders") > 0  # fmt: skip


def test_a_console_without_credentials_for_the_apis_says_so(engine, monkeypatch):
    """Reading needs only the database; starting a sync names the missing setting."""
    from werkzeug.test import Client

    from tests.helpers.console import console_app

    app = console_app(engine)

    def no_engine(name=None):
        raise ConfigError("SYNERISE_API_KEY", "a value (it is required for this command)")

    app.services.engine = no_engine
    client = Client(app)
    auth = {"Authorization": "Basic " + __import__("base64").b64encode(
        f"{USER}:{PASSWORD}".encode()).decode()}  # fmt: skip
    assert client.get("/runs", headers=auth).status_code == 200
    response = client.post("/api/runs", json={"scope": "orders", "from": "2025-06-01",
                                              "to": "2026-01-01"}, headers=auth)  # fmt: skip
    assert response.status_code == 503
    assert "SYNERISE_API_KEY" in response.get_json()["error"]


def test_unknown_paths_and_methods(console):
    assert console.get("/nope").status_code == 404
    assert console.session.delete(console.url + "/runs", timeout=10).status_code == 405
    assert requests.get(console.url + "/", auth=(USER, PASSWORD), timeout=10).url.endswith("/runs")


def test_a_selection_run_shows_what_it_selected(console, engine):
    from etl.sync import runs

    run = runs.start(engine, runs.StartRequest("orders", keys=("A", "B", "A")))
    page = console.get("/runs")
    row = page.text.split(f'id="run-{run.id}"', 1)[1].split("</tr>", 1)[0]
    assert "selection" in row and "2 selected" in row
    assert "2 records named by id or e-mail" in console.get(f"/runs/{run.id}").text


def test_the_start_form_syncs_named_records(console, store):
    token = csrf_token(console.get("/runs/new").text)
    assert 'id="records"' in console.get("/runs/new").text
    fields = {"scope": "customers_updated", "from": "", "to": "", "csrf_token": token,
              "records": "cl-1, ana@example.com\ncl-1\nuser-9"}  # fmt: skip
    started = console.post("/runs", data=fields)
    assert started.status_code == 303, started.text
    [run] = store.runs.find()
    assert (run.scope, run.kind) == ("customers_updated", "selection")
    # each once, in the order given
    assert planned_keys(store, run.id) == ["cl-1", "email:ana@example.com", "user-9"]

    for scope, records, error in (
        ("orders", "1234567890123-01 ana@example.com", "is not an order id"),
        ("customers_created", "@example.com", "is not an e-mail address"),
        ("products", "sku-1", "records can only be named for"),
    ):
        refused = console.post("/runs", data={**fields, "scope": scope, "records": records})
        assert refused.status_code == 400 and error in refused.text
        assert records in refused.text  # the form comes back with what was typed
    no_dates = console.post("/runs", data={**fields, "records": " "})
    assert no_dates.status_code == 400 and "from must be a date" in no_dates.text
    assert len(store.runs.find()) == 1


def test_the_json_api_syncs_named_orders(console, store):
    created = console.post("/api/runs", json={"scope": "orders", "records": "A-01,B-01"})
    assert created.status_code == 201, created.text
    run = created.json()["run"]
    assert run["kind"] == "selection"
    assert planned_keys(store, run["id"]) == ["A-01", "B-01"]


def planned_keys(store, run_id: int) -> list[str]:
    """The record keys of a run's chunks, in plan order."""
    ids = store.chunks.ids(run_id, ("pending", "running", "done", "failed"))
    return [key for chunk_id in sorted(ids) for key in store.chunks.get(chunk_id).keys]
