"""SyneriseClient against ``responses``: batching, 207s, bisecting, retries, single calls."""

from __future__ import annotations

import json

import pytest
import responses

from etl.config import Settings
from etl.errors import (
    CatalogNotFoundError,
    ConfigError,
    FatalError,
    PermissionDeniedError,
    RateLimitedError,
    ServerError,
    SkippableRecordError,
)
from etl.synerise.auth import BasicAuth, TokenAuth
from etl.synerise.batching import Attribution
from etl.synerise.client import SyneriseClient
from tests.etl.httpfakes import instant_policy

BASE = "https://api.synerise.test"
PROFILES = f"{BASE}/v4/clients/batch"
API_KEY = "6f1c2d3e-aaaa-bbbb-cccc-0123456789ab"


@pytest.fixture
def synerise(sleeps, budget):
    return SyneriseClient(
        BASE, BasicAuth("guid", API_KEY), budget=budget, retry=instant_policy(sleeps)
    )


def profiles(n):
    return [{"customId": f"u{i}", "email": f"user{i}@example.com"} for i in range(n)]


def sent(call):
    return json.loads(call.request.body)


@responses.activate
def test_202_accepts_every_item_with_the_documented_headers(synerise):
    responses.post(PROFILES, status=202)
    result = synerise.upsert_profiles(profiles(3))
    assert result.accepted == [0, 1, 2] and result.rejected == {}
    request = responses.calls[0].request
    assert sent(responses.calls[0]) == profiles(3)
    assert request.headers["Api-Version"] == "4.4"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Accept"] == "application/json"


@responses.activate
def test_items_are_split_into_batches_of_batch_size(budget):
    responses.post(PROFILES, status=202)
    synerise = SyneriseClient(
        BASE, BasicAuth("g", API_KEY), budget=budget, retry=instant_policy(), batch_size=100
    )
    result = synerise.upsert_profiles(profiles(250))
    assert result.accepted == list(range(250))
    assert [len(sent(c)) for c in responses.calls] == [100, 100, 50]
    assert budget.acquired == 3


@responses.activate
def test_by_default_batches_fill_up_to_synerises_documented_limit_where_it_has_one(synerise):
    # Profiles (and events): 1,000 items per call, documented; transactions: UNCONFIRMED, 100.
    responses.post(PROFILES, status=202)
    responses.post(f"{BASE}/v4/transactions/batch", status=202)
    assert synerise.upsert_profiles(profiles(2_500)).accepted == list(range(2_500))
    assert [len(sent(c)) for c in responses.calls] == [1000, 1000, 500]
    transactions = [{"orderId": f"o{i}", "eventSalt": f"s{i}"} for i in range(250)]
    assert synerise.send_transactions(transactions).accepted == list(range(250))
    assert [len(sent(c)) for c in responses.calls[3:]] == [100, 100, 50]


@responses.activate
def test_a_set_batch_size_applies_to_every_path(budget):
    responses.post(PROFILES, status=202)
    responses.post(f"{BASE}/v4/transactions/batch", status=202)
    synerise = SyneriseClient(
        BASE, BasicAuth("g", API_KEY), budget=budget, retry=instant_policy(), batch_size=300
    )
    synerise.upsert_profiles(profiles(700))
    synerise.send_transactions([{"orderId": f"o{i}"} for i in range(400)])
    assert [len(sent(c)) for c in responses.calls] == [300, 300, 100, 300, 100]


@responses.activate
def test_no_items_no_calls(synerise):
    assert synerise.upsert_profiles([]).accepted == []
    assert len(responses.calls) == 0


@responses.activate
def test_a_207_rejects_the_named_items_only(synerise):
    responses.post(
        PROFILES,
        status=207,
        json=[
            {"code": 1, "field": "[1].email", "message": "Invalid email",
             "rejectedValue": "user1@example.com"},
            {"index": 3, "field": "phone", "message": "Invalid phone"},
        ],
    )
    result = synerise.upsert_profiles(profiles(5))
    assert result.accepted == [0, 2, 4]
    assert result.rejected == {1: "email: Invalid email", 3: "phone: Invalid phone"}


