"""Test doubles shared by the HTTP client tests: a recording rate budget and a no-wait policy."""

from __future__ import annotations

from dataclasses import dataclass, field

from etl.retry import RetryPolicy


@dataclass
class RecordingBudget:
    """A ``RateBudget`` that grants everything and remembers what it was asked."""

    acquired: int = 0
    penalties: list[float] = field(default_factory=list)

    def acquire(self, cost: int = 1) -> None:
        self.acquired += cost

    def penalize(self, seconds: float) -> None:
        self.penalties.append(seconds)


def instant_policy(sleeps: list[float] | None = None, **overrides: object) -> RetryPolicy:
    """The default policy without waiting; each wait is appended to ``sleeps``."""
    record = sleeps if sleeps is not None else []
    return RetryPolicy(sleep=record.append, random=lambda: 0.5, **overrides)  # type: ignore[arg-type]
