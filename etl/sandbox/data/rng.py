"""Deterministic hashing and a small seeded generator: every record is a function of
``(seed, index)``, so no generated document is ever stored."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

_M64 = (1 << 64) - 1

_M48 = (1 << 48) - 1

_SPREAD = 0xB5AD4ECEDA1D  # odd: multiplying by it is a bijection modulo 2**48

_SPREAD_INVERSE = pow(_SPREAD, -1, 1 << 48)


def spread48(i: int, key: int) -> int:
    """An invertible scramble of a 48-bit integer (multiply, xor-shift, multiply)."""
    x = ((i ^ key) * _SPREAD) & _M48
    x ^= x >> 24
    return (x * _SPREAD) & _M48


def unspread48(x: int, key: int) -> int:
    x = (x * _SPREAD_INVERSE) & _M48
    x ^= x >> 24
    return (((x * _SPREAD_INVERSE) & _M48) ^ key) & _M48


_GAMMA = 0x9E3779B97F4A7C15


def _mix(x: int) -> int:
    """splitmix64's finaliser: a fast, well-spread 64-bit hash of a 64-bit integer."""
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


class Hasher:
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


class Rng:
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