@responses.activate
def test_207_positions_are_relative_to_their_batch():
    responses.post(PROFILES, status=202)
    responses.post(PROFILES, status=207, json=[{"field": "[0].email", "message": "bad"}])
    synerise = SyneriseClient(BASE, BasicAuth("g", API_KEY), retry=instant_policy(), batch_size=2)
    result = synerise.upsert_profiles(profiles(4))
    assert result.accepted == [0, 1, 3] and result.rejected == {2: "email: bad"}


@responses.activate
def test_an_unattributable_207_rejects_the_batch_rather_than_lose_records(synerise):
    responses.post(PROFILES, status=207, json={"message": "Request partially accepted"})
    result = synerise.upsert_profiles(profiles(3))
    assert result.accepted == []
    assert set(result.rejected) == {0, 1, 2}
    assert "207" in result.rejected[0] and "Request partially accepted" in result.rejected[0]


@responses.activate
def test_a_207_with_some_unattributed_errors_rejects_the_unnamed_items_too(synerise):
    responses.post(
        PROFILES,
        status=207,
        json=[{"field": "[0].email", "message": "bad"}, {"field": "email", "message": "worse"}],
    )
    result = synerise.upsert_profiles(profiles(2))
    assert result.accepted == []
    assert result.rejected[0] == "email: bad"
    assert "email: worse" in result.rejected[1]


@responses.activate
def test_the_207_parser_can_be_replaced(sleeps):
    responses.post(PROFILES, status=207, json={"failed": [2]})

    def parser(body, size):
        return Attribution({i: "failed" for i in body["failed"]}, [])

    synerise = SyneriseClient(
        BASE, BasicAuth("g", API_KEY), retry=instant_policy(sleeps), partial_parser=parser
    )
    result = synerise.upsert_profiles(profiles(3))
    assert result.accepted == [0, 1] and result.rejected == {2: "failed"}


@responses.activate
def test_a_400_batch_is_bisected_down_to_the_bad_items(synerise):
    def answer(request):
        batch = json.loads(request.body)
        if any(item["customId"] in ("u5", "u6") for item in batch):
            body = {"error": "Bad Request", "errors": [
                {"field": "email", "message": "Invalid email", "rejectedValue": "x@example.com"}
            ]}
            return 400, {}, json.dumps(body)
        return 202, {}, ""

    responses.add_callback(responses.POST, PROFILES, callback=answer)
    result = synerise.upsert_profiles(profiles(8))
    assert result.accepted == [0, 1, 2, 3, 4, 7]
    assert result.rejected == {
        5: "Synerise answered 400: Bad Request; email: Invalid email",
        6: "Synerise answered 400: Bad Request; email: Invalid email",
    }
    sizes = [len(sent(c)) for c in responses.calls]
    assert sizes[0] == 8 and sizes.count(1) >= 2 and len(sizes) <= 9


@pytest.mark.parametrize("status", [413, 422])
@responses.activate
def test_other_content_refusals_are_bisected_too(synerise, status):
    responses.post(PROFILES, status=status)
    result = synerise.upsert_profiles(profiles(2))
    assert result.accepted == [] and set(result.rejected) == {0, 1}
    assert len(responses.calls) == 3


@responses.activate
def test_415_is_fatal_not_bisected(synerise):
    responses.post(PROFILES, status=415, json={"error": "Unsupported Media Type"})
    with pytest.raises(FatalError, match="415"):
        synerise.upsert_profiles(profiles(8))
    assert len(responses.calls) == 1


@responses.activate
def test_a_404_on_a_batch_endpoint_is_fatal_and_names_the_host_setting(synerise):
    responses.post(PROFILES, status=404)
    with pytest.raises(FatalError, match="SYNERISE_API_HOST"):
        synerise.upsert_profiles(profiles(1))


@responses.activate
def test_429_waits_retry_after_and_penalises_the_budget(synerise, sleeps, budget):
    responses.post(PROFILES, status=429, headers={"Retry-After": "3"})
    responses.post(PROFILES, status=202)
    assert synerise.upsert_profiles(profiles(2)).accepted == [0, 1]
    assert sleeps == [3.0] and budget.penalties == [3.0] and budget.acquired == 2


