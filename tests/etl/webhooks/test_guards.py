"""The Redis guards against a real Redis: claims, their release, and the echo window."""

from __future__ import annotations

import pytest

from etl.sync.guards import Echo, EchoGuard, OnceGuard


def test_a_claim_is_held_by_one_token_and_survives_its_retries(redis_client):
    once = OnceGuard(redis_client, ttl=60)
    assert once.claim("hook:o-1:invoiced:t", "task-a")
    assert once.claim("hook:o-1:invoiced:t", "task-a")  # the same task, retried
    assert not once.claim("hook:o-1:invoiced:t", "task-b")  # a duplicate delivery
    assert 0 < redis_client.ttl("etl:once:hook:o-1:invoiced:t") <= 60


def test_release_frees_only_the_holders_claim(redis_client):
    once = OnceGuard(redis_client, ttl=60)
    once.claim("k", "task-a")
    once.release("k", "task-b")
    assert not once.claim("k", "task-b")
    once.release("k", "task-a")
    assert once.claim("k", "task-b")


def test_the_echo_guard_remembers_our_write_for_its_ttl(redis_client):
    echo = EchoGuard(redis_client, ttl=30)
    assert echo.recall("cl-1") is None
    echo.remember("cl-1", False)
    assert echo.recall("cl-1") == Echo(False, None)
    echo.remember("cl-1", False, "2026-01-01T10:00:00.1230000Z")
    assert echo.recall("cl-1") == Echo(False, "2026-01-01T10:00:00.1230000Z")
    assert 0 < redis_client.ttl("etl:echo:cl:cl-1") <= 30


@pytest.mark.parametrize(
    ("updated_in", "document", "covered"),
    [
        (None, {"updatedIn": "2030-01-01T00:00:00Z"}, True),  # write in flight: Synerise wins
        ("2026-01-01T10:00:00.1230000Z", {"updatedIn": "2026-01-01T10:00:00.123Z"}, True),
        ("2026-01-01T10:00:00.1230000Z", {"updatedIn": "2026-01-01T09:00:00Z"}, True),
        ("2026-01-01T10:00:00.1230000Z", {"updatedIn": "2026-01-01T10:00:00.124Z"}, False),
        ("2026-01-01T10:00:00Z", {}, True),
        ("2026-01-01T10:00:00Z", {"updatedIn": "not a date"}, True),
    ],
)
def test_an_echo_covers_documents_not_newer_than_our_write(updated_in, document, covered):
    assert Echo(True, updated_in).covers(document) is covered
