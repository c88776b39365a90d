"""The products stream's pieces, cheaply: which SKUs a full pass finds gone, planning them after
the listing (also after a crash), tombstones never planned twice, the catalog target's 404
recovery. Real PostgreSQL; VTEX and Synerise are fakes."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from etl.errors import CatalogNotFoundError, FatalError
from etl.state.chunks import ChunkOutcome
from etl.state.store import StateStore
from etl.sync import producer
from etl.sync.catalog import CatalogTarget
from etl.sync.producer import plan_chunks
from etl.sync.streams import Fetched, ProductsStream
from etl.sync.windows import Window
from etl.synerise.batching import BatchResult
from schemas.mapping import CatalogConfig, MappingConfig, payload_hash

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def state(database_url) -> Iterator[StateStore]:
    store = StateStore(database_url)
    yield store
    store.close()


class FakeSynerise:
    """Catalogs and their items in memory; a catalog can be deleted behind the client's back."""

    def __init__(self) -> None:
        self.bags: dict[int, dict[str, Any]] = {}
        self.names: dict[int, str] = {}
        self.calls: list[str] = []
        self.next_id = 1

    def find_catalog(self, name: str) -> int | None:
        self.calls.append("find")
        return min((i for i, n in self.names.items() if n == name), default=None)

    def create_catalog(self, name: str) -> int:
        self.calls.append("create")
        catalog_id, self.next_id = self.next_id, self.next_id + 1
        self.names[catalog_id], self.bags[catalog_id] = name, {}
        return catalog_id

    def upsert_catalog_items(self, catalog_id: int, items: Sequence[dict[str, Any]]) -> BatchResult:
        self.calls.append(f"upsert {catalog_id}")
        if catalog_id not in self.bags:
            raise CatalogNotFoundError(catalog_id, f"catalog {catalog_id} not found")
        self.bags[catalog_id].update({item["itemKey"]: item["value"] for item in items})
        return BatchResult(accepted=list(range(len(items))))

    def delete(self, catalog_id: int) -> None:
        del self.bags[catalog_id], self.names[catalog_id]


def target(state: StateStore, synerise: FakeSynerise, name: str = "vtexacme") -> CatalogTarget:
    return CatalogTarget(synerise, state.catalogs, "https://api.test key:x", name)  # type: ignore[arg-type]


def test_the_catalog_is_found_or_created_once_and_recreated_after_a_404(state):
    synerise = FakeSynerise()
    first = target(state, synerise)
    assert first.known_id() is None
    assert first.ensure() == 1 and synerise.calls == ["find", "create"]
    other = target(state, synerise)  # another worker: PostgreSQL remembers the id
    assert other.ensure() == 1 and synerise.calls == ["find", "create"]
    assert other.known_id() == 1

    synerise.delete(1)
    item = {"itemKey": "1001", "value": {"itemId": "1001", "deleted": "0"}}
    assert first.send([item]).accepted == [0]
    assert synerise.bags == {2: {"1001": item["value"]}}
    assert first.known_id() == 2
    # the other worker still holds 1: it meets the 404 too, and takes 2 without creating 3
    assert other.send([item]).accepted == [0] and set(synerise.bags) == {2}
    assert synerise.calls.count("create") == 2


def test_a_catalog_that_is_gone_again_at_once_fails_the_chunk(state):
    synerise = FakeSynerise()
    catalog = target(state, synerise)
    catalog.ensure()

    def always_gone(catalog_id: int, items: Sequence[dict[str, Any]]) -> BatchResult:
        raise CatalogNotFoundError(catalog_id, "gone")

    synerise.upsert_catalog_items = always_gone  # type: ignore[method-assign]
    with pytest.raises(CatalogNotFoundError):
        catalog.send([{"itemKey": "1", "value": {}}])


def test_a_catalog_found_by_name_is_used_as_it_is(state):
    synerise = FakeSynerise()
    synerise.names[7], synerise.bags[7] = "vtexacme", {}
    assert target(state, synerise).ensure() == 7 and "create" not in synerise.calls