@responses.activate
def test_a_long_retry_after_caps_the_sleep_but_not_the_budget(synerise, sleeps, budget):
    responses.post(PROFILES, status=429, headers={"Retry-After": "600"})
    responses.post(PROFILES, status=202)
    synerise.upsert_profiles(profiles(1))
    assert sleeps == [60.0] and budget.penalties == [600.0]


@responses.activate
def test_server_errors_are_retried_then_raised(synerise, sleeps):
    responses.post(PROFILES, status=503)
    with pytest.raises(ServerError):
        synerise.upsert_profiles(profiles(3))
    assert len(responses.calls) == 6 and len(sleeps) == 5


@responses.activate
def test_rate_limit_that_never_ends_is_raised(synerise):
    responses.post(PROFILES, status=429)
    with pytest.raises(RateLimitedError):
        synerise.upsert_profiles(profiles(1))


@responses.activate
def test_a_403_names_the_permission(synerise):
    responses.post(f"{BASE}/v4/transactions/batch", status=403, json={"error": "Forbidden"})
    with pytest.raises(PermissionDeniedError, match="API_BATCH_TRANSACTION_CREATE"):
        synerise.send_transactions([{"orderId": "o-1"}])


@responses.activate
def test_an_oversized_item_is_rejected_without_being_sent(synerise):
    responses.post(PROFILES, status=202)
    data = profiles(3)
    data[1]["attributes"] = {"blob": "x" * 1_000_001}
    result = synerise.upsert_profiles(data)
    assert result.accepted == [0, 2]
    assert "bytes as JSON" in result.rejected[1]
    assert [item["customId"] for item in sent(responses.calls[0])] == ["u0", "u2"]


@responses.activate
def test_rejection_messages_never_carry_personal_data(synerise):
    responses.post(
        PROFILES,
        status=400,
        json={"message": "Email user0@example.com is invalid",
              "errors": [{"field": "email", "rejectedValue": "user0@example.com"}]},
    )
    result = synerise.upsert_profiles(profiles(1))
    assert "user0@example.com" not in result.rejected[0]
    assert "u***@example.com" in result.rejected[0]


@responses.activate
def test_transactions_events_and_catalog_items_use_their_endpoints(synerise):
    responses.post(f"{BASE}/v4/transactions/batch", status=202)
    responses.post(f"{BASE}/v4/events/batch", status=202)
    responses.post(f"{BASE}/catalogs/bags/42/items/batch", status=200, json=True)
    assert synerise.send_transactions([{"orderId": "o-1"}]).accepted == [0]
    assert synerise.send_events([{"action": "a"}, {"action": "b"}]).accepted == [0, 1]
    items = [{"itemKey": "sku-1", "value": {"itemId": "sku-1"}}]
    assert synerise.upsert_catalog_items(42, items).accepted == [0]
    assert sent(responses.calls[2]) == items


@responses.activate
def test_send_custom_event(synerise):
    responses.post(f"{BASE}/v4/events/custom", status=202)
    responses.post(f"{BASE}/v4/events/custom", status=400, json={"message": "action too long"})
    event = {"action": "client.deleteAccount", "label": "x", "eventSalt": "salt-1"}
    synerise.send_custom_event(event)
    assert sent(responses.calls[0]) == event
    with pytest.raises(SkippableRecordError) as caught:
        synerise.send_custom_event(event)
    assert caught.value.reason == "SYNERISE_REJECTED" and caught.value.key == "salt-1"
    assert "action too long" in caught.value.message


@responses.activate
def test_delete_profile_by_custom_id(synerise):
    responses.delete(f"{BASE}/v4/clients/by-customid/u%2F1", status=200)
    responses.delete(f"{BASE}/v4/clients/by-customid/gone", status=404)
    assert synerise.delete_profile_by_custom_id("u/1") is True
    assert synerise.delete_profile_by_custom_id("gone") is False
    with pytest.raises(ValueError):
        synerise.delete_profile_by_custom_id("")


@responses.activate
def test_the_delete_path_is_configurable():
    responses.delete(f"{BASE}/v4/clients/by-custom-id/u1", status=204)
    synerise = SyneriseClient(
        BASE, BasicAuth("g", API_KEY), retry=instant_policy(),
        delete_path="/v4/clients/by-custom-id/{custom_id}",
    )
    assert synerise.delete_profile_by_custom_id("u1") is True
    with pytest.raises(ValueError):
        SyneriseClient(BASE, BasicAuth("g", API_KEY), delete_path="/v4/clients/x")


