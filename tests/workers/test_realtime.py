"""The realtime tasks in a real Celery worker: names, routes, retries, and the last attempt."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from etl.retry import RetryPolicy
from etl.sandbox import Sandbox
from etl.state.store import StateStore
from etl.sync.engine import Engine
from etl.sync.queues import (
    REALTIME,
    TASK_CONSENT,
    TASK_CUSTOMER,
    TASK_CUSTOMER_DELETED,
    TASK_DRAIN,
    TASK_ORDER,
)
from etl.synerise.client import SyneriseClient
from tests.etl.webhooks import harness
from tests.etl.webhooks.harness import (
    profile,
    realtime_runs,
    vtex_admin,
    wait_processed,
    wait_until,
)
from workers.dispatch import enqueue

# The realtime fixtures, over the same names tests/conftest.py gives the sync fixtures.
broker, sandbox, rt_env = harness.broker, harness.sandbox, harness.rt_env
engine, store, worker = harness.engine, harness.store, harness.worker

TASKS = (TASK_CUSTOMER, TASK_CUSTOMER_DELETED, TASK_ORDER, TASK_CONSENT, TASK_DRAIN)


@pytest.mark.parametrize("name", TASKS)
def test_realtime_tasks_are_registered_and_routed_to_the_realtime_queue(name):
    from workers.app import app

    app.loader.import_default_modules()  # what a worker does at start: the included modules
    assert name in app.tasks
    assert app.amqp.router.route({}, name)["queue"].name == REALTIME


@pytest.fixture
def fragile(engine: Engine) -> Engine:
    """Synerise calls fail fast (no client retries): the task's own retries are what we see."""
    engine.synerise = SyneriseClient.from_settings(engine.settings,
                                                   retry=RetryPolicy(max_attempts=1))
    return engine


def new_customer(sandbox: Sandbox) -> str:
    body = {"email": "eva.rocha@example.com", "userId": "user-eva", "isNewsletterOptIn": False}
    return str(vtex_admin(sandbox, "POST", "/customers", body)["id"])


def test_a_failing_task_is_retried_until_it_succeeds(
    sandbox: Sandbox, fragile: Engine, store: StateStore, worker
):
    doc_id = new_customer(sandbox)
    sandbox.synerise.faults.set("synerise.clients_batch", error_rate=1.0)
    enqueue(TASK_CUSTOMER, [{"id": doc_id, "change": "created"}], REALTIME)
    wait_until(lambda: sandbox.synerise.stats()["errors_injected"] >= 1, what="a failed call")
    sandbox.synerise.faults.clear()
    wait_processed(store, 1)
    assert profile(sandbox, "user-eva") is not None
    assert [store.rejects.find(run.id) for run in realtime_runs(store)] == [[]]


def test_the_last_attempt_keeps_the_failure_as_a_reject_that_sync_rejects_lists(
    sandbox: Sandbox, fragile: Engine, store: StateStore, worker, monkeypatch
):
    from etl.cli import main
    from workers.tasks import realtime as tasks

    monkeypatch.setattr(tasks, "MAX_RETRIES", 0)  # the first attempt is the last
    doc_id = new_customer(sandbox)
    sandbox.synerise.faults.set("synerise.clients_batch", error_rate=1.0)
    enqueue(TASK_CUSTOMER, [{"id": doc_id, "change": "created"}], REALTIME)
    wait_processed(store, 1)
    [run] = realtime_runs(store)
    result = CliRunner().invoke(main, ["sync", "rejects", str(run.id)])
    assert result.exit_code == 0, result.output
    assert doc_id in result.output and "DELIVERY_FAILED" in result.output
