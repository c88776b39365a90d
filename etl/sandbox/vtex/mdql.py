"""Master Data's query language (``_where``): tokenizer, parser, evaluation, and a plan that
turns time conditions into index windows so large datasets are never scanned whole."""

from __future__ import annotations

import contextlib
import fnmatch
import re
from dataclasses import dataclass
from typing import Any

from etl.sandbox.data import (
    CUSTOMER_TIME_FIELDS,
    Getter,
    Ref,
    Store,
    parse_time,
)
from etl.sandbox.vtex.protocol import DATE_ONLY, DAY_MS


class WhereError(ValueError):
    """A ``_where`` clause the sandbox cannot parse (answered 400)."""


@dataclass(frozen=True)
class Cmp:
    field: str
    op: str  # = <> > < >= <=
    value: str


@dataclass(frozen=True)
class Between:
    field: str
    low: str
    high: str


@dataclass(frozen=True)
class IsNull:
    field: str
    negated: bool


@dataclass(frozen=True)
class BoolOp:
    op: str  # and / or
    parts: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    part: Node


Node = Cmp | Between | IsNull | BoolOp | Not

_TOKEN = re.compile(
    r"""\s*(?:(?P<paren>[()])|(?P<op>>=|<=|<>|!=|=|>|<)|"(?P<dq>[^"]*)"|'(?P<sq>[^']*)'|(?P<word>[^\s()=<>!"']+))"""
)


