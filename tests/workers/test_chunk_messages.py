"""The chunk task's messages: several chunks per message, retries of only the chunks that need
them, and the one-chunk messages of earlier versions still processed after an upgrade."""

from __future__ import annotations

from typing import Any

import pytest
from celery.exceptions import Retry

from etl.errors import RetriableError
from etl.sync import runs
from etl.sync.engine import Engine
from etl.sync.queues import TASK_PROCESS_CHUNK
from tests.helpers.sync import WHOLE_RANGE, assert_profiles_arrived, planned_inline, wait_for_run

CUSTOMERS = runs.StartRequest("customers_created", WHOLE_RANGE)


def planned(engine: Engine) -> tuple[int, list[int]]:
    return planned_inline(engine, CUSTOMERS)


@pytest.mark.sync_env(SYNC_CHUNK_SIZE=25)
def test_listed_chunks_share_a_message_and_each_is_still_claimed_on_its_own(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
):
    batches: list[tuple[str, list[list[Any]]]] = []
    monkeypatch.setattr(
        engine, "enqueue_many", lambda name, args, queue: batches.append((name, args))
    )
    run_id, chunk_ids = planned(engine)
    sent = [group for name, args in batches if name == TASK_PROCESS_CHUNK for [group] in args]
    assert [chunk for group in sent for chunk in group] == chunk_ids
    assert sent[0] == [chunk_ids[0]], "the first chunk goes alone: workers start at once"
    assert 1 < len(sent) < len(chunk_ids)
    assert max(len(group) for group in sent) <= runs.TASK_RECORDS // 25

    from workers.tasks.sync import process_chunk

    group = max(sent, key=len)
    assert process_chunk.apply(args=[group]).get() == ["done"] * len(group)
    again = process_chunk.apply(args=[group]).get()
    assert again == ["skipped"] * len(group), "a redelivered message finds its chunks done"
    assert engine.store.runs.get(run_id).chunks_done == len(group)


def test_orders_chunks_go_one_per_message(engine: Engine, monkeypatch: pytest.MonkeyPatch):
    """Chunks that read every record from VTEX spread over the workers."""
    batches: list[list[list[Any]]] = []
    monkeypatch.setattr(engine, "enqueue_many", lambda name, args, queue: batches.append(args))
    run = runs.start(engine, runs.StartRequest("orders", WHOLE_RANGE))
    runs.run_producer(engine, run.id)
    assert batches and all(len(group) == 1 for args in batches for [group] in args)


@pytest.mark.sync_env(SYNC_CHUNK_SIZE=25)
def test_only_the_chunks_that_hit_a_retriable_error_are_retried(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
):
    from workers.tasks import sync as tasks

    _, chunk_ids = planned(engine)
    first, flaky, last = chunk_ids[:3]
    attempts: list[tuple[int, bool]] = []
    run_chunk = runs.run_chunk

    def run_once(found: Engine, chunk_id: int, *, final_attempt: bool = True) -> str:
        attempts.append((chunk_id, final_attempt))
        if chunk_id == flaky:
            raise RetriableError("Synerise answered 503")
        return run_chunk(found, chunk_id, final_attempt=final_attempt)

    retried: list[dict[str, Any]] = []

    def retry(**options: Any) -> Retry:
        retried.append(options)
        return Retry("retrying", options.get("exc"))

    monkeypatch.setattr(tasks.runs, "run_chunk", run_once)
    monkeypatch.setattr(tasks.process_chunk, "retry", retry)
    tasks.process_chunk.apply(args=[[first, flaky, last]])
    assert attempts == [(first, False), (flaky, False), (last, False)]
    assert [options["args"] for options in retried] == [[[flaky]]]
    assert {engine.store.chunks.get(i).status for i in (first, last)} == {"done"}
    assert engine.store.chunks.get(flaky).status == "pending"


def test_a_one_chunk_message_of_an_earlier_version_is_still_processed(
    engine: Engine, celery_app: Any, sandbox: Any, request: pytest.FixtureRequest
):
    """Messages already in Redis at an upgrade carry one chunk id, not a list."""
    run_id, chunk_ids = planned(engine)
    celery_app.control.purge()  # the new-form messages the producer sent
    for chunk_id in chunk_ids:
        celery_app.send_task(TASK_PROCESS_CHUNK, args=[chunk_id], queue="backfill")
    request.getfixturevalue("worker")
    run = wait_for_run(engine.store, run_id)
    assert (run.status, run.chunks_done) == ("done", len(chunk_ids))
    assert_profiles_arrived(sandbox, guests=False)


@pytest.mark.sync_env(SYNC_CHUNK_SIZE=25)
def test_a_chunk_that_hits_a_bug_does_not_hold_back_the_others_of_its_message(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
):
    from workers.tasks import sync as tasks

    _, chunk_ids = planned(engine)
    first, broken, last = chunk_ids[:3]
    run_chunk = runs.run_chunk

    def run_once(found: Engine, chunk_id: int, *, final_attempt: bool = True) -> str:
        if chunk_id == broken:
            raise KeyError("a bug")
        return run_chunk(found, chunk_id, final_attempt=final_attempt)

    monkeypatch.setattr(tasks.runs, "run_chunk", run_once)
    result = tasks.process_chunk.apply(args=[[first, broken, last]])
    assert isinstance(result.result, KeyError), "the task fails as its chunk did"
    assert [engine.store.chunks.get(i).status for i in (first, last)] == ["done", "done"]
