"""Business metrics per connection: each run counts under its own connection's name."""

from __future__ import annotations

from datetime import UTC, datetime

from etl.console import reads
from etl.state.store import StateStore

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
