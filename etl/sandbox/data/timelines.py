"""Time-ordered index maps: a window on a time field becomes an index range by binary search."""

from __future__ import annotations

import bisect
import heapq
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass


class _Timeline(ABC):
    """A non-decreasing time ``base(i)`` over indices ``0..n-1``."""

    n: int

    @abstractmethod
    def base(self, i: int) -> int: ...

    def first_at_or_after(self, t: int) -> int:
        """The smallest i with ``base(i) >= t`` (``n`` when none)."""
        lo, hi = 0, self.n
        while lo < hi:
            mid = (lo + hi) // 2
            if self.base(mid) < t:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def index_range(self, lo: int | None, hi: int | None) -> range:
        """Indices whose base time lies in ``[lo, hi]`` (None: unbounded)."""
        first = 0 if lo is None else self.first_at_or_after(lo)
        end = self.n if hi is None else self.first_at_or_after(hi + 1)
        return range(first, max(first, end))


class LinearTimeline(_Timeline):
    """``start + floor(i * span / n)`` plus a jitter below one step: monotonic, O(1) per index."""

    def __init__(self, start_ms: int, span_ms: int, n: int, jitter: Callable[[int], int]) -> None:
        self.start, self.span, self.n = start_ms, span_ms, n
        self._step = span_ms // n if n else 0
        self._jitter = jitter

    def base(self, i: int) -> int:
        t = self.start + (i * self.span) // self.n
        return t + self._jitter(i) % self._step if self._step > 1 else t


class SortedTimeline(_Timeline):
    """Explicit sorted times (fixtures)."""

    def __init__(self, times: Sequence[int]) -> None:
        self._times = times
        self.n = len(times)

    def base(self, i: int) -> int:
        return self._times[i]

    def first_at_or_after(self, t: int) -> int:
        return bisect.bisect_left(self._times, t)


@dataclass(frozen=True)
class TimeField:
    """A time field equal to its timeline's base plus a delay in ``[0, max_delay]``, or absent.

    Windows on it need only scan the first and last ``max_delay`` of the candidate range.
    """

    timeline: _Timeline
    value: Callable[[int], int | None]
    max_delay: int  # 0: the field is the base itself
    always: bool  # present on every record

    def candidates(self, lo: int | None, hi: int | None) -> range:
        """Indices that may hold a value in ``[lo, hi]``: created in ``[lo - max_delay, hi]``."""
        return self.timeline.index_range(None if lo is None else lo - self.max_delay, hi)

    def certain(self, lo: int | None, hi: int | None) -> range:
        """Indices whose value is surely in ``[lo, hi]`` (no check needed)."""
        if not self.always:
            return range(0)
        upper = None if hi is None else hi - self.max_delay
        return self.timeline.index_range(lo, upper)

    def holds(self, i: int, lo: int | None, hi: int | None) -> bool:
        v = self.value(i)
        return v is not None and (lo is None or v >= lo) and (hi is None or v <= hi)

    def matches(self, lo: int | None, hi: int | None) -> Iterator[int]:
        """Indices with the value in ``[lo, hi]``, ascending."""
        span, sure = self.candidates(lo, hi), self.certain(lo, hi)
        if not sure:
            yield from (i for i in span if self.holds(i, lo, hi))
            return
        yield from (i for i in range(span.start, sure.start) if self.holds(i, lo, hi))
        yield from sure
        yield from (i for i in range(sure.stop, span.stop) if self.holds(i, lo, hi))

    def sorted_by_value(
        self, span: range, keep: Callable[[int], bool], desc: bool
    ) -> Iterator[int]:
        """Indices of ``span`` passing ``keep``, ordered by ``(value, index)``.

        A heap holds only the records whose value may still be overtaken: in ascending order a
        value is final once the base of the next index reaches it (later values are at least
        that base), so the heap never exceeds one ``max_delay`` worth of records.
        """
        if self.max_delay == 0:
            yield from (i for i in (reversed(span) if desc else span) if keep(i))
            return
        heap: list[tuple[int, int]] = []
        if not desc:
            for i in span:
                floor = self.timeline.base(i)
                while heap and heap[0][0] <= floor:
                    yield heapq.heappop(heap)[1]
                if keep(i):
                    heapq.heappush(heap, (self.value(i) or 0, i))
            while heap:
                yield heapq.heappop(heap)[1]
            return
        for i in reversed(span):
            ceiling = self.timeline.base(i) + self.max_delay
            while heap and -heap[0][0] >= ceiling:
                yield -heapq.heappop(heap)[1]
            if keep(i):
                heapq.heappush(heap, (-(self.value(i) or 0), -i))
        while heap:
            yield -heapq.heappop(heap)[1]
