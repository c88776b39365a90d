"""A 207 that refuses items only for now (code 429/408/5xx): those items are resent, not lost."""

from __future__ import annotations

import json

import pytest
import responses

from etl.synerise.auth import BasicAuth
from etl.synerise.batching import Attribution, parse_partial_errors
from etl.synerise.client import SyneriseClient
from tests.etl.httpfakes import instant_policy

BASE = "https://api.synerise.test"
PROFILES = f"{BASE}/v4/clients/batch"


def client(sleeps: list[float], attempts: int = 6) -> SyneriseClient:
    return SyneriseClient(
        BASE, BasicAuth("guid", "key"), retry=instant_policy(sleeps, max_attempts=attempts)
    )


def profiles(n):
    return [{"customId": f"u{i}", "email": f"user{i}@example.com"} for i in range(n)]


def sent_ids(call) -> list[str]:
    return [item["customId"] for item in json.loads(call.request.body)]


def error(index: int, code: object, message: str = "refused") -> dict:
    return {"index": index, "field": f"[{index}]", "code": code, "message": message}


@responses.activate
def test_transiently_refused_items_are_resent_alone_and_accepted():
    sleeps: list[float] = []
    responses.post(PROFILES, status=207, json=[error(1, 503), error(3, 429)])
    responses.post(PROFILES, status=207, json=[error(1, 503)])  # positions in the resent batch
    responses.post(PROFILES, status=202)
    result = client(sleeps).upsert_profiles(profiles(4))
    assert result.accepted == [0, 1, 2, 3] and result.rejected == {} and result.retry == {}
    assert [sent_ids(call) for call in responses.calls] == [
        ["u0", "u1", "u2", "u3"],
        ["u1", "u3"],
        ["u3"],
    ]
    assert len(sleeps) == 2  # a backoff before each resend


@responses.activate
def test_items_refused_for_good_are_not_resent():
    sleeps: list[float] = []
    responses.post(
        PROFILES,
        status=207,
        json=[error(0, 400, "email: invalid"), error(2, 503), error(2, 400, "phone: bad")],
    )
    result = client(sleeps).upsert_profiles(profiles(3))
    assert result.accepted == [1]
    assert set(result.rejected) == {0, 2}
    assert len(responses.calls) == 1 and sleeps == []


@responses.activate
def test_an_item_that_keeps_being_refused_is_rejected_after_the_policy_attempts():
    sleeps: list[float] = []
    responses.post(PROFILES, status=207, json=[error(0, 503, "Item temporarily rejected")])
    result = client(sleeps, attempts=3).upsert_profiles(profiles(1))
    assert result.accepted == [] and list(result.rejected) == [0]
    assert "still refused after 3 attempts" in result.rejected[0]
    assert len(responses.calls) == 3 and len(sleeps) == 2


@responses.activate
def test_resend_keeps_caller_indexes_across_batches():
    sleeps: list[float] = []
    synerise = SyneriseClient(
        BASE, BasicAuth("guid", "key"), retry=instant_policy(sleeps), batch_size=2
    )
    responses.post(PROFILES, status=202)  # first batch: items 0, 1
    responses.post(PROFILES, status=207, json=[error(1, 502)])  # second batch: items 2, 3
    responses.post(PROFILES, status=202)  # item 3 again
    result = synerise.upsert_profiles(profiles(4))
    assert result.accepted == [0, 1, 2, 3] and result.rejected == {}
    assert sent_ids(responses.calls[2]) == ["u3"]


@pytest.mark.parametrize(
    ("code", "transient"),
    [(503, True), (500, True), (429, True), (408, True), ("503", True), (400, False),
     (404, False), (True, False), (None, False), ("soon", False)],
)
def test_transient_codes(code, transient):
    found = parse_partial_errors([error(0, code)], 1)
    assert found.transient == (frozenset({0}) if transient else frozenset())
    assert 0 in found.by_position


def test_an_item_needs_every_error_transient_to_be_retried():
    found = parse_partial_errors([error(0, 503), error(0, 400), error(1, 503)], 2)
    assert found.transient == frozenset({1})


@responses.activate
def test_a_parser_without_transient_positions_still_works():
    responses.post(PROFILES, status=207, json={"failed": [1]})
    synerise = SyneriseClient(
        BASE,
        BasicAuth("guid", "key"),
        retry=instant_policy([]),
        partial_parser=lambda body, size: Attribution({1: "refused"}, []),
    )
    result = synerise.upsert_profiles(profiles(2))
    assert result.accepted == [0] and result.rejected == {1: "refused"}
