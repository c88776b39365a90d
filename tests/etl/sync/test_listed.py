"""Listed documents travel from the producer to the chunk through Redis (``etl.state.listed``):
the rows carry only keys while a run is at most ``SYNC_REDIS_LISTED_RECORDS`` ahead of its
workers, a chunk whose documents are gone reads them from VTEX, and what Redis hands back is
checked against the chunk's keys."""

from __future__ import annotations

from typing import Any

import pytest
import redis

from etl.state.listed import TTL, ListedRecords
from etl.sync import runs
from etl.sync.engine import Engine
from tests.helpers.sync import WHOLE_RANGE, assert_profiles_arrived, planned_inline, stats

CUSTOMERS = runs.StartRequest("customers_created", WHOLE_RANGE)
MASTER_DATA = ("md.search", "md.document", "md.scroll")


def master_data_calls(sandbox: Any) -> int:
    requests_by_route = stats(sandbox, "vtex")["requests"]
    return sum(requests_by_route.get(route, 0) for route in MASTER_DATA)


def carried_by_rows(engine: Engine, run_id: int) -> set[int]:
    rows = engine.store.db.statement(
        "SELECT id FROM sync_chunk WHERE run_id = %s AND payload IS NOT NULL", (run_id,)
    )
    return {row["id"] for row in rows}


def kept_in_redis(client: redis.Redis, chunk_ids: list[int]) -> set[int]:
    return {chunk_id for chunk_id in chunk_ids if client.exists(ListedRecords.key(chunk_id))}


def run_all(engine: Engine, chunk_ids: list[int]) -> list[str]:
    return [runs.run_chunk(engine, chunk_id) for chunk_id in chunk_ids]


@pytest.mark.sync_env(SYNC_CHUNK_SIZE=25)
def test_listed_documents_wait_in_redis_and_no_record_is_read_again(
    sandbox, engine: Engine, sync_redis: redis.Redis
):
    run_id, chunk_ids = planned_inline(engine, CUSTOMERS)
    assert len(chunk_ids) > 2
    assert carried_by_rows(engine, run_id) == set()
    assert kept_in_redis(sync_redis, chunk_ids) == set(chunk_ids)

    listed = master_data_calls(sandbox)
    assert run_all(engine, chunk_ids) == ["done"] * len(chunk_ids)
    assert master_data_calls(sandbox) == listed, "every document came from Redis"
    assert kept_in_redis(sync_redis, chunk_ids) == set(), "a chunk takes its documents out"
    assert engine.store.runs.get(run_id).status == "done"
    assert_profiles_arrived(sandbox, guests=False)


@pytest.mark.sync_env(SYNC_CHUNK_SIZE=25, SYNC_REDIS_LISTED_RECORDS=60)
def test_past_the_limit_ahead_of_the_workers_the_rows_carry_the_documents(
    sandbox, engine: Engine, sync_redis: redis.Redis
):
    run_id, chunk_ids = planned_inline(engine, CUSTOMERS)
    in_rows, in_redis = carried_by_rows(engine, run_id), kept_in_redis(sync_redis, chunk_ids)
    assert in_redis and in_rows, "the first chunks go to Redis, those past 60 records to rows"
    assert in_rows | in_redis == set(chunk_ids) and not in_rows & in_redis
    assert len(in_redis) * 25 <= 60

    listed = master_data_calls(sandbox)
    assert run_all(engine, chunk_ids) == ["done"] * len(chunk_ids)
    assert master_data_calls(sandbox) == listed
    assert_profiles_arrived(sandbox, guests=False)


@pytest.mark.sync_env(SYNC_CHUNK_SIZE=25, SYNC_REDIS_LISTED_RECORDS=0)
def test_with_no_room_in_redis_the_rows_carry_every_document(
    sandbox, engine: Engine, sync_redis: redis.Redis
):
    run_id, chunk_ids = planned_inline(engine, CUSTOMERS)
    assert carried_by_rows(engine, run_id) == set(chunk_ids)
    assert kept_in_redis(sync_redis, chunk_ids) == set()


@pytest.mark.sync_env(SYNC_CHUNK_SIZE=25)
def test_a_chunk_whose_documents_are_gone_reads_them_from_vtex(
    sandbox, engine: Engine, sync_redis: redis.Redis
):
    """Redis restarted without them, an attempt that took them died, or they expired."""
    run_id, chunk_ids = planned_inline(engine, CUSTOMERS)
    gone = chunk_ids[1::2]
    sync_redis.delete(*(ListedRecords.key(chunk_id) for chunk_id in gone))

    listed = master_data_calls(sandbox)
    assert run_all(engine, chunk_ids) == ["done"] * len(chunk_ids)
    assert master_data_calls(sandbox) > listed
    run = engine.store.runs.get(run_id)
    assert run.status == "done" and run.read_count == run.records_total
    assert_profiles_arrived(sandbox, guests=False)


def test_documents_are_handed_back_once_and_only_for_their_own_keys(sync_redis: redis.Redis):
    listed = ListedRecords(sync_redis)
    docs = [{"id": "a", "email": "a@example.com"}, {"id": "b"}]
    assert listed.put([(7, docs), (8, docs)])

    def key_of(doc: dict[str, Any]) -> str:
        return str(doc["id"])

    assert listed.take(7, ["a", "b"], key_of) == docs
    assert listed.take(7, ["a", "b"], key_of) is None, "taken once"
    assert listed.take(8, ["a", "c"], key_of) is None, "another chunk's documents"
    assert not sync_redis.exists(ListedRecords.key(8))
    sync_redis.set(ListedRecords.key(9), '[{"no": "id"}]')
    assert listed.take(9, ["a"], key_of) is None
    assert listed.put([(10, docs)])
    assert 0 < sync_redis.ttl(ListedRecords.key(10)) <= TTL


def test_without_redis_nothing_is_kept_and_nothing_is_handed_back():
    down = redis.Redis(port=1, socket_connect_timeout=0.2)
    listed = ListedRecords(down)
    assert listed.put([(1, [{"id": "a"}])]) is False
    assert listed.take(1, ["a"], lambda doc: str(doc["id"])) is None


def test_before_redis_6_2_documents_are_taken_with_get_and_del(
    redis_url: str, sync_redis: redis.Redis
):
    class OldRedis(redis.Redis):
        def getdel(self, name: Any) -> Any:
            raise redis.ResponseError("unknown command 'GETDEL', with args beginning with: ")

    client = OldRedis.from_url(redis_url)
    listed = ListedRecords(client)
    assert listed.put([(3, [{"id": "a"}])])
    assert listed.take(3, ["a"], lambda doc: str(doc["id"])) == [{"id": "a"}]
    assert not client.exists(ListedRecords.key(3))
    client.close()