def _tokenize(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN.match(text, pos)
        if match is None:
            raise WhereError(f"_where: unexpected character at {pos}: {text[pos : pos + 10]!r}")
        pos = match.end()
        kind = match.lastgroup or ""
        value = match.group(kind)
        tokens.append(("value" if kind in ("dq", "sq") else kind, value))
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.pos = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            raise WhereError(f"_where: unexpected end of {self.text!r}")
        self.pos += 1
        return token

    def keyword(self, word: str) -> bool:
        token = self.peek()
        if token is not None and token[0] == "word" and token[1].lower() == word:
            self.pos += 1
            return True
        return False

    def parse(self) -> Node:
        node = self.expr()
        if self.peek() is not None:
            raise WhereError(f"_where: unexpected {self.tokens[self.pos][1]!r} in {self.text!r}")
        return node

    def expr(self) -> Node:
        parts = [self.conjunction()]
        while self.keyword("or"):
            parts.append(self.conjunction())
        return parts[0] if len(parts) == 1 else BoolOp("or", tuple(parts))

    def conjunction(self) -> Node:
        parts = [self.unary()]
        while self.keyword("and"):
            parts.append(self.unary())
        return parts[0] if len(parts) == 1 else BoolOp("and", tuple(parts))

    def unary(self) -> Node:
        if self.keyword("not"):
            return Not(self.unary())
        token = self.peek()
        if token == ("paren", "("):
            self.pos += 1
            node = self.expr()
            if self.take() != ("paren", ")"):
                raise WhereError(f"_where: missing ')' in {self.text!r}")
            return node
        return self.comparison()

    def comparison(self) -> Node:
        kind, name = self.take()
        if kind != "word":
            raise WhereError(f"_where: expected a field name, got {name!r} in {self.text!r}")
        if self.keyword("between"):
            low = self.value()
            if not self.keyword("and"):
                raise WhereError(f"_where: 'between' needs 'AND' in {self.text!r}")
            return Between(name, low, self.value())
        if self.keyword("is"):
            negated = self.keyword("not")
            if not self.keyword("null"):
                raise WhereError(f"_where: expected 'null' after 'is' in {self.text!r}")
            return IsNull(name, negated)
        kind, op = self.take()
        if kind != "op":
            raise WhereError(f"_where: expected an operator after {name!r} in {self.text!r}")
        return Cmp(name, "<>" if op == "!=" else op, self.value())

    def value(self) -> str:
        kind, text = self.take()
        if kind not in ("word", "value"):
            raise WhereError(f"_where: expected a value, got {text!r} in {self.text!r}")
        return text


def parse_where(text: str) -> Node:
    """Parse a Master Data v1 ``_where`` clause.

    Grammar: ``a=b``, ``a<>b`` (``!=``), ``<``, ``>``, ``<=``, ``>=``, ``a between x AND y``,
    ``a is null``, ``a is not null``, ``NOT``, ``AND``, ``OR`` (``AND`` binds tighter) and
    parentheses. Values may be quoted; ``*`` in an ``=`` value is a wildcard.

    Raises:
        WhereError: the clause cannot be parsed.
    """
    if not text.strip():
        raise WhereError("_where is empty")
    return _Parser(text).parse()


def _time_bounds(value: str, *, upper: bool) -> int:
    """A date-only literal stands for the whole day: its first or last millisecond."""
    ms = parse_time(value)
    return ms + DAY_MS - 1 if upper and DATE_ONLY.fullmatch(value.strip()) else ms


def _time_interval(node: Cmp | Between) -> tuple[int | None, int | None]:
    """The inclusive ms interval a time comparison selects (``<>`` gives no interval)."""
    if isinstance(node, Between):
        return _time_bounds(node.low, upper=False), _time_bounds(node.high, upper=True)
    first, last = _time_bounds(node.value, upper=False), _time_bounds(node.value, upper=True)
    return {
        "=": (first, last),
        ">": (last + 1, None),
        ">=": (first, None),
        "<": (None, first - 1),
        "<=": (None, last),
    }.get(node.op, (None, None))


def _scalar_equal(actual: Any, expected: str) -> bool:
    if actual is None:
        return False
    if isinstance(actual, bool):
        return expected.lower() == ("true" if actual else "false")
    if "*" in expected:
        return fnmatch.fnmatchcase(str(actual).lower(), expected.lower())
    if isinstance(actual, int | float):
        try:
            return float(expected) == float(actual)
        except ValueError:
            return False
    return str(actual) == expected


def _order(actual: Any, expected: str) -> int | None:
    """-1/0/1 comparing a document value with a literal (numbers, dates, then text)."""
    if actual is None or isinstance(actual, bool):
        return None
    pairs: list[tuple[Any, Any]] = []
    with contextlib.suppress(TypeError, ValueError):
        pairs.append((float(actual), float(expected)))
    with contextlib.suppress(ValueError):
        pairs.append((parse_time(str(actual)), parse_time(expected)))
    a, b = pairs[0] if pairs else (str(actual), expected)
    return (a > b) - (a < b)


def evaluate(node: Node, get: Getter) -> bool:
    """Whether a document (read through ``get``) satisfies ``node``.

    Raises:
        WhereError: a time literal is not a date.
    """
    if isinstance(node, BoolOp):
        parts = (evaluate(part, get) for part in node.parts)
        return all(parts) if node.op == "and" else any(parts)
    if isinstance(node, Not):
        return not evaluate(node.part, get)
    if isinstance(node, IsNull):
        value = get(node.field)
        empty = value is None or value == ""
        return not empty if node.negated else empty
    if node.field in CUSTOMER_TIME_FIELDS:
        value = get(node.field)
        if isinstance(node, Cmp) and node.op == "<>":
            lo, hi = _time_interval(Cmp(node.field, "=", node.value))
            return value is not None and not (
                lo is not None and hi is not None and lo <= value <= hi
            )
        lo, hi = _time_interval(node)
        return value is not None and (lo is None or value >= lo) and (hi is None or value <= hi)
    value = get(node.field)
    if isinstance(node, Between):
        low, high = _order(value, node.low), _order(value, node.high)
        return low is not None and high is not None and low >= 0 and high <= 0
    if node.op == "=":
        return _scalar_equal(value, node.value)
    if node.op == "<>":
        return not _scalar_equal(value, node.value)
    order = _order(value, node.value)
    if order is None:
        return False
    return {">": order > 0, "<": order < 0, ">=": order >= 0, "<=": order <= 0}[node.op]


@dataclass
class QueryPlan:
    """What a ``_where`` narrows the candidates to; ``exact``: no per-document check needed."""

    created: tuple[int | None, int | None] = (None, None)
    updated: tuple[int | None, int | None] = (None, None)
    points: list[Ref] | None = None
    exact: bool = True

    @property
    def unbounded(self) -> bool:
        return self.created == (None, None) and self.updated == (None, None)


_Bounds = tuple[int | None, int | None]


def _meet(a: _Bounds, b: _Bounds) -> _Bounds:
    lows = [x for x in (a[0], b[0]) if x is not None]
    highs = [x for x in (a[1], b[1]) if x is not None]
    return (max(lows) if lows else None, min(highs) if highs else None)


def _hull(bounds: list[_Bounds]) -> _Bounds:
    lows, highs = [b[0] for b in bounds], [b[1] for b in bounds]
    return (
        None if any(x is None for x in lows) else min(x for x in lows if x is not None),
        None if any(x is None for x in highs) else max(x for x in highs if x is not None),
    )


def check_time_literals(node: Node) -> None:
    """Parse every time literal up front, so a bad one is a 400 and not a failure mid-scan.

    Raises:
        ValueError: a ``createdIn``/``updatedIn`` literal is not a date.
    """
    if isinstance(node, BoolOp):
        for part in node.parts:
            check_time_literals(part)
    elif isinstance(node, Not):
        check_time_literals(node.part)
    elif isinstance(node, Cmp | Between) and node.field in CUSTOMER_TIME_FIELDS:
        _time_interval(Cmp(node.field, "=", node.value) if isinstance(node, Cmp) else node)


def plan_query(node: Node, store: Store) -> QueryPlan:
    if isinstance(node, Cmp | Between) and node.field in CUSTOMER_TIME_FIELDS:
        if isinstance(node, Cmp) and node.op == "<>":
            return QueryPlan(exact=False)
        bounds = _time_interval(node)
        return QueryPlan(created=bounds) if node.field == "createdIn" else QueryPlan(updated=bounds)
    if (
        isinstance(node, Cmp)
        and node.op == "="
        and node.field in ("id", "userId", "email")
        and "*" not in node.value
    ):
        return QueryPlan(points=store.find_customers(node.field, node.value))
    if isinstance(node, BoolOp) and node.op == "and":
        plan = QueryPlan()
        for part in map(lambda p: plan_query(p, store), node.parts):
            plan.created = _meet(plan.created, part.created)
            plan.updated = _meet(plan.updated, part.updated)
            if part.points is not None:
                if plan.points is None:
                    plan.points = part.points
                else:
                    kept = set(part.points)
                    plan.points = [p for p in plan.points if p in kept]
            plan.exact = plan.exact and part.exact
        return plan
    if isinstance(node, BoolOp):  # or
        parts = [plan_query(p, store) for p in node.parts]
        if all(p.points is not None and p.unbounded for p in parts):
            merged: dict[Ref, None] = {}
            for p in parts:
                merged.update(dict.fromkeys(p.points or ()))
            return QueryPlan(points=list(merged), exact=all(p.exact for p in parts))
        if any(p.points is not None for p in parts):
            return QueryPlan(exact=False)
        return QueryPlan(
            created=_hull([p.created for p in parts]),
            updated=_hull([p.updated for p in parts]),
            exact=False,
        )
    return QueryPlan(exact=False)
