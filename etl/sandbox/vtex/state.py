"""The emulator's in-memory state: open scrolls, search cursors, the hook, a small LRU cache."""

from __future__ import annotations

import collections
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from etl.sandbox.data import (
    Doc,
    Ref,
)


@dataclass
class Scroll:
    iterator: Iterator[Ref]
    fields: list[str] | None
    size: int
    total: int
    last_used: float
    exhausted: bool = False


@dataclass
class Cursor:
    """A cached search result: its total and the references read so far."""

    total: int
    iterator: Iterator[Ref]
    refs: list[Ref] = field(default_factory=list)

    def upto(self, end: int) -> list[Ref]:
        if len(self.refs) < end:
            self.refs.extend(itertools.islice(self.iterator, end - len(self.refs)))
        return self.refs


@dataclass
class Hook:
    statuses: frozenset[str] | None
    url: str
    headers: dict[str, str]
    body: Doc


class LRU(collections.OrderedDict[Any, Any]):
    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def remember(self, key: Any, value: Any) -> Any:
        self[key] = value
        self.move_to_end(key)
        while len(self) > self.size:
            self.popitem(last=False)
        return value

    def recall(self, key: Any) -> Any:
        value = self.get(key)
        if value is not None:
            self.move_to_end(key)
        return value