@responses.activate
def test_ensure_catalog_finds_an_existing_one_and_caches_it(synerise):
    responses.get(
        f"{BASE}/catalogs/bags",
        json={"data": [{"id": 7, "name": "vtex-products-old"}, {"id": 9, "name": "vtex"}]},
    )
    assert synerise.ensure_catalog("vtex") == 9
    assert synerise.ensure_catalog("vtex") == 9
    assert len(responses.calls) == 1
    assert responses.calls[0].request.params["searchBy"] == "vtex"


@responses.activate
def test_ensure_catalog_creates_a_missing_one(synerise):
    responses.get(f"{BASE}/catalogs/bags", json={"data": [], "metaData": {}})
    responses.post(f"{BASE}/catalogs/bags", json={"data": {"id": 12, "name": "vtex"}})
    assert synerise.ensure_catalog("vtex") == 12
    assert sent(responses.calls[1]) == {"name": "vtex"}


@responses.activate
def test_ensure_catalog_without_an_id_is_fatal(synerise):
    responses.get(f"{BASE}/catalogs/bags", json={"data": []})
    responses.post(f"{BASE}/catalogs/bags", json={"data": {"name": "vtex"}})
    with pytest.raises(FatalError, match="numeric id"):
        synerise.ensure_catalog("vtex")


@responses.activate
def test_a_catalog_that_answers_404_is_gone(synerise):
    responses.post(f"{BASE}/catalogs/bags/42/items/batch", status=404, json={"message": "nope"})
    with pytest.raises(CatalogNotFoundError) as raised:
        synerise.upsert_catalog_items(42, [{"itemKey": "1", "value": {"itemId": "1"}}])
    assert raised.value.catalog_id == 42 and "nope" in str(raised.value)
    assert len(responses.calls) == 1  # not retried, not bisected: the caller recreates it


@responses.activate
def test_a_404_elsewhere_is_still_fatal(synerise):
    responses.post(PROFILES, status=404)
    with pytest.raises(FatalError) as raised:
        synerise.upsert_profiles([{"customId": "u1"}])
    assert not isinstance(raised.value, CatalogNotFoundError)


@responses.activate
def test_find_catalog_reads_every_page_and_takes_the_oldest_of_a_name(synerise):
    page = [{"id": 1000 + i, "name": f"vtex{i}"} for i in range(99)] + [{"id": 30, "name": "vtex"}]
    responses.get(f"{BASE}/catalogs/bags", json={"data": page})
    responses.get(f"{BASE}/catalogs/bags", json={"data": [{"id": 12, "name": "vtex"}]})
    assert synerise.find_catalog("vtex") == 12
    assert [c.request.params["offset"] for c in responses.calls] == ["0", "100"]
    responses.get(f"{BASE}/catalogs/bags", json={"data": []})
    assert synerise.find_catalog("other") is None


def test_batch_size_is_checked():
    with pytest.raises(ValueError):
        SyneriseClient(BASE, BasicAuth("g", API_KEY), batch_size=1001)


def settings(**env):
    return Settings.from_env(
        env={"SYNERISE_API_KEY": API_KEY, "SYNERISE_API_HOST": "gcp", **env}, require=()
    )


def test_from_settings_logs_in_with_the_api_key_by_default():
    client = SyneriseClient.from_settings(settings(SYNERISE_BATCH_SIZE="250"))
    assert client.http.base_url == "https://api.geb.synerise.com"
    assert isinstance(client.http.auth, TokenAuth)
    assert client.http.auth._http.session is client.http.session  # one pool for both
    assert client.batch_size == 250
    assert API_KEY not in repr(client)


def test_from_settings_uses_basic_auth_with_a_workspace_guid():
    client = SyneriseClient.from_settings(settings(SYNERISE_WORKSPACE_GUID="g-1"))
    assert isinstance(client.http.auth, BasicAuth) and client.http.auth.guid == "g-1"


def test_from_settings_without_api_key_is_a_config_error():
    with pytest.raises(ConfigError, match="SYNERISE_API_KEY"):
        SyneriseClient.from_settings(Settings.from_env(env={}, require=()))
