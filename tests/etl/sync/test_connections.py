"""State per connection, end to end: a new Synerise workspace gets everything again, and an
existing single-account deployment keeps its state through the upgrade."""

from __future__ import annotations

import json

import psycopg2

from etl.sandbox import start_sandbox
from etl.state.connections import DEFAULT_ID
from tests.etl.wiring import wired_engine
from tests.helpers.sync import (
    RANGE_ARGS,
    assert_profiles_arrived,
    expected,
    expected_profiles,
    invoke,
    stats,
)


def sync_customers(*flags: str) -> dict:
    result = invoke("sync", "start", "customers", *RANGE_ARGS, "--wait", "--json", *flags)
    return json.loads(result.stdout)


def test_the_same_state_pointed_at_a_new_workspace_resends_every_valid_customer(
    sandbox, engine, worker, sync_env, monkeypatch
):
    truth = expected(sandbox)
    first = sync_customers()
    assert first["counts"]["sent"] == truth["customers"]["sent"]
    assert engine.connection_id == DEFAULT_ID  # the upgrade's row, claimed by `default`

    with start_sandbox(customers=200, orders=300, seed=7) as other:  # the same VTEX data
        moved = {**sync_env, "SYNERISE_API_HOST": other.synerise_url}
        with wired_engine(moved, monkeypatch) as switched:
            assert switched.connection_id != engine.connection_id
            again = sync_customers()
            assert again["counts"]["sent"] == truth["customers"]["sent"]
            assert again["counts"]["skipped"] == 0
            assert_profiles_arrived(other, guests=False)
            assert stats(other)["profiles"] == len(expected_profiles(other))

    # The first workspace's ledger is untouched: back there, nothing is sent again.
    with wired_engine(sync_env, monkeypatch) as back:
        assert back.connection_id == DEFAULT_ID
        unchanged = sync_customers()
        assert unchanged["counts"]["sent"] == 0
        assert unchanged["counts"]["skipped"] == truth["customers"]["sent"]


def test_an_upgraded_single_account_deployment_keeps_its_ledger_and_cursors(
    sandbox, engine, worker, sync_env, monkeypatch
):
    truth = expected(sandbox)
    assert sync_customers()["counts"]["sent"] == truth["customers"]["sent"]
    engine.store.cursors.advance("orders", engine.store.runs.find(limit=1)[0].window_to)
    # What migration 0008 leaves behind: every row on connection 1, whose identity is unknown.
    with psycopg2.connect(sync_env["DATABASE_URL"]) as conn, conn.cursor() as cur:
        cur.execute("UPDATE etl_connection SET vtex_account = NULL, workspace = NULL")
    with wired_engine(sync_env, monkeypatch) as upgraded:  # the same configuration
        assert upgraded.connection_id == DEFAULT_ID
        assert upgraded.store.cursors.get("orders") is not None
        again = sync_customers()
        assert again["counts"]["sent"] == 0
        assert again["counts"]["skipped"] == truth["customers"]["sent"]
