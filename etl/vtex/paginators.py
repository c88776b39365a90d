"""Paging VTEX collections within their caps, one small function per scheme.

=====================  ===============================  =====================================
scheme                 cap                              what to do beyond it
=====================  ===============================  =====================================
OMS list orders        page <= 30, per_page <= 100      ``split_window`` the creation window
                       (3,000 orders per filter)        (``order_windows`` does it until each
                                                        window fits)
Master Data search     ``REST-Range`` <= 100 per call,  scroll (``scroll_pages``)
                       10,000 documents in total
Master Data scroll     ``_size`` <= 1,000; token dies   re-open and fast-forward (below)
                       after 20 min idle; 10 per account
=====================  ===============================  =====================================

The functions take callables that fetch one page, so they are tested without HTTP and the
client keeps every request in one place. Windows are half-open ``[start, end)``; a caller that
sends them to VTEX's inclusive filters uses ``end - 1 ms`` as the upper bound.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from etl.errors import FatalError, RetriableError

__all__ = [
    "MD_MAX_PAGE_SIZE",
    "MD_SCROLL_MAX_SIZE",
    "MD_SEARCH_CAP",
    "OMS_MAX_PAGE",
    "OMS_MAX_PER_PAGE",
    "ContentRange",
    "IncompleteAnswerError",
    "OrdersPage",
    "ScrollExpiredError",
    "ScrollPage",
    "order_pages",
    "order_windows",
    "parse_content_range",
    "scroll_pages",
    "search_pages",
    "split_window",
]

OMS_MAX_PAGE = 30
"""List orders answers no page past 30."""
OMS_MAX_PER_PAGE = 100
"""List orders returns at most 100 orders a page."""
MD_MAX_PAGE_SIZE = 100
"""Master Data search returns at most 100 documents a request."""
MD_SEARCH_CAP = 10_000
"""Master Data search cannot reach documents past the 10,000th; scroll can."""
MD_SCROLL_MAX_SIZE = 1_000
"""Largest ``_size`` of a scroll page."""

Document = dict[str, Any]

_ONE_MS = timedelta(milliseconds=1)
_CONTENT_RANGE = re.compile(r"\s*resources[\s=]+(?:(\d+)-(\d+)|\*)/(\d+)\s*")


class IncompleteAnswerError(RetriableError):
    """VTEX answered 200 without a header it always sends (``REST-Content-Range``,
    ``X-VTEX-MD-TOKEN``); seen in the field and cured by asking again."""


class ScrollExpiredError(RetriableError):
    """A scroll token died (20 minutes idle) and the scroll could not be re-opened at the same
    place; the listing has to start over."""


@dataclass(frozen=True, slots=True)
class OrdersPage:
    """One page of OMS list orders.

    Attributes:
        orders: the list rows (no ``items``: read each order for details).
        total: orders matching the filter (``paging.total``).
        pages: pages at the requested ``per_page`` (``paging.pages``), which may exceed 30.
    """

    orders: list[Document]
    total: int
    pages: int


class ContentRange(NamedTuple):
    """A parsed ``REST-Content-Range: resources {first}-{last}/{total}``."""

    first: int
    last: int
    total: int


class ScrollPage(NamedTuple):
    """One scroll answer: its documents and the token for the next call (if sent)."""

    documents: list[Document]
    token: str | None


def split_window(date_from: datetime, date_to: datetime) -> tuple[
    tuple[datetime, datetime], tuple[datetime, datetime]
]:
    """Halve ``[date_from, date_to)`` at its midpoint, rounded down to the millisecond.

    Raises:
        ValueError: the window is 1 ms or shorter (VTEX filters stop at milliseconds).
    """
    if date_to - date_from <= _ONE_MS:
        raise ValueError(f"cannot split [{date_from}, {date_to}): VTEX filters stop at 1 ms")
    middle = date_from + (date_to - date_from) / 2
    middle = middle.replace(microsecond=middle.microsecond // 1000 * 1000)
    if middle <= date_from:
        middle = date_from + _ONE_MS
    return (date_from, middle), (middle, date_to)


def order_windows(
    count: Callable[[datetime, datetime], int],
    date_from: datetime,
    date_to: datetime,
    cap: int = OMS_MAX_PAGE * OMS_MAX_PER_PAGE,
    min_span: timedelta = timedelta(seconds=1),
) -> Iterator[tuple[datetime, datetime, int]]:
    """Windows covering ``[date_from, date_to)`` in time order, each holding at most ``cap``.

    Halves a window while its count exceeds ``cap`` (WoowUp halves 3-hour windows the same way).

    Args:
        count: the number of orders in a half-open window (one ``per_page=1`` list call).
        date_from: start of the range.
        date_to: end of the range (excluded).
        cap: most orders one window may hold (30 pages of 100).
        min_span: a window this short is not split further.

    Yields:
        ``(start, end, total)`` per window.

    Raises:
        FatalError: a window of ``min_span`` still holds more than ``cap`` orders, which list
            orders cannot page through; nothing is skipped silently.
    """
    pending = [(date_from, date_to)]
    while pending:
        start, end = pending.pop()
        total = count(start, end)
        if total <= cap:
            yield start, end, total
            continue
        if end - start <= min_span:
            raise FatalError(
                f"{total} orders were created in [{start}, {end}); OMS list orders serves at "
                f"most {cap} per filter and the window cannot be split further"
            )
        first, second = split_window(start, end)
        pending += [second, first]  # LIFO: the earlier half comes out first


def order_pages(list_page: Callable[[int], OrdersPage]) -> Iterator[list[Document]]:
    """The pages of one window of list orders, from page 1 until the last.

    Args:
        list_page: fetches page ``n`` (1-based) of the window.

    Raises:
        ValueError: the window has more than 30 pages; split it first (``order_windows``).
    """
    first = list_page(1)
    if first.pages > OMS_MAX_PAGE:
        raise ValueError(
            f"the window holds {first.total} orders in {first.pages} pages; OMS serves "
            f"{OMS_MAX_PAGE}: split it (order_windows)"
        )
    page, current = 1, first
    while current.orders:
        yield current.orders
        if page >= current.pages:
            return
        page += 1
        current = list_page(page)


def parse_content_range(value: str | None) -> ContentRange | None:
    """Parse ``REST-Content-Range`` (``resources 0-100/136108``; ``=`` is tolerated).

    Returns:
        The range, or ``None`` when the header is absent or unreadable. ``resources */N``
        (nothing returned) gives ``first == last == 0``.
    """
    if not value or not (match := _CONTENT_RANGE.fullmatch(value)):
        return None
    first, last, total = match.groups()
    return ContentRange(int(first or 0), int(last or 0), int(total))


def search_pages(
    search: Callable[[int, int], tuple[list[Document], int]],
    page_size: int = MD_MAX_PAGE_SIZE,
    cap: int = MD_SEARCH_CAP,
) -> Iterator[list[Document]]:
    """Page a Master Data search with ``REST-Range`` until its total.

    Args:
        search: fetches documents ``[start, end)`` and returns them with the total.
        page_size: documents per request (at most 100).
        cap: most documents a search can reach.

    Raises:
        ValueError: the page size is out of range, or the search matches more than ``cap``
            documents (narrow the filter, or scroll).
    """
    if not 1 <= page_size <= MD_MAX_PAGE_SIZE:
        raise ValueError(f"page_size must be 1..{MD_MAX_PAGE_SIZE}, got {page_size!r}")
    documents, total = search(0, page_size)
    if total > cap:
        raise ValueError(
            f"the search matches {total} documents; Master Data search reaches {cap}: "
            "narrow the filter or scroll"
        )
    start = 0
    while documents:
        yield documents
        start += len(documents)
        if start >= total:
            return
        documents, _ = search(start, min(start + page_size, total))


def scroll_pages(
    open_scroll: Callable[[], ScrollPage],
    follow: Callable[[str], ScrollPage],
    max_reopen: int = 2,
    key: str = "id",
) -> Iterator[list[Document]]:
    """Follow a Master Data scroll until an empty page.

    A token dies after 20 minutes without a call (a slow consumer): ``follow`` then raises
    ``ScrollExpiredError``. A ``follow`` that failed otherwise (any ``RetriableError``: a
    timeout, a 5xx, a 429) may have been served and moved the token on, so asking again with it
    could skip a page. Either way the scroll is re-opened with the same query and fast-forwarded
    past the documents already yielded (as WoowUp's connector does). Re-opening is trusted only
    if the last skipped document has the ``key`` of the last one yielded; otherwise
    ``ScrollExpiredError`` propagates rather than skip a document, and after ``max_reopen``
    re-opens the error of the last ``follow`` does. Pass a ``_sort`` in the query so the order
    is the same when re-opened.

    Args:
        open_scroll: the first call (query, ``_size``); its answer must carry a token.
        follow: a call with the token, made once (not retried by itself).
        max_reopen: re-opens allowed.
        key: the document field compared after a fast-forward.

    Raises:
        IncompleteAnswerError: the first call returned documents but no token.
        ScrollExpiredError: the scroll could not be continued.
        RetriableError: ``follow`` kept failing.
    """
    yielded, last_key, reopened = 0, None, 0
    page = open_scroll()
    while True:
        if not page.documents:
            return
        if page.token is None:
            raise IncompleteAnswerError("Master Data scroll answered without X-VTEX-MD-TOKEN")
        token = page.token
        yield page.documents
        yielded += len(page.documents)
        last_key = page.documents[-1].get(key)
        try:
            page = follow(token)
        except RetriableError:  # an expired token, or a page that may have moved it on
            if reopened >= max_reopen:
                raise
            reopened += 1
            page = _fast_forward(open_scroll, follow, yielded, last_key, key)
        if page.token is None:
            page = ScrollPage(page.documents, token)  # later answers may omit the header


def _fast_forward(
    open_scroll: Callable[[], ScrollPage],
    follow: Callable[[str], ScrollPage],
    skip: int,
    last_key: object,
    key: str,
) -> ScrollPage:
    """Re-open a scroll and return the page after the first ``skip`` documents."""
    page = open_scroll()
    skipped, token = 0, page.token
    while skipped < skip:
        if not page.documents or token is None:
            raise ScrollExpiredError(
                f"scroll re-opened with fewer than the {skip} documents already read"
            )
        if skipped + len(page.documents) > skip:
            raise ScrollExpiredError("scroll re-opened with a different page size")
        skipped += len(page.documents)
        if skipped == skip and page.documents[-1].get(key) != last_key:
            raise ScrollExpiredError("scroll re-opened in a different order; restart the listing")
        page = follow(token)
        token = page.token or token
    return ScrollPage(page.documents, token)
