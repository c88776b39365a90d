"""The sandbox's data: determinism, O(1) access, window maps, ground truth, fixtures, overlay."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from etl.errors import SkippableRecordError
from etl.sandbox.data import (
    CUSTOMER_DIRTY_KINDS,
    MAX_ORDERS,
    ORDER_DIRTY_KINDS,
    Dataset,
    FixtureDataset,
    NotSortable,
    Source,
    Store,
    format_md_time,
    parse_time,
)
from schemas.mapping import MappingConfig, profile_from_customer, transaction_from_order
from schemas.rules import is_masked_vtex_email, is_valid_email

START = datetime(2025, 1, 1, tzinfo=UTC)


def small(**overrides: object) -> Dataset:
    args: dict[str, object] = {
        "customers": 600,
        "orders": 900,
        "seed": 42,
        "dirty_share": 0.3,
        "start": START,
        "end": START + timedelta(days=20),
    }
    args.update(overrides)
    return Dataset(**args)  # type: ignore[arg-type]


def ms(text: str) -> int:
    return parse_time(text)


# -- determinism and O(1) access ------------------------------------------------------------


def test_same_arguments_give_the_same_documents() -> None:
    a, b = small(), small()
    for i in (0, 1, 299, 599):
        assert a.customer(i) == b.customer(i)
    for i in (0, 450, 899):
        assert a.order(i) == b.order(i)
    assert a.sku(1001) == b.sku(1001)
    assert a.price(1001) == b.price(1001)
    assert a.expected() == b.expected()


def test_another_seed_gives_other_documents() -> None:
    a, b = small(), small(seed=43)
    assert a.customer(10) != b.customer(10)
    assert a.order(10)["items"] != b.order(10)["items"]


def test_documents_are_fresh_copies() -> None:
    dataset = small()
    dataset.customer(3)["email"] = "changed"
    assert dataset.customer(3)["email"] != "changed"


def test_huge_dataset_is_computed_per_index() -> None:
    dataset = Dataset(customers=10**12, orders=MAX_ORDERS, seed=1)
    last = dataset.customer(10**12 - 1)
    assert dataset.find_customers("id", last["id"]) == [10**12 - 1]
    order = dataset.order(MAX_ORDERS - 1)
    assert dataset.order_index(order["orderId"]) == MAX_ORDERS - 1
    window = dataset.customer_ids_in_window("createdIn", START, START)
    assert isinstance(window, range)


def test_out_of_range_index_is_an_error() -> None:
    dataset = small()
    with pytest.raises(IndexError):
        dataset.customer(600)
    with pytest.raises(IndexError):
        dataset.order(-1)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"customers": -1},
        {"orders": MAX_ORDERS + 1},
        {"dirty_share": 1.5},
        {"end": START},
        {"account": "Bad Account"},
    ],
)
def test_bad_arguments_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        small(**kwargs)


# -- time layout ------------------------------------------------------------------------------


def test_created_is_monotonic_and_updated_bounded() -> None:
    dataset = small()
    created = [ms(dataset.customer(i)["createdIn"]) for i in range(dataset.customer_count)]
    assert created == sorted(created)
    assert created[0] >= ms("2025-01-01") and created[-1] < ms("2025-01-21")
    for i in range(dataset.customer_count):
        updated = ms(dataset.customer(i)["updatedIn"])
        assert created[i] <= updated <= created[i] + dataset.max_update_delay_ms
    assert any(ms(dataset.customer(i)["updatedIn"]) > created[i] for i in range(50))


def random_windows(rng: random.Random, count: int) -> list[tuple[int, int]]:
    lo, hi = ms("2024-12-30"), ms("2025-02-05")
    windows = []
    for _ in range(count):
        a = rng.randint(lo, hi)
        windows.append((a, a + rng.choice((0, 1, 3_600_000, 86_400_000, 7 * 86_400_000))))
    return windows


@pytest.mark.parametrize("field", ["createdIn", "updatedIn"])
def test_customer_window_matches_brute_force(field: str) -> None:
    dataset = small()
    values = [ms(dataset.customer(i)[field]) for i in range(dataset.customer_count)]
    rng = random.Random(1)
    windows = random_windows(rng, 60)
    # windows whose edges sit exactly on documents: inclusive on both sides
    windows += [(values[i], values[i]) for i in (0, 17, 599)]
    windows += [(values[5], values[300])] if field == "createdIn" else []
    for a, b in windows:
        expected = [i for i, v in enumerate(values) if a <= v <= b]
        assert list(dataset.customer_ids_in_window(field, a, b)) == expected, (field, a, b)


@pytest.mark.parametrize("field", ["creationDate", "authorizedDate", "invoicedDate"])
def test_order_window_matches_brute_force(field: str) -> None:
    dataset = small()
    docs = [dataset.order(i) for i in range(dataset.order_count)]
    values = [ms(d[field]) if d[field] else None for d in docs]
    for a, b in random_windows(random.Random(2), 60):
        expected = [i for i, v in enumerate(values) if v is not None and a <= v <= b]
        assert list(dataset.order_ids_in_window(field, a, b)) == expected, (field, a, b)


def test_sorted_stream_matches_a_full_sort() -> None:
    dataset = small()
    field = dataset.customer_field("updatedIn")
    span = range(100, 500)
    keep = lambda i: i % 3 != 0  # noqa: E731
    expected = sorted((field.value(i), i) for i in span if keep(i))
    assert list(field.sorted_by_value(span, keep, desc=False)) == [i for _, i in expected]
    assert list(field.sorted_by_value(span, keep, desc=True)) == [i for _, i in reversed(expected)]


def test_parse_time_forms() -> None:
    assert parse_time("2025-01-01") == ms("2025-01-01T00:00:00.000Z")
    assert parse_time("2025-01-01T03:00:00-03:00") == parse_time("2025-01-01T06:00:00Z")
    assert parse_time("2025-01-01T00:00:00.1234567Z") == parse_time("2025-01-01") + 123
    assert parse_time(format_md_time(1_700_000_000_123)) == 1_700_000_000_123
    with pytest.raises(ValueError):
        parse_time("yesterday")


# -- identifiers ------------------------------------------------------------------------------


def test_lookups_match_brute_force() -> None:
    dataset = small()
    docs = [dataset.customer(i) for i in range(dataset.customer_count)]
    for field in ("id", "userId", "email"):
        index: dict[str, list[int]] = {}
        for i, doc in enumerate(docs):
            if doc[field]:
                index.setdefault(doc[field], []).append(i)
        for value, indices in index.items():
            assert dataset.find_customers(field, value) == indices, (field, value)
    assert dataset.find_customers("email", "nobody.1@example.com") == []
    assert dataset.find_customers("id", "not-an-id") == []


def test_order_ids_round_trip_and_split_groups() -> None:
    dataset = small()
    groups: dict[str, list[str]] = {}
    for i in range(dataset.order_count):
        order = dataset.order(i)
        assert dataset.order_index(order["orderId"]) == i
        assert dataset.order_index(f"seq{order['sequence']}") == i
        groups.setdefault(order["orderGroup"], []).append(order["orderId"])
    split = [ids for ids in groups.values() if len(ids) > 1]
    assert split, "some orders are split into -01/-02"
    for ids in split:
        assert [i[-3:] for i in ids] == ["-01", "-02"]
        first, second = (dataset.order(dataset.order_index(i) or 0) for i in ids)
        assert (
            first["clientProfileData"]["userProfileId"]
            == second["clientProfileData"]["userProfileId"]
        )
    assert dataset.order_index("v99999999sand-01") is None
    assert dataset.order_index("nonsense") is None


# -- ground truth -------------------------------------------------------------------------------


def rejection(call: object, *args: object) -> str | None:
    try:
        call(*args)  # type: ignore[operator]
    except SkippableRecordError as error:
        return str(error.reason)
    return None


def test_customer_ground_truth_is_what_the_mapping_decides() -> None:
    dataset = small(customers=2500, dirty_share=0.5)
    config = MappingConfig()
    seen = set()
    for i in range(dataset.customer_count):
        seen.add(dataset.dirty_kind("customer", i))
        got = rejection(profile_from_customer, dataset.customer(i), config)
        assert got == dataset.expected_reason("customer", i), (i, dataset.dirty_kind("customer", i))
    assert seen == {None, *CUSTOMER_DIRTY_KINDS}


def test_order_ground_truth_is_what_the_mapping_decides() -> None:
    dataset = small(orders=2500, dirty_share=0.5)
    config = MappingConfig()
    seen = set()
    for i in range(dataset.order_count):
        order = dataset.order(i)
        seen.add(dataset.dirty_kind("order", i))
        user = order["clientProfileData"]["userProfileId"]
        found = dataset.find_customers("userId", user) if user else []
        customer = dataset.customer(found[0]) if found else None
        got = rejection(transaction_from_order, order, customer, config)
        assert got == dataset.expected_reason("order", i), (i, dataset.dirty_kind("order", i))
    assert seen == {None, *ORDER_DIRTY_KINDS}


def test_dirty_kinds_hold_what_they_say() -> None:
    dataset = small(customers=2000, orders=2000, dirty_share=0.5)
    for i in range(dataset.customer_count):
        doc, kind = dataset.customer(i), dataset.dirty_kind("customer", i)
        if kind is None:
            assert doc["userId"] and is_valid_email(doc["email"])
        elif kind == "duplicate_email":
            assert len(dataset.find_customers("email", doc["email"])) >= 2
        elif kind == "masked_email":
            assert is_masked_vtex_email(doc["email"])
        elif kind == "missing_identifier":
            assert doc["email"] is None and doc["userId"] is None
        elif kind == "phone_only_secondary":
            assert not doc["phone"] and doc["cellPhone"]
        elif kind == "empty_names":
            assert not doc["firstName"].strip() and not doc["lastName"].strip()
    for i in range(dataset.order_count):
        order, kind = dataset.order(i), dataset.dirty_kind("order", i)
        assert is_masked_vtex_email(order["clientProfileData"]["email"])
        user = order["clientProfileData"]["userProfileId"]
        if kind == "guest":
            assert user and dataset.find_customers("userId", user) == []
        elif kind == "anonymous_guest":
            assert user == ""
        elif kind == "canceled":
            assert order["status"] == "canceled"
        elif kind == "removed_item":
            assert any(item["quantity"] == 0 for item in order["items"])
        elif kind == "zero_decimal_currency":
            prefs = order["storePreferencesData"]
            assert prefs["currencyCode"] in ("CLP", "JPY")
            assert prefs["currencyFormatInfo"]["CurrencyDecimalDigits"] == 0
        else:
            assert user and dataset.find_customers("userId", user)


def test_order_money_adds_up() -> None:
    dataset = small()
    for i in range(0, dataset.order_count, 7):
        order = dataset.order(i)
        totals = {t["id"]: t["value"] for t in order["totals"]}
        assert totals["Discounts"] <= 0
        assert sum(totals.values()) == order["value"] >= 0
        assert totals["Items"] == sum(it["price"] * it["quantity"] for it in order["items"])
        paid = order["paymentData"]["transactions"][0]["payments"][0]["value"]
        assert paid == order["value"]


def test_expected_counts_agree_with_per_record_answers() -> None:
    dataset = small()
    expected = dataset.expected()
    for kind, key, n in (("customer", "customers", 600), ("order", "orders", 900)):
        reasons = [dataset.expected_reason(kind, i) for i in range(n)]
        kinds = [dataset.dirty_kind(kind, i) for i in range(n)]
        summary = expected[key]
        assert summary["total"] == n
        assert summary["rejected"] == sum(r is not None for r in reasons)
        assert summary["sent"] + summary["rejected"] == n
        assert summary["clean"] == kinds.count(None)
        for reason, count in summary["by_reason"].items():
            assert reasons.count(reason) == count


def test_guest_orders_are_the_orders_without_a_cl_buyer() -> None:
    """The generator's shortcut agrees with the definition (no ``CL`` with the buyer's userId)
    that fixtures use, and the expected guest profiles are the sent guest orders."""
    dataset = small()
    guests = [i for i in range(dataset.order_count) if dataset.guest_order(i)]
    assert guests == [i for i in range(dataset.order_count) if Source.guest_order(dataset, i)]
    assert {dataset.dirty_kind("order", i) for i in guests} >= {"guest", "anonymous_guest"}
    sent = [i for i in guests if dataset.expected_reason("order", i) is None]
    assert dataset.expected()["orders"]["guest_profiles"] == len(sent) > 0
    assert "guest_profiles" not in dataset.expected()["customers"]


def test_no_dirt_when_share_is_zero() -> None:
    dataset = small(dirty_share=0.0)
    assert dataset.expected()["customers"]["clean"] == 600
    assert dataset.expected()["orders"]["rejected"] == 0


# -- catalog ------------------------------------------------------------------------------------


def test_catalog_is_consistent() -> None:
    dataset = small(products=30)
    products = dataset.product_ids()
    assert products == list(range(1, 31))
    for product in products:
        for sku in dataset.product_sku_ids(product):
            doc = dataset.sku(sku)
            assert doc is not None and doc["ProductId"] == product and doc["Id"] == sku
            price = dataset.price(sku)
            assert price is None or price["itemId"] == str(sku)
    category = dataset.sku(dataset.product_sku_ids(1)[0])["ProductCategoryIds"]  # type: ignore[index]
    department = int(category.strip("/").split("/")[0])
    assert 1 in dataset.product_ids(department)
    assert dataset.sku(999_999) is None and dataset.price(31_001) is None
    order_skus = {item["id"] for i in range(50) for item in dataset.order(i)["items"]}
    assert all(dataset.sku(int(sku)) is not None for sku in order_skus)


# -- overlay ------------------------------------------------------------------------------------


Bounds = tuple[int | None, int | None]


def brute_query(store: Store, created: Bounds, updated: Bounds) -> list[str]:
    generated = [store.customer(i) for i in range(store.source.customer_count)]
    docs = [d for d in generated if d] + list(store.overlay_customers().values())

    def within(value: str, bounds: Bounds) -> bool:
        lo, hi = bounds
        v = parse_time(value)
        return (lo is None or v >= lo) and (hi is None or v <= hi)

    chosen = [
        d for d in docs if within(d["createdIn"], created) and within(d["updatedIn"], updated)
    ]
    return [d["id"] for d in sorted(chosen, key=lambda d: (parse_time(d["updatedIn"]), d["id"]))]


def test_store_queries_follow_changes() -> None:
    clock = [datetime(2025, 1, 10, tzinfo=UTC).timestamp()]
    dataset = small()
    store = Store(dataset, wall_clock=lambda: clock[0])
    victim, patched = dataset.customer(100), dataset.customer(200)
    assert store.delete_customer(victim["id"])
    assert not store.delete_customer(victim["id"])
    assert store.patch_customer(patched["id"], {"firstName": "Changed", "id": "ignored"})
    created = store.create_customer({"email": "new.person@example.com", "userId": "u-new"})
    assert store.customer_by_id(patched["id"])["firstName"] == "Changed"  # type: ignore[index]
    assert store.customer_by_id(victim["id"]) is None
    assert store.find_customers("userId", "u-new") == [created["id"]]
    for created_bounds, updated_bounds in (
        ((None, None), (None, None)),
        ((ms("2025-01-03"), ms("2025-01-12")), (None, None)),
        ((None, None), (ms("2025-01-09"), ms("2025-01-10T12:00"))),
        ((ms("2025-01-02"), None), (ms("2025-01-05"), ms("2025-01-11"))),
    ):
        query = store.query_customers(created_bounds, updated_bounds, sort="updatedIn")
        refs = list(query)
        ids = [store.customer(r)["id"] for r in refs]  # type: ignore[index]
        assert ids == brute_query(store, created_bounds, updated_bounds)
        assert query.count() == len(ids)


def test_store_sort_by_other_field_is_bounded() -> None:
    store = Store(small())
    refs = list(store.query_customers(sort="email"))
    emails = [store.customer(r)["email"] for r in refs]  # type: ignore[index]
    present = [e for e in emails if e is not None]
    assert emails[: emails.count(None)] == [None] * emails.count(None)
    assert present == sorted(present)
    big = Store(Dataset(customers=Store.MAX_SORT + 1, orders=0))
    with pytest.raises(NotSortable):
        big.query_customers(sort="email")


def test_store_order_status_change_zeroes_lines() -> None:
    store = Store(small())
    order = store.order_at(5)
    sku = order["items"][0]["id"]
    changed = store.set_order_status(order["orderId"], "canceled", [sku])
    assert changed is not None
    new, previous, last_change = changed
    assert (previous, last_change) == (order["status"], order["lastChange"])
    assert new["status"] == "canceled" and parse_time(new["lastChange"]) > parse_time(last_change)
    zeroed = [item for item in new["items"] if item["id"] == sku]
    assert all(item["quantity"] == 0 for item in zeroed)
    assert new["value"] == sum(t["value"] for t in new["totals"]) < order["value"]
    assert store.order_status(5) == "canceled"
    with pytest.raises(ValueError):
        store.set_order_status(order["orderId"], "invoiced", ["no-such-sku"])
    assert store.set_order_status("v00000000x-01", "invoiced") is None
    store.reset()
    assert store.order_at(5) == order


# -- fixtures -----------------------------------------------------------------------------------


def write(folder: Path, name: str, data: object) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(json.dumps(data), encoding="utf-8")


def test_fixture_dataset_serves_files_as_given(tmp_path: Path) -> None:
    source = small()
    customers = [source.customer(i) for i in (5, 1, 3)]
    orders = [source.order(i) for i in (9, 2)]
    write(tmp_path / "customers", "a.json", customers[:2])
    write(tmp_path / "customers", "b.json", customers[2])
    write(tmp_path / "orders", "o.json", orders)
    write(tmp_path / "products", "p.json", [source.sku(1001), source.sku(2001)])
    write(tmp_path / "prices", "x.json", source.price(1001))
    fixtures = FixtureDataset(tmp_path)
    assert fixtures.customer_count == 3 and fixtures.order_count == 2
    assert [fixtures.customer(i)["id"] for i in range(3)] == [
        source.customer(i)["id"] for i in (1, 3, 5)
    ]
    assert fixtures.order(fixtures.order_index(orders[0]["orderId"]) or 0) == orders[0]
    assert fixtures.find_customers("email", customers[0]["email"]) == [2]
    window = fixtures.customer_ids_in_window(
        "updatedIn", ms(customers[0]["updatedIn"]), ms(customers[0]["updatedIn"])
    )
    assert list(window) == [2]
    assert fixtures.product_ids() == [1, 2] and fixtures.product_sku_ids(2) == [2001]
    assert fixtures.price(1001) == source.price(1001) and fixtures.price(2001) is None
    assert fixtures.dirty_kind("customer", 0) is None


def test_fixture_errors_name_the_file(tmp_path: Path) -> None:
    write(tmp_path / "orders", "bad.json", [{"orderId": "x"}])
    with pytest.raises(ValueError, match=r"bad\.json.*creationDate"):
        FixtureDataset(tmp_path)
    (tmp_path / "orders" / "bad.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad\.json"):
        FixtureDataset(tmp_path)
    with pytest.raises(ValueError, match="does not exist"):
        FixtureDataset(tmp_path / "missing")
