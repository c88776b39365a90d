"""VTEX-shaped data for the sandbox: generated (`Dataset`) or read from files (`FixtureDataset`),
with run-time changes kept in a small overlay (`Store`).

`Dataset` computes every record from ``(seed, index)`` alone, so a million customers cost no
memory and any one of them is ready in microseconds:

* customers are Master Data ``CL`` documents; ``createdIn`` grows with the index
  (``start + i * span / N`` plus a jitter smaller than one step), so the indices of a
  ``createdIn`` window are found by binary search. ``updatedIn`` is ``createdIn`` plus a delay
  of at most `Dataset.max_update_delay_ms`: an ``updatedIn`` window maps to the index range
  created in ``[from - max delay, to]``, of which only both ends need checking.
* orders are OMS Get order documents; ``creationDate`` grows with the index the same way,
  ``authorizedDate``/``invoicedDate`` lag it by a bounded delay. Order ``i`` has sequence
  ``10000000 + i`` and id ``v{sequence}{tag}-01``; a few odd-numbered orders are the second
  half (``-02``) of the previous order's ``orderGroup``.
* the catalog is `Dataset.products` products with 1-3 SKUs each (SKU id ``product * 1000 + k``).

Dirty records and ground truth
------------------------------
A share ``dirty_share`` of the records of each kind carries exactly one defect, named by
`Source.dirty_kind`; `Source.expected_reason` says whether the ETL must reject it and with
which `schemas.reasons.RejectReason` code (``None``: the record must be sent). The verdicts are
those of ``schemas.mapping`` with the default ``MappingConfig`` (phone fields ``phone``,
``homePhone``, ``cellPhone``, ``businessPhone`` in that order; money divided by 100).

Customer kinds (``CL``):

====================== ==================== ===============================================
kind                   expected reason      what the document holds
====================== ==================== ===============================================
invalid_email          INVALID_EMAIL        an e-mail Synerise's rule refuses (no TLD, two
                                            ``@``, a space, ``..``, a non-ASCII domain)
phone_with_letters     INVALID_PHONE        ``phone`` with letters (``+55 11 9ABC-4321``)
phone_too_long         INVALID_PHONE        ``phone`` longer than 20 characters
missing_identifier     MISSING_IDENTIFIER   no ``email`` and no ``userId`` (a form sign-up)
invalid_birthdate      (sent)               ``birthDate`` not a real date in 1900..today (sent
                                            without it, with a BIRTHDATE_DROPPED warning)
empty_names            (sent)               blank ``firstName`` / ``lastName``
phone_only_secondary   (sent)               ``phone`` empty, a valid ``cellPhone``/``homePhone``
unicode_names          (sent)               names in other scripts, emoji included
duplicate_email        (sent)               the e-mail of an earlier customer (kept apart by
                                            ``customId`` = ``userId``)
masked_email           (sent)               a hard Conversation Tracker alias as e-mail: it
                                            counts as no e-mail, the profile is keyed by userId
====================== ==================== ===============================================

A clean customer always has ``userId``, a valid e-mail, valid names, a valid (or no) phone and
a valid (or no) birth date. Because a record has one defect only, no precedence question
arises in generated data; for records changed at run time the mapping's own order applies:
``INVALID_EMAIL`` > ``MISSING_IDENTIFIER`` > ``MAPPING_ERROR`` (identifiers) > ``INVALID_PHONE``
(the first non-blank phone field decides, a valid secondary phone does not rescue a bad
``phone``). So a customer with an invalid e-mail and no valid phone is
``INVALID_EMAIL``; one with no e-mail, no ``userId`` and a valid phone is
``MISSING_IDENTIFIER`` (a phone is not an identifier for this ETL).

Order kinds:

====================== ==================== ===============================================
guest                  (sent)               a buyer with a ``userProfileId`` but no ``CL``
anonymous_guest        MISSING_IDENTIFIER   ``userProfileId`` ``""`` and a hard e-mail alias
canceled               (sent)               status ``canceled`` (every line flagged)
removed_item           (sent)               an extra line with quantity 0
zero_decimal_currency  (sent)               CLP or JPY (``CurrencyDecimalDigits`` 0; amounts
                                            still x100, VTEX's documented cents convention)
====================== ==================== ===============================================

Every order's ``clientProfileData.email`` is masked (``<md5>@ct.vtex.com.br``, or for a fifth
of registered buyers the soft form ``real@x-<n>b.ct.vtex.com.br``); the real address is only in
the buyer's ``CL`` document (``userId == userProfileId``).

Run-time changes (`Store`): status changes, customer creates/patches/deletes. A changed record
leaves the generated population: ground truth (`Source.expected`) always describes the
generated data only.
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import heapq
import itertools
import json
import math
import re
import time
import unicodedata
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from schemas.reasons import RejectReason

__all__ = [
    "CUSTOMER_DIRTY_KINDS",
    "CUSTOMER_TIME_FIELDS",
    "MAX_CUSTOMERS",
    "MAX_ORDERS",
    "ORDER_DIRTY_KINDS",
    "ORDER_TIME_FIELDS",
    "Dataset",
    "FixtureDataset",
    "NotSortable",
    "Source",
    "Store",
    "format_md_time",
    "format_oms_time",
    "parse_time",
]

Doc = dict[str, Any]
Ref = int | str
"""A customer in a `Store`: a generated index (int) or the id of an overlay document (str)."""
Getter = Callable[[str], Any]
Predicate = Callable[[Getter], bool]

CUSTOMER_DIRTY_KINDS: dict[str, RejectReason | None] = {
    "invalid_email": RejectReason.INVALID_EMAIL,
    "phone_with_letters": RejectReason.INVALID_PHONE,
    "phone_too_long": RejectReason.INVALID_PHONE,
    "missing_identifier": RejectReason.MISSING_IDENTIFIER,
    "invalid_birthdate": None,
    "empty_names": None,
    "phone_only_secondary": None,
    "unicode_names": None,
    "duplicate_email": None,
    "masked_email": None,
}
"""Customer defect -> the reason the ETL must reject it with (None: must be sent)."""

ORDER_DIRTY_KINDS: dict[str, RejectReason | None] = {
    "guest": None,
    "anonymous_guest": RejectReason.MISSING_IDENTIFIER,
    "canceled": None,
    "removed_item": None,
    "zero_decimal_currency": None,
}
"""Order defect -> the reason the ETL must reject it with (None: must be sent)."""

CUSTOMER_TIME_FIELDS = ("createdIn", "updatedIn")
ORDER_TIME_FIELDS = ("creationDate", "authorizedDate", "invoicedDate")

_CUSTOMER_KINDS = tuple(CUSTOMER_DIRTY_KINDS)
_ORDER_KINDS = tuple(ORDER_DIRTY_KINDS)
_EMAIL_CHANGING = frozenset(
    {"invalid_email", "missing_identifier", "duplicate_email", "masked_email"}
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DAY_MS = 86_400_000
_SEQUENCE_BASE = 10_000_000
MAX_ORDERS = 89_999_999  # eight-digit sequences keep order ids sorted like their indices
MAX_CUSTOMERS = 2**48 - 1  # the last UUID group encodes the index
_SKUS_PER_PRODUCT = 1000
_MASK_DOMAIN = "ct.vtex.com.br"


class NotSortable(ValueError):
    """A query asks for an order the sandbox can only give by sorting too many documents."""


# -- time ----------------------------------------------------------------------------------------

_TIME_RE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?)?"
    r"\s*(Z|[+-]\d{2}:?\d{2})?",
    re.IGNORECASE,
)


def to_ms(moment: datetime) -> int:
    """Epoch milliseconds of an aware (or UTC-naive) datetime."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def _from_ms(ms: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=ms)


def format_md_time(ms: int) -> str:
    """Master Data's form: ``2025-03-01T12:34:56.7890000Z`` (seven fraction digits)."""
    return _from_ms(ms).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}0000Z"


def format_oms_time(ms: int) -> str:
    """OMS's form: ``2025-03-01T12:34:56.7890000+00:00``."""
    return _from_ms(ms).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}0000+00:00"


def parse_time(text: str) -> int:
    """Epoch ms of ``2025-01-01``, ``2025-01-01T10:00``, ``...:00.123Z``, ``...+03:00`` and such.

    A value without an offset is UTC; fractions beyond milliseconds are truncated.

    Raises:
        ValueError: not such a date or date-time.
    """
    match = _TIME_RE.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"not an ISO 8601 date or date-time: {text!r}")
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    moment = datetime(
        int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0),
        tzinfo=UTC,
    )  # fmt: skip
    ms = to_ms(moment) + int((fraction or "0")[:3].ljust(3, "0"))
    if offset and offset.upper() != "Z":
        digits = offset[1:].replace(":", "")
        shift = (int(digits[:2]) * 60 + int(digits[2:])) * 60_000
        ms -= shift if offset[0] == "+" else -shift
    return ms


# -- deterministic hashing -----------------------------------------------------------------------

_M64 = (1 << 64) - 1
_M48 = (1 << 48) - 1
_SPREAD = 0xB5AD4ECEDA1D  # odd: multiplying by it is a bijection modulo 2**48
_SPREAD_INVERSE = pow(_SPREAD, -1, 1 << 48)


def _spread48(i: int, key: int) -> int:
    """An invertible scramble of a 48-bit integer (multiply, xor-shift, multiply)."""
    x = ((i ^ key) * _SPREAD) & _M48
    x ^= x >> 24
    return (x * _SPREAD) & _M48


def _unspread48(x: int, key: int) -> int:
    x = (x * _SPREAD_INVERSE) & _M48
    x ^= x >> 24
    return (((x * _SPREAD_INVERSE) & _M48) ^ key) & _M48


_GAMMA = 0x9E3779B97F4A7C15


def _mix(x: int) -> int:
    """splitmix64's finaliser: a fast, well-spread 64-bit hash of a 64-bit integer."""
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


