"""Paging helpers: window halving, the 30-page cap, REST-Content-Range, search and scroll."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from etl.errors import FatalError, RetriableError
from etl.vtex.paginators import (
    ContentRange,
    IncompleteAnswerError,
    OrdersPage,
    ScrollExpiredError,
    ScrollPage,
    order_pages,
    order_windows,
    parse_content_range,
    scroll_pages,
    search_pages,
    split_window,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_split_window_halves_at_the_millisecond():
    (a, m), (m2, b) = split_window(T0, T0 + timedelta(seconds=1, milliseconds=1))
    assert (a, b) == (T0, T0 + timedelta(seconds=1, milliseconds=1))
    assert m == m2 == T0 + timedelta(microseconds=500_000)
    (_, m), _ = split_window(T0, T0 + timedelta(milliseconds=3))
    assert m == T0 + timedelta(milliseconds=1)


def test_split_window_refuses_a_millisecond():
    with pytest.raises(ValueError, match="1 ms"):
        split_window(T0, T0 + timedelta(milliseconds=1))


def counter(instants):
    """A ``count(start, end)`` over a list of creation instants, recording its calls."""
    calls = []

    def count(start, end):
        calls.append((start, end))
        return sum(1 for t in instants if start <= t < end)

    count.calls = calls
    return count


def test_order_windows_split_dense_windows_until_each_fits():
    # 10 orders in the first hour, 2 in the rest of the day; cap 4
    instants = [T0 + timedelta(minutes=5 * i) for i in range(10)]
    instants += [T0 + timedelta(hours=10), T0 + timedelta(hours=20)]
    count = counter(instants)
    windows = list(order_windows(count, T0, T0 + timedelta(days=1), cap=4))
    assert all(total <= 4 for _, _, total in windows)
    assert sum(total for _, _, total in windows) == 12
    # contiguous, in time order, covering the whole range
    assert windows[0][0] == T0 and windows[-1][1] == T0 + timedelta(days=1)
    for (_, end, _), (start, _, _) in itertools.pairwise(windows):
        assert end == start


def test_order_windows_refuse_to_drop_orders_in_an_unsplittable_window():
    instants = [T0] * 5
    with pytest.raises(FatalError, match="cannot be split further"):
        list(order_windows(counter(instants), T0, T0 + timedelta(minutes=1), cap=4))


def pages_of(orders, per_page):
    """A ``list_page(n)`` over ``orders``, recording the pages asked."""
    asked = []
    pages = -(-len(orders) // per_page)

    def list_page(page):
        asked.append(page)
        chunk = orders[(page - 1) * per_page : page * per_page]
        return OrdersPage(chunk, len(orders), pages)

    list_page.asked = asked
    return list_page


def test_order_pages_reads_every_page_and_stops():
    orders = [{"orderId": str(i)} for i in range(250)]
    list_page = pages_of(orders, 100)
    read = [o for page in order_pages(list_page) for o in page]
    assert read == orders
    assert list_page.asked == [1, 2, 3]


def test_order_pages_of_an_empty_window_asks_once():
    list_page = pages_of([], 100)
    assert list(order_pages(list_page)) == []
    assert list_page.asked == [1]


def test_order_pages_refuses_more_than_thirty_pages():
    with pytest.raises(ValueError, match="31 pages"):
        list(order_pages(pages_of([{}] * 3001, 100)))


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("resources 0-100/136108", ContentRange(0, 100, 136108)),
        ("resources 0-15/76", ContentRange(0, 15, 76)),
        ("resources=200-300/301", ContentRange(200, 300, 301)),
        ("resources */0", ContentRange(0, 0, 0)),
        ("  resources 5-6/7 ", ContentRange(5, 6, 7)),
        ("items 0-1/2", None),
        ("resources 0-100", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_content_range(header, expected):
    assert parse_content_range(header) == expected


def searcher(total, cap_rows=None):
    """A ``search(start, end)`` over ``total`` numbered documents, recording the ranges."""
    ranges = []

    def search(start, end):
        ranges.append((start, end))
        rows = cap_rows if cap_rows is not None else total
        return [{"id": i} for i in range(start, min(end, rows))], total

    search.ranges = ranges
    return search


def test_search_pages_walks_the_rest_range_to_the_total():
    search = searcher(250)
    docs = [d["id"] for page in search_pages(search) for d in page]
    assert docs == list(range(250))
    assert search.ranges == [(0, 100), (100, 200), (200, 250)]


def test_search_pages_stops_on_an_empty_page():
    search = searcher(300, cap_rows=150)  # the total overstates what comes back
    docs = [d for page in search_pages(search) for d in page]
    assert len(docs) == 150
    # a short page advances by what came back, so nothing can be skipped
    assert search.ranges == [(0, 100), (100, 200), (150, 250)]


def test_search_pages_refuses_past_the_ten_thousand_cap():
    with pytest.raises(ValueError, match="10000"):
        list(search_pages(searcher(10_001)))
    assert len([p for p in search_pages(searcher(10_000))]) == 100


def test_search_pages_checks_the_page_size():
    with pytest.raises(ValueError):
        list(search_pages(searcher(1), page_size=101))


class FakeScroll:
    """Master Data scroll over numbered documents; tokens can be made to expire."""

    def __init__(self, total, size, expire_at=(), reorder_after_reopen=False, lost_at=()):
        self.docs = [{"id": f"d{i}"} for i in range(total)]
        self.size = size
        self.expire_at = set(expire_at)  # follow calls (1-based) that find the token dead
        self.lost_at = set(lost_at)  # follow calls whose page is served but never arrives
        self.reorder = reorder_after_reopen
        self.opened = 0
        self.follows = 0
        self.positions = {}

    def open(self):
        self.opened += 1
        token = f"t{self.opened}"
        docs = self.docs
        if self.reorder and self.opened > 1:
            docs = list(reversed(docs))
        self.positions[token] = (docs, 0)
        return self._page(token)

    def follow(self, token):
        self.follows += 1
        if self.follows in self.expire_at:
            raise ScrollExpiredError("token expired")
        page = self._page(token)
        if self.follows in self.lost_at:  # served, token moved on, the answer never arrived
            raise RetriableError("read timed out")
        return page

    def _page(self, token):
        docs, position = self.positions[token]
        self.positions[token] = (docs, position + self.size)
        return ScrollPage(docs[position : position + self.size], token)


def test_scroll_follows_the_token_until_an_empty_page():
    scroll = FakeScroll(total=25, size=10)
    pages = list(scroll_pages(scroll.open, scroll.follow))
    assert [len(p) for p in pages] == [10, 10, 5]
    assert scroll.opened == 1 and scroll.follows == 3


def test_an_expired_token_reopens_and_fast_forwards_without_loss_or_repeat():
    scroll = FakeScroll(total=45, size=10, expire_at={3})
    ids = [d["id"] for page in scroll_pages(scroll.open, scroll.follow) for d in page]
    assert ids == [f"d{i}" for i in range(45)]
    assert scroll.opened == 2


def test_a_page_served_but_lost_is_read_again_from_a_reopened_scroll_not_skipped():
    scroll = FakeScroll(total=45, size=10, lost_at={2})
    ids = [d["id"] for page in scroll_pages(scroll.open, scroll.follow) for d in page]
    assert ids == [f"d{i}" for i in range(45)]  # asking the old token again would skip d20-d29
    assert scroll.opened == 2


def test_a_page_that_keeps_failing_ends_the_listing_with_its_error():
    scroll = FakeScroll(total=100, size=10, lost_at={2, 5, 8})
    with pytest.raises(RetriableError, match="timed out"):
        list(scroll_pages(scroll.open, scroll.follow, max_reopen=2))
    assert scroll.opened == 3


def test_a_reopened_scroll_in_another_order_is_not_trusted():
    scroll = FakeScroll(total=45, size=10, expire_at={2}, reorder_after_reopen=True)
    with pytest.raises(ScrollExpiredError, match="different order"):
        list(scroll_pages(scroll.open, scroll.follow))


def test_reopening_is_bounded():
    scroll = FakeScroll(total=100, size=10, expire_at={2, 5, 8, 11})
    with pytest.raises(ScrollExpiredError) as caught:
        list(scroll_pages(scroll.open, scroll.follow, max_reopen=2))
    assert isinstance(caught.value, RetriableError)
    assert scroll.opened == 3


def test_a_first_page_without_token_is_an_incomplete_answer():
    pages = scroll_pages(lambda: ScrollPage([{"id": 1}], None), lambda t: ScrollPage([], t))
    with pytest.raises(IncompleteAnswerError):
        list(pages)
    assert list(scroll_pages(lambda: ScrollPage([], None), lambda t: ScrollPage([], t))) == []


def test_later_pages_may_omit_the_token():
    answers = iter([ScrollPage([{"id": 2}], None), ScrollPage([], None)])
    used = []

    def follow(token):
        used.append(token)
        return next(answers)

    pages = list(scroll_pages(lambda: ScrollPage([{"id": 1}], "tok"), follow))
    assert pages == [[{"id": 1}], [{"id": 2}]] and used == ["tok", "tok"]
