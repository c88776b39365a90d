"""Fixtures the HTTP client tests share."""

from __future__ import annotations

import pytest

from tests.etl.httpfakes import RecordingBudget


@pytest.fixture
def sleeps() -> list[float]:
    """The waits a client's retry policy asked for (``instant_policy`` records them here)."""
    return []


@pytest.fixture
def budget() -> RecordingBudget:
    """A rate budget that records every acquire and penalty instead of waiting."""
    return RecordingBudget()