class _Hasher:
    """``h(tag, i)``: an independent 64-bit stream per tag, derived from the seed."""

    def __init__(self, seed: int | str) -> None:
        digest = hashlib.blake2b(str(seed).encode(), digest_size=8).digest()
        self._key = int.from_bytes(digest, "big")
        self._tags: dict[str, int] = {}

    def __call__(self, tag: str, i: int) -> int:
        key = self._tags.get(tag)
        if key is None:
            tag_hash = int.from_bytes(hashlib.blake2b(tag.encode(), digest_size=8).digest(), "big")
            key = self._tags[tag] = _mix(self._key ^ tag_hash)
        return _mix((key + i * _GAMMA) & _M64)

    def unit(self, tag: str, i: int) -> float:
        """A uniform float in [0, 1)."""
        return self(tag, i) / 18446744073709551616.0


class _Rng:
    """A small splitmix64 generator: seeding and draws cost a fraction of `random.Random`'s,
    which matters when every document is rebuilt on each request."""

    __slots__ = ("_state",)

    def __init__(self, seed: int) -> None:
        self._state = seed & _M64

    def _next(self) -> int:
        self._state = (self._state + _GAMMA) & _M64
        return _mix(self._state)

    def random(self) -> float:
        """A float in [0, 1)."""
        return (self._next() >> 11) / 9007199254740992.0

    def randint(self, low: int, high: int) -> int:
        """An int in [low, high] (modulo bias below 2**-40 for the ranges used here)."""
        return low + self._next() % (high - low + 1)

    def randrange(self, stop: int) -> int:
        return self._next() % stop

    def choice(self, items: Sequence[Any]) -> Any:
        return items[self._next() % len(items)]


# -- time-ordered index maps ---------------------------------------------------------------------


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


class _LinearTimeline(_Timeline):
    """``start + floor(i * span / n)`` plus a jitter below one step: monotonic, O(1) per index."""

    def __init__(self, start_ms: int, span_ms: int, n: int, jitter: Callable[[int], int]) -> None:
        self.start, self.span, self.n = start_ms, span_ms, n
        self._step = span_ms // n if n else 0
        self._jitter = jitter

    def base(self, i: int) -> int:
        t = self.start + (i * self.span) // self.n
        return t + self._jitter(i) % self._step if self._step > 1 else t


class _SortedTimeline(_Timeline):
    """Explicit sorted times (fixtures)."""

    def __init__(self, times: Sequence[int]) -> None:
        self._times = times
        self.n = len(times)

    def base(self, i: int) -> int:
        return self._times[i]

    def first_at_or_after(self, t: int) -> int:
        return bisect.bisect_left(self._times, t)


@dataclass(frozen=True)
class _TimeField:
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


# -- the common interface ------------------------------------------------------------------------


class Source(ABC):
    """What the VTEX emulator reads: customers, orders and a catalog, by index.

    Customer and order indices are in ``createdIn`` / ``creationDate`` order. ``*_time``
    methods are cheap (no document is built) so that windows and filters can be computed on
    large datasets.
    """

    account: str
    account_id: str
    customer_count: int
    order_count: int

    # customers
    @abstractmethod
    def customer(self, i: int) -> Doc:
        """The ``CL`` document of customer ``i`` (a new dict each call)."""

    _customer_fields: dict[str, _TimeField]
    _order_fields: dict[str, _TimeField]

    def customer_field(self, name: str) -> _TimeField:
        """The time field ``createdIn`` or ``updatedIn`` of the customers."""
        try:
            return self._customer_fields[name]
        except KeyError:
            raise ValueError(
                f"customer time fields are {CUSTOMER_TIME_FIELDS}, not {name!r}"
            ) from None

    @abstractmethod
    def find_customers(self, field: str, value: str) -> list[int]:
        """Indices whose ``id``, ``userId`` or ``email`` equals ``value`` exactly, ascending."""

    # orders
    @abstractmethod
    def order(self, i: int) -> Doc:
        """The Get order document of order ``i`` (a new dict each call)."""

    def order_field(self, name: str) -> _TimeField:
        """The time field ``creationDate``, ``authorizedDate`` or ``invoicedDate``."""
        try:
            return self._order_fields[name]
        except KeyError:
            raise ValueError(f"order time fields are {ORDER_TIME_FIELDS}, not {name!r}") from None

    @abstractmethod
    def order_status(self, i: int) -> str:
        """The generated status of order ``i`` (cheap)."""

    @abstractmethod
    def order_index(self, order_id: str) -> int | None:
        """The index of an ``orderId`` (or ``seq{sequence}``), None when unknown."""

    # catalog
    @abstractmethod
    def product_ids(self, category_id: int | None = None) -> list[int]:
        """Product ids, ascending, optionally of one category (or department)."""

    @abstractmethod
    def product_sku_ids(self, product_id: int) -> list[int]: ...

    @abstractmethod
    def sku(self, sku_id: int) -> Doc | None:
        """The ``stockkeepingunitbyid`` document, None when unknown."""

    @abstractmethod
    def price(self, sku_id: int) -> Doc | None:
        """The Pricing v2 ``GET /pricing/prices/{itemId}`` document, None when unknown."""

    # ground truth
    def dirty_kind(self, kind: str, i: int) -> str | None:
        """The defect of customer/order ``i`` (see the module docstring), None when clean."""
        _check_kind(kind)
        return None

    def expected_reason(self, kind: str, i: int) -> RejectReason | None:
        """The ``RejectReason`` code the ETL must reject record ``i`` with, None to send it."""
        dirty = self.dirty_kind(kind, i)
        table = CUSTOMER_DIRTY_KINDS if kind == "customer" else ORDER_DIRTY_KINDS
        return table[dirty] if dirty else None

    def expected(self) -> dict[str, Any]:
        """Counts for the whole generated population: clean, by defect, by reject reason."""
        return {
            "customers": self._tally("customer", self.customer_count),
            "orders": self._tally("order", self.order_count),
            "assumptions": (
                "schemas.mapping with the default MappingConfig; records changed at run time"
                " are not counted"
            ),
        }

    def _tally(self, kind: str, n: int) -> dict[str, Any]:
        by_kind: dict[str, int] = {}
        by_reason: dict[str, int] = {}
        for i in range(n):
            dirty = self.dirty_kind(kind, i)
            if dirty is None:
                continue
            by_kind[dirty] = by_kind.get(dirty, 0) + 1
            reason = self.expected_reason(kind, i)
            if reason is not None:
                by_reason[reason] = by_reason.get(reason, 0) + 1
        rejected = sum(by_reason.values())
        return {
            "total": n,
            "clean": n - sum(by_kind.values()),
            "sent": n - rejected,
            "rejected": rejected,
            "by_kind": dict(sorted(by_kind.items())),
            "by_reason": dict(sorted(by_reason.items())),
        }

    def customer_ids_in_window(
        self, field: str, start: datetime | int, end: datetime | int
    ) -> Iterable[int]:
        """Customer indices whose ``field`` lies in ``[start, end]`` (inclusive), ascending.

        ``createdIn`` gives a `range` (binary search); ``updatedIn`` an iterator that checks
        only both ends of the candidate range.
        """
        lo, hi = _ms(start), _ms(end)
        time_field = self.customer_field(field)
        if time_field.max_delay == 0 and time_field.always:
            return time_field.timeline.index_range(lo, hi)
        return time_field.matches(lo, hi)

    def order_ids_in_window(
        self, field: str, start: datetime | int, end: datetime | int
    ) -> Iterable[int]:
        """Order indices whose ``field`` lies in ``[start, end]`` (inclusive), ascending."""
        lo, hi = _ms(start), _ms(end)
        time_field = self.order_field(field)
        if time_field.max_delay == 0 and time_field.always:
            return time_field.timeline.index_range(lo, hi)
        return time_field.matches(lo, hi)


def _ms(value: datetime | int) -> int:
    return to_ms(value) if isinstance(value, datetime) else int(value)


def _check_kind(kind: str) -> None:
    if kind not in ("customer", "order"):
        raise ValueError(f"kind must be 'customer' or 'order', got {kind!r}")


def _check_index(i: int, n: int, what: str) -> None:
    if not 0 <= i < n:
        raise IndexError(f"{what} index {i} out of range 0..{n - 1}")


# -- word lists -----------------------------------------------------------------------------------

_NAMES: dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {
    # locale: (female first names, male first names, last names)
    "pt-BR": (
        ("Ana", "Maria", "Juliana", "Fernanda", "Beatriz", "Camila", "Larissa", "Patrícia"),
        ("João", "Pedro", "Lucas", "Rafael", "Gustavo", "Thiago", "Bruno", "André"),
        ("Silva", "Santos", "Oliveira", "Souza", "Pereira", "Costa", "Rodrigues", "Almeida",
         "Nascimento", "Lima", "Araújo", "Fernandes"),
    ),
    "es-CL": (
        ("Sofía", "Valentina", "Isidora", "Florencia", "Catalina", "Antonia"),
        ("Matías", "Benjamín", "Vicente", "Martín", "Joaquín", "Tomás"),
        ("González", "Muñoz", "Rojas", "Díaz", "Pérez", "Soto", "Contreras", "Silva"),
    ),
    "en-US": (
        ("Emily", "Olivia", "Emma", "Ava", "Mia", "Harper"),
        ("James", "Michael", "Daniel", "Ethan", "Noah", "Liam"),
        ("Smith", "Johnson", "Williams", "Brown", "Jones", "Miller", "Davis", "Wilson"),
    ),
}  # fmt: skip
_LOCALES = (("pt-BR", 0.7), ("es-CL", 0.15), ("en-US", 0.15))
_UNICODE_NAMES = (
    ("山田", "太郎"), ("Олена", "Коваль"), ("Nguyễn", "Thị Hương"), ("Zoë", "Ñúñez-Łukasik"),
    ("محمد", "الأحمد"), ("Ἀλέξανδρος", "Παπαδόπουλος"), ("Søren", "Kierkegård"),
    ("Ana 🌸", "Souza ✨"), ("김", "민준"), ("Ζωή", "O'Brien-Ångström"),
)  # fmt: skip
_DOMAINS = ("example.com", "example.org", "example.net", "mail.example.com.br")
_PHONE_FORMATS = {
    "pt-BR": lambda r: f"+55 {r.randint(11, 99)} 9{r.randint(1000, 9999)}-{r.randint(1000, 9999)}",
    "es-CL": lambda r: f"+56 9 {r.randint(1000, 9999)} {r.randint(1000, 9999)}",
    "en-US": lambda r: f"+1 ({r.randint(201, 989)}) {r.randint(200, 999)}-{r.randint(1000, 9999)}",
}
_DOCUMENT_TYPES = {"pt-BR": "cpf", "es-CL": "rut", "en-US": "ssn"}

