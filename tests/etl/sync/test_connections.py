"""State per connection, end to end: a new Synerise workspace gets everything again, an
existing single-account deployment keeps its state through the upgrade, and two stores whose
order ids overlap sync at once into one workspace without touching each other's orders."""

from __future__ import annotations

import json

import psycopg2

from etl.sandbox import start_sandbox
from etl.state.connections import DEFAULT_ID
from tests.etl.wiring import wired_engine, wired_engines
from tests.helpers.sync import (
    RANGE_ARGS,
    assert_profiles_arrived,
    expected,
    expected_profiles,
    invoke,
    listing,
    order_truth,
    stats,
    wait_for_run,
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


def _table(name: str, sandbox, synerise) -> str:
    env = {**sandbox.env(), "SYNERISE_API_KEY": synerise.synerise.api_key,
           "SYNERISE_API_HOST": synerise.synerise_url}  # fmt: skip
    return f"[{name}]\n" + "".join(f'{key} = "{value}"\n' for key, value in env.items())


def test_two_stores_with_overlapping_order_ids_synced_at_once_into_one_workspace(
    sync_env, worker, monkeypatch, tmp_path
):
    with (
        start_sandbox(customers=60, orders=150, seed=7, account="storea") as storea,
        start_sandbox(customers=60, orders=150, seed=8, account="storeb") as storeb,
    ):
        path = tmp_path / "connections.toml"
        path.write_text(_table("storea", storea, storea) + _table("storeb", storeb, storea))
        env = {**sync_env, "ETL_CONNECTIONS": str(path)}
        truth = {"storea": order_truth(storea), "storeb": order_truth(storeb)}
        valid = {name: {k for k, why in found.items() if why is None}
                 for name, found in truth.items()}  # fmt: skip
        assert valid["storea"] & valid["storeb"], "the two stores' order ids must overlap"
        with wired_engines(env, monkeypatch) as engines:
            assert invoke("sync", "start", "orders", *RANGE_ARGS, expect=2).stderr.startswith(
                "error: --connection: expected one of storea, storeb"
            )
            started = {
                name: json.loads(invoke("sync", "start", "orders", *RANGE_ARGS, "--json",
                                        "--connection", name).stdout)["id"]
                for name in ("storea", "storeb")
            }  # fmt: skip
            for name, run_id in started.items():
                run = wait_for_run(engines.get(name).store, run_id)
                assert run.status == "done", run.error
                assert run.sent_count == len(valid[name])
                assert run.connection_id == engines.get(name).connection_id
            assert engines.get("storea").lease.key != engines.get("storeb").lease.key
        received = listing(storea, "transactions")
        by_store = {
            name: {t["orderId"] for t in received if t["eventSalt"].startswith(f"{name}:order:")}
            for name in ("storea", "storeb")
        }
        assert by_store == valid  # every order of both arrived, under its own store's salt
        assert len(received) == len(valid["storea"]) + len(valid["storeb"])
        assert len({t["eventSalt"] for t in received}) == len(received)  # each (store, order) once
        counts = stats(storea)
        assert counts["transactions_overwritten"] == 0
        # The emulator counts an orderId stored a second time; here that is exactly the other
        # store's order with the same id (its own salt, its own buyer), and nothing else.
        assert counts["duplicate_transactions"] == len(valid["storea"] & valid["storeb"])