class Listing(ProductsStream):
    """A products stream whose catalog listing is a list of SKU ids (no HTTP)."""

    def __init__(self, state: StateStore, listed: Sequence[int], catalog_id: int | None = 5):
        synerise = FakeSynerise()
        if catalog_id is not None:
            synerise.names[catalog_id], synerise.bags[catalog_id] = "vtexacme", {}
        super().__init__(
            None,  # type: ignore[arg-type]  # no VTEX calls here
            MappingConfig(),
            catalog=target(state, synerise),
            config=CatalogConfig(),
            known=state.ledger,
            currency="BRL",
        )
        if catalog_id is not None:
            self.catalog.ensure()
        self.listed = list(listed)

    def count(self, window: Window) -> int:
        return len(self.listed)

    def list_pages(self, window: Window, total: int) -> Iterator[list[dict[str, Any]]]:
        for first in range(0, total, 4):
            yield [{"skuId": sku, "productId": sku // 10} for sku in self.listed[first : first + 4]]

    def fetch(self, keys: Sequence[str], stored: Sequence[dict[str, Any]] | None) -> list[Fetched]:
        raise NotImplementedError


def ledger_rows(state: StateStore, rows: dict[str, str]) -> None:
    run_id = state.runs.create("backfill", "products", T0, T0 + timedelta(milliseconds=1))
    assert state.runs.transition(run_id, "running", ("queued",))
    [chunk_id] = state.chunks.add(run_id, [list(rows)])
    outcome = ChunkOutcome(stream="catalog_items", read=len(rows))
    for key, digest in rows.items():
        outcome.accept(key, digest)
    state.chunks.complete(state.chunks.claim(chunk_id, "test"), outcome)  # type: ignore[arg-type]


def products_run(state: StateStore) -> int:
    run_id = state.runs.create("backfill", "products", T0, T0 + timedelta(milliseconds=1))
    assert state.runs.transition(run_id, "running", ("queued",))
    return run_id


def chunk_keys(state: StateStore, run_id: int) -> list[list[str]]:
    return [
        state.chunks.get(chunk_id).keys
        for chunk_id in state.chunks.ids(run_id, ("pending", "running", "done", "failed"))
    ]


def test_a_full_pass_plans_the_listing_then_the_skus_gone_since_then(state):
    stream = Listing(state, [11, 12, 13, 21, 22])
    tombstone = payload_hash(stream._tombstone("41", 5))
    sent = {str(s): "h" for s in (11, 12, 13, 21, 22, 31, 32, 33, 34, 35, 36)}
    ledger_rows(state, {**sent, "41": tombstone, "42": payload_hash(stream._tombstone("42", 4))})
    run_id = products_run(state)
    plan_chunks(run_id, state, stream, 4, lambda _: None, lambda: None)
    planned = chunk_keys(state, run_id)
    assert planned[:2] == [["11", "12", "13", "21"], ["22"]]
    # gone since the last pass: planned after the listing; 41's tombstone was sent already;
    # 42's tombstone went to a catalog that is no more, so it goes to this one
    assert planned[2:] == [["31", "32", "33", "34"], ["35", "36", "42"]]
    run = state.runs.get(run_id)
    assert run.planning_done and run.records_total == 12


class Crash(Exception):
    pass


@pytest.mark.parametrize("dies_at", [0, 1, 2, 3, 4, 5])
def test_a_producer_that_dies_among_the_gone_plans_each_once(state, dies_at, monkeypatch):
    monkeypatch.setattr(producer, "PLAN_BATCH_RECORDS", 7)  # one write per chunk
    stream = Listing(state, list(range(100, 110)))
    ledger_rows(state, {str(k): "h" for k in [*range(100, 110), *range(200, 230)]})
    run_id = products_run(state)
    writes = {"n": 0}

    def dies() -> None:
        writes["n"] += 1
        # the listing makes 2 checks (its first chunk alone, then the second with the window's
        # end), the 5 chunks of gone ones 5 more, and one comes before the planning's end
        if writes["n"] == 3 + dies_at:
            raise Crash

    with pytest.raises(Crash):
        plan_chunks(run_id, state, stream, 7, lambda _: None, dies)
    plan_chunks(run_id, state, stream, 7, lambda _: None, lambda: None)
    keys = [key for chunk in chunk_keys(state, run_id) for key in chunk]
    assert sorted(keys) == sorted(str(k) for k in [*range(100, 110), *range(200, 230)])
    assert state.runs.get(run_id).planning_done


def test_without_a_catalog_yet_nothing_is_a_tombstone(state):
    stream = Listing(state, [], catalog_id=None)
    ledger_rows(state, {"7": payload_hash(stream._tombstone("7", None))})
    run_id = products_run(state)
    state.chunks.add(run_id, [["1"]])  # the listing found something
    assert list(stream.vanished(run_id, state, 10)) == []


def test_items_hash_for_their_catalog_and_travel_without_it(state):
    stream = Listing(state, [])
    gone = Fetched("9", {"sku": None, "price": None}, {"catalogId": 5, "currency": "BRL",
                                                        "now": T0})  # fmt: skip
    payload = stream.to_payload(gone)
    assert payload == {"catalogId": 5, "itemKey": "9", "value": {"itemId": "9", "deleted": "1"}}
    moved = stream.to_payload(Fetched("9", gone.record, {**gone.context, "catalogId": 6}))  # type: ignore[dict-item]
    assert payload_hash(moved) != payload_hash(payload)
    synerise = stream.catalog.synerise
    stream.send(synerise, [payload])  # type: ignore[arg-type]
    assert synerise.bags[5] == {"9": {"itemId": "9", "deleted": "1"}}  # type: ignore[attr-defined]


def test_an_empty_listing_never_deletes_the_whole_catalog(state):
    stream = Listing(state, [])
    ledger_rows(state, {"11": "h", "12": "h"})
    run_id = products_run(state)
    with pytest.raises(FatalError, match="refusing to mark the whole Synerise catalog deleted"):
        plan_chunks(run_id, state, stream, 4, lambda _: None, lambda: None)
    assert chunk_keys(state, run_id) == [] and not state.runs.get(run_id).planning_done
    first_ever = products_run(state)  # nothing sent yet: an empty catalog is just empty
    with state.db.transaction() as cur:
        cur.execute("DELETE FROM entity_ledger")
    assert plan_chunks(first_ever, state, stream, 4, lambda _: None, lambda: None) == "done"