_CATEGORIES = (
    # (department id, department name, category id, category name)
    (1, "Apparel", 10, "T-Shirts"), (1, "Apparel", 11, "Trousers"),
    (2, "Electronics", 20, "Phones"), (2, "Electronics", 21, "Headphones"),
    (3, "Home", 30, "Kitchen"), (3, "Home", 31, "Decor"),
    (4, "Toys", 40, "Board Games"), (5, "Sports", 50, "Running"),
)  # fmt: skip
_BRANDS = ((2000001, "Acme"), (2000002, "Lumen"), (2000003, "Norte"), (2000004, "Kiwi & Co"))
_ADJECTIVES = ("Classic", "Urban", "Essential", "Premium", "Compact", "Bold", "Soft", "Eco")
_NOUNS = {
    10: "T-Shirt", 11: "Chino", 20: "Smartphone", 21: "Earbuds",
    30: "Frying Pan", 31: "Vase", 40: "Strategy Game", 50: "Running Shoe",
}  # fmt: skip
_VARIANTS = ("S", "M", "L", "Blue", "Black", "White")
_ITEM_DIMENSION = {"cubicweight": 1.0, "height": 10, "length": 20, "weight": 500, "width": 15}

_CURRENCIES: dict[str, dict[str, Any]] = {
    # cents per BRL cent, decimals, symbol, country, LCID, time zone
    "BRL": {"rate": 1.0, "digits": 2, "symbol": "R$", "country": "BRA", "locale": 1046,
            "tz": "E. South America Standard Time", "sep": (",", ".")},
    "USD": {"rate": 0.2, "digits": 2, "symbol": "$", "country": "USA", "locale": 1033,
            "tz": "Eastern Standard Time", "sep": (".", ",")},
    "EUR": {"rate": 0.18, "digits": 2, "symbol": "€", "country": "PRT", "locale": 2070,
            "tz": "GMT Standard Time", "sep": (",", ".")},
    "CLP": {"rate": 170.0, "digits": 0, "symbol": "$", "country": "CHL", "locale": 13322,
            "tz": "Pacific SA Standard Time", "sep": (",", ".")},
    "JPY": {"rate": 28.0, "digits": 0, "symbol": "¥", "country": "JPN", "locale": 1041,
            "tz": "Tokyo Standard Time", "sep": (".", ",")},
}  # fmt: skip
_STATUSES = (
    # (status, share, description as OMS shows it)
    ("invoiced", 0.55, "Faturado"),
    ("handling", 0.1, "Preparando Entrega"),
    ("ready-for-handling", 0.1, "Pronto para o manuseio"),
    ("payment-approved", 0.1, "Pagamento Aprovado"),
    ("payment-pending", 0.1, "Pagamento Pendente"),
    ("window-to-cancel", 0.05, "Carência para Cancelamento"),
)
STATUS_DESCRIPTIONS = {status: text for status, _, text in _STATUSES} | {
    "canceled": "Cancelado",
    "cancellation-requested": "Cancelamento Solicitado",
    "order-created": "Processando",
    "start-handling": "Iniciar Manuseio",
}
_AUTHORIZED_STATUSES = frozenset(
    {"payment-approved", "window-to-cancel", "ready-for-handling", "handling", "invoiced"}
)
_PAYMENTS = (
    ("2", "Visa", "creditCard"), ("4", "Mastercard", "creditCard"),
    ("6", "Boleto Bancário", "bankInvoice"), ("125", "Pix", "instantPayment"),
    ("16", "Vale", "giftCard"),
)  # fmt: skip
_UTM = (("google", "cpc", "black-friday"), ("newsletter", "email", "weekly"),
        ("instagram", "social", "summer"), ("fb", "paid-social", "christmas"))  # fmt: skip


@functools.lru_cache(maxsize=4096)
def _ascii_slug(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "", folded.lower())
    return slug or "user"


def _pick_weighted(u: float, table: Sequence[tuple[Any, float, Any]] | Sequence[Any]) -> Any:
    acc = 0.0
    for row in table:
        acc += row[1]
        if u < acc:
            return row
    return table[-1]


# -- the generator --------------------------------------------------------------------------------


