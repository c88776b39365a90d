"""Batch planning under the item and 1 MB limits, bisecting refusals, reading 207 bodies."""

from __future__ import annotations

import itertools
import json
from datetime import datetime

import pytest

from etl.synerise.batching import (
    MAX_BATCH_BYTES,
    Batch,
    BatchRefused,
    BatchResult,
    bisect,
    parse_partial_errors,
    split_batches,
)


def items(n, pad=0):
    return [{"customId": f"u{i}", "pad": "x" * pad} for i in range(n)]


def test_batches_respect_the_item_count_and_keep_order():
    batches, rejected = split_batches(items(250), batch_size=100)
    assert rejected == {}
    assert [len(b.indexes) for b in batches] == [100, 100, 50]
    assert [i for b in batches for i in b.indexes] == list(range(250))


def test_each_body_is_the_json_array_of_its_items():
    data = [{"email": "zoë@example.com", "n": 1}, {"tags": ["a", "b"]}]
    (batch,), _ = split_batches(data, batch_size=10)
    assert json.loads(batch.body) == data
    assert "zoë".encode() in batch.body  # UTF-8, not \\u escapes: smaller bodies


def test_one_megabyte_closes_a_batch_before_the_count_does():
    # items of ~300 kB: three fit in 1 MB, a fourth would not
    batches, rejected = split_batches(items(10, pad=300_000), batch_size=100)
    assert rejected == {}
    assert [len(b.indexes) for b in batches] == [3, 3, 3, 1]
    assert all(len(b.body) <= MAX_BATCH_BYTES for b in batches)


@pytest.mark.parametrize("max_bytes", [50, 61, 100, 333])
def test_measured_size_is_exact_at_the_boundary(max_bytes):
    data = items(40, pad=7)
    batches, rejected = split_batches(data, batch_size=1000, max_bytes=max_bytes)
    assert all(len(b.body) <= max_bytes for b in batches)
    assert sorted([i for b in batches for i in b.indexes] + list(rejected)) == list(range(40))
    # greedy: adding the next item to a batch would have crossed the limit
    for batch, following in itertools.pairwise(batches):
        grown = Batch(batch.indexes + following.indexes[:1], batch.parts + following.parts[:1])
        assert len(grown.body) > max_bytes


def test_an_item_too_big_alone_is_rejected_and_the_rest_goes():
    data = [{"id": 0}, {"id": 1, "blob": "x" * (MAX_BATCH_BYTES + 1)}, {"id": 2}]
    batches, rejected = split_batches(data, batch_size=100)
    assert [b.indexes for b in batches] == [(0, 2)]
    assert list(rejected) == [1]
    assert "bytes as JSON" in rejected[1] and str(MAX_BATCH_BYTES) in rejected[1]


def test_items_that_are_not_json_are_rejected():
    data = [{"a": float("nan")}, {"b": datetime(2026, 1, 1)}, {"c": 1}]
    batches, rejected = split_batches(data, batch_size=100)
    assert [b.indexes for b in batches] == [(2,)]
    assert rejected == {
        0: "the payload is not valid JSON (ValueError)",
        1: "the payload is not valid JSON (TypeError)",
    }


def test_batch_size_is_bounded():
    for size in (0, 1001):
        with pytest.raises(ValueError):
            split_batches(items(1), batch_size=size)


def test_no_items_no_batches():
    assert split_batches([], batch_size=10) == ([], {})


def poster(bad):
    """A ``post(batch)`` that refuses any batch holding an index in ``bad``."""
    sent = []

    def post(batch):
        sent.append(batch.indexes)
        if bad & set(batch.indexes):
            raise BatchRefused(400, f"Synerise answered 400: bad item in {len(batch.indexes)}")
        return BatchResult(accepted=list(batch.indexes))

    post.sent = sent
    return post


def test_bisect_isolates_the_bad_items():
    (batch,), _ = split_batches(items(100), batch_size=100)
    post = poster({13, 77})
    result = bisect(batch, post).sort()
    assert result.accepted == [i for i in range(100) if i not in (13, 77)]
    assert result.rejected == {
        13: "Synerise answered 400: bad item in 1",
        77: "Synerise answered 400: bad item in 1",
    }
    assert len(post.sent) <= 2 * 2 * 7 + 1  # ~2·k·log2(n) calls


def test_bisect_of_a_good_batch_is_one_call():
    (batch,), _ = split_batches(items(10), batch_size=100)
    post = poster(set())
    assert bisect(batch, post).accepted == list(range(10))
    assert post.sent == [tuple(range(10))]


def test_bisect_lets_other_errors_through():
    (batch,), _ = split_batches(items(4), batch_size=100)

    def post(batch):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        bisect(batch, post)


def test_batch_halves_keep_parts_aligned():
    (batch,), _ = split_batches(items(5), batch_size=100)
    first, second = batch.halves()
    assert first.indexes == (0, 1) and second.indexes == (2, 3, 4)
    assert json.loads(first.body) == items(5)[:2] and json.loads(second.body) == items(5)[2:]


def test_batch_result_merge_and_sort():
    result = BatchResult([3], {1: "x"}).merge(BatchResult([0], {2: "y"})).sort()
    assert result == BatchResult([0, 3], {1: "x", 2: "y"})


@pytest.mark.parametrize(
    ("field", "position", "text"),
    [
        ("[3].email", 3, "email: invalid"),
        ("items[3].email", 3, "email: invalid"),
        ("body[3]", 3, "invalid"),
        ("3.phone", 3, "phone: invalid"),
        ("3", 3, "invalid"),
        ("[0].attributes.x", 0, "attributes.x: invalid"),
    ],
)
def test_207_errors_are_attributed_by_field(field, position, text):
    found = parse_partial_errors([{"field": field, "message": "invalid"}], size=5)
    assert found.by_position == {position: text} and found.unattributed == []


def test_207_errors_are_attributed_by_index_key_inside_an_object():
    body = {
        "errors": [
            {"index": 1, "field": "email", "message": "bad", "rejectedValue": "jane@example.com"},
            {"index": 1, "field": "phone", "message": "bad too"},
        ]
    }
    found = parse_partial_errors(body, size=2)
    assert found.by_position == {1: "email: bad; phone: bad too"}
    assert "jane" not in str(found)


def test_the_sandbox_form_with_field_and_index():
    body = [
        {"code": 400, "field": "[1].email", "index": 1, "message": "Invalid email address"},
        {"code": 400, "field": "[2]", "index": 2, "message": "no identifier"},
    ]
    found = parse_partial_errors(body, size=3)
    assert found.by_position == {1: "email: Invalid email address", 2: "no identifier"}


def test_unattributable_207_errors_are_kept_apart():
    body = [
        {"field": "email", "message": "Invalid email jane@example.com"},
        {"field": "[9].email", "message": "out of range"},
        "plain text",
    ]
    found = parse_partial_errors(body, size=3)
    assert found.by_position == {}
    assert found.unattributed == [
        "email: Invalid email j***@example.com", "email: out of range", "plain text"
    ]


@pytest.mark.parametrize(
    ("body", "unattributed"),
    [
        (None, []),
        ("", []),
        ("Partially accepted", ["Partially accepted"]),
        ({"message": "Partially accepted"}, ["Partially accepted"]),
        ({}, []),
        ([], []),
    ],
)
def test_207_bodies_without_item_errors(body, unattributed):
    found = parse_partial_errors(body, size=2)
    assert found.by_position == {} and found.unattributed == unattributed
