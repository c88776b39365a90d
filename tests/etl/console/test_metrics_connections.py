"""Business metrics and the cursors page per connection: each run and cursor counts under its
own connection's name."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

from werkzeug.test import Client

from etl.console import reads
from etl.state.store import StateStore
from tests.helpers.console import PASSWORD, USER, console_app

DAY = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC)


def test_totals_and_cursors_are_per_connection(database_url):
    store = StateStore(database_url)
    try:
        default = store.for_connection(store.connections.resolve("default", "shop", "ws-1"))
        other = store.for_connection(store.connections.resolve("storeb", "storeb", "ws-1"))
        default.runs.create("backfill", "orders", *DAY)
        other.runs.create("backfill", "orders", *DAY)
        other.runs.create("incremental", "customers_updated", *DAY)
        other.cursors.advance("customers_updated", DAY[1])
        found = reads.totals(store)
        assert found.connections == ["default", "storeb"]
        runs = {(row["connection"], row["scope"]): row["runs"] for row in found.runs}
        assert runs == {("default", "orders"): 1, ("storeb", "orders"): 1,
                        ("storeb", "customers_updated"): 1}  # fmt: skip
        lagging = {(c.connection, c.scope) for c in found.cursors if c.cursor is not None}
        assert lagging == {("storeb", "customers_updated")}
        assert all(c.cursor is None for c in reads.cursors(default))
    finally:
        store.close()


def test_the_cursors_page_shows_every_connections_cursors(engine, database_url):
    other = engine.store.for_connection(
        engine.store.connections.resolve("storeb", "storeb", "ws-2")
    )
    other.cursors.advance("orders", DAY[1])
    app = console_app(engine)
    auth = {"Authorization": "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()}
    page = Client(app).get("/cursors", headers=auth).get_data(as_text=True)
    assert 'id="cursor-storeb-orders"' in page and 'id="cursor-default-orders"' in page
    found = Client(app).get("/api/cursors", headers=auth).json
    rows = found if isinstance(found, list) else found["cursors"]
    assert {(row["connection"], row["scope"]) for row in rows if row["cursor"]} == {
        ("storeb", "orders")
    }


def test_the_realtime_page_names_a_connection(engine):
    from etl.state.realtime import RealtimeRuns

    other = engine.store.for_connection(
        engine.store.connections.resolve("storeb", "storeb", "ws-2")
    )
    run_id = RealtimeRuns(other).run_id("orders")
    RealtimeRuns(other).count(run_id, read=3, sent=3)
    app = console_app(engine)
    auth = {"Authorization": "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()}
    client = Client(app)
    mine = client.get("/api/realtime", headers=auth).json
    theirs = client.get("/api/realtime?connection=storeb", headers=auth).json
    assert client.get("/api/realtime?connection=nope", headers=auth).status_code == 400

    def orders(day: dict) -> object:
        return next(s for s in day["scopes"] if s["scope"] == "orders")["run"]

    assert orders(mine) is None
    assert orders(theirs)["counts"]["read"] == 3


def test_api_traffic_counts_under_the_connection_of_its_budget(monkeypatch):
    from etl import connections
    from etl.console import metrics

    owners = {("vtex", "shop"): "default", ("vtex", "shopsub"): "default",
              ("vtex", "storeb"): "storeb", ("synerise", "ws-2"): "storeb"}  # fmt: skip
    monkeypatch.setattr(connections, "budget_owners", lambda: owners)
    usage = {
        "vtex:shop": {"requests:2xx": 5.0},
        "vtex:shopsub": {"requests:2xx": 2.0, "requests:429": 1.0},  # its sub-account
        "vtex:storeb": {"requests:2xx": 7.0},
        "synerise:ws-2": {"budget_wait_seconds": 1.5},
        "synerise": {"requests:2xx": 3.0},  # counted before accounts were recorded
    }
    assert metrics._by_connection(usage) == {
        ("default", "vtex"): {"requests:2xx": 7.0, "requests:429": 1.0},
        ("storeb", "vtex"): {"requests:2xx": 7.0},
        ("storeb", "synerise"): {"budget_wait_seconds": 1.5},
        ("default", "synerise"): {"requests:2xx": 3.0},
    }