class Dataset(Source):
    """Deterministic customers, orders and catalog computed from ``(seed, index)``.

    Args:
        customers: number of ``CL`` documents.
        orders: number of orders.
        seed: any int; the same arguments always give the same data.
        dirty_share: share of records (of each kind) with one defect, 0..1.
        start, end: ``createdIn`` / ``creationDate`` are spread over ``[start, end)``.
        products: catalog size (each product has 1-3 SKUs).
        account: the VTEX account name (``accountName``, order ids, hostnames).
    """

    def __init__(
        self,
        customers: int,
        orders: int,
        seed: int = 0,
        dirty_share: float = 0.05,
        start: datetime = datetime(2025, 6, 1, tzinfo=UTC),
        end: datetime = datetime(2026, 6, 1, tzinfo=UTC),
        products: int = 60,
        account: str = "sandbox",
    ) -> None:
        if not 0 <= customers <= MAX_CUSTOMERS or not 0 <= orders <= MAX_ORDERS:
            raise ValueError(
                f"customers must be 0..{MAX_CUSTOMERS} and orders 0..{MAX_ORDERS}"
                " (ids encode the index)"
            )
        if products < 1 or products * _SKUS_PER_PRODUCT > 2**31:
            raise ValueError("products must be 1..2147483")
        if not 0.0 <= dirty_share <= 1.0:
            raise ValueError(f"dirty_share must be between 0 and 1, got {dirty_share!r}")
        start_ms, end_ms = to_ms(start), to_ms(end)
        if end_ms <= start_ms:
            raise ValueError("end must be after start")
        if not re.fullmatch(r"[a-z][a-z0-9]{0,39}", account):
            raise ValueError(f"account must be lowercase letters/digits, got {account!r}")
        self.customer_count, self.order_count, self.products = customers, orders, products
        self.seed, self.dirty_share, self.account = seed, dirty_share, account
        self.start, self.end = _from_ms(start_ms), _from_ms(end_ms)
        self._h = _Hasher(seed)
        span = end_ms - start_ms
        self.max_update_delay_ms = max(1, min(7 * _DAY_MS, span // 8))
        self._order_tag = re.sub(r"[^a-z]", "", account)[:4] or "sbx"
        self.account_id = self._uuid("account", 0)
        customer_line = _LinearTimeline(
            start_ms, span, customers, lambda i: self._h("customer.created", i)
        )
        order_line = _LinearTimeline(start_ms, span, orders, lambda i: self._h("order.created", i))
        self._customer_fields = {
            "createdIn": _TimeField(customer_line, customer_line.base, 0, True),
            "updatedIn": _TimeField(
                customer_line, self._customer_updated, self.max_update_delay_ms, True
            ),
        }
        self._order_fields = {
            "creationDate": _TimeField(order_line, order_line.base, 0, True),
            "authorizedDate": _TimeField(order_line, self._order_authorized, 2 * 3_600_000, False),
            "invoicedDate": _TimeField(order_line, self._order_invoiced, 10 * _DAY_MS, False),
        }
        self._expected: dict[str, Any] | None = None
        self._products: dict[int, dict[str, Any]] = {}

    def __repr__(self) -> str:
        return (
            f"Dataset(customers={self.customer_count}, orders={self.order_count},"
            f" seed={self.seed}, dirty_share={self.dirty_share})"
        )

    # -- ids ------------------------------------------------------------------------------------

    def _uuid(self, tag: str, i: int) -> str:
        """A version-4-shaped UUID whose last group encodes ``i`` (an invertible 48-bit mix)."""
        a, b = self._h(tag + ".uuid", i), self._h(tag + ".uuid2", i)
        last = _spread48(i, self._h(tag + ".key", 0))
        variant = "89ab"[b & 3]
        return (
            f"{a >> 32:08x}-{(a >> 16) & 0xFFFF:04x}-4{(a >> 4) & 0xFFF:03x}"
            f"-{variant}{(b >> 8) & 0xFFF:03x}-{last:012x}"
        )

    def _uuid_index(self, tag: str, value: str) -> int | None:
        if len(value) != 36 or value[-13] != "-":
            return None
        try:
            i = _unspread48(int(value[-12:], 16), self._h(tag + ".key", 0))
        except ValueError:
            return None
        return i if self._uuid(tag, i) == value else None

    # -- customers: cheap attributes ------------------------------------------------------------

    def _customer_updated(self, i: int) -> int:
        created = self._customer_fields["createdIn"].timeline.base(i)
        if self._h.unit("customer.updated", i) < 0.4:
            return created + 1 + self._h("customer.delay", i) % self.max_update_delay_ms
        return created

    def _raw_kind(self, kind: str, i: int) -> str | None:
        if self._h.unit(f"{kind}.dirty", i) >= self.dirty_share:
            return None
        kinds = _CUSTOMER_KINDS if kind == "customer" else _ORDER_KINDS
        return kinds[self._h(f"{kind}.kind", i) % len(kinds)]

    def _duplicate_partner(self, i: int) -> int | None:
        """The earlier customer whose e-mail a ``duplicate_email`` customer reuses."""
        first = i - 1 - self._h("customer.partner", i) % 8
        for p in range(first, max(-1, first - 17), -1):
            if p >= 0 and self._raw_kind("customer", p) not in _EMAIL_CHANGING:
                return p
        return None

    def dirty_kind(self, kind: str, i: int) -> str | None:
        _check_kind(kind)
        _check_index(i, self.customer_count if kind == "customer" else self.order_count, kind)
        dirty = self._raw_kind(kind, i)
        if dirty == "duplicate_email" and self._duplicate_partner(i) is None:
            return "unicode_names"  # no earlier clean e-mail to copy
        return dirty

    def expected(self) -> dict[str, Any]:
        if self._expected is None:
            self._expected = super().expected()
        return self._expected

    def _identity(self, i: int) -> tuple[str, str, str, str, str]:
        """``(locale, gender, firstName, lastName, base e-mail)``: cheap, no full document."""
        rng = _Rng(self._h("rng.customer-id", i))
        locale = _pick_weighted(rng.random(), _LOCALES)[0]
        female, male, last_names = _NAMES[locale]
        gender = "female" if rng.random() < 0.5 else "male"
        first = rng.choice(female if gender == "female" else male)
        last = rng.choice(last_names)
        email = f"{_ascii_slug(first)}.{_ascii_slug(last)}.{i}@{rng.choice(_DOMAINS)}"
        return locale, gender, first, last, email

    def _customer_email(self, i: int, kind: str | None) -> str | None:
        email = self._identity(i)[4]
        if kind == "missing_identifier":
            return None
        if kind == "duplicate_email":
            partner = self._duplicate_partner(i)
            return self._identity(partner)[4] if partner is not None else email
        if kind == "masked_email":
            return self._alias(i)
        if kind == "invalid_email":
            local, _, domain = email.partition("@")
            variant = self._h("customer.email_variant", i) % 6
            return (
                f"{local}@{domain.split('.')[0]}",  # no TLD
                f"{local}@@{domain}",
                f"{local.replace('.', ' ', 1)}@{domain}",
                f"{local.replace('.', '..', 1)}@{domain}",
                f"{local}.{domain}",  # no @
                f"{local}@exämple.com",
            )[variant]
        return email

    def _alias(self, i: int) -> str:
        """A hard Conversation Tracker alias (32 hex digits) that encodes ``i`` invertibly."""
        hidden = i ^ self._h("customer.alias_key", 0)
        return f"{self._h('customer.alias', i):016x}{hidden:016x}@{_MASK_DOMAIN}"

    def _alias_index(self, value: str) -> int | None:
        match = re.fullmatch(r"[0-9a-f]{16}([0-9a-f]{16})@ct\.vtex\.com\.br", value)
        if match is None:
            return None
        i = int(match.group(1), 16) ^ self._h("customer.alias_key", 0)
        return i if i < self.customer_count and self._alias(i) == value else None

    # -- customers: documents -------------------------------------------------------------------

    def customer(self, i: int) -> Doc:
        _check_index(i, self.customer_count, "customer")
        kind = self.dirty_kind("customer", i)
        locale, gender, first, last, _ = self._identity(i)
        rng = _Rng(self._h("rng.customer", i))
        phone_of = _PHONE_FORMATS[locale]
        phone = phone_of(rng) if rng.random() < 0.8 else None
        home = phone_of(rng) if rng.random() < 0.2 else None
        birth: str | None = None
        if rng.random() < 0.7:
            birth = f"{rng.randint(1940, 2006)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        if kind == "unicode_names":
            first, last = rng.choice(_UNICODE_NAMES)
        elif kind == "empty_names":
            first, last = "", "  "
        elif kind == "phone_with_letters":
            phone = "+55 11 9ABC-4321" if rng.random() < 0.5 else "call me 555-0199"
        elif kind == "phone_too_long":
            phone = "+55 11 98765-4321-0000-1111" if rng.random() < 0.5 else "0" * 24
        elif kind == "phone_only_secondary":
            phone, home = ("" if rng.random() < 0.5 else None), None
        elif kind == "invalid_birthdate":
            birth = rng.choice(("1985-02-30", "1899-12-31", "2999-01-01", "31/12/1990"))
        cell = phone_of(rng) if kind == "phone_only_secondary" else None
        created = self._customer_fields["createdIn"].timeline.base(i)
        updated = self._customer_updated(i)
        user_id = None if kind == "missing_identifier" else self._uuid("user", i)
        newsletter = rng.random() < 0.45
        return {
            "id": self._uuid("cl", i),
            "accountId": self.account_id,
            "accountName": self.account,
            "dataEntityId": "CL",
            "userId": user_id,
            "email": self._customer_email(i, kind),
            "firstName": first,
            "lastName": last,
            "gender": gender,
            "birthDate": f"{birth}T00:00:00Z" if birth and "/" not in birth else birth,
            "phone": phone,
            "homePhone": home,
            "cellPhone": cell,
            "businessPhone": None,
            "document": f"{rng.randint(0, 10**11 - 1):011d}",
            "documentType": _DOCUMENT_TYPES[locale],
            "isCorporate": False,
            "corporateName": None,
            "tradeName": None,
            "corporateDocument": None,
            "stateRegistration": None,
            "isNewsletterOptIn": newsletter,
            "localeDefault": locale,
            "profilePicture": None,
            "createdIn": format_md_time(created),
            "createdBy": None,
            "updatedIn": format_md_time(updated),
            "updatedBy": None,
        }

    def find_customers(self, field: str, value: str) -> list[int]:
        if field == "id":
            i = self._uuid_index("cl", value)
            return [i] if i is not None and i < self.customer_count else []
        if field == "userId":
            i = self._uuid_index("user", value)
            if i is None or i >= self.customer_count:
                return []
            return [i] if self._raw_kind("customer", i) != "missing_identifier" else []
        if field != "email":
            raise ValueError(f"find_customers supports id, userId and email, not {field!r}")
        alias = self._alias_index(value)
        if alias is not None:
            return [alias] if self.dirty_kind("customer", alias) == "masked_email" else []
        found: set[int] = set()
        for token in re.findall(r"\d+", value):
            p = int(token)
            if p >= self.customer_count:
                continue
            for j in range(p, min(self.customer_count, p + 26)):
                if self._customer_email(j, self.dirty_kind("customer", j)) == value:
                    found.add(j)
        return sorted(found)

    # -- orders: cheap attributes ---------------------------------------------------------------

    def _order_created(self, i: int) -> int:
        return self._order_fields["creationDate"].timeline.base(i)

    def order_status(self, i: int) -> str:
        if self.dirty_kind("order", i) == "canceled":
            return "canceled"
        return str(_pick_weighted(self._h.unit("order.status", i), _STATUSES)[0])

    def _order_authorized(self, i: int) -> int | None:
        status = self.order_status(i)
        paid = status in _AUTHORIZED_STATUSES or (
            status == "canceled" and self._h("order.auth_canceled", i) % 2 == 0
        )
        if not paid:
            return None
        return self._order_created(i) + 60_000 + self._h("order.auth", i) % (2 * 3_600_000 - 60_000)

    def _order_invoiced(self, i: int) -> int | None:
        if self.order_status(i) != "invoiced":
            return None
        return self._order_created(i) + _DAY_MS + self._h("order.inv", i) % (9 * _DAY_MS)

    def _split_second(self, i: int) -> bool:
        """Order ``i`` is the ``-02`` of order ``i - 1``'s group (only odd, clean pairs)."""
        return (
            i % 2 == 1
            and self._h.unit("order.split", i) < 0.06
            and self._raw_kind("order", i) is None
            and self._raw_kind("order", i - 1) is None
        )

    def _order_id(self, i: int) -> tuple[str, str, str]:
        """``(orderId, orderGroup, sequence)``."""
        sequence = str(_SEQUENCE_BASE + i)
        if self._split_second(i):
            group = f"v{_SEQUENCE_BASE + i - 1}{self._order_tag}"
            return f"{group}-02", group, sequence
        group = f"v{sequence}{self._order_tag}"
        return f"{group}-01", group, sequence

    def order_index(self, order_id: str) -> int | None:
        match = re.fullmatch(r"seq(\d+)", order_id)
        if match:
            i = int(match.group(1)) - _SEQUENCE_BASE
            return i if 0 <= i < self.order_count else None
        match = re.fullmatch(r"v(\d{8})([a-z]*)-(\d{2})", order_id)
        if not match or match.group(2) != self._order_tag:
            return None
        i = int(match.group(1)) - _SEQUENCE_BASE + (1 if match.group(3) == "02" else 0)
        if not 0 <= i < self.order_count or self._order_id(i)[0] != order_id:
            return None
        return i

    def _order_customer(self, i: int) -> int | None:
        """The registered buyer's customer index, None for a guest."""
        if self._split_second(i):
            return self._order_customer(i - 1)
        if self.customer_count == 0 or self.dirty_kind("order", i) in ("guest", "anonymous_guest"):
            return None
        created_so_far = math.ceil((i + 1) * self.customer_count / max(1, self.order_count))
        c = self._h("order.customer", i) % max(1, min(self.customer_count, created_so_far))
        for candidate in range(c, max(-1, c - 64), -1):
            if self._raw_kind("customer", candidate) != "missing_identifier":
                return candidate
        return None

    # -- orders: documents ----------------------------------------------------------------------

    def order(self, i: int) -> Doc:
        _check_index(i, self.order_count, "order")
        kind = self.dirty_kind("order", i)
        rng = _Rng(self._h("rng.order", i))
        order_id, group, sequence = self._order_id(i)
        created = self._order_created(i)
        authorized, invoiced = self._order_authorized(i), self._order_invoiced(i)
        status = self.order_status(i)
        currency = self._order_currency(i, kind, rng)
        info = _CURRENCIES[currency]
        buyer = self._buyer(i, kind, rng)

        items = [self._order_item(rng, currency) for _ in range(rng.randint(1, 4))]
        if kind == "removed_item":
            removed = self._order_item(rng, currency)
            zero_line(removed)
            items.append(removed)
        for item in items:
            item["lockId"] = f"00-{order_id}"
        shipping = 0 if rng.random() < 0.3 else self._money(rng.randint(990, 2990), currency)
        tax = self._money(rng.randint(100, 900), currency) if currency == "USD" else 0
        payment = rng.choice(_PAYMENTS)
        coupon = rng.random() < 0.15
        marketing = None
        if rng.random() < 0.4 or coupon:
            source, medium, campaign = rng.choice(_UTM)
            marketing = {
                "id": "marketingData",
                "utmSource": source,
                "utmPartner": "",
                "utmMedium": medium,
                "utmCampaign": campaign,
                "coupon": f"SAVE{rng.randint(5, 30)}" if coupon else "",
                "utmiCampaign": "",
                "utmipage": "",
                "utmiPart": "",
                "marketingTags": [],
            }
        last_change = max(t for t in (created + 90_000, authorized, invoiced) if t is not None)
        doc: Doc = {
            "orderId": order_id,
            "sequence": sequence,
            "marketplaceOrderId": "",
            "marketplaceServicesEndpoint": f"http://oms.vtexinternal.com.br/api/oms?an={self.account}",
            "sellerOrderId": f"00-{order_id}",
            "origin": "Marketplace",
            "affiliateId": "",
            "salesChannel": "1" if rng.random() < 0.9 else "2",
            "merchantName": None,
            "status": status,
            "workflowIsInError": False,
            "statusDescription": STATUS_DESCRIPTIONS.get(status, status),
            "value": 0,
            "creationDate": format_oms_time(created),
            "lastChange": format_oms_time(last_change),
            "orderGroup": group,
            "followUpEmail": f"{hashlib.md5(order_id.encode()).hexdigest()}@{_MASK_DOMAIN}",
            "lastMessage": None,
            "hostname": self.account,
            "isCompleted": True,
            "roundingError": 0,
            "orderFormId": hashlib.md5(f"{self.seed}:form:{i}".encode()).hexdigest(),
            "allowCancellation": status not in ("invoiced", "canceled"),
            "allowEdition": False,
            "isCheckedIn": False,
            "authorizedDate": format_oms_time(authorized) if authorized is not None else None,
            "invoicedDate": format_oms_time(invoiced) if invoiced is not None else None,
            "cancelReason": "Customer request" if status == "canceled" else None,
            "checkedInPickupPointId": None,
            "totals": [],
            "sellers": [
                {
                    "id": "1",
                    "name": self.account.title(),
                    "logo": None,
                    "fulfillmentEndpoint": f"http://fulfillment.vtexcommerce.com.br/api/"
                    f"fulfillment?an={self.account}",
                }
            ],
            "clientPreferencesData": {
                "locale": buyer["locale"],
                "optinNewsLetter": buyer["optin"],
            },
            "cancellationData": None,
            "taxData": None,
            "subscriptionData": None,
            "marketplace": {
                "baseURL": f"http://oms.vtexinternal.com.br/api/oms?an={self.account}",
                "isCertified": None,
                "name": self.account,
            },
            "storePreferencesData": {
                "countryCode": info["country"],
                "currencyCode": currency,
                "currencyFormatInfo": {
                    "CurrencyDecimalDigits": info["digits"],
                    "CurrencyDecimalSeparator": info["sep"][0],
                    "CurrencyGroupSeparator": info["sep"][1],
                    "CurrencyGroupSize": 3,
                    "StartsWithCurrencySymbol": True,
                },
                "currencyLocale": info["locale"],
                "currencySymbol": info["symbol"],
                "timeZone": info["tz"],
            },
            "customData": None,
            "commercialConditionData": None,
            "openTextField": None,
            "invoiceData": None,
            "changesAttachment": None,
            "callCenterOperatorData": None,
            "packageAttachment": {"packages": []},
            "paymentData": {"giftCards": [], "transactions": []},
            "shippingData": self._shipping(rng, buyer, items, shipping),
            "ratesAndBenefitsData": {
                "id": "ratesAndBenefitsData",
                "rateAndBenefitsIdentifiers": [],
            },
            "marketingData": marketing,
            "giftRegistryData": None,
            "clientProfileData": buyer["profile"],
            "items": items,
            "marketplaceItems": [],
        }
        set_order_money(doc, shipping=shipping, tax=tax)
        doc["paymentData"]["transactions"] = [
            {
                "isActive": True,
                "transactionId": hashlib.md5(f"{self.seed}:tx:{i}".encode()).hexdigest().upper(),
                "merchantName": self.account,
                "payments": [
                    {
                        "id": hashlib.md5(f"{self.seed}:pay:{i}".encode()).hexdigest().upper(),
                        "paymentSystem": payment[0],
                        "paymentSystemName": payment[1],
                        "value": doc["value"],
                        "installments": 1 if payment[2] != "creditCard" else rng.randint(1, 6),
                        "referenceValue": doc["value"],
                        "group": payment[2],
                        "tid": str(rng.randint(10_000_000, 99_999_999)),
                    }
                ],
            }
        ]
        return doc

    def _order_currency(self, i: int, kind: str | None, rng: _Rng) -> str:
        if kind == "zero_decimal_currency":
            return "CLP" if self._h("order.currency", i) % 2 == 0 else "JPY"
        u = self._h.unit("order.currency", i)
        return "BRL" if u < 0.8 else ("USD" if u < 0.9 else "EUR")

    @staticmethod
    def _money(brl_cents: int, currency: str) -> int:
        """An amount in the currency's "cents" (x100 for zero-decimal currencies too)."""
        value = brl_cents * _CURRENCIES[currency]["rate"]
        return round(value / 100) * 100 if _CURRENCIES[currency]["digits"] == 0 else round(value)

    def _buyer(self, i: int, kind: str | None, rng: _Rng) -> dict[str, Any]:
        c = self._order_customer(i)
        if c is not None:
            customer = self.customer(c)
            email = customer["email"] or ""
            real = self._customer_email(c, None) or ""
            clean = email == real or self.dirty_kind("customer", c) == "duplicate_email"
            if clean and self._h.unit("order.soft", i) < 0.2:
                masked = f"{email}-{rng.randint(10, 99999999)}b.{_MASK_DOMAIN}"
            else:
                masked = (
                    f"{hashlib.md5((email or customer['id']).encode()).hexdigest()}@{_MASK_DOMAIN}"
                )
            first = customer["firstName"] or ""
            last = (customer["lastName"] or "").strip()
            locale = customer["localeDefault"]
            profile_id, phone = customer["userId"], customer["phone"] or ""
            document, document_type = customer["document"], customer["documentType"]
            optin = bool(customer["isNewsletterOptIn"])
        else:
            locale, _, first, last, email = self._identity_for_guest(i)
            masked = f"{hashlib.md5(email.encode()).hexdigest()}@{_MASK_DOMAIN}"
            profile_id = "" if kind == "anonymous_guest" else self._uuid("guest", i)
            phone = _PHONE_FORMATS[locale](rng)
            document = f"{rng.randint(0, 10**11 - 1):011d}"
            document_type = _DOCUMENT_TYPES[locale]
            optin = rng.random() < 0.3
        profile = {
            "id": "clientProfileData",
            "email": masked,
            "firstName": first,
            "lastName": last,
            "documentType": document_type,
            "document": document,
            "phone": phone,
            "corporateName": None,
            "tradeName": None,
            "corporateDocument": None,
            "stateInscription": None,
            "corporatePhone": None,
            "isCorporate": False,
            "userProfileId": profile_id,
            "userProfileVersion": None,
            "customerClass": None,
            "customerCode": None,
        }
        return {"profile": profile, "locale": locale, "optin": optin}

    def _identity_for_guest(self, i: int) -> tuple[str, str, str, str, str]:
        rng = _Rng(self._h("rng.guest", i))
        locale = _pick_weighted(rng.random(), _LOCALES)[0]
        female, male, last_names = _NAMES[locale]
        first = rng.choice(female + male)
        last = rng.choice(last_names)
        return locale, "", first, last, f"{_ascii_slug(first)}.guest{i}@{rng.choice(_DOMAINS)}"

    def _order_item(self, rng: _Rng, currency: str) -> Doc:
        product_id = rng.randint(1, self.products)
        skus = self.product_sku_ids(product_id)
        sku_id = rng.choice(skus)
        product = self._product(product_id)
        base = product["price"] + 1000 * (sku_id % _SKUS_PER_PRODUCT)
        list_price = self._money(base, currency)
        price = list_price if rng.random() < 0.7 else self._money(base * 9 // 10, currency)
        selling = price if rng.random() < 0.85 else price - self._money(500, currency)
        selling = max(selling, 0)
        quantity = rng.randint(1, 3)
        dept_id, dept, cat_id, cat = product["category"]
        slug = product["slug"]
        return {
            "uniqueId": hashlib.md5(f"{rng.random()}".encode()).hexdigest().upper(),
            "id": str(sku_id),
            "productId": str(product_id),
            "ean": f"789{sku_id:010d}",
            "lockId": "",
            "itemAttachment": {"content": {}, "name": None},
            "attachments": [],
            "quantity": quantity,
            "seller": "1",
            "name": f"{product['name']} {_VARIANTS[sku_id % len(_VARIANTS)]}",
            "refId": f"REF-{sku_id}",
            "price": price,
            "listPrice": list_price,
            "manualPrice": None,
            "priceTags": [],
            "imageUrl": f"https://{self.account}.vteximg.com.br/arquivos/ids/{sku_id}-55-55/{slug}.jpg",
            "detailUrl": f"/{slug}-{product_id}/p",
            "components": [],
            "bundleItems": [],
            "params": [],
            "offerings": [],
            "attachmentOfferings": [],
            "sellerSku": str(sku_id),
            "priceValidUntil": None,
            "commission": 0,
            "tax": 0,
            "preSaleDate": None,
            "additionalInfo": {
                "brandName": product["brand"][1],
                "brandId": str(product["brand"][0]),
                "categoriesIds": f"/{dept_id}/{cat_id}/",
                "categories": [{"id": cat_id, "name": cat}, {"id": dept_id, "name": dept}],
                "productClusterId": "",
                "commercialConditionId": "1",
                "dimension": _ITEM_DIMENSION,
                "offeringInfo": None,
                "offeringType": None,
                "offeringTypeId": None,
            },
            "measurementUnit": "un",
            "unitMultiplier": 1,
            "sellingPrice": selling,
            "isGift": False,
            "shippingPrice": None,
            "rewardValue": 0,
            "freightCommission": 0,
            "priceDefinitions": {
                "sellingPrices": [{"value": selling, "quantity": quantity}],
                "calculatedSellingPrice": selling,
                "total": selling * quantity,
            },
            "taxCode": None,
            "parentItemIndex": None,
            "parentAssemblyBinding": None,
            "callCenterOperator": None,
            "serialNumbers": None,
            "assemblies": [],
            "costPrice": list_price // 2,
        }

    def _shipping(self, rng: _Rng, buyer: dict[str, Any], items: list[Doc], shipping: int) -> Doc:
        profile = buyer["profile"]
        address: Doc = {
            "addressType": "residential",
            "receiverName": f"{profile['firstName']} {profile['lastName']}".strip(),
            "addressId": str(rng.randint(10**12, 10**13 - 1)),
            "versionId": None,
            "entityId": None,
            "postalCode": f"{rng.randint(10000, 99999)}-{rng.randint(100, 999)}",
            "city": rng.choice(("São Paulo", "Rio de Janeiro", "Santiago", "Curitiba")),
            "state": rng.choice(("SP", "RJ", "RM", "PR")),
            "country": "BRA",
            "street": rng.choice(("Rua Augusta", "Avenida Paulista", "Rua das Flores")),
            "number": str(rng.randint(1, 3000)),
            "neighborhood": "Centro",
            "complement": "",
            "reference": None,
            "geoCoordinates": [],
        }
        per_item = shipping // len(items) if items else 0
        logistics = [
            {
                "itemIndex": index,
                "selectedSla": "Normal",
                "lockTTL": "10d",
                "price": per_item,
                "listPrice": per_item,
                "sellingPrice": per_item,
                "deliveryWindow": None,
                "deliveryCompany": "Correios",
                "shippingEstimate": "5bd",
                "slas": [],
                "shipsTo": ["BRA"],
                "deliveryIds": [],
                "deliveryChannels": [{"id": "delivery", "stockBalance": 0}],
                "selectedDeliveryChannel": "delivery",
                "pickupStoreInfo": None,
                "addressId": address["addressId"],
                "versionId": None,
                "entityId": None,
                "polygonName": None,
                "pickupPointId": None,
                "transitTime": None,
            }
            for index in range(len(items))
        ]
        return {
            "id": "shippingData",
            "address": address,
            "logisticsInfo": logistics,
            "trackingHints": None,
            "selectedAddresses": [address],
        }

    # -- catalog --------------------------------------------------------------------------------

    def _product(self, product_id: int) -> dict[str, Any]:
        """Product attributes (cached: the catalog is small and read by every order line)."""
        cached = self._products.get(product_id)
        if cached is None:
            cached = self._products[product_id] = self._make_product(product_id)
        return cached

    def _make_product(self, product_id: int) -> dict[str, Any]:
        rng = _Rng(self._h("rng.product", product_id))
        category = _CATEGORIES[rng.randrange(len(_CATEGORIES))]
        name = f"{rng.choice(_ADJECTIVES)} {_NOUNS[category[2]]}"
        return {
            "name": name,
            "category": category,
            "brand": rng.choice(_BRANDS),
            "skus": rng.randint(1, 3),
            "price": rng.randint(19, 499) * 100 - 10,  # BRL cents, e.g. 4990
            "description": f"{name} by the sandbox store.",
            "slug": _ascii_slug(name),
        }

    def product_ids(self, category_id: int | None = None) -> list[int]:
        ids = range(1, self.products + 1)
        if category_id is None:
            return list(ids)
        return [p for p in ids if category_id in self._product(p)["category"][::2]]

    def product_sku_ids(self, product_id: int) -> list[int]:
        if not 1 <= product_id <= self.products:
            return []
        count = self._product(product_id)["skus"]
        return [product_id * _SKUS_PER_PRODUCT + k for k in range(1, count + 1)]

    def _sku_parts(self, sku_id: int) -> tuple[int, dict[str, Any]] | None:
        product_id, k = divmod(sku_id, _SKUS_PER_PRODUCT)
        if not 1 <= product_id <= self.products:
            return None
        product = self._product(product_id)
        return (product_id, product) if 1 <= k <= product["skus"] else None

    def sku(self, sku_id: int) -> Doc | None:
        parts = self._sku_parts(sku_id)
        if parts is None:
            return None
        product_id, product = parts
        dept_id, dept, cat_id, cat = product["category"]
        brand_id, brand = product["brand"]
        variant = _VARIANTS[sku_id % len(_VARIANTS)]
        slug = product["slug"]
        image = f"https://{self.account}.vteximg.com.br/arquivos/ids/{sku_id}/{slug}.jpg"
        return {
            "Id": sku_id,
            "ProductId": product_id,
            "NameComplete": f"{product['name']} {variant}",
            "ComplementName": "",
            "ProductName": product["name"],
            "ProductDescription": product["description"],
            "ProductRefId": f"PRD-{product_id}",
            "TaxCode": "",
            "SkuName": variant,
            "IsActive": True,
            "IsTransported": True,
            "IsInventoried": True,
            "IsGiftCardRecharge": False,
            "ImageUrl": image.replace(f"/{sku_id}/", f"/{sku_id}-55-55/"),
            "DetailUrl": f"/{slug}-{product_id}/p",
            "CSCIdentification": None,
            "BrandId": str(brand_id),
            "BrandName": brand,
            "IsBrandActive": True,
            "Dimension": dict(_ITEM_DIMENSION),
            "RealDimension": {"realCubicWeight": 1.0, "realHeight": 10, "realLength": 20,
                              "realWeight": 500, "realWidth": 15},
            "ManufacturerCode": "",
            "IsKit": False,
            "KitItems": [],
            "Services": [],
            "Categories": [],
            "CategoriesFullPath": [f"/{dept_id}/{cat_id}/", f"/{dept_id}/"],
            "Attachments": [],
            "Collections": [],
            "SkuSellers": [
                {"SellerId": "1", "StockKeepingUnitId": sku_id,
                 "SellerStockKeepingUnitId": str(sku_id), "IsActive": True,
                 "FreightCommissionPercentage": 0, "ProductCommissionPercentage": 0}
            ],
            "SalesChannels": [1, 2],
            "Images": [{"ImageUrl": image, "ImageName": variant, "FileId": sku_id}],
            "Videos": [],
            "SkuSpecifications": [],
            "ProductSpecifications": [],
            "ProductClustersIds": "",
            "PositionsInClusters": {},
            "ProductClusterNames": {},
            "ProductClusterHighlights": {},
            "ProductCategoryIds": f"/{dept_id}/{cat_id}/",
            "IsDirectCategoryActive": True,
            "ProductGlobalCategoryId": None,
            "ProductCategories": {str(cat_id): cat, str(dept_id): dept},
            "CommercialConditionId": 1,
            "RewardValue": 0.0,
            "AlternateIds": {"Ean": f"789{sku_id:010d}", "RefId": f"REF-{sku_id}"},
            "AlternateIdValues": [f"789{sku_id:010d}", f"REF-{sku_id}"],
            "EstimatedDateArrival": None,
            "MeasurementUnit": "un",
            "UnitMultiplier": 1.0,
            "InformationSource": None,
            "ModalType": None,
            "KeyWords": None,
            "ReleaseDate": None,
            "ProductIsVisible": True,
            "ShowIfNotAvailable": True,
            "IsProductActive": True,
            "ProductFinalScore": 0,
        }  # fmt: skip

    def price(self, sku_id: int) -> Doc | None:
        parts = self._sku_parts(sku_id)
        if parts is None:
            return None
        product = parts[1]
        cents = product["price"] + 1000 * (sku_id % _SKUS_PER_PRODUCT)
        base = cents // 100
        fixed: list[Doc] = []
        if sku_id % 5 == 0:
            fixed.append(
                {"tradePolicyId": "2", "value": round(base * 0.9, 2), "listPrice": None,
                 "minQuantity": 1}
            )  # fmt: skip
        return {
            "itemId": str(sku_id),
            "listPrice": base + base // 5,
            "costPrice": base // 2,
            "markup": 100,
            "basePrice": base,
            "fixedPrices": fixed,
        }


def zero_line(item: Doc) -> None:
    """Mark an order line as removed: quantity 0, nothing charged."""
    item["quantity"] = 0
    item["priceDefinitions"]["sellingPrices"] = []
    item["priceDefinitions"]["total"] = 0


def set_order_money(order: Doc, shipping: int | None = None, tax: int | None = None) -> None:
    """Recompute ``totals`` and ``value`` from the order's lines (after a line change)."""
    old = {t["id"]: t["value"] for t in order.get("totals") or ()}
    shipping = old.get("Shipping", 0) if shipping is None else shipping
    tax = old.get("Tax", 0) if tax is None else tax
    items = sum(item["price"] * item["quantity"] for item in order["items"])
    discounts = sum(
        (item["sellingPrice"] - item["price"]) * item["quantity"] for item in order["items"]
    )
    order["totals"] = [
        {"id": "Items", "name": "Total dos Itens", "value": items},
        {"id": "Discounts", "name": "Total dos Descontos", "value": discounts},
        {"id": "Shipping", "name": "Total do Frete", "value": shipping},
        {"id": "Tax", "name": "Total da Taxa", "value": tax},
    ]
    order["value"] = items + discounts + shipping + tax
    for transaction in (order.get("paymentData") or {}).get("transactions") or ():
        for payment in transaction.get("payments") or ():
            payment["value"] = payment["referenceValue"] = order["value"]


# -- fixtures ----------------------------------------------------------------------------------


class FixtureDataset(Source):
    """VTEX documents read from a directory, served as they are.

    Layout (every file holds one document or a list of them; missing folders are empty)::

        DIR/customers/*.json   Master Data CL documents (``id`` and ``createdIn`` required)
        DIR/orders/*.json      Get order documents (``orderId`` and ``creationDate`` required)
        DIR/products/*.json    SKU documents as ``stockkeepingunitbyid`` returns them
        DIR/prices/*.json      Pricing v2 documents (``itemId`` required), optional

    No ground truth is known for fixtures: `dirty_kind` is always None.

    Raises:
        ValueError: a file is not JSON or a document lacks a required field (the message names
            the file).
    """

    def __init__(self, directory: str | Path, account: str = "sandbox") -> None:
        root = Path(directory)
        if not root.is_dir():
            raise ValueError(f"fixtures directory {str(root)!r} does not exist")
        self.account = account
        customers = _load_documents(root / "customers", ("id", "createdIn"))
        self.account_id = next(
            (str(doc["accountId"]) for _, doc in customers if doc.get("accountId")),
            "00000000-0000-4000-8000-000000000000",
        )
        orders = _load_documents(root / "orders", ("orderId", "creationDate"))
        skus = _load_documents(root / "products", ("Id", "ProductId"))
        prices = _load_documents(root / "prices", ("itemId",))

        def timed(docs: list[tuple[Path, Doc]], name: str) -> list[tuple[int, Doc]]:
            out = []
            for path, doc in docs:
                try:
                    out.append((parse_time(str(doc[name])), doc))
                except ValueError as exc:
                    raise ValueError(f"{path}: {name}: {exc}") from None
            return sorted(out, key=lambda pair: pair[0])

        customer_rows = timed(customers, "createdIn")
        order_rows = timed(orders, "creationDate")
        self._customers = [doc for _, doc in customer_rows]
        self._orders = [doc for _, doc in order_rows]
        self.customer_count, self.order_count = len(self._customers), len(self._orders)
        created = [t for t, _ in customer_rows]
        updated = [
            max(t, parse_time(doc["updatedIn"])) if doc.get("updatedIn") else t
            for t, doc in customer_rows
        ]
        delay = max((u - c for u, c in zip(updated, created, strict=True)), default=0)
        line = _SortedTimeline(created)
        self._customer_fields = {
            "createdIn": _TimeField(line, line.base, 0, True),
            "updatedIn": _TimeField(line, updated.__getitem__, delay, True),
        }
        order_line = _SortedTimeline([t for t, _ in order_rows])
        self._order_fields = {"creationDate": _TimeField(order_line, order_line.base, 0, True)}
        for name in ("authorizedDate", "invoicedDate"):
            values = [parse_time(doc[name]) if doc.get(name) else None for _, doc in order_rows]
            delay = max(
                (v - t for v, (t, _) in zip(values, order_rows, strict=True) if v is not None),
                default=0,
            )
            self._order_fields[name] = _TimeField(
                order_line, values.__getitem__, max(delay, 0), False
            )
        self._lookup: dict[tuple[str, str], list[int]] = {}
        for i, doc in enumerate(self._customers):
            for field in ("id", "userId", "email"):
                if doc.get(field):
                    self._lookup.setdefault((field, str(doc[field])), []).append(i)
        self._order_ids = {str(doc["orderId"]): i for i, doc in enumerate(self._orders)}
        for i, doc in enumerate(self._orders):
            if doc.get("sequence"):
                self._order_ids.setdefault(f"seq{doc['sequence']}", i)
        self._skus = {int(doc["Id"]): doc for _, doc in skus}
        self._prices = {int(doc["itemId"]): doc for _, doc in prices}
        self._products: dict[int, list[int]] = {}
        for sku_id, doc in sorted(self._skus.items()):
            self._products.setdefault(int(doc["ProductId"]), []).append(sku_id)

    def __repr__(self) -> str:
        return f"FixtureDataset(customers={self.customer_count}, orders={self.order_count})"

    def customer(self, i: int) -> Doc:
        _check_index(i, self.customer_count, "customer")
        return json.loads(json.dumps(self._customers[i]))

    def find_customers(self, field: str, value: str) -> list[int]:
        return list(self._lookup.get((field, value), ()))

    def order(self, i: int) -> Doc:
        _check_index(i, self.order_count, "order")
        return json.loads(json.dumps(self._orders[i]))

    def order_status(self, i: int) -> str:
        return str(self._orders[i].get("status") or "")

    def order_index(self, order_id: str) -> int | None:
        return self._order_ids.get(order_id)

    def product_ids(self, category_id: int | None = None) -> list[int]:
        if category_id is None:
            return sorted(self._products)
        wanted = f"/{category_id}/"
        return sorted(
            p for p, skus in self._products.items()
            if wanted in str(self._skus[skus[0]].get("ProductCategoryIds") or "")
        )  # fmt: skip

    def product_sku_ids(self, product_id: int) -> list[int]:
        return list(self._products.get(product_id, ()))

    def sku(self, sku_id: int) -> Doc | None:
        doc = self._skus.get(sku_id)
        return json.loads(json.dumps(doc)) if doc is not None else None

    def price(self, sku_id: int) -> Doc | None:
        doc = self._prices.get(sku_id)
        return json.loads(json.dumps(doc)) if doc is not None else None


def _load_documents(folder: Path, required: tuple[str, ...]) -> list[tuple[Path, Doc]]:
    if not folder.is_dir():
        return []
    out: list[tuple[Path, Doc]] = []
    for path in sorted(folder.glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ValueError(f"{path}: not readable JSON ({exc})") from None
        for doc in data if isinstance(data, list) else [data]:
            if not isinstance(doc, dict):
                raise ValueError(f"{path}: expected a JSON object or a list of objects")
            missing = [name for name in required if doc.get(name) in (None, "")]
            if missing:
                raise ValueError(f"{path}: document without {', '.join(missing)}")
            out.append((path, doc))
    return out


# -- the run-time overlay ------------------------------------------------------------------------


@dataclass
class OrderChange:
    """What the sandbox changed on an order: new status, zeroed lines, change times."""

    status: str
    last_change: int
    removed_skus: frozenset[str]


_FULL = (None, None)
_Bounds = tuple[int | None, int | None]


class Store:
    """A `Source` plus the changes made at run time (kept in small dicts).

    Generated customers that were patched or deleted leave the generated stream and live in the
    overlay (``_docs``, keyed by document id); created customers live there too. Every change
    bumps `version`, which callers use to invalidate cached query results.

    Args:
        source: the data.
        wall_clock: seconds since the epoch, for ``createdIn``/``updatedIn``/``lastChange`` of
            changes.
    """

    MAX_SORT = 50_000
    """Most documents the store sorts in memory (by a field other than the time fields)."""

    def __init__(self, source: Source, wall_clock: Callable[[], float] = time.time) -> None:
        self.source = source
        self._wall_clock = wall_clock
        self.version = 0
        self._docs: dict[str, Doc] = {}
        self._touched: set[int] = set()
        self._orders: dict[int, OrderChange] = {}
        self._created = itertools.count()
        self.counters = {"created": 0, "patched": 0, "deleted": 0, "status_changes": 0}

    def reset(self) -> None:
        """Drop every run-time change."""
        self._docs.clear()
        self._touched.clear()
        self._orders.clear()
        self._created = itertools.count()
        self.counters = dict.fromkeys(self.counters, 0)
        self.version += 1

    def now_ms(self) -> int:
        return int(self._wall_clock() * 1000)

    # -- customers ------------------------------------------------------------------------------

    def customer(self, ref: Ref) -> Doc | None:
        """The current document of a query result reference."""
        if isinstance(ref, str):
            doc = self._docs.get(ref)
            return dict(doc) if doc is not None else None
        return None if ref in self._touched else self.source.customer(ref)

    def customer_by_id(self, doc_id: str) -> Doc | None:
        if doc_id in self._docs:
            return dict(self._docs[doc_id])
        for i in self.source.find_customers("id", doc_id):
            if i not in self._touched:
                return self.source.customer(i)
        return None

    def create_customer(self, fields: Mapping[str, Any], doc_id: str | None = None) -> Doc:
        """Create a ``CL`` document (``createdIn`` = ``updatedIn`` = now)."""
        now = format_md_time(self.now_ms())
        if doc_id is None:
            serial = next(self._created)
            digest = hashlib.md5(f"{self.source.account}:created:{serial}".encode()).hexdigest()
            doc_id = (
                f"{digest[:8]}-{digest[8:12]}-4{digest[13:16]}-a{digest[17:20]}-{digest[20:32]}"
            )
        doc: Doc = {
            "id": doc_id, "accountId": self.source.account_id, "accountName": self.source.account,
            "dataEntityId": "CL", "userId": None, "email": None, "firstName": None,
            "lastName": None, "phone": None, "homePhone": None, "cellPhone": None,
            "businessPhone": None, "birthDate": None, "gender": None, "document": None,
            "documentType": None, "isNewsletterOptIn": None, "localeDefault": None,
        }  # fmt: skip
        doc.update(_writable(fields))
        doc.update({"createdIn": now, "updatedIn": now})
        self._docs[doc_id] = doc
        self.counters["created"] += 1
        self.version += 1
        return dict(doc)

    def patch_customer(self, doc_id: str, fields: Mapping[str, Any]) -> Doc | None:
        """Partial update (``updatedIn`` = now); None when the document does not exist."""
        doc = self._take(doc_id)
        if doc is None:
            return None
        doc.update(_writable(fields))
        doc["updatedIn"] = format_md_time(self.now_ms())
        self._docs[doc_id] = doc
        self.counters["patched"] += 1
        self.version += 1
        return dict(doc)

    def delete_customer(self, doc_id: str) -> bool:
        if self._take(doc_id) is None:
            return False
        self._docs.pop(doc_id, None)
        self.counters["deleted"] += 1
        self.version += 1
        return True

    def _take(self, doc_id: str) -> Doc | None:
        """The document, moved out of the generated stream into the overlay."""
        if doc_id in self._docs:
            return self._docs[doc_id]
        for i in self.source.find_customers("id", doc_id):
            if i not in self._touched:
                self._touched.add(i)
                doc = self.source.customer(i)
                self._docs[doc_id] = doc
                return doc
        return None

    def find_customers(self, field: str, value: str) -> list[Ref]:
        """Generated indices and overlay ids whose ``field`` equals ``value``."""
        refs: list[Ref] = [
            i for i in self.source.find_customers(field, value) if i not in self._touched
        ]
        refs += [doc_id for doc_id, doc in self._docs.items() if doc.get(field) == value]
        return refs

    def query_customers(
        self,
        created: _Bounds = _FULL,
        updated: _Bounds = _FULL,
        points: list[Ref] | None = None,
        predicate: Predicate | None = None,
        sort: str = "createdIn",
        desc: bool = False,
    ) -> CustomerQuery:
        """Customers with ``createdIn`` / ``updatedIn`` in the (inclusive, ms) bounds, among
        ``points`` when given, passing ``predicate`` (called with a field getter that returns
        the time fields as epoch ms), ordered by ``sort`` then reference.

        Raises:
            NotSortable: ``sort`` is not a time field and more than `MAX_SORT` documents match.
        """
        return CustomerQuery(self, created, updated, points, predicate, sort, desc)

    def getter(self, ref: Ref) -> Getter:
        """A field reader for predicates: time fields as ms, others from the document."""
        doc: Doc | None = None

        def get(name: str) -> Any:
            nonlocal doc
            if isinstance(ref, int) and name in CUSTOMER_TIME_FIELDS:
                return self.source.customer_field(name).value(ref)
            if doc is None:
                doc = self.customer(ref) or {}
            value = doc.get(name)
            if name in CUSTOMER_TIME_FIELDS and isinstance(value, str):
                return parse_time(value)
            return value

        return get

    def overlay_customers(self) -> dict[str, Doc]:
        return self._docs

    def touched(self) -> set[int]:
        return self._touched

    # -- orders ---------------------------------------------------------------------------------

    def order(self, order_id: str) -> Doc | None:
        i = self.source.order_index(order_id)
        return None if i is None else self.order_at(i)

    def order_at(self, i: int) -> Doc:
        doc = self.source.order(i)
        change = self._orders.get(i)
        if change is not None:
            doc["status"] = change.status
            doc["statusDescription"] = STATUS_DESCRIPTIONS.get(change.status, change.status)
            doc["lastChange"] = format_oms_time(change.last_change)
            if change.status == "canceled":
                doc["cancelReason"] = doc.get("cancelReason") or "Canceled in the sandbox"
                doc["allowCancellation"] = False
            if change.removed_skus:
                for item in doc["items"]:
                    if item["id"] in change.removed_skus:
                        zero_line(item)
                set_order_money(doc)
        return doc

    def order_status(self, i: int) -> str:
        change = self._orders.get(i)
        return change.status if change is not None else self.source.order_status(i)

    def set_order_status(
        self, order_id: str, status: str, remove_skus: Iterable[str] = ()
    ) -> tuple[Doc, str, str] | None:
        """Change an order's status (and zero some lines); None when the order is unknown.

        Returns:
            ``(the new document, previous status, previous lastChange)``.

        Raises:
            ValueError: a SKU to remove is not a line of the order.
        """
        i = self.source.order_index(order_id)
        if i is None:
            return None
        before = self.order_at(i)
        skus = frozenset(str(s) for s in remove_skus)
        unknown = skus - {item["id"] for item in before["items"]}
        if unknown:
            raise ValueError(f"not lines of {order_id}: {', '.join(sorted(unknown))}")
        previous = self._orders.get(i)
        removed = skus | (previous.removed_skus if previous else frozenset())
        now = max(self.now_ms(), parse_time(before["lastChange"]) + 1)
        self._orders[i] = OrderChange(status, now, removed)
        self.counters["status_changes"] += 1
        self.version += 1
        return self.order_at(i), before["status"], before["lastChange"]

    def query_orders(
        self,
        bounds: Mapping[str, _Bounds],
        statuses: frozenset[str] | None = None,
        desc: bool = False,
    ) -> Iterator[int]:
        """Order indices with every ``bounds[field]`` (inclusive ms) and a status in
        ``statuses``, in ``creationDate`` order (ascending unless ``desc``)."""
        fields = {name: self.source.order_field(name) for name in bounds}
        span = range(0, self.source.order_count)
        for name, (lo, hi) in bounds.items():
            span = _intersect(span, fields[name].candidates(lo, hi))
        checks = [(fields[name], lo, hi) for name, (lo, hi) in bounds.items()
                  if fields[name].max_delay or not fields[name].always]  # fmt: skip
        for i in reversed(span) if desc else span:
            if all(f.holds(i, lo, hi) for f, lo, hi in checks) and (
                statuses is None or self.order_status(i) in statuses
            ):
                yield i

    def count_orders(self, bounds: Mapping[str, _Bounds], statuses: frozenset[str] | None) -> int:
        """How many orders `query_orders` yields (O(log n) for a plain ``creationDate`` window)."""
        if statuses is None and set(bounds) <= {"creationDate"}:
            lo, hi = bounds.get("creationDate", _FULL)
            return len(self.source.order_field("creationDate").timeline.index_range(lo, hi))
        return sum(1 for _ in self.query_orders(bounds, statuses))


def _intersect(a: range, b: range) -> range:
    start = max(a.start, b.start)
    return range(start, max(start, min(a.stop, b.stop)))


_PROTECTED = frozenset({"id", "accountId", "accountName", "dataEntityId", "createdIn", "updatedIn"})


def _writable(fields: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if k not in _PROTECTED}


class CustomerQuery:
    """A customer query over a `Store`: `count` and ordered iteration of references."""

    def __init__(
        self,
        store: Store,
        created: _Bounds,
        updated: _Bounds,
        points: list[Ref] | None,
        predicate: Predicate | None,
        sort: str,
        desc: bool,
    ) -> None:
        self.store, self.source = store, store.source
        self.created, self.updated = created, updated
        self.points, self.predicate = points, predicate
        self.sort, self.desc = sort, desc
        self._created_field = self.source.customer_field("createdIn")
        self._updated_field = self.source.customer_field("updatedIn")
        self.span = _intersect(
            self._created_field.timeline.index_range(*created),
            self._updated_field.candidates(*updated),
        )
        if sort not in CUSTOMER_TIME_FIELDS and points is None and len(self.span) > Store.MAX_SORT:
            raise NotSortable(
                f"sorting by {sort!r} over {len(self.span)} candidate documents is not emulated"
                f" (limit {Store.MAX_SORT}); sort by createdIn or updatedIn"
            )

    # generated records
    def _time_ok(self, i: int) -> bool:
        lo, hi = self.updated
        return (lo is None and hi is None) or self._updated_field.holds(i, lo, hi)

    def _keep(self, i: int) -> bool:
        if i in self.store.touched() or not self._time_ok(i):
            return False
        return self.predicate is None or self.predicate(self.store.getter(i))

    # overlay records
    def _overlay(self) -> list[tuple[tuple[Any, ...], Ref]]:
        out: list[tuple[tuple[Any, ...], Ref]] = []
        wanted = None if self.points is None else {p for p in self.points if isinstance(p, str)}
        for doc_id in self.store.overlay_customers():
            if wanted is not None and doc_id not in wanted:
                continue
            get = self.store.getter(doc_id)
            if not (
                _within(get("createdIn"), self.created) and _within(get("updatedIn"), self.updated)
            ):
                continue
            if self.predicate is None or self.predicate(get):
                out.append((self._key(get, doc_id), doc_id))
        return out

    def _key(self, get: Getter, ref: Ref) -> tuple[Any, ...]:
        value = get(self.sort)
        # None sorts first; generated refs (ints) before overlay ids at equal values
        tail = (0, ref, "") if isinstance(ref, int) else (1, 0, ref)
        return (value is not None, _sortable(value), *tail)

    def count(self) -> int:
        if self.points is not None or self.predicate is not None:
            return sum(1 for _ in self)
        generated = len(self._plain_certain())
        for i in self._plain_uncertain():
            generated += self._time_ok(i)
        touched = sum(1 for i in self.store.touched() if i in self.span and self._time_ok(i))
        return generated - touched + len(self._overlay())

    def _plain_certain(self) -> range:
        return _intersect(self.span, self._updated_field.certain(*self.updated))

    def _plain_uncertain(self) -> Iterator[int]:
        sure = self._plain_certain()
        if not sure:
            yield from self.span
            return
        yield from range(self.span.start, sure.start)
        yield from range(sure.stop, self.span.stop)

    def __iter__(self) -> Iterator[Ref]:
        overlay = sorted(self._overlay(), reverse=self.desc)
        generated = self._generated()
        if not overlay:
            return (ref for _, ref in generated)
        merged = heapq.merge(generated, overlay, reverse=self.desc)
        return (ref for _, ref in merged)

    def _generated(self) -> Iterator[tuple[tuple[Any, ...], Ref]]:
        if self.points is not None:
            refs = [
                p for p in self.points if isinstance(p, int) and p in self.span and self._keep(p)
            ]
            keyed = [(self._key(self.store.getter(i), i), i) for i in refs]
            yield from sorted(keyed, reverse=self.desc)
            return
        if self.sort in CUSTOMER_TIME_FIELDS:
            field = self.source.customer_field(self.sort)
            for i in field.sorted_by_value(self.span, self._keep, self.desc):
                yield (True, _sortable(field.value(i)), 0, i, ""), i
            return
        keyed = [(self._key(self.store.getter(i), i), i) for i in self.span if self._keep(i)]
        yield from sorted(keyed, reverse=self.desc)


def _within(value: Any, bounds: _Bounds) -> bool:
    lo, hi = bounds
    if lo is None and hi is None:
        return True
    return isinstance(value, int) and (lo is None or value >= lo) and (hi is None or value <= hi)


def _sortable(value: Any) -> Any:
    """Mixed-type values compare by type name first (None never reaches here unordered)."""
    if value is None:
        return ("", "")
    return (type(value).__name__ if not isinstance(value, int | float) else "0", value)
