"""How a customers window is listed from Master Data: one search when it fits in a page, else a
scroll of up to 1,000 documents a page; either way every document once."""

from __future__ import annotations

import math

import pytest

from etl.errors import RetriableError
from etl.sync.engine import Engine
from etl.sync.windows import Window
from tests.helpers.sync import WHOLE_RANGE, set_faults, stats


def listing_calls(sandbox) -> dict[str, int]:
    requests_by_route = stats(sandbox, "vtex")["requests"]
    return {route: requests_by_route.get(route, 0) for route in ("md.search", "md.scroll")}


def list_window(sandbox, engine: Engine, window: Window) -> tuple[list[dict], dict[str, int], int]:
    """The window's pages and the Master Data calls that listing them took (not the count)."""
    stream = engine.stream("customers_created")
    total = stream.count(window)
    before = listing_calls(sandbox)
    pages = list(stream.list_pages(window, total))
    after = listing_calls(sandbox)
    return pages, {route: after[route] - before[route] for route in after}, total


def small_window(sandbox, engine: Engine) -> Window:
    """A window of the sandbox's data that holds between 1 and 100 documents."""
    stream = engine.stream("customers_created")
    window = WHOLE_RANGE
    while stream.count(window) > 100:
        first, second = window.halves()
        window = first if stream.count(first) else second
    return window


@pytest.mark.sandbox(customers=2_300, orders=0)
def test_a_window_of_many_pages_is_scrolled_1000_documents_a_page(sandbox, engine: Engine):
    pages, calls, total = list_window(sandbox, engine, WHOLE_RANGE)
    assert total == 2_300
    assert [len(page) for page in pages] == [1000, 1000, 300]
    assert calls == {"md.search": 0, "md.scroll": math.ceil(total / 1000) + 1}  # + the empty end
    docs = [doc for page in pages for doc in page]
    assert len({doc["id"] for doc in docs}) == total


def test_a_window_that_fits_in_a_page_is_one_search(sandbox, engine: Engine):
    window = small_window(sandbox, engine)
    pages, calls, total = list_window(sandbox, engine, window)
    assert 1 <= total <= 100
    assert calls == {"md.search": 1, "md.scroll": 0}
    assert [len(page) for page in pages] == [total]


@pytest.mark.sandbox(customers=2_300, orders=0)
def test_a_scroll_page_whose_answer_was_lost_is_read_again_never_skipped(sandbox, engine: Engine):
    # VTEX served the page and moved the token on, but the answer never arrived (a 502 from a
    # gateway): asking again with that token would return the next page and skip this one.
    set_faults(sandbox, {"route": "md.scroll", "lost_rate": 0.15})
    stream = engine.stream("customers_created")
    lost = complete = 0
    for _ in range(6):
        sandbox.vtex.reset()  # no scroll left open by the attempt before
        try:
            pages = list(stream.list_pages(WHOLE_RANGE, 2_300))
        except RetriableError:
            pass  # a listing that keeps failing says so: the producer task is retried
        else:
            ids = [doc["id"] for page in pages for doc in page]
            assert len(ids) == len(set(ids)) == 2_300, "a page was skipped or read twice"
            complete += 1
        lost += stats(sandbox, "vtex")["faults"]["answers_lost"]
    assert lost > 0 and complete > 0
